"""Atom-column detection with vectorised sub-pixel refinement."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from ...errors import AnalysisError
from ..model import Columns


def filter_in_bands(filt, image: np.ndarray, halo: int, **kwargs) -> np.ndarray:
    """Apply an ``scipy.ndimage`` filter on two horizontal bands of the image in two threads.

    ndimage releases the GIL while it filters, so the two cores of a small machine both work.
    Each band carries ``halo`` extra rows (at least the filter's reach) so that the result is
    identical to filtering the whole image.

    Parameters
    ----------
    filt : callable
        E.g. ``scipy.ndimage.gaussian_filter``.
    image : ndarray, shape (H, W)
    halo : int
        Rows of overlap: the filter's radius (4 sigma for a Gaussian, half the size for
        a maximum/minimum filter).
    **kwargs
        Passed to ``filt``.

    Examples
    --------
    >>> img = np.random.default_rng(0).random((300, 200))
    >>> a = filter_in_bands(ndimage.gaussian_filter, img, 12, sigma=2.0)
    >>> bool(np.allclose(a, ndimage.gaussian_filter(img, 2.0)))
    True
    """
    h = image.shape[0]
    if h < 4 * halo + 64:
        return filt(image, **kwargs)
    mid = h // 2
    bands = [(0, mid + halo, 0, mid), (mid - halo, h, halo, halo + h - mid)]
    out = np.empty(image.shape, dtype=np.result_type(image.dtype, np.float32))

    def run(band):
        lo, hi, a, b = band
        out[lo + a : lo + b] = filt(image[lo:hi], **kwargs)[a:b]

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, bands))
    return out


def estimate_noise(image: np.ndarray) -> float:
    """Robust standard deviation of the pixel noise (same units as the image).

    The difference between the image and a copy shifted by one pixel removes the (smooth)
    structure; its median absolute deviation, scaled for a Gaussian and for the difference of
    two samples, estimates the per-pixel noise.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(estimate_noise(rng.normal(0, 2.0, (256, 256))), 1)
    2.0
    """
    img = np.asarray(image, dtype=np.float64)
    # A regular subsample of rows/columns keeps >= 100k differences: plenty for a median.
    step = max(1, int(np.sqrt(img.size / 100_000)))
    rows, cols = img[::step], img[:, ::step]
    diff = np.concatenate([(rows[:, 1:] - rows[:, :-1]).ravel(), (cols[1:] - cols[:-1]).ravel()])
    mad = np.median(np.abs(diff - np.median(diff)))
    return float(1.4826 * mad / np.sqrt(2.0))


def _bilinear_windows(image: np.ndarray, pos: np.ndarray, radius: int) -> np.ndarray:
    """Windows of side 2*radius+1 centred on sub-pixel positions (x, y), clamped at the border.

    Sampling the window at the current sub-pixel estimate (rather than at the nearest integer
    pixel) removes the truncation bias of an off-centre window, so the iteration converges to
    the centre of a symmetric peak.
    """
    h, w = image.shape
    off = np.arange(-radius, radius + 1, dtype=np.float64)
    x = np.clip(pos[:, 0, None, None] + off[None, None, :], 0, w - 1)
    y = np.clip(pos[:, 1, None, None] + off[None, :, None], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
    fx, fy = x - x0, y - y0
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def refine_positions(
    image: np.ndarray, peaks_rc: np.ndarray, *, radius: int, method: str = "com", n_iter: int = 4
) -> np.ndarray:
    """Sub-pixel column positions around integer peaks, for all columns at once.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Lightly smoothed image (the refinement is as good as the signal it sees).
    peaks_rc : ndarray of int, shape (N, 2)
        Integer peak positions (row, col).
    radius : int
        Half-width of the refinement window in pixels (about a third of the column spacing, so
        that neighbours stay out).
    method : {"com", "gaussian", "none"}
        ``"com"``: centre of mass of the window above its minimum, the window resampled
        (bilinear) at the current estimate and iterated ``n_iter`` times. ``"gaussian"``:
        separable three-point Gaussian (log-parabola) fit at the peak, exact for a Gaussian
        column. ``"none"``: integer peaks.
    n_iter : int
        Centre-of-mass iterations.

    Returns
    -------
    ndarray of float64, shape (N, 2)
        Positions (x, y) in pixels.

    Examples
    --------
    >>> y, x = np.mgrid[:32, :32]
    >>> img = np.exp(-((x - 15.3) ** 2 + (y - 16.6) ** 2) / (2 * 2.0**2))
    >>> xy = refine_positions(img, np.array([[17, 15]]), radius=3, method="gaussian")
    >>> np.round(xy, 2).tolist()
    [[15.3, 16.6]]
    """
    img = np.asarray(image, dtype=np.float64)
    rc = np.asarray(peaks_rc, dtype=np.int64).reshape(-1, 2)
    if method == "none" or len(rc) == 0:
        return rc[:, ::-1].astype(np.float64)
    if method == "gaussian":
        r, c = rc[:, 0], rc[:, 1]
        h, w = img.shape
        rm, rp = np.clip(r - 1, 0, h - 1), np.clip(r + 1, 0, h - 1)
        cm, cp = np.clip(c - 1, 0, w - 1), np.clip(c + 1, 0, w - 1)
        floor = img.min() - 1e-6 * (np.ptp(img) + 1.0)
        lc = np.log(img[r, c] - floor + 1e-12)

        def vertex(lm: np.ndarray, lp: np.ndarray) -> np.ndarray:
            denom = lm - 2 * lc + lp
            with np.errstate(divide="ignore", invalid="ignore"):
                s = np.where(denom < 0, 0.5 * (lm - lp) / denom, 0.0)
            return np.clip(s, -0.5, 0.5)

        dy = vertex(np.log(img[rm, c] - floor + 1e-12), np.log(img[rp, c] - floor + 1e-12))
        dx = vertex(np.log(img[r, cm] - floor + 1e-12), np.log(img[r, cp] - floor + 1e-12))
        return np.column_stack([c + dx, r + dy])
    if method != "com":
        raise ValueError(f"refine method must be 'com', 'gaussian' or 'none', got {method!r}")
    off = np.arange(-radius, radius + 1, dtype=np.float64)
    disk = (off[:, None] ** 2 + off[None, :] ** 2) <= (radius + 0.5) ** 2
    start = rc[:, ::-1].astype(np.float64)  # (x, y)
    pos = start.copy()
    for _ in range(max(1, n_iter)):
        win = _bilinear_windows(img, pos, radius)
        win = (win - win.min(axis=(1, 2), keepdims=True)) * disk
        mass = win.sum(axis=(1, 2))
        ok = mass > 0
        safe = np.where(ok, mass, 1.0)
        mx = np.where(ok, (win.sum(axis=1) @ off) / safe, 0.0)
        my = np.where(ok, (win.sum(axis=2) @ off) / safe, 0.0)
        # A column cannot wander further than the window from its peak.
        pos = np.clip(pos + np.column_stack([mx, my]), start - radius, start + radius)
    h, w = img.shape
    pos[:, 0] = np.clip(pos[:, 0], 0, w - 1)
    pos[:, 1] = np.clip(pos[:, 1], 0, h - 1)
    return pos


def smooth_image(image: np.ndarray, period_px: float, smoothing: float = 0.15) -> np.ndarray:
    """The lightly smoothed image the column detector works on (float64).

    Gaussian of sigma ``max(0.5, smoothing * period_px)`` pixels, computed in two threaded
    bands (:func:`filter_in_bands`). The pipeline computes it once and shares it between the
    detector and the descriptor's intensity scale.

    Examples
    --------
    >>> img = np.zeros((64, 64)); img[32, 32] = 1.0
    >>> s = smooth_image(img, 10.0)
    >>> bool(abs(s.sum() - 1.0) < 1e-6), bool(s.max() < 1.0)
    (True, True)
    """
    img = np.asarray(image, dtype=np.float64)
    sigma = max(0.5, smoothing * period_px)
    return filter_in_bands(
        ndimage.gaussian_filter, img, int(4 * sigma + 1), sigma=sigma, mode="reflect"
    )


def detect_columns(
    image: np.ndarray,
    period_px: float,
    *,
    smoothing: float = 0.15,
    threshold_sigma: float = 8.0,
    min_relative_prominence: float = 0.25,
    min_distance_factor: float = 0.3,
    refine: str = "com",
    smoothed: np.ndarray | None = None,
) -> Columns:
    """Find atom columns as local maxima of the lightly smoothed image, refined to sub-pixel.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The micrograph (any intensity scale; bright columns, as in ADF/HAADF).
    period_px : float
        Dominant lattice period in pixels (see :func:`motifcat.ingest.lattice.lattice_period`);
        sets the smoothing, the minimum peak distance and the refinement window.
    smoothing : float
        Gaussian sigma as a fraction of the period.
    threshold_sigma : float
        A peak must rise above the lowest smoothed value within one period by this many
        standard deviations of the smoothed noise (estimated from the image itself). On pure
        Gaussian noise, local maxima rise 4-7.5 such deviations above the deepest dip within
        a period (see ``tests/test_columns.py``), so 8 keeps noise out.
    min_relative_prominence : float
        ... and by at least this fraction of the median prominence of all candidate peaks,
        which rejects shoulder maxima at high dose where the noise is tiny.
    min_distance_factor : float
        Minimum distance between two columns as a fraction of the period. Both sublattices
        of a transition-metal dichalcogenide sit 2/3 of the (100) period apart; the maximum
        filter behind the peak search is square and must not reach the flank of a brighter
        neighbour (a metal column next to chalcogen pairs in MoSe2), so the default stays
        well inside that distance.
    refine : {"model", "com", "gaussian", "none"}
        ``"model"``: centre of mass, then the Gaussian image model fitted to the raw image
        (:func:`motifcat.ingest.columns.fit.fit_gaussian_columns`), which also gives widths,
        heights, backgrounds and cross-sections with uncertainties. Otherwise the sub-pixel
        refinement of :func:`refine_positions` alone.
    smoothed : ndarray, optional
        :func:`smooth_image` of ``image`` with the same ``period_px`` and ``smoothing``, when
        the caller already has it.

    Returns
    -------
    Columns
        Positions (x, y) in pixels and the smoothed intensity at each column.

    Raises
    ------
    AnalysisError
        If no column is found.

    Examples
    --------
    >>> y, x = np.mgrid[:64, :64]
    >>> img = sum(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 8.0)
    ...           for cx in range(8, 64, 12) for cy in range(8, 64, 12))
    >>> len(detect_columns(img, period_px=12.0))
    25
    """
    img = np.asarray(image, dtype=np.float64)
    sigma = max(0.5, smoothing * period_px)
    smooth = smooth_image(img, period_px, smoothing) if smoothed is None else smoothed
    min_distance = max(1, int(np.floor(min_distance_factor * period_px)))
    # A pixel equal to the maximum of its (2·min_distance+1)² neighbourhood is a candidate.
    # (skimage's peak_local_max does the same and then enforces the spacing again with a
    # Python loop over KD-tree neighbours, ~5 s for 20k columns; on a smoothed float image
    # plateaus are negligible, so the maximum filter alone suffices.)
    footprint = 2 * min_distance + 1
    is_max = smooth == filter_in_bands(
        ndimage.maximum_filter, smooth, footprint, size=footprint, mode="nearest"
    )
    # A maximum on the outermost pixel ring is the flank of a column centred outside the
    # frame, not a column of the image.
    is_max[[0, -1], :] = False
    is_max[:, [0, -1]] = False
    candidates = np.argwhere(is_max)
    if len(candidates) == 0:
        raise AnalysisError("no local maximum found: the image shows no atom columns")
    # Prominence: height above the local background (lowest smoothed value within a period).
    size = max(3, int(np.ceil(period_px)) | 1)
    background = filter_in_bands(ndimage.minimum_filter, smooth, size, size=size, mode="reflect")
    r, c = candidates[:, 0], candidates[:, 1]
    prominence = smooth[r, c] - background[r, c]
    # White noise smoothed by a Gaussian of sigma s keeps 1 / (2 sqrt(pi) s) of its std.
    noise = estimate_noise(img) / (2.0 * np.sqrt(np.pi) * sigma)
    floor = max(threshold_sigma * noise, min_relative_prominence * float(np.median(prominence)))
    keep = prominence > floor
    if not keep.any():
        raise AnalysisError(
            f"no column rises above the noise (threshold {floor:.3g} above the local background)"
        )
    peaks = candidates[keep]
    # A fifth of the nearest-neighbour distance (2/3 period in a TMD) either side: the window
    # sees one column, not its neighbours.
    radius = max(1, int(round(0.15 * period_px)))
    intensity = smooth[peaks[:, 0], peaks[:, 1]]
    if refine != "model":
        xy = refine_positions(smooth, peaks, radius=radius, method=refine)
        return Columns(xy=xy, intensity=intensity)
    xy = refine_positions(smooth, peaks, radius=radius, method="com")
    return model_columns(img, xy, intensity)


def model_columns(image: np.ndarray, xy: np.ndarray, intensity: np.ndarray) -> Columns:
    """Columns refined by the Gaussian image model (:mod:`motifcat.ingest.columns.fit`)."""
    from scipy.spatial import cKDTree

    from .fit import estimate_column_width, fit_gaussian_columns

    if len(xy) < 2:
        raise AnalysisError("need at least two columns to fit the column model")
    d, _ = cKDTree(xy).query(xy, k=2)
    spacing = float(np.median(d[:, 1]))
    sigma = estimate_column_width(image, xy, spacing)
    fit = fit_gaussian_columns(image, xy, sigma)
    return Columns(
        xy=fit.xy,
        intensity=np.asarray(intensity, dtype=np.float64),
        sigma=fit.sigma,
        height=fit.height,
        background=fit.background,
        cross_section=fit.cross_section,
        cross_section_err=fit.cross_section_err,
        xy_err=fit.xy_err,
    )
