"""``analyze``: from a micrograph to columns, descriptors, motif classes and the hierarchy.

Pure: arrays in, dataclasses out, no database. Every stage is a plain function of its own
module; this one only wires them together and validates the inputs at the boundary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from .. import __version__
from ..errors import AnalysisError, InvalidImageError
from . import io as mio
from .cluster import class_centroids, make_clusterer
from .columns import detect_columns, filter_in_bands, smooth_image
from .lattice import lattice_period, nearest_neighbour_spacing
from .model import Analysis, AnalysisParams, Columns, Lattice, Micrograph, MotifClass
from .patches import (
    default_patch_size,
    extract_patches,
    matched_cross_sections,
    patch_fits,
    resampled_patch,
)
from .zernike import (
    PCAFeatures,
    ZernikeFeatures,
    align_moments,
    invariant_indices,
    reconstruct,
    rotation_invariants,
    smallest_zernike_patch,
    zernike_indices,
)

#: Progress callback: (stage name, fraction done in [0, 1]).
Progress = Callable[[str, float], None]

_MIN_COLUMNS = 10
#: Patches described at a time (memory: _CHUNK × patch² × 4 bytes per thread).
_CHUNK = 4096


def make_feature_extractor(params: AnalysisParams):
    """The patch-descriptor transformer named by ``params.features`` (scikit-learn style).

    With ``params.intensity_scale == "image"`` the patches reach the transformer already
    scaled by :func:`prepare_patches`, so the transformer's own per-patch normalisation is off.

    Examples
    --------
    >>> type(make_feature_extractor(AnalysisParams(features="pca"))).__name__
    'PCAFeatures'
    """
    if params.intensity_scale not in ("image", "patch"):
        raise AnalysisError(
            f"unknown intensity_scale {params.intensity_scale!r}; available: 'image', 'patch'"
        )
    per_patch = params.intensity_scale == "patch"
    if params.features == "zernike":
        return ZernikeFeatures(n_max=params.n_max, normalize=per_patch)
    if params.features == "pca":
        n_comp = params.n_components or n_invariants(params.n_max)
        return PCAFeatures(
            n_components=n_comp, normalize=per_patch, random_state=params.random_state
        )
    raise AnalysisError(f"unknown features {params.features!r}; available: 'zernike', 'pca'")


def image_intensity_scale(
    image: np.ndarray,
    xy: np.ndarray,
    smoothing_px: float,
    *,
    smoothed: np.ndarray | None = None,
) -> tuple[float, float]:
    """Offset and column intensity scale of one image (same unit as the image).

    * offset = mean of the image;
    * column scale = mean, over the columns, of the image smoothed by a Gaussian of
      ``smoothing_px`` (the column detector's smoothing) at the column position, minus offset.

    Both are *linear* statistics of the image, so under a change of brightness and gain
    ``a*f + b`` they become ``a*offset + b`` and ``a*scale``, and under a Poisson draw at a
    lower dose they are unbiased (order statistics are not: a percentile background and a
    median over the bimodal metal/chalcogen peak heights drifted by 9 % between full dose and
    1/50 on a synthetic MoSe2 image, a mean by < 1 %). ``(patch - offset) / scale`` is then a
    patch in units of "a typical column above the image mean", the same at every dose and
    brightness, while a column twice as bright as its neighbours stays twice as bright (unlike
    a per-patch normalisation, which makes a single-Se column next to Mo neighbours look like a
    Mo column next to Se2 neighbours).

    Parameters
    ----------
    image : ndarray, shape (H, W)
    xy : ndarray, shape (N, 2)
        Column positions (x, y) in pixels.
    smoothing_px : float
        Gaussian sigma in pixels.
    smoothed : ndarray, optional
        The image already smoothed by that Gaussian (then ``smoothing_px`` is not used).

    Returns
    -------
    offset, scale : float

    Raises
    ------
    AnalysisError
        If the columns are not brighter than the image mean (scale <= 0).

    Examples
    --------
    >>> img = np.full((64, 64), 10.0); img[32, 32] = 500.0
    >>> b, s = image_intensity_scale(img, np.array([[32.0, 32.0]]), 1.0)
    >>> round(b, 2), s > 0
    (10.12, True)
    """
    image = np.asarray(image, dtype=np.float32)
    offset = float(image.mean(dtype=np.float64))
    if smoothed is None:
        smoothed = filter_in_bands(
            ndimage.gaussian_filter, image, int(4 * smoothing_px + 1), sigma=smoothing_px
        )
    peaks = ndimage.map_coordinates(smoothed, [xy[:, 1], xy[:, 0]], order=1)
    scale = float(peaks.mean(dtype=np.float64)) - offset
    if not scale > 0:
        raise AnalysisError(
            f"columns are not brighter than the image mean (mean column {scale + offset:g}, "
            f"image mean {offset:g}); cannot scale the descriptors"
        )
    return offset, scale


def patch_window(size: int, sigma_px: float | None, radius_px: float = 0.0) -> np.ndarray:
    """Gaussian ring ``exp(-(r - radius)^2 / 2 sigma^2)`` over a ``size`` x ``size`` patch.

    ``radius_px=0`` is a centred Gaussian taper; a radius of about 1.5 nearest-neighbour
    spacings weighs the first three neighbour shells and hides the column itself (the
    *environment* window of the level-1 descriptor). ``sigma_px=None`` gives ones (no taper).

    Examples
    --------
    >>> w = patch_window(5, 1.0)
    >>> float(w[2, 2]), round(float(w[2, 3]), 3)
    (1.0, 0.607)
    >>> ring = patch_window(9, 1.0, radius_px=3.0)
    >>> round(float(ring[4, 4]), 4), float(ring[4, 7])
    (0.0111, 1.0)
    """
    if sigma_px is None:
        return np.ones((size, size), dtype=np.float32)
    if not sigma_px > 0:
        raise AnalysisError(f"window_sigma must be positive or None, got {sigma_px}")
    r = np.sqrt(np.sum(np.square(np.mgrid[:size, :size] - size // 2), axis=0))
    return np.exp(-0.5 * np.square(r - radius_px) / sigma_px**2).astype(np.float32)


def environment_window(
    params: AnalysisParams, size: int, spacing: float, step: float
) -> np.ndarray:
    """The patch window of the environment descriptor: :func:`patch_window` with the
    parameters' width and radius, given in column spacings, converted to patch samples.
    The column itself is weighted down: the descriptor describes its surroundings.

    Examples
    --------
    >>> w = environment_window(AnalysisParams(), 21, 10.0, 1.0)
    >>> w.shape, bool(w[10, 10] < 0.1 < w[0, 0])
    ((21, 21), True)
    """
    return patch_window(
        size,
        None if params.window_sigma is None else params.window_sigma * spacing / step,
        params.env_radius * spacing / step,
    )


def prepare_patches(
    patches: np.ndarray, background: float, scale: float, window: np.ndarray
) -> np.ndarray:
    """``(patches - background) / scale * window`` in float32 (one pass over the stack).

    Examples
    --------
    >>> float(prepare_patches(np.full((1, 3, 3), 12.0), 2.0, 5.0, np.ones((3, 3))).max())
    2.0
    """
    out = np.subtract(patches, np.float32(background), dtype=np.float32)
    out *= (window / np.float32(scale)).astype(np.float32)
    return out


def own_cross_sections(
    columns: Columns, smoothed: np.ndarray, background: float, image: np.ndarray | None = None
) -> np.ndarray:
    """The column's own scattering strength, normalised per image to a mean of 1.

    With the Gaussian column model (``refine="model"``) it is the model's scattering
    cross-section (integrated intensity above the local background, neighbours' tails fitted
    together); given the ``image`` as well, the heights are fitted on it again with the
    model's median width for every column
    (:func:`~motifcat.ingest.patches.matched_cross_sections`: the per-column width is the
    noisiest part of a low-dose cross-section); otherwise the smoothed image at the column
    position above the image offset ``background``, a proxy that still holds some of the
    neighbours' tails. Either is a linear statistic of the image, so dividing by its mean
    over the columns makes it the same at every dose and under a change of detector gain.

    Examples
    --------
    >>> cols = Columns(xy=np.array([[1.0, 1.0], [2.0, 2.0]]), intensity=np.zeros(2))
    >>> img = np.array([[0, 0, 0, 0], [0, 4, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]], float)
    >>> own_cross_sections(cols, img, 1.0).round(3).tolist()
    [1.5, 0.5]
    >>> modelled = Columns(xy=cols.xy, intensity=np.zeros(2), cross_section=np.array([3.0, 1.0]))
    >>> own_cross_sections(modelled, img, 1.0).tolist()
    [1.5, 0.5]
    """
    if image is not None and columns.sigma is not None:
        own = matched_cross_sections(image, columns.xy, float(np.median(columns.sigma)))
    elif columns.cross_section is not None:
        own = np.asarray(columns.cross_section, dtype=np.float64)
    else:
        peaks = ndimage.map_coordinates(smoothed, [columns.xy[:, 1], columns.xy[:, 0]], order=1)
        own = peaks.astype(np.float64) - background
    mean = float(own.mean())
    if not (np.isfinite(own).all() and mean > 0):
        raise AnalysisError("column cross-sections are not finite and positive on average")
    return own / mean


def n_invariants(n_max: int) -> int:
    """Number of rotation invariants |A_nm| (m >= 0) up to order ``n_max`` (36 for 10).

    Examples
    --------
    >>> n_invariants(10)
    36
    """
    return len(invariant_indices(n_max))


def aligned_class_means(
    moments: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    n_max: int,
    *,
    max_members: int = 64,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Mean Zernike moments of each class after rotating/mirroring members onto one reference.

    The same environment seen in two orientations is one class (its invariants agree), but its
    raw moments differ, and averaging them would smear the image. Each class's member nearest
    the centroid (in descriptor space) is the reference; at most ``max_members`` randomly chosen
    members are aligned to it (enough for a mean image; the cost stays bounded).

    Returns
    -------
    ndarray, shape (n_classes, K)
    """
    rng = rng or np.random.default_rng(0)
    out = np.zeros((len(centroids), moments.shape[1]))
    for k in range(len(centroids)):
        members = np.flatnonzero(labels == k)
        if len(members) == 0:
            continue
        ref = members[np.argmin(np.linalg.norm(features[members] - centroids[k], axis=1))]
        if len(members) > max_members:
            members = rng.choice(members, max_members, replace=False)
        aligned, _, _ = align_moments(moments[members], moments[ref], n_max, n_angles=120)
        out[k] = aligned.mean(axis=0)
    return out


def measure_lattice(micrograph: Micrograph, params: AnalysisParams) -> float:
    """The lattice period (px) to use: ``params.period_px`` or the FFT estimate."""
    if params.period_px is not None:
        return float(params.period_px)
    return lattice_period(micrograph.data)


def in_field_of_view(columns: Columns, shape: tuple[int, int]) -> Columns:
    """The columns whose centre lies on the image (within half a pixel of its edge pixels).

    A column cut by the border can be refined to a centre outside the field of view (seen up
    to 7 px out on a real 1024² MoS2 image): that centre is an extrapolation, not a
    measurement, and no patch can be cut around it.

    Examples
    --------
    >>> cols = Columns(xy=np.array([[5.0, 5.0], [-3.0, 5.0]]), intensity=np.ones(2))
    >>> in_field_of_view(cols, (10, 10)).xy.tolist()
    [[5.0, 5.0]]
    """
    h, w = shape
    x, y = columns.xy[:, 0], columns.xy[:, 1]
    inside = (x >= -0.5) & (y >= -0.5) & (x <= w - 0.5) & (y <= h - 0.5)
    return columns.subset(np.flatnonzero(inside))


def whole_patch_columns(
    columns: Columns, shape: tuple[int, int], size: int, step: float, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(has_patch, inner)``: which columns have their whole patch inside the image, and
    their indices; raises :class:`InvalidImageError` when fewer than the minimum do.

    Examples
    --------
    >>> cols = Columns(xy=np.array([[x, 50.0] for x in range(5, 96, 6)]), intensity=np.ones(16))
    >>> has, inner = whole_patch_columns(cols, (100, 100), 21, 1.0, "a.npy")
    >>> int(has.sum()), inner[:2].tolist()
    (13, [1, 2])
    """
    has_patch = patch_fits(columns.xy, shape, size, step)
    inner = np.flatnonzero(has_patch)
    if len(inner) < _MIN_COLUMNS:
        raise InvalidImageError(
            f"{name}: only {len(inner)} columns lie a whole patch ({size} px) away from the border"
        )
    return has_patch, inner


def analyze(
    micrograph: Micrograph,
    params: AnalysisParams | None = None,
    *,
    columns: Columns | None = None,
    progress: Progress | None = None,
) -> Analysis:
    """Find the motifs of one micrograph.

    Stages: lattice period (FFT) → atom columns (local maxima, sub-pixel) → patches of
    ``2·period+1`` px around every column whose patch fits → descriptors (rotation-invariant
    Zernike magnitudes, or PCA of the raw patches) → unsupervised classes (number chosen
    automatically) → hierarchy of larger motifs (levels 2 and 3).

    Parameters
    ----------
    micrograph : Micrograph or signal
        From :func:`motifcat.ingest.io.load_image` or built from an array; or a HyperSpy
        ``Signal2D`` (any object with ``data`` and a calibrated ``axes_manager``), converted
        by :func:`motifcat.ingest.io.micrograph_from_signal` with ``params.pixel_size_A``.
    params : AnalysisParams, optional
        All settings; stored with the result for provenance.
    columns : Columns, optional
        Known column positions (skip detection; used to compare descriptors at several doses
        on the same columns, as in the paper's Fig. 1).
    progress : callable, optional
        ``progress(stage, fraction)``.

    Returns
    -------
    Analysis

    Raises
    ------
    InvalidImageError
        If the image is smaller than four lattice periods.
    AnalysisError
        If fewer than ten columns are found, or a parameter is invalid.

    Examples
    --------
    >>> from motifcat.datasets import make_tmd
    >>> syn = make_tmd((256, 256), seed=1)
    >>> result = analyze(syn.micrograph(), AnalysisParams(hierarchy=False))
    >>> result.labels.shape == (len(result.columns),)
    True
    """
    return run_on_micrograph(
        micrograph, params, lambda m: _analyze(m, params, columns, progress)
    )


def run_on_micrograph(micrograph, params: AnalysisParams | None, run: Callable):
    """``run(micrograph)`` for a :class:`Micrograph` or a HyperSpy-like signal (converted with
    ``params.pixel_size_A``), its errors prefixed with the file's name.

    The entry point of :func:`analyze` and of the tiled analysis
    (:func:`motifcat.ingest.tiles.analyze_tiled`).

    Examples
    --------
    >>> from motifcat.ingest.io import micrograph_from_array
    >>> mg = micrograph_from_array(np.eye(64), path="flat.npy")
    >>> def refuse(m):
    ...     raise AnalysisError("no columns")
    >>> run_on_micrograph(mg, None, refuse)
    Traceback (most recent call last):
    ...
    motifcat.errors.AnalysisError: flat.npy: no columns
    """
    if not isinstance(micrograph, Micrograph) and mio.is_signal(micrograph):
        pixel_size = params.pixel_size_A if params is not None else None
        micrograph = mio.micrograph_from_signal(micrograph, pixel_size_A=pixel_size)
    name = micrograph.path if isinstance(micrograph, Micrograph) and micrograph.path else None
    try:
        return run(micrograph)
    except (AnalysisError, InvalidImageError) as exc:
        # Every stage raises about arrays; the user needs to know which file it was.
        if name and not str(exc).startswith(name):
            raise type(exc)(f"{name}: {exc}") from exc
        raise


def _analyze(
    micrograph: Micrograph,
    params: AnalysisParams | None,
    columns: Columns | None,
    progress: Progress | None,
) -> Analysis:
    params = params or AnalysisParams()
    report = progress or (lambda stage, fraction: None)
    if not isinstance(micrograph, Micrograph):
        raise AnalysisError(f"analyze expects a Micrograph, got {type(micrograph).__name__}")
    name = micrograph.path or "<array>"
    image = micrograph.data

    report("lattice", 0.0)
    period = measure_lattice(micrograph, params)
    mio.check_size(micrograph, period)

    report("columns", 0.1)
    # One smoothed image serves the detector and the descriptor's intensity scale.
    smoothed = smooth_image(image, period, params.smoothing)
    if columns is None:
        columns = detect_columns(
            image,
            period,
            smoothing=params.smoothing,
            threshold_sigma=params.threshold_sigma,
            min_relative_prominence=params.min_relative_prominence,
            min_distance_factor=params.min_distance_factor,
            refine=params.refine,
            residual_search=params.residual_search,
            smoothed=smoothed,
        )
        columns = in_field_of_view(columns, image.shape)
    if len(columns) < _MIN_COLUMNS:
        raise AnalysisError(f"{name}: only {len(columns)} atom columns found; need {_MIN_COLUMNS}")
    spacing = params.spacing_px or nearest_neighbour_spacing(columns.xy)

    size = params.patch_size or default_patch_size(period)
    if size % 2 == 0 or size < 5:
        raise AnalysisError(f"patch_size must be odd and >= 5, got {size}")
    step = 1.0
    if params.patch_size is None and params.features == "zernike":
        # Coarse sampling (a few px per period): the patch keeps its extent and is
        # resampled finely enough to resolve the Zernike order, instead of failing.
        size, step = resampled_patch(size, smallest_zernike_patch(params.n_max))
    has_patch, inner = whole_patch_columns(columns, image.shape, size, step, name)

    report("features", 0.3)
    extractor = make_feature_extractor(params)
    # One background and one column scale for the whole image (see image_intensity_scale);
    # with intensity_scale="patch" the transformer normalises each patch itself instead.
    background, scale = image_intensity_scale(
        image, columns.xy[inner], params.smoothing * period, smoothed=smoothed
    )
    own = own_cross_sections(columns, smoothed, background, image)
    if params.intensity_scale != "image":
        background, scale = 0.0, 1.0
    window = environment_window(params, size, spacing, step)
    # Border columns get a class too: the image is padded with its mean (0 after the
    # preparation below), i.e. the part of a patch outside the image is masked. The
    # clusterer is fitted on the columns whose whole patch is inside and labels all.
    pad = int(np.ceil((size // 2) * step)) + 2
    padded = np.pad(image, pad, mode="constant", constant_values=float(image.mean()))
    xy_pad = columns.xy + pad
    rng = np.random.default_rng(params.random_state)
    # The PCA baseline learns from a subsample; Zernike features learn nothing (one patch
    # suffices for fit's checks).
    n_fit = min(len(inner), 3000) if params.features == "pca" else 1
    fit_idx = np.sort(rng.choice(inner, n_fit, replace=False))
    extractor.fit(
        prepare_patches(
            extract_patches(padded, xy_pad[fit_idx], size, step), background, scale, window
        )
    )
    zernike = params.features == "zernike"
    n_env = n_invariants(params.n_max) if zernike else extractor.n_components
    n_all = len(columns)
    # Descriptor = [own normalised cross-section, environment descriptor].
    features = np.empty((n_all, 1 + n_env), dtype=np.float64)
    features[:, 0] = own
    # Zernike moments are kept: they give the classes' average reconstructed motifs.
    moments = np.empty((n_all, len(zernike_indices(params.n_max)))) if zernike else None

    def describe(sl: slice) -> slice:
        patches = prepare_patches(
            extract_patches(padded, xy_pad[sl], size, step), background, scale, window
        )
        if moments is not None:
            moments[sl] = extractor.moments(patches)
            features[sl, 1:] = rotation_invariants(moments[sl], params.n_max)
        else:
            features[sl, 1:] = extractor.transform(patches)
        return sl

    # Chunks bound the memory (a few thousand patches at a time) and run on two threads:
    # NumPy releases the GIL in the gathers, the arithmetic and the matrix products.
    chunks = [slice(i, min(n_all, i + _CHUNK)) for i in range(0, n_all, _CHUNK)]
    with ThreadPoolExecutor(max_workers=min(2, len(chunks))) as pool:
        for sl in pool.map(describe, chunks):
            report("features", 0.3 + 0.4 * sl.stop / n_all)

    return classify_columns(
        micrograph,
        params,
        period=period,
        spacing=spacing,
        size=size,
        step=step,
        columns=columns,
        has_patch=has_patch,
        features=features,
        moments=moments,
        extractor=extractor,
        background=background,
        scale=scale,
        rng=rng,
        patches=lambda idx: extract_patches(padded, xy_pad[idx], size),
        progress=report,
    )


def classify_columns(
    micrograph: Micrograph,
    params: AnalysisParams,
    *,
    period: float,
    spacing: float,
    size: int,
    step: float,
    columns: Columns,
    has_patch: np.ndarray,
    features: np.ndarray,
    moments: np.ndarray | None,
    extractor,
    background: float,
    scale: float,
    rng: np.random.Generator,
    patches: Callable[[np.ndarray], np.ndarray],
    progress: Progress | None = None,
) -> Analysis:
    """The stages after the descriptors: classes, their mean motifs, the hierarchy.

    Shared by :func:`analyze` and the tiled analysis (:mod:`motifcat.ingest.tiles`), which
    computes the descriptors tile by tile and classifies all columns at once here.

    Parameters
    ----------
    micrograph, params
        As in :func:`analyze` (``params`` complete, not None).
    period, spacing : float
        Lattice period and nearest-neighbour column spacing (px).
    size, step
        Patch side in samples and sampling step (px).
    columns, has_patch, features, moments
        All columns, which of them have a whole patch inside the image, their descriptors
        ``[own cross-section, environment]`` and (Zernike) moments.
    extractor
        The fitted descriptor transformer (:func:`make_feature_extractor`).
    background, scale : float
        Intensity offset and column scale the patches were prepared with.
    rng : numpy.random.Generator
        The analysis' generator, in the state :func:`analyze` leaves it after the
        descriptor stage (so that the class means pick the same members).
    patches : callable
        ``patches(index)`` gives the raw ``size`` x ``size`` patches (step 1 px) of the
        columns ``index``, the image padded with its mean outside.
    progress : callable, optional

    Returns
    -------
    Analysis
    """
    report = progress or (lambda stage, fraction: None)
    image = micrograph.data
    inner = np.flatnonzero(has_patch)
    lattice = Lattice(period_px=period, spacing_px=spacing)
    report("clustering", 0.7)
    # The classes are learned one nearest-neighbour spacing further inside than the patch
    # needs: the column model's cross-sections of columns near the edge are biased low
    # (measured on synthetic MoSe2: -13 % at 15 px from the edge, -21 % at 5 px), and such a
    # band of columns would otherwise found a chemistry class of its own.
    margin = 2 * int(np.ceil(spacing / step))  # one spacing each side, in patch samples
    learn = np.flatnonzero(patch_fits(columns.xy, image.shape, size + margin, step))
    if len(learn) < max(_MIN_COLUMNS, len(inner) // 4):
        learn = inner
    clusterer = make_clusterer(
        params.clusterer, max_classes=params.max_classes, random_state=params.random_state
    ).fit(features[learn])
    labels = clusterer.predict(features)
    border = np.flatnonzero(~has_patch)
    if len(border):
        # A border column's environment descriptor saw only the part of its patch inside the
        # image: its site and chemistry are chosen together, the environment's evidence
        # weighted by the share of the window it saw (see MotifClusterer.predict).
        window = environment_window(params, size, spacing, step)
        pad = int(np.ceil((size // 2) * step)) + 2
        seen = np.pad(np.ones(image.shape, dtype=np.float32), pad)
        xy_seen = columns.xy[border] + pad
        visible = (extract_patches(seen, xy_seen, size, step) * window).sum(axis=(1, 2))
        labels[border] = clusterer.predict(
            features[border], env_weight=visible / float(window.sum())
        )
    # A (site, chemistry) pair that no whole-patch column had cannot be a class of its own:
    # such border columns take the class of their site's nearest chemistry instead.
    missing = labels < 0
    if missing.any():
        cs_class = clusterer.class_cross_section_
        labels[missing] = np.abs(features[missing, :1] - cs_class[None, :]).argmin(axis=1)
    # Class 0 is the most frequent over the whole image (the clusterer orders by its fit set).
    n_classes = clusterer.n_classes_
    order = np.argsort(-np.bincount(labels, minlength=n_classes), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(n_classes)
    labels = rank[labels]
    # A class's descriptor (matched across images by the vocabulary) is the centroid of its
    # whole-patch members: a masked border patch shifts the environment invariants.
    centroids = class_centroids(features[inner], labels[inner], n_classes)
    no_inner = np.bincount(labels[inner], minlength=n_classes) == 0
    if no_inner.any():
        centroids[no_inner] = class_centroids(features, labels, n_classes)[no_inner]
    counts = np.bincount(labels, minlength=n_classes)
    if moments is not None:
        # Average motifs from whole-patch members only (a masked patch would smear them), seen
        # through the centred taper (the environment ring hides the column itself, and the
        # average motif, like the exporter's column brightness, should show it): at most 64
        # members per class, so this costs a few hundred patches.
        picked = np.concatenate([
            rng.permutation(inner[labels[inner] == k])[:64] for k in range(n_classes)
        ]).astype(np.int64)
        centred = patch_window(
            size, None if params.window_sigma is None else params.window_sigma * spacing
        )
        shown = extractor.moments(
            prepare_patches(patches(picked), background, scale, centred)
        ) if len(picked) else moments[:0]
        mean_moments = aligned_class_means(
            shown, features[picked, 1:], labels[picked], centroids[:, 1:], params.n_max, rng=rng,
        )
        mean_images = reconstruct(mean_moments, size, n_max=params.n_max)
    else:
        mean_images = extractor.pca_.inverse_transform(centroids[:, 1:]).reshape(
            n_classes, size, size
        )
    classes = [
        MotifClass(
            level=1,
            label=k,
            key=f"L1:{k}",
            count=int(counts[k]),
            descriptor=centroids[k],
            mean_image=np.asarray(mean_images[k], dtype=np.float32),
        )
        for k in range(n_classes)
    ]

    hierarchy = None
    if params.hierarchy:
        report("hierarchy", 0.85)
        from .hierarchy import build_from_params

        hierarchy = build_from_params(columns.xy, labels, params, spacing_px=spacing, image=image)
    report("done", 1.0)
    used = dataclasses.replace(
        params,
        period_px=float(period),
        spacing_px=float(spacing),
        # A resampled patch is derived again from period and n_max (its size in samples
        # is not a size in px).
        patch_size=int(size) if step == 1.0 else params.patch_size,
        pixel_size_A=params.pixel_size_A or micrograph.pixel_size_A,
    )
    return Analysis(
        micrograph=micrograph,
        params=used,
        lattice=lattice,
        columns=columns,
        has_patch=has_patch,
        features=features,
        moments=moments,
        labels=labels,
        classes=classes,
        hierarchy=hierarchy,
        software=f"motifcat {__version__}",
    )
