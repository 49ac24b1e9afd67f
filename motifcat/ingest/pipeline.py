"""``analyze``: from a micrograph to columns, descriptors, motif classes and the hierarchy.

Pure: arrays in, dataclasses out, no database. Every stage is a plain function of its own
module; this one only wires them together and validates the inputs at the boundary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from .. import __version__
from ..errors import AnalysisError, InvalidImageError
from . import io as mio
from .cluster import class_centroids, make_clusterer
from .columns import detect_columns
from .lattice import lattice_period, nearest_neighbour_spacing
from .model import Analysis, AnalysisParams, Columns, Lattice, Micrograph, MotifClass
from .patches import default_patch_size, extract_patches, iter_patch_chunks, patch_fits
from .zernike import (
    PCAFeatures,
    ZernikeFeatures,
    align_moments,
    reconstruct,
    rotation_invariants,
    zernike_indices,
)

#: Progress callback: (stage name, fraction done in [0, 1]).
Progress = Callable[[str, float], None]

_MIN_COLUMNS = 10


def make_feature_extractor(params: AnalysisParams):
    """The patch-descriptor transformer named by ``params.features`` (scikit-learn style).

    Examples
    --------
    >>> type(make_feature_extractor(AnalysisParams(features="pca"))).__name__
    'PCAFeatures'
    """
    if params.features == "zernike":
        return ZernikeFeatures(n_max=params.n_max)
    if params.features == "pca":
        n_comp = params.n_components or n_invariants(params.n_max)
        return PCAFeatures(n_components=n_comp, random_state=params.random_state)
    raise AnalysisError(f"unknown features {params.features!r}; available: 'zernike', 'pca'")


def n_invariants(n_max: int) -> int:
    """Number of rotation invariants |A_nm| (m >= 0) up to order ``n_max`` (36 for 10).

    Examples
    --------
    >>> n_invariants(10)
    36
    """
    return sum(n // 2 + 1 for n in range(n_max + 1))


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
        aligned, _, _ = align_moments(moments[members], moments[ref], n_max, n_angles=180)
        out[k] = aligned.mean(axis=0)
    return out


def measure_lattice(micrograph: Micrograph, params: AnalysisParams) -> float:
    """The lattice period (px) to use: ``params.period_px`` or the FFT estimate."""
    if params.period_px is not None:
        if params.period_px <= 1:
            raise AnalysisError(f"period_px must be > 1 pixel, got {params.period_px}")
        return float(params.period_px)
    return lattice_period(micrograph.data)


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
    micrograph : Micrograph
        From :func:`motifcat.ingest.io.load_image` or built from an array.
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
    >>> from motifcat.ingest.synth import tmd_image
    >>> syn = tmd_image((256, 256), seed=1)
    >>> result = analyze(syn.micrograph(), AnalysisParams(hierarchy=False))
    >>> result.labels.shape == (len(result.columns),)
    True
    """
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
    if columns is None:
        columns = detect_columns(
            image,
            period,
            smoothing=params.smoothing,
            threshold_sigma=params.threshold_sigma,
            refine=params.refine,
        )
    if len(columns) < _MIN_COLUMNS:
        raise AnalysisError(f"{name}: only {len(columns)} atom columns found; need {_MIN_COLUMNS}")
    spacing = params.spacing_px or nearest_neighbour_spacing(columns.xy)
    lattice = Lattice(period_px=period, spacing_px=spacing)

    size = params.patch_size or default_patch_size(period)
    if size % 2 == 0 or size < 5:
        raise AnalysisError(f"patch_size must be odd and >= 5, got {size}")
    has_patch = patch_fits(columns.xy, image.shape, size)
    inner = np.flatnonzero(has_patch)
    if len(inner) < _MIN_COLUMNS:
        raise InvalidImageError(
            f"{name}: only {len(inner)} columns lie a whole patch ({size} px) away from the border"
        )

    report("features", 0.3)
    extractor = make_feature_extractor(params)
    rng = np.random.default_rng(params.random_state)
    # The PCA baseline learns from a subsample; Zernike features learn nothing.
    fit_idx = np.sort(rng.choice(inner, min(len(inner), 3000), replace=False))
    extractor.fit(extract_patches(image, columns.xy[fit_idx], size))
    xy_in = columns.xy[inner]
    zernike = params.features == "zernike"
    n_out = n_invariants(params.n_max) if zernike else extractor.n_components
    features = np.empty((len(inner), n_out), dtype=np.float64)
    # Zernike moments are kept: they give the classes' average reconstructed motifs.
    moments = np.empty((len(inner), len(zernike_indices(params.n_max)))) if zernike else None
    for sl, patches in iter_patch_chunks(image, xy_in, size):
        if moments is not None:
            moments[sl] = extractor.moments(patches)
            features[sl] = rotation_invariants(moments[sl], params.n_max)
        else:
            features[sl] = extractor.transform(patches)
        report("features", 0.3 + 0.4 * sl.stop / len(inner))

    report("clustering", 0.7)
    clusterer = make_clusterer(
        params.clusterer, max_classes=params.max_classes, random_state=params.random_state
    ).fit(features)
    inner_labels = clusterer.labels_
    n_classes = int(inner_labels.max()) + 1
    labels = np.full(len(columns), -1, dtype=np.int64)
    labels[inner] = inner_labels

    centroids = class_centroids(features, inner_labels, n_classes)
    counts = np.bincount(inner_labels, minlength=n_classes)
    if moments is not None:
        mean_moments = aligned_class_means(
            moments, features, inner_labels, centroids, params.n_max, rng=rng
        )
        mean_images = reconstruct(mean_moments, size, n_max=params.n_max)
    else:
        mean_images = extractor.pca_.inverse_transform(centroids).reshape(n_classes, size, size)
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
        from .hierarchy import build_hierarchy

        hierarchy = build_hierarchy(
            columns.xy,
            labels,
            spacing_px=spacing,
            max_edge_factor=params.max_edge_factor,
            majority_filter=params.majority_filter,
            image=image,
        )
    report("done", 1.0)
    used = dataclasses.replace(
        params,
        period_px=float(period),
        spacing_px=float(spacing),
        patch_size=int(size),
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
