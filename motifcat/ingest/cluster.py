"""Level-1 motif classes: the column's site (its environment), then its chemistry.

A column is two things: *where* it sits in the lattice (its site, told by the arrangement and
brightness of its neighbours) and *what* it is (its own scattering cross-section, told by
Z-contrast). The classes are found in that order, as StatSTEM counts atoms:

1. **Sites.** A Gaussian mixture of the environment descriptors (their leading principal
   components), its order chosen by the integrated completed likelihood (ICL, Biernacki,
   Celeux & Govaert, IEEE PAMI 22, 719, 2000). A site is a sublattice, and a sublattice is
   never rare: only components holding at least ``min_site_fraction`` of the columns are
   sites. A column whose most likely component is a smaller one (the environment of a column
   next to a defect differs from the perfect lattice by one neighbour) takes the site its own
   cross-section points to, so that it does not found an environment class of its own.
2. **Chemistry.** Per site, a one-dimensional Gaussian mixture of the normalised
   cross-sections, its order again chosen by ICL, with at least ``min_class_size`` columns in
   every component. Rare, well-separated chemistries (a single chalcogen vacancy, 0.5-3 % of
   the columns) get a component of their own, because one extra 1-D component costs only
   three parameters; noise does not, because ICL charges for the overlap of components. The
   components share one variance (StatSTEM's atom-counting mixtures do the same): the noise
   of a cross-section hardly depends on its chemistry, and free variances let a broad
   component swallow the rare columns on both sides of a class.

Both mixtures are scikit-learn's :class:`~sklearn.mixture.GaussianMixture`; this module only
composes them. Both are fitted on a random subsample of at most ``max_fit_samples`` columns,
so that the order chosen does not depend on how large the image is (the likelihood gain of an
extra component grows with the number of samples, its penalty only with its logarithm: a
16 x 16 tiling of one image would otherwise get more classes than the image itself).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.special import xlogy
from sklearn.base import BaseEstimator, ClusterMixin, _fit_context
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from ..errors import AnalysisError


def information_criterion(gmm: GaussianMixture, X: np.ndarray, criterion: str = "icl") -> float:
    """BIC or ICL (= BIC + 2 x classification entropy) of a fitted mixture; lower is better.

    Parameters
    ----------
    gmm : GaussianMixture
        Fitted mixture.
    X : ndarray, shape (n, d)
        The samples it was fitted on.
    criterion : {"icl", "bic"}

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 1))
    >>> g1 = GaussianMixture(1).fit(X); g2 = GaussianMixture(2, random_state=0).fit(X)
    >>> information_criterion(g1, X) < information_criterion(g2, X)
    True
    """
    bic = float(gmm.bic(X))
    if criterion == "bic":
        return bic
    resp = gmm.predict_proba(X)
    return bic - 2.0 * float(xlogy(resp, resp).sum())


def select_mixture(
    X: np.ndarray,
    max_components: int,
    *,
    criterion: str = "icl",
    min_size: float = 0.0,
    min_variance: float = 0.0,
    n_init: int = 2,
    random_state: int | None = 0,
    covariance_type: str = "full",
) -> tuple[GaussianMixture, dict[int, float]]:
    """Full-covariance Gaussian mixture whose order minimises ``criterion``.

    Orders 1 .. ``max_components`` are tried (fewer if there are too few samples); a mixture
    whose smallest component holds fewer than ``min_size`` samples (hard assignments) is not
    eligible.

    Returns
    -------
    gmm : GaussianMixture
    scores : dict
        Order -> criterion value (``inf`` where not eligible).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, 300), rng.normal(10, 1, 10)][:, None]
    >>> select_mixture(X, 4, min_size=3)[0].n_components
    2
    """
    reg = max(min_variance, 1e-6 * float(np.var(X)) + 1e-12)
    scores: dict[int, float] = {}
    best, best_score, worse = None, np.inf, 0
    for k in range(1, max(1, min(max_components, len(X) // 2)) + 1):
        fits = [
            GaussianMixture(
                n_components=k,
                covariance_type=covariance_type,
                n_init=n_init,
                # k-means++ seeding for the site mixture: scikit-learn's default (a full
                # k-means per start) was 90 % of the clustering time on a 2048² image and
                # chose the same orders on the benchmark. A tied mixture started from
                # k-means++ seeds collapsed onto one mean (two equal components, tmd.npz),
                # so it starts from k-means (cheap in the one dimension of cross-sections).
                init_params="kmeans" if covariance_type == "tied" else "k-means++",
                reg_covar=reg,
                random_state=random_state,
            ).fit(X)
        ]
        gaps = _gap_means(X, k, max(1, int(np.ceil(min_size)))) if X.shape[1] == 1 else None
        if gaps is not None:
            # One more start in one dimension: the segments between the k-1 widest gaps.
            # k-means splits a large class in two rather than isolate a few columns far
            # from it (perovskite.npz at 1/50 dose: 5 Sr_vac columns 0.35 below the Sr
            # class, 5 % of the site), and EM does not leave that split.
            fits.append(GaussianMixture(
                n_components=k, covariance_type=covariance_type, means_init=gaps,
                reg_covar=reg, random_state=random_state,
            ).fit(X))
        score, gmm = np.inf, fits[0]
        for cand in fits:
            value = information_criterion(cand, X, criterion)
            if k > 1 and np.bincount(cand.predict(X), minlength=k).min() < min_size:
                value = np.inf
            if value < score or cand is fits[0]:
                score, gmm = value, cand
        scores[k] = score
        if score < best_score:
            best, best_score, worse = gmm, score, 0
        else:
            worse += 1
            if worse >= 2:
                break
    return best, scores


def _gap_means(X: np.ndarray, k: int, min_size: int) -> np.ndarray | None:
    """Means of the k segments of sorted 1-D ``X`` cut at its k-1 widest gaps that leave at
    least ``min_size`` values in every segment (None if k = 1 or no such cut exists)."""
    if k < 2:
        return None
    x = np.sort(X[:, 0])
    cuts: list[int] = []
    for i in np.argsort(-np.diff(x), kind="stable"):
        trial = sorted([*cuts, int(i) + 1])
        if np.diff([0, *trial, len(x)]).min() >= min_size:
            cuts = trial
            if len(cuts) == k - 1:
                return np.array([seg.mean() for seg in np.split(x, cuts)])[:, None]
    return None


class MotifClusterer(ClusterMixin, BaseEstimator):
    """Level-1 classes = (site, chemistry) pairs of two Gaussian mixtures chosen by ICL.

    ``X`` holds one row per column: ``X[:, 0]`` is the column's own scattering cross-section
    normalised per image (mean 1), ``X[:, 1:]`` the descriptor of its environment (Zernike
    invariants or PCA scores; may be empty). See the module docstring for the two stages.

    Parameters
    ----------
    max_sites : int, default 6
        Largest number of environment components tried.
    min_site_fraction : float, default 0.2
        Environment components holding less than this share of the columns are not sites (a
        sublattice is never rare). 0.1 is a prior, checked on ``bench/classes.py``: the
        smallest sublattice of the benchmark sets holds 1/3 of the columns, the environments
        next to defects at most 7 %.
    site_dims : int, default 4
        Principal components of the environment descriptor used by the site mixture.
    env_precision : float, default 0.1
        No site component is narrower (in standard deviation) than this fraction of the
        environments' overall spread. Chosen on ``bench/classes.py``: on a synthetic MoSe2
        image whose lattice is commensurate with the pixels (a = 15 px), the few sub-pixel
        phases of the columns made each sublattice bimodal and 0 gave 4 sites; 0.1 (the
        smallest value tried that gives 2; 0.2 and 0.3 too) gives 2, for 1x1 and 2x2 tilings,
        without changing the 512 px doses set by more than 0.003 in site purity.
    max_levels : int, default 6
        Largest number of cross-section components tried per site.
    min_class_size : int, default 3
        Smallest number of columns (of the fitted subsample) of a chemistry class.
    cs_precision : float, default 0.03
        Relative precision of a cross-section: a chemistry component is never narrower than
        this fraction of the mean cross-section. Measured on ``bench/classes.py``: at full
        dose the model cross-sections of one column type scatter by 2-3 % (neighbours'
        defects bias the fit), so components closer than that are one chemistry.
    criterion : {"icl", "bic"}, default "icl"
        Order-selection criterion of both mixtures.
    max_fit_samples : int, default 4000
        Size of the random subsample both stages are fitted on.
    n_init : int, default 2
        Initialisations per mixture.
    random_state : int or None, default 0

    Attributes
    ----------
    labels_ : ndarray of int, shape (n_samples,)
        Class of each sample, ordered by decreasing size (class 0 is the most frequent).
    n_classes_ : int
        Number of classes.
    n_sites_ : int
        Number of sites (environment classes).
    pca_ : PCA or None
        Projection of the environment descriptors (None without environment columns).
    sites_ : GaussianMixture or None
        Mixture of the projected environments.
    site_components_ : ndarray of int
        The components of ``sites_`` that are sites (site ``s`` is component
        ``site_components_[s]``).
    core_levels_ : list of GaussianMixture
        Per site, the chemistry mixture of the columns of its own component (gives a site to
        the columns of the smaller components).
    levels_ : list of GaussianMixture
        Per site, the mixture of the normalised cross-sections.
    class_site_ : ndarray of int, shape (n_classes,)
        Site of each class.
    class_cross_section_ : ndarray of float, shape (n_classes,)
        Mean normalised cross-section of each class (its component mean).
    site_scores_ : dict
        Criterion per number of environment components tried.
    n_features_in_ : int
        Number of features seen by :meth:`fit`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> env = np.r_[rng.normal(0, 1, (300, 3)), rng.normal(8, 1, (300, 3))]
    >>> cs = np.r_[rng.normal(1, 0.05, 300), rng.normal(1.5, 0.05, 294), rng.normal(0.8, 0.05, 6)]
    >>> c = MotifClusterer().fit(np.c_[cs, env])
    >>> c.n_sites_, c.n_classes_, np.bincount(c.labels_).tolist()
    (2, 3, [300, 294, 6])
    """

    _parameter_constraints: dict = {
        "max_sites": [Interval(Integral, 1, None, closed="left")],
        "min_site_fraction": [Interval(Real, 0, 1, closed="left")],
        "site_dims": [Interval(Integral, 1, None, closed="left")],
        "env_precision": [Interval(Real, 0, None, closed="left")],
        "max_levels": [Interval(Integral, 1, None, closed="left")],
        "min_class_size": [Interval(Integral, 1, None, closed="left")],
        "cs_precision": [Interval(Real, 0, None, closed="left")],
        "level_covariance": [StrOptions({"tied", "full"})],
        "criterion": [StrOptions({"icl", "bic"})],
        "max_fit_samples": [Interval(Integral, 2, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        max_sites: int = 6,
        min_site_fraction: float = 0.2,
        site_dims: int = 4,
        env_precision: float = 0.1,
        max_levels: int = 6,
        min_class_size: int = 3,
        cs_precision: float = 0.03,
        level_covariance: str = "tied",
        criterion: str = "icl",
        max_fit_samples: int = 4000,
        n_init: int = 2,
        random_state: int | None = 0,
    ):
        self.max_sites = max_sites
        self.min_site_fraction = min_site_fraction
        self.site_dims = site_dims
        self.env_precision = env_precision
        self.max_levels = max_levels
        self.min_class_size = min_class_size
        self.cs_precision = cs_precision
        self.level_covariance = level_covariance
        self.criterion = criterion
        self.max_fit_samples = max_fit_samples
        self.n_init = n_init
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit both stages on a subsample of ``X`` and label every row. Returns self."""
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        # The mixtures work on tiny matrices: BLAS threads only add synchronisation overhead.
        with threadpool_limits(limits=1, user_api="blas"):
            self._fit(X)
        return self

    def _fit(self, X: np.ndarray) -> None:
        # One integer seed from random_state (an int, a RandomState or None), for every stage.
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        rng = np.random.default_rng(seed)
        n = len(X)
        fit_idx = (
            np.sort(rng.choice(n, self.max_fit_samples, replace=False))
            if n > self.max_fit_samples
            else np.arange(n)
        )
        Xfit = X[fit_idx]
        env = Xfit[:, 1:]
        self.site_scores_ = {1: 0.0}
        if env.shape[1] == 0 or len(Xfit) < 4 or not (np.ptp(env, axis=0) > 0).any():
            self.pca_, self.sites_ = None, None
            site_fit = np.zeros(len(Xfit), dtype=np.int64)
        else:
            n_dims = min(self.site_dims, env.shape[1], len(Xfit) - 1)
            self.pca_ = PCA(n_components=n_dims, random_state=seed).fit(env)
            Z = self.pca_.transform(env)
            # Sites are compared in units of the environments' overall spread: no site
            # component is narrower than env_precision of it (see the parameter).
            floor = (self.env_precision * float(np.sqrt(np.var(Z, axis=0).sum()))) ** 2
            gmm, self.site_scores_ = select_mixture(
                Z, self.max_sites, criterion=self.criterion, min_variance=floor,
                n_init=self.n_init, random_state=seed,
            )
            self.sites_ = gmm
            self._init_sites(gmm, Z, Xfit[:, :1], seed)
            site_fit = self._site_of(Z, Xfit[:, :1])
        self.n_sites_ = 1 if self.sites_ is None else len(self.site_components_)
        self.levels_ = [self._fit_levels(Xfit[site_fit == s, :1], Xfit, seed)
                        for s in range(self.n_sites_)]
        raw = self._raw_predict(X)
        counts = np.bincount(raw, minlength=self._n_raw)
        present = np.flatnonzero(counts)
        order = present[np.argsort(-counts[present], kind="stable")]
        self._remap = np.full(self._n_raw, -1, dtype=np.int64)
        self._remap[order] = np.arange(len(order))
        self.labels_ = self._remap[raw]
        self.n_classes_ = len(order)
        self.class_site_ = self._raw_site[order]
        self.class_cross_section_ = self._raw_mean[order]

    def _fit_levels(self, cs: np.ndarray, Xfit: np.ndarray, seed: int) -> GaussianMixture:
        """The chemistry mixture of one site's cross-sections (order by the criterion)."""
        if len(cs) < 2:  # an empty site: one level at the overall mean
            cs = Xfit[:, :1]
        gmm, _ = select_mixture(
            cs,
            self.max_levels,
            criterion=self.criterion,
            min_size=self.min_class_size,
            min_variance=(self.cs_precision * float(np.abs(Xfit[:, 0]).mean())) ** 2,
            n_init=self.n_init,
            random_state=seed,
            covariance_type=self.level_covariance,
        )
        return gmm

    def _init_sites(self, gmm: GaussianMixture, Z: np.ndarray, cs: np.ndarray, seed: int):
        """Sites from the environment components: those of weight >= min_site_fraction.

        A column whose most likely component is a smaller one (an environment next to a
        defect, or one the noise blurred between two sublattices) is given a site by its
        own cross-section: the site under whose chemistry mixture (fitted on the sites' own
        columns) it is at least 10 times more likely (a prior, not tuned) than under any
        other; where the chemistries do not tell (two sublattices of one element), the
        nearest site component by environment. Environments alone are not enough: next to a
        defect an environment differs from both sublattices' by one neighbour, and which is
        nearer depends on the metric (measured: under each site's own covariance, 13 S2
        columns next to defects in ``bench/data/tmd.npz`` at 1/100 dose went to the broader
        metal site; under a pooled one, 73 metal columns next to antisites of a synthetic
        MoSe2 went to the chalcogen site; whole small components mixed the two sublattices
        at 1/50 dose).
        """
        keep = gmm.weights_ >= self.min_site_fraction
        if not keep.any():
            keep = gmm.weights_ == gmm.weights_.max()
        self.site_components_ = np.flatnonzero(keep)
        comp = gmm.predict(Z)
        self.core_levels_ = [
            self._fit_levels(cs[comp == k], cs, seed) for k in self.site_components_
        ]

    def _site_of(self, Z: np.ndarray, cs: np.ndarray) -> np.ndarray:
        """Site of each column (see :meth:`_init_sites`)."""
        resp = self.sites_.predict_proba(Z)
        kept = self.site_components_
        site = resp[:, kept].argmax(axis=1)
        rare = ~np.isin(resp.argmax(axis=1), kept)
        if rare.any() and len(kept) > 1:
            chem = np.stack([lv.score_samples(cs[rare]) for lv in self.core_levels_], axis=1)
            top = np.sort(chem, axis=1)
            decisive = top[:, -1] - top[:, -2] >= np.log(10.0)
            site[rare] = np.where(decisive, chem.argmax(axis=1), site[rare])
        return site

    @property
    def _n_raw(self) -> int:
        return sum(g.n_components for g in self.levels_)

    @property
    def _raw_site(self) -> np.ndarray:
        return np.concatenate([np.full(g.n_components, s) for s, g in enumerate(self.levels_)])

    @property
    def _raw_mean(self) -> np.ndarray:
        return np.concatenate([g.means_[:, 0] for g in self.levels_])

    def _raw_predict(self, X: np.ndarray) -> np.ndarray:
        """(site, level) pair of each row as one index into the concatenated levels."""
        if self.sites_ is None:
            site = np.zeros(len(X), dtype=np.int64)
        else:
            site = self._site_of(self.pca_.transform(X[:, 1:]), X[:, :1])
        offsets = np.cumsum([0] + [g.n_components for g in self.levels_])
        raw = np.empty(len(X), dtype=np.int64)
        for s, gmm in enumerate(self.levels_):  # one vectorised pass per site (a handful)
            m = site == s
            if m.any():
                raw[m] = offsets[s] + gmm.predict(X[m, :1])
        return raw

    def _pair_predict(self, X: np.ndarray, env_weight: np.ndarray) -> np.ndarray:
        """(site, level) pair maximising ``log q(site) + log p(cs, level | site)``, with
        ``q = w p(site | env) + (1 - w) / n_sites``: an environment seen in part (weight
        ``w``) is only that likely to be right. (Scaling the log-posterior by ``w`` instead
        was not enough: a masked patch is an outlier to every site component, and its log
        posterior ratios of hundreds sent 79 metal border columns of a synthetic MoSe2 to a
        rare chemistry of the chalcogen site.)"""
        if self.sites_ is None:
            log_site = np.zeros((len(X), 1))
        else:
            proba = self.sites_.predict_proba(self.pca_.transform(X[:, 1:]))
            per_site = proba[:, self.site_components_]
            per_site /= np.maximum(per_site.sum(axis=1, keepdims=True), 1e-300)
            n_sites = per_site.shape[1]
            per_site = env_weight[:, None] * per_site + (1 - env_weight[:, None]) / n_sites
            log_site = np.log(np.maximum(per_site, 1e-300))
        cs = X[:, :1]
        scores = []
        for s, gmm in enumerate(self.levels_):
            joint = np.log(np.maximum(gmm.predict_proba(cs), 1e-300)) + gmm.score_samples(cs)[
                :, None
            ]
            scores.append(log_site[:, s : s + 1] + joint)
        return np.concatenate(scores, axis=1).argmax(axis=1)

    def predict(self, X, env_weight=None) -> np.ndarray:
        """Class of each row (same numbering as ``labels_``; -1 for a (site, level) pair that
        no fitted sample had).

        ``env_weight`` (one value in [0, 1] per row, optional) is for rows whose environment
        descriptor saw only part of the environment (a patch cut by the image border): their
        site and chemistry are then chosen together, the environment's site posterior mixed
        with a uniform one in the proportion ``env_weight`` (e.g. the share of the patch
        window inside the image), so that a column's own cross-section decides where its
        environment says little.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        with threadpool_limits(limits=1, user_api="blas"):
            if env_weight is None:
                return self._remap[self._raw_predict(X)]
            w = np.clip(np.broadcast_to(np.asarray(env_weight, dtype=np.float64), len(X)), 0, 1)
            return self._remap[self._pair_predict(X, w)]


def make_clusterer(name: str, *, max_classes: int, random_state: int) -> MotifClusterer:
    """The clusterer named in :class:`~motifcat.ingest.model.AnalysisParams`.

    ``max_classes`` bounds the number of chemistry levels tried per site.

    Examples
    --------
    >>> make_clusterer("gmm", max_classes=4, random_state=0).max_levels
    4
    """
    if name == "gmm":
        return MotifClusterer(max_levels=max_classes, random_state=random_state)
    raise AnalysisError(f"unknown clusterer {name!r}; available: 'gmm'")


def class_centroids(features: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean descriptor of each class, shape (n_classes, F), computed without a Python loop.

    Examples
    --------
    >>> class_centroids(np.array([[0.0], [2.0], [10.0]]), np.array([0, 0, 1]), 2).ravel().tolist()
    [1.0, 10.0]
    """
    features = np.asarray(features, dtype=np.float64)
    sums = np.zeros((n_classes, features.shape[1]))
    np.add.at(sums, labels, features)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return sums / np.maximum(counts, 1)[:, None]
