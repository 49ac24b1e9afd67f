"""Unsupervised motif classes with an automatically chosen number of classes."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from ..errors import AnalysisError


class MotifClusterer(ClusterMixin, BaseEstimator):
    """Gaussian mixture on a PCA projection of the descriptors, number of classes by BIC.

    The descriptors are projected on their leading principal components (those explaining
    ``variance`` of the total, at most ``max_dims``): with an orthonormal basis, white noise
    spreads evenly over all moments, so the leading components carry the structure and the
    trailing ones mostly noise. A full-covariance Gaussian mixture is fitted for every number of
    classes from 1 to ``max_classes`` on a random subsample of at most ``max_fit_samples``
    descriptors (the fit cost then does not grow with the image), the Bayesian information
    criterion picks the number, and every descriptor is labelled by the chosen mixture.

    Parameters
    ----------
    max_classes : int
        Largest number of classes tried.
    variance : float
        Fraction of the descriptor variance kept by the PCA projection.
    max_dims : int
        Upper bound of the projected dimension.
    min_class_fraction : float
        A mixture whose smallest class holds fewer than this fraction of the fitted samples
        (and fewer than ``min_class_size``) is not considered: tiny components fitted to a
        handful of outliers are not motifs.
    min_class_size : int
        See ``min_class_fraction``.
    max_fit_samples : int
        Subsample size for model selection and fitting.
    n_init : int
        Initialisations per mixture.
    random_state : int

    Attributes
    ----------
    labels_ : ndarray of int, shape (n_samples,)
        Classes ordered by decreasing size (class 0 is the most frequent).
    n_classes_ : int
    bic_ : dict
        BIC for every number of classes tried.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (300, 5)), rng.normal(8, 1, (200, 5))])
    >>> MotifClusterer(max_classes=5).fit(X).n_classes_
    2
    """

    def __init__(
        self,
        max_classes: int = 12,
        variance: float = 0.9,
        max_dims: int = 8,
        min_class_fraction: float = 0.002,
        min_class_size: int = 5,
        max_fit_samples: int = 2500,
        n_init: int = 1,
        random_state: int = 0,
    ):
        self.max_classes = max_classes
        self.variance = variance
        self.max_dims = max_dims
        self.min_class_fraction = min_class_fraction
        self.min_class_size = min_class_size
        self.max_fit_samples = max_fit_samples
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: None = None) -> MotifClusterer:
        # The mixture works on tiny matrices (a few dimensions): BLAS threads only add
        # synchronisation overhead there, measured at 5 ms per 8x8 triangular solve.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X)

    def _fit(self, X: np.ndarray) -> MotifClusterer:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) < 2:
            raise AnalysisError(f"need at least two descriptors to cluster, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise AnalysisError("descriptors contain NaN or Inf")
        rng = np.random.default_rng(self.random_state)
        n = len(X)
        if n > self.max_fit_samples:
            Xfit = X[rng.choice(n, self.max_fit_samples, replace=False)]
        else:
            Xfit = X
        n_dims = min(self.max_dims, X.shape[1], max(1, len(Xfit) - 1))
        self.pca_ = PCA(n_components=n_dims, random_state=self.random_state).fit(Xfit)
        cum = np.cumsum(self.pca_.explained_variance_ratio_)
        self.n_dims_ = int(min(n_dims, np.searchsorted(cum, self.variance) + 1))
        Z = self.pca_.transform(Xfit)[:, : self.n_dims_]
        min_size = max(self.min_class_size, self.min_class_fraction * len(Z))
        self.bic_: dict[int, float] = {}
        best, best_bic = None, np.inf
        for k in range(1, min(self.max_classes, len(Z) // 2) + 1):
            gmm = GaussianMixture(
                n_components=k,
                covariance_type="full",
                n_init=self.n_init,
                init_params="k-means++",
                reg_covar=1e-6 * float(np.var(Z)) + 1e-12,
                random_state=self.random_state,
            ).fit(Z)
            bic = float(gmm.bic(Z))
            self.bic_[k] = bic
            sizes = np.bincount(gmm.predict(Z), minlength=k)
            if k > 1 and sizes.min() < min_size:
                continue
            if bic < best_bic:
                best, best_bic = gmm, bic
            elif k > 2 and bic > best_bic and self.bic_.get(k - 1, np.inf) > best_bic:
                break  # two successive worse models: the BIC minimum is behind us
        self.gmm_ = best
        raw = self.gmm_.predict(self.pca_.transform(X)[:, : self.n_dims_])
        # Order classes by size so that label 0 is the majority (perfect-lattice) motif.
        counts = np.bincount(raw, minlength=self.gmm_.n_components)
        order = np.argsort(-counts, kind="stable")
        self.remap_ = np.empty_like(order)
        self.remap_[order] = np.arange(len(order))
        self.labels_ = self.remap_[raw]
        self.n_classes_ = int((counts > 0).sum())
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        Z = self.pca_.transform(np.asarray(X, dtype=np.float64))[:, : self.n_dims_]
        return self.remap_[self.gmm_.predict(Z)]


def make_clusterer(name: str, *, max_classes: int, random_state: int) -> MotifClusterer:
    """The clusterer named in :class:`~motifcat.ingest.model.AnalysisParams`.

    Examples
    --------
    >>> make_clusterer("gmm", max_classes=4, random_state=0).max_classes
    4
    """
    if name == "gmm":
        return MotifClusterer(max_classes=max_classes, random_state=random_state)
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
