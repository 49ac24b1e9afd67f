"""Atom-column detection with vectorised sub-pixel refinement."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

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
    img = np.asarray(image)
    if img.dtype not in (np.float32, np.float64):
        img = img.astype(np.float64)  # float32 stays: no image-sized float64 copy
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


def disk_footprint(radius: float) -> np.ndarray:
    """Boolean disk of the given radius (px) for ``scipy.ndimage`` rank filters.

    A disk, unlike a square, reaches equally far in every direction: a square window's
    corners reach 41 % further along the diagonals, onto the flank of a brighter neighbour.

    Examples
    --------
    >>> disk_footprint(1.0).astype(int).tolist()
    [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    """
    r = int(np.floor(radius))
    off = np.arange(-r, r + 1)
    return (off[:, None] ** 2 + off[None, :] ** 2) <= radius**2 + 1e-9


def disk_minimum(image: np.ndarray, radius: float) -> np.ndarray:
    """Minimum over (nearly) a disk of ``radius`` px around every pixel, fast.

    A rank filter over a disk footprint costs its area per pixel (1800 operations for a
    period of 21 px); the minimum over a union of rectangles is the minimum of the
    rectangles' minima, and a rectangle's minimum is separable (two 1-D passes). Four
    rectangles inscribed in the disk (corners on the circle at 15, 37, 53 and 75 degrees)
    cover 94 % of it and, like the disk, never reach beyond ``radius``.

    Examples
    --------
    >>> img = np.ones((41, 41)); img[20, 20 + 9] = 0.0; img[20 + 7, 20 + 7] = -1.0
    >>> float(disk_minimum(img, 9.5)[20, 20])   # (9, 0) is inside, (7, 7) at 9.9 px is not
    0.0
    """
    img = np.asarray(image)
    if radius < 3:
        return ndimage.minimum_filter(img, footprint=disk_footprint(radius), mode="reflect")
    out = None
    for deg in (15.0, 37.0, 53.0, 75.0):
        a = int(np.floor(radius * np.cos(np.radians(deg))))
        b = int(np.floor(radius * np.sin(np.radians(deg))))
        m = ndimage.minimum_filter(img, size=(2 * b + 1, 2 * a + 1), mode="reflect")
        out = m if out is None else np.minimum(out, m, out=out)
    return out


def flat_noise(image: np.ndarray, smooth: np.ndarray | None = None) -> float:
    """Pixel noise (std) measured where the image is flattest.

    :func:`estimate_noise` takes the median of all pixel differences; in a finely structured
    image (columns a pixel wide) most differences carry structure and the noise comes out
    several times too high. Here only the quarter of the pixels where the smoothed image is
    flattest is used. With Poisson noise that is the background's noise, the lowest in the
    image: a lenient threshold, which the model selection after the fit completes. (On pure
    white noise the selection of flat spots biases it ~5 % low.)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bool(abs(flat_noise(rng.normal(0, 2.0, (256, 256))) - 2.0) < 0.2)
    True
    """
    img = np.asarray(image, dtype=np.float32)
    step = max(1, int(np.sqrt(img.size / 400_000)))
    sub = img[::step, ::step] if step > 1 else img
    if smooth is None:
        smooth = ndimage.gaussian_filter(sub, 1.0)
    else:
        smooth = smooth[::step, ::step] if step > 1 else smooth
    gy, gx = np.gradient(np.asarray(smooth, dtype=np.float32))
    slope = np.hypot(gx, gy)[:, :-1]
    # Differences of horizontally adjacent pixels (full resolution) at the subsampled grid.
    nxt = img[::step, 1::step][:, : sub.shape[1] - 1] if step > 1 else sub[:, 1:]
    diff = nxt - sub[:, : nxt.shape[1]]
    slope = slope[:, : nxt.shape[1]]
    flat = slope <= np.quantile(slope, 0.25)
    d = diff[flat]
    if d.size < 100:
        return estimate_noise(image)
    mad = np.median(np.abs(d - np.median(d)))
    return float(1.4826 * mad / np.sqrt(2.0))


def poisson_noise_bound(image: np.ndarray) -> float:
    """For an image of counts, the Poisson noise at its background level; else ``inf``.

    When the image holds non-negative integers it may be detected counts, whose variance is
    at least their mean (Poisson, more with detector gain noise), so the square root of a
    low quantile (the 10th percentile: the background between columns) is a lower bound of
    the noise there. :func:`flat_noise` needs flat background, which an image with columns a
    pixel or two wide does not have (every pixel difference carries structure, and it comes
    out several times too high); the lower of the two is used, which only makes the peak
    test more lenient (the model selection decides).

    Examples
    --------
    >>> img = np.random.default_rng(0).poisson(25.0, (64, 64)).astype(np.float32)
    >>> 4.0 < poisson_noise_bound(img) < 5.0
    True
    >>> poisson_noise_bound(img + 0.5), poisson_noise_bound(img + 3_000_000)
    (inf, inf)
    """
    img = np.asarray(image)
    step = max(1, int(np.sqrt(img.size / 400_000)))
    sub = np.asarray(img[::step, ::step], dtype=np.float64)
    if sub.size == 0 or sub.min() < 0 or not np.all(sub == np.round(sub)):
        return float("inf")
    level = float(np.percentile(sub, 10))
    # More than 1e4 counts on the background of one pixel would be an electron dose no
    # STEM pixel gets (100 pA for 10 us is 6000 electrons, of which the ADF detector sees a
    # fraction): such integers carry an offset or a gain, not counts.
    if level > 1e4:
        return float("inf")
    return float(np.sqrt(max(level, 1.0)))


def find_peaks(
    image: np.ndarray,
    sigma_px: float,
    *,
    background_radius_px: float,
    min_distance_px: float,
    noise: float,
    threshold_sigma: float,
    min_relative_prominence: float = 0.0,
    reference_prominence: float | None = None,
    local_background: bool = True,
    band_rows: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of the image smoothed at the probe scale that rise above the local background.

    In bands of rows (memory ~ a few band-sized float32 arrays, not image-sized):

    1. ``S`` = the image smoothed by a Gaussian of ``sigma_px`` (the matched filter of a
       Gaussian column of that width);
    2. candidates: pixels equal to the maximum of their 3x3 neighbourhood;
    3. local background: the minimum of ``S`` in a disk of ``background_radius_px`` (follows
       contamination and thickness gradients on the scale of a period);
    4. (``local_background=False``: the background is taken as 0, for residual images)
       kept if ``S - background`` exceeds ``threshold_sigma`` standard deviations of the
       smoothed noise and ``min_relative_prominence`` x the reference (median) prominence;
    5. of two candidates closer than ``min_distance_px`` the brighter one is kept (a
       vectorised non-maximum suppression over disk neighbourhoods).

    Returns
    -------
    rc : ndarray of int, shape (N, 2)
        (row, col) of each peak.
    value : ndarray, shape (N,)
        ``S`` at the peak.
    prominence : ndarray, shape (N,)
        ``S`` minus the local background at the peak.

    Examples
    --------
    >>> y, x = np.mgrid[:40, :40]
    >>> img = np.exp(-((x - 12) ** 2 + (y - 20) ** 2) / 4.0) + 0.4 * np.exp(
    ...     -((x - 17) ** 2 + (y - 20) ** 2) / 4.0)
    >>> rc, v, p = find_peaks(img, 0.7, background_radius_px=8, min_distance_px=2,
    ...                       noise=1e-3, threshold_sigma=8)
    >>> rc.tolist()
    [[20, 12], [20, 17]]
    """
    img = image if hasattr(image, "shape") and not isinstance(image, list) else np.asarray(image)
    h = img.shape[0]
    foot = disk_footprint(background_radius_px)
    halo = int(np.ceil(4 * sigma_px)) + foot.shape[0] // 2 + 2
    noise_s = noise / (2.0 * np.sqrt(np.pi) * max(sigma_px, 0.5))
    out_rc, out_v, out_p = [], [], []
    for r0 in range(0, h, band_rows):
        r1 = min(h, r0 + band_rows)
        lo, hi = max(0, r0 - halo), min(h, r1 + halo)
        band = np.asarray(img[lo:hi], dtype=np.float32)
        smooth = ndimage.gaussian_filter(band, sigma_px, mode="reflect")
        # Candidates: maxima over the 4-neighbour cross (the disk of radius 1 px), not the
        # 3x3 square: at 2.5-3 px between columns the square's corner pixel lies on the
        # saddle towards a brighter diagonal neighbour and hides the dim column.
        is_max = smooth == ndimage.maximum_filter(
            smooth, footprint=disk_footprint(1.0), mode="nearest"
        )
        # A maximum on the outermost pixel ring is the flank of a column centred outside the
        # frame, not a column of the image.
        is_max[:, [0, -1]] = False
        if lo == 0:
            is_max[0] = False
        if hi == h:
            is_max[-1] = False
        is_max[: r0 - lo] = False
        is_max[r1 - lo :] = False
        rr, cc = np.nonzero(is_max)
        if len(rr) == 0:
            continue
        out_rc.append(np.column_stack([rr + lo, cc]))
        out_v.append(smooth[rr, cc].astype(np.float64))
        if local_background:
            base = disk_minimum(smooth, background_radius_px)
            out_p.append((smooth[rr, cc] - base[rr, cc]).astype(np.float64))
            del base
        else:
            out_p.append(smooth[rr, cc].astype(np.float64))
        del smooth, is_max
    if not out_rc:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0), np.zeros(0)
    rc, value, prom = np.concatenate(out_rc), np.concatenate(out_v), np.concatenate(out_p)
    keep = prom > threshold_sigma * noise_s
    if min_relative_prominence > 0 and keep.any():
        ref = reference_prominence if reference_prominence else float(np.median(prom[keep]))
        keep &= prom > min_relative_prominence * ref
    rc, value, prom = rc[keep], value[keep], prom[keep]
    keep = suppress_non_maxima(rc.astype(np.float64), value, min_distance_px)
    return rc[keep], value[keep], prom[keep]


def suppress_non_maxima(points: np.ndarray, score: np.ndarray, distance: float) -> np.ndarray:
    """Greedy non-maximum suppression, vectorised: a point is kept unless a kept point with a
    higher score lies within ``distance``.

    Solved as a fixed point over all close pairs at once (a suppressed point stops
    suppressing others), so there is no Python loop over points.

    Examples
    --------
    >>> pts = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    >>> suppress_non_maxima(pts, np.array([3.0, 2.0, 1.0, 1.0]), 1.5).tolist()
    [True, False, True, True]
    """
    from scipy.spatial import cKDTree

    n = len(points)
    keep = np.ones(n, dtype=bool)
    if n < 2 or distance <= 0:
        return keep
    pairs = cKDTree(points).query_pairs(distance, output_type="ndarray")
    if len(pairs) == 0:
        return keep
    # Orient every pair as (weaker, stronger); ties go to the lower index.
    i, j = pairs[:, 0], pairs[:, 1]
    i_weaker = (score[i] < score[j]) | ((score[i] == score[j]) & (i > j))
    weak = np.where(i_weaker, i, j)
    strong = np.where(i_weaker, j, i)
    for _ in range(64):
        suppressed = np.zeros(n, dtype=bool)
        suppressed[weak[keep[strong]]] = True
        new = ~suppressed
        if np.array_equal(new, keep):
            break
        keep = new
    return keep


def detect_columns(
    image: np.ndarray,
    period_px: float,
    *,
    smoothing: float = 0.15,
    threshold_sigma: float = 8.0,
    min_relative_prominence: float = 0.1,
    min_distance_factor: float = 0.3,
    refine: str = "model",
    residual_search: bool = True,
    smoothed: np.ndarray | None = None,
) -> Columns:
    """Find atom columns: peaks against the local background, then the Gaussian image model.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The micrograph (any intensity scale; bright columns, as in ADF/HAADF).
    period_px : float
        Dominant lattice period in pixels (see :func:`motifcat.ingest.lattice.lattice_period`);
        sets the smoothing, the minimum peak distance and the local-background radius.
    smoothing : float
        Gaussian sigma of the peak filter as a fraction of the period (at least 0.5 px).
    threshold_sigma : float
        A peak must rise above the local background (the lowest smoothed value within a disk
        of one period) by this many standard deviations of the smoothed noise. On pure
        Gaussian noise, local maxima rise 4-7.5 such deviations above the deepest dip within
        a period (see ``tests/test_columns.py``), so 8 keeps noise out. The noise is measured
        on the flattest quarter of the image (:func:`flat_noise`), or for an image of counts
        the Poisson noise of its background if that is lower (:func:`poisson_noise_bound`).
        With ``refine="model"`` this test only proposes candidates for the first fit; the
        model selection decides, and sets the threshold of the residual search.
    min_relative_prominence : float
        ... and by at least this fraction of the median prominence of the peaks: a guard for
        nearly noise-free images, where every ripple of a non-Gaussian column profile is
        "significant". 0.1 keeps the faintest real columns of a HAADF image (a single
        chalcogen atom, ~20 % of a metal column); not tuned on a benchmark.
    min_distance_factor : float
        Minimum distance between two peaks as a fraction of the period (non-maximum
        suppression over a disk). Both sublattices of a transition-metal dichalcogenide sit
        2/3 of the (100) period apart, so 0.3 keeps them apart.
    refine : {"model", "com", "gaussian", "none"}
        ``"model"`` (default): centre of mass, then the Gaussian image model fitted to the raw
        image (:func:`motifcat.ingest.columns.fit.fit_gaussian_columns`), which gives widths,
        heights, backgrounds and cross-sections with uncertainties, followed by model
        selection and the residual search (:func:`model_columns`). An image larger than
        :data:`GLOBALS_PX` on a side takes its image-wide quantities (width, thresholds,
        noise, the sequence of fits) from its central crop (:func:`measure_column_globals`),
        as each tile of :func:`motifcat.ingest.tiles.analyze_tiled` does, so the two agree.
        Otherwise the sub-pixel refinement of :func:`refine_positions` alone, on the peaks.
    residual_search : bool
        With ``refine="model"``: look for columns the peak test missed in the residual of
        the fit (kept only if the model-selection criterion says so).
    smoothed : ndarray, optional
        :func:`smooth_image` of ``image`` with the same ``period_px`` and ``smoothing``; only
        used for the centre-of-mass refinement and the ``intensity`` of each column.

    Returns
    -------
    Columns
        Positions (x, y) in pixels, the smoothed intensity at each column and, with
        ``refine="model"``, the fitted model quantities.

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
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise AnalysisError(f"image must be 2-D, got shape {img.shape}")
    sigma = max(0.5, smoothing * period_px)
    min_distance = max(1.0, min_distance_factor * period_px)
    noise = min(flat_noise(img), poisson_noise_bound(img))
    rc, _, _ = find_peaks(
        img,
        sigma,
        background_radius_px=max(2.0, period_px),
        min_distance_px=min_distance,
        noise=noise,
        threshold_sigma=threshold_sigma,
        min_relative_prominence=min_relative_prominence,
    )
    if len(rc) == 0:
        raise AnalysisError(
            "no column rises above the noise (threshold "
            f"{threshold_sigma:g} sigma above the local background)"
        )
    if smoothed is None:
        # float32 (half the memory of smooth_image's float64): only read at the columns.
        smooth = filter_in_bands(
            ndimage.gaussian_filter, img, int(4 * sigma + 1), sigma=sigma, mode="reflect"
        )
    else:
        smooth = smoothed
    radius = max(1, int(round(0.15 * period_px)))
    if refine != "model":
        xy = refine_positions(smooth, rc, radius=radius, method=refine)
        return Columns(xy=xy, intensity=smooth[rc[:, 0], rc[:, 1]].astype(np.float64))
    # The centre of mass needs a window that holds the column and not its neighbours; a
    # window of radius 1 px (periods under ~10 px) holds the neighbours' flanks, which pull
    # a dim column towards a bright one. There the three-point log-parabola starts the fit.
    start = "com" if radius >= 2 else "gaussian"
    xy = refine_positions(smooth, rc, radius=radius, method=start)
    if smoothed is None:
        smooth = None  # made again at the end: not held through the fit (memory)
    kw = dict(peak_sigma_px=sigma, min_distance_px=min_distance,
              threshold_sigma=threshold_sigma,
              min_relative_prominence=min_relative_prominence,
              residual_search=residual_search, period_px=period_px)
    fixed = None
    if max(img.shape) > GLOBALS_PX:
        # The image-wide decisions on the central crop, then replayed on all of it, exactly
        # as every tile of analyze_tiled replays them: the two agree at any size.
        from .fit import _fit_align

        align = _fit_align(starting_width(period_px))
        fixed = measure_column_globals(img, xy, align=align, **kw)
    return model_columns(img, xy, smooth=smooth, fixed=fixed, **kw)


#: Side (px) of the central crop on which the column model's image-wide quantities
#: (:class:`ColumnGlobals`) are measured; an image no larger is measured whole. A 1024² crop
#: of a resolved HAADF image holds thousands of columns: plenty for a width, a noise model
#: and thresholds that depend on the density of columns, not on the image size.
GLOBALS_PX = 1024


def measure_column_globals(image: np.ndarray, xy: np.ndarray, *, align: int = 1,
                           **model_kw) -> ColumnGlobals:
    """The column model's image-wide quantities (:class:`ColumnGlobals`), from
    :func:`model_columns` (width, thresholds, noise and its sequence of fits estimated) on
    the whole image, or on its central crop of :data:`GLOBALS_PX` px if larger.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    xy : ndarray, shape (N, 2)
        Candidate positions (x, y) in px of the whole image (those in the crop are used).
    align : int
        The crop's origin is a multiple of this (px): the fit's batching cells and
        background blocks then fall as on the whole image.
    **model_kw
        :func:`model_columns`'s keywords (not ``smooth``, ``fixed``, ``record``).

    Returns
    -------
    ColumnGlobals
        With the batch size of the whole image.
    """
    h, w = image.shape
    lo = [max(0, (n - GLOBALS_PX) // 2 // align * align) for n in (w, h)]
    hi = [min(n, a + GLOBALS_PX) for a, n in zip(lo, (w, h), strict=True)]
    crop = np.asarray(image[lo[1] : hi[1], lo[0] : hi[0]], dtype=np.float32)
    inside = ((xy[:, 0] >= lo[0]) & (xy[:, 0] < hi[0])
              & (xy[:, 1] >= lo[1]) & (xy[:, 1] < hi[1]))
    record: list[ColumnGlobals] = []
    model_columns(crop, xy[inside] - np.array(lo, dtype=np.float64),
                  smooth=crop,  # (only the discarded intensities read it)
                  record=record, **model_kw)
    return replace(record[0], image_bytes=int(h) * int(w) * 4)


def starting_width(period_px: float) -> float:
    """The column model's starting Gaussian width (px) for a lattice period (px).

    A sixth of the period: a quarter of the nearest-neighbour distance or more (>= 2/3 of
    the period for honeycomb, square and pentagonal lattices), about the width of the
    columns of a resolved image (0.19-0.28 of the spacing on the benchmark sets); wider
    starts cost memory and time (the fit's windows grow with it). At coarse sampling a
    fitted width that starts below the truth is trapped (a Gaussian under a pixel wide
    leaves its flanks unsampled, so the data no longer pull it wider): there the start is
    a quarter of the period (an upper bound of a resolvable width: neighbours 2.7 widths
    apart), up to 1 px.

    Examples
    --------
    >>> starting_width(12.0), starting_width(3.0)
    (2.0, 0.75)
    """
    return max(float(period_px) / 6.0, min(float(period_px) / 4.0, 1.0))


class _Residual:
    """``image - model - background`` of a fit, computed band by band on row slices."""

    def __init__(self, image, fit):
        self.image, self.fit = image, fit
        self.shape = image.shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        from .fit import background_rows

        r = slice(*rows.indices(self.shape[0])[:2])
        band = np.subtract(self.image[r], self.fit.model[r], dtype=np.float32)
        band -= background_rows(self.fit, r, self.shape[1])
        return band


#: Expected number of false columns from noise alone, as a fraction of the columns found, that
#: the model selection allows (:func:`selection_threshold`): precision >= 0.99 from noise.
FALSE_COLUMN_RATE = 0.01


def selection_threshold(sigma_px: float, area_px: float, n_columns: int,
                        rate: float = FALSE_COLUMN_RATE) -> float:
    """Chi-square gain a column must exceed so that noise alone adds ``rate`` x ``n_columns``
    false columns to an image of ``area_px`` pixels (on average).

    The significance of a column (its matched-filter signal-to-noise ratio squared, ``u^2``)
    at the best position of a noise-only residual is the maximum of a Gaussian random field:
    white noise correlated with a Gaussian of width ``sigma`` has the covariance
    ``exp(-r^2 / (4 sigma^2))``, second spectral moment ``lambda = 1 / (2 sigma^2)``, and its
    expected number of local maxima above ``u`` in an area ``A`` is the Euler characteristic
    ``A lambda (2 pi)^(-3/2) u exp(-u^2 / 2)`` (Adler's formula, accurate for ``u > 2``). The
    threshold solves ``A lambda (2 pi)^(-3/2) u exp(-u^2 / 2) = rate N``. It depends on the
    density of columns (area per column in units of sigma^2), not on the image size, and it
    is never below 8, the Akaike price of a column's four parameters.

    Examples
    --------
    >>> round(selection_threshold(4.3, 270_000, 868), 1)   # a MoS2 image at 0.12 A/px
    10.3
    """
    scale = area_px / (2.0 * sigma_px**2) / (2 * np.pi) ** 1.5 / max(rate * n_columns, 1e-3)
    u = 3.0
    for _ in range(50):  # fixed point of u^2 = 2 ln(scale u): converges in a few steps
        u_new = np.sqrt(max(2.0 * np.log(max(scale * u, 1.0)), 1e-6))
        if abs(u_new - u) < 1e-6:
            break
        u = u_new
    return float(max(u * u, 8.0))


def noise_correlation(residual, sigma_px: float, max_rows: int = 512) -> float:
    """Factor by which correlated noise inflates the chi-square gains of columns of width
    ``sigma_px``: the variance of the residual filtered with the column's Gaussian over its
    white-noise prediction (1 for independent pixels), at least 1.

    :func:`~.fit.fit_gaussian_columns` computes a column's significance ``(h sum G^2)^2 /
    sum G^2 V`` as if the pixels were independent. In a real scan they are not: the probe's
    non-Gaussian tails, scan and read-out filtering and drift leave a residual whose
    neighbouring pixels are correlated, so the matched filter's noise is ``kappa`` times the
    independent-pixel value, and every gain (a column, or a noise blob that the fit makes a
    column of) is ``kappa`` times too large: the effective number of independent pixels
    under a column is ``1 / kappa`` of its pixels. Dividing the gains by ``kappa`` restores
    the false-column rate of :func:`selection_threshold`. On a simulation with Poisson noise
    ``kappa`` is 1.0 at low dose; at full dose the misfit of the non-Gaussian probe profile
    (correlated over a column) dominates the residual (1.86 on bench/data/tmd.npz at dose 1,
    2.9 on the real Se-implanted MoS2 image: scan-direction correlation). ``residual`` is
    indexed by row slices (an array or :class:`_Residual`); a central band of at most
    ``max_rows`` rows is used, standardised by its own robust scale so that bright and dark
    regions weigh alike.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(noise_correlation(rng.normal(size=(256, 256)), 1.5), 1)
    1.0
    >>> red = ndimage.gaussian_filter(rng.normal(size=(256, 256)), 1.0)
    >>> noise_correlation(red, 1.5) > 2
    True
    """
    h = residual.shape[0]
    mid = h // 2
    band = np.asarray(residual[max(0, mid - max_rows // 2) : min(h, mid + max_rows // 2)],
                      dtype=np.float64)
    band = band - np.median(band)
    # Robust scale: misfit outliers at a few bright columns do not set it.
    scale = 1.4826 * np.median(np.abs(band))
    if not np.isfinite(scale) or scale <= 0:
        return 1.0
    band = np.clip(band / scale, -5.0, 5.0)
    var = float(band.var())
    if var <= 0:
        return 1.0
    s = max(float(sigma_px), 0.5)
    filtered = ndimage.gaussian_filter(band, s, mode="reflect", truncate=3.0)
    # Drop the reflected margins: their mirrored pixels are correlated by construction.
    m = int(np.ceil(3 * s))
    if filtered.shape[0] > 4 * m and filtered.shape[1] > 4 * m:
        filtered = filtered[m:-m, m:-m]
    # The kernel of gaussian_filter is G / (2 pi s^2): white noise of variance var gives
    # var / (4 pi s^2) after it (exact for s >~ 0.7 px, the pixel sum of G^2).
    k = ndimage.gaussian_filter(np.pad([[1.0]], 3 * m + 1), s, mode="constant", truncate=3.0)
    white = var * float((k * k).sum())
    return float(max(1.0, filtered.var() / white))


def column_significance(
    fit, area_px: float | None = None, correlation: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Model-selection statistic of every fitted column and the threshold it must pass.

    The statistic is the drop of the chi-square when the column's Gaussian, with its fitted
    position and width, is added to the model of everything else (``fit.significance``,
    the squared matched-filter signal-to-noise ratio of its height, the pixel variance from
    the fitted noise model). Holding the shape fixed matters: for a column about a pixel
    wide, height and width trade against each other, so the height's *marginal* error is
    large even for an obvious column. A column is kept if it is more significant than noise
    alone would make it at the rate :data:`FALSE_COLUMN_RATE` (:func:`selection_threshold`
    with the median width, the image area ``area_px`` and the number of columns) -- as
    StatSTEM's MAP selection keeps a column only if it raises the posterior probability of
    the model. Without ``area_px``: the Bayesian information criterion's price of the four
    parameters, ``4 ln n`` with ``n`` the pixels of the column's window.

    ``correlation`` (:func:`noise_correlation`, >= 1) divides the gains: with noise
    correlated between neighbouring pixels the fit's independent-pixel gains are that much
    too large.

    Returns
    -------
    chi2, threshold : ndarray, shape (N,)
    """
    chi2 = fit.significance / max(float(correlation), 1.0)

    if area_px is None:
        return chi2, 4.0 * np.log(np.maximum(fit.n_pixels, 2))
    # Self-consistent: the rate is of the columns that pass (on pure noise none does).
    sigma, n = float(np.median(fit.sigma)), len(chi2)
    for _ in range(20):
        thr = selection_threshold(sigma, area_px, n)
        n_new = max(1, int((chi2 > thr).sum()))
        if n_new == n:
            break
        n = n_new
    return chi2, np.full(len(chi2), thr)


def common_width(
    image: np.ndarray, fit, sigma_px: float, *, max_columns: int = 4000
) -> float:
    """One Gaussian width (px) for all columns, by profile least squares over many columns.

    Each column's own data is the residual of the fit plus its own fitted Gaussian (its
    neighbours and the background stay subtracted, so overlapping tails do not widen it).
    For a trial width ``s`` every column's height follows in closed form
    (``sum v g / sum g^2``), and the width that minimises the summed squared misfit over up
    to ``max_columns`` columns (those nearest the image centre) is returned. Pooling the
    columns is what makes it robust at low dose, where the width of one column is hardly
    constrained (a free per-column fit then runs to its bounds and the median of such widths
    is biased). Trial widths span 0.5-2 x ``sigma_px``; the minimum is refined by a parabola.

    Examples
    --------
    >>> from motifcat.datasets import render_columns
    >>> from motifcat.ingest.columns.fit import fit_gaussian_columns
    >>> g = np.stack(np.meshgrid(np.arange(6.0, 90, 8), np.arange(6.0, 90, 8)), -1).reshape(-1, 2)
    >>> img = render_columns((96, 96), g, np.full(len(g), 50.0), 1.7, background=5.0)
    >>> fit = fit_gaussian_columns(img, g, 1.2, return_model=True)
    >>> round(common_width(img, fit, 1.2), 1)
    1.7
    """
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape
    xy = fit.xy
    # The window reaches 2.5 x the widest trial width (2 sigma_px).
    radius = max(2, int(np.ceil(5.0 * sigma_px)))
    # Memory: the dozen float64 window stacks stay under 1/64 of the image's pixels each
    # (together under half the float32 image); a few hundred columns pin the width well.
    budget = max(50, int(img.size / (64 * (2 * radius + 1) ** 2)))
    # The more significant half of the columns: at low dose the faint ones (and noise the
    # selection has not yet removed) pull towards narrow, pixel-sized spikes.
    bright = fit.significance >= np.median(fit.significance)
    cand = np.flatnonzero(bright)
    order = cand[np.argsort(np.hypot(xy[cand, 0] - w / 2, xy[cand, 1] - h / 2), kind="stable")]
    sel = order[: min(max_columns, budget)]
    off = np.arange(-radius, radius + 1)
    centres = np.rint(xy[sel]).astype(np.int64)
    rows = np.clip(centres[:, 1, None] + off[None, :], 0, h - 1)
    cols = np.clip(centres[:, 0, None] + off[None, :], 0, w - 1)
    valid = (
        (centres[:, 1, None] + off[None, :] == rows)[:, :, None]
        & (centres[:, 0, None] + off[None, :] == cols)[:, None, :]
    )
    rr, cc = np.broadcast_arrays(rows[:, :, None], cols[:, None, :])
    # The background map at these pixels only (bilinear on its grid, clamped at the ends,
    # as background_rows does): no image-sized temporary.
    b = fit.background_block
    bg = ndimage.map_coordinates(
        fit.background_grid, [(rr + 0.5) / b - 0.5, (cc + 0.5) / b - 0.5], order=1,
        mode="nearest",
    )
    resid = img[rr, cc].astype(np.float64) - fit.model[rr, cc] - bg
    dx = cols[:, None, :] - xy[sel, 0, None, None]
    dy = rows[:, :, None] - xy[sel, 1, None, None]
    r2 = dx * dx + dy * dy
    s_fit = fit.sigma[sel, None, None]
    own = resid + fit.height[sel, None, None] * np.exp(-r2 / (2 * s_fit**2))
    own *= valid
    n_pix = valid.sum(axis=(1, 2)).astype(np.float64)
    v1 = own.sum(axis=(1, 2))
    trials = sigma_px * np.geomspace(0.5, 2.0, 25)
    cost = np.empty(len(trials))
    for k, s in enumerate(trials):  # 25 trial widths, each vectorised over all columns
        g = np.exp(-r2 / (2 * s * s)) * valid
        g1, gg = g.sum(axis=(1, 2)), (g * g).sum(axis=(1, 2))
        vg = (own * g).sum(axis=(1, 2))
        # Height and a constant offset per column (2 x 2 normal equations, closed form):
        # the offset takes up any error of the background map under the column.
        det = n_pix * gg - g1 * g1
        amp = (n_pix * vg - g1 * v1) / np.maximum(det, 1e-300)
        base = (v1 - amp * g1) / np.maximum(n_pix, 1)
        cost[k] = (((own - base[:, None, None] - amp[:, None, None] * g) * valid) ** 2).sum()
    k = int(np.argmin(cost))
    if 0 < k < len(trials) - 1:
        y0, y1, y2 = np.log(trials[k - 1 : k + 2])
        c0, c1, c2 = cost[k - 1 : k + 2]
        denom = c0 - 2 * c1 + c2
        t = 0.5 * (c0 - c2) / denom if denom > 0 else 0.0
        return float(np.exp(y1 + np.clip(t, -1, 1) * (y2 - y1)))
    return float(trials[k])


@dataclass(frozen=True)
class FitStep:
    """One fit of a :func:`model_columns` run, as a tile repeats it.

    Attributes
    ----------
    kind : str
        ``"start"`` (the candidates), ``"settle"`` (a refit after a rejection or a width
        step), ``"judge"`` (the same, in the settling after every column was judged) or
        ``"round"`` (a residual-search round's new candidates).
    sigma : float
        Width (px) of the fit's prior.
    n_iter : int
        Iterations it ran (:attr:`~.fit.GaussianFit.n_iter`).
    spacing : float
        Column spacing (px) it used.
    noise_model : (float, float)
        Its pixel-variance model.
    noise_correlation, threshold : float
        The selection's gain deflation and chi-square threshold after it.
    """

    kind: str
    sigma: float
    n_iter: int
    spacing: float
    noise_model: tuple[float, float]
    noise_correlation: float
    threshold: float


@dataclass(frozen=True)
class ColumnGlobals:
    """The image-wide quantities :func:`model_columns` otherwise estimates from the image it
    is given, as they came out of one run on the whole image (or a representative part).

    A tile of a large image, analysed with these, applies the whole image's width,
    thresholds and noise model (:func:`motifcat.ingest.tiles.analyze_tiled`).

    Attributes
    ----------
    sigma : float
        The column width (px) the run settled on (:func:`common_width`).
    threshold : float
        The model selection's chi-square threshold of the final fit
        (:func:`column_significance`).
    noise_model : (float, float)
        The final fit's pixel-variance model ``(a, b)`` (:func:`~.fit.fit_gaussian_columns`).
    fit_spacing : float
        Median nearest-neighbour spacing (px) of the final columns (the fit's iterations).
    search_spacing : float
        The candidates' spacing that sets the residual search's background radius.
    image_bytes : int
        Size of the whole image (bytes; the fit's batch size).
    rounds : tuple of (float, float, float)
        Per residual-search round: the residual's noise, the reference prominence and the
        deviation ``u`` of its peak test (the last round's values serve later rounds).
    widths : tuple of float
        The widths (px) the run's fits used, in order (starting width first, ``sigma``
        last): a tile takes the same steps, so that its fits start as the whole image's
        did (a column the data constrain weakly, e.g. cut by the border, ends where its
        start leads it, to the fit's convergence tolerance). Empty: ``sigma`` throughout.
    noise_correlation : float
        The final fit's :func:`noise_correlation` (the factor its gains are divided by).
    fits : tuple of FitStep
        Every fit of the run, in order. A tile given these runs the same fits (kind, width,
        iterations, spacing, noise model, selection threshold), whatever its own columns
        would decide: whether to refit is a decision over all the columns (one rejected
        anywhere refits everything), and so is the joint step's convergence, so a column
        the data constrain weakly (cut by the border, the slow tail at low dose), which
        ends where its last fit left it, ends in the tile where it ended in the whole
        image. Empty: the tile decides (``widths`` replayed).
    """

    sigma: float
    threshold: float
    noise_model: tuple[float, float]
    fit_spacing: float
    search_spacing: float
    image_bytes: int
    rounds: tuple[tuple[float, float, float], ...] = field(default=())
    widths: tuple[float, ...] = field(default=())
    noise_correlation: float = 1.0
    fits: tuple[FitStep, ...] = field(default=())


def model_columns(
    image: np.ndarray,
    xy: np.ndarray,
    *,
    smooth: np.ndarray | None,
    peak_sigma_px: float,
    min_distance_px: float,
    threshold_sigma: float = 8.0,
    min_relative_prominence: float = 0.1,
    residual_search: bool = True,
    sigma_px: float | None = None,
    period_px: float | None = None,
    max_rounds: int = 4,
    fixed: ColumnGlobals | None = None,
    record: list | None = None,
) -> Columns:
    """Columns from candidate positions by the Gaussian image model, with model selection and
    a residual search.

    1. The image is fitted as a sum of Gaussians on a smooth background
       (:func:`~.fit.fit_gaussian_columns`, neighbours fitted together), starting from a
       width of a sixth of the period (a quarter, up to 1 px, at coarse sampling); the
       width prior of the fit is then centred on the pooled width of all columns
       (:func:`common_width`) and the fit repeated until that width settles (within 5 %).
       Only then are columns judged (a width far off merges or splits neighbours).
    2. Model selection: a candidate is kept only if its chi-square gain exceeds what noise
       alone reaches at a false-column rate of 1 % (:func:`column_significance`,
       :func:`selection_threshold`), the gains divided by the residual's noise correlation
       (:func:`noise_correlation`: correlated pixels inflate them); of two fitted columns
       closer than two widths (one maximum: Sparrow's limit), the more significant is kept.
    3. Residual search (``residual_search``): maxima of ``image - model - background``
       (:func:`find_peaks` with the background at 0, at 3/4 of the selection's deviation,
       noise measured on the residual) further than ``max(1, 2 sigma)`` px from every
       column become new candidates; the model is refitted with them and only they are
       judged, so a missed column is added and an empty site (where the residual is noise)
       gets none. Up to ``max_rounds`` rounds, until a round adds nothing.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The raw micrograph.
    xy : ndarray, shape (N, 2)
        Candidate positions (x, y) in px.
    smooth : ndarray, shape (H, W) or None
        The smoothed image (for the ``intensity`` of each column); None: smoothed here at
        ``peak_sigma_px`` once the fit is done.
    peak_sigma_px, min_distance_px, threshold_sigma, min_relative_prominence
        As in :func:`find_peaks` / :func:`detect_columns` (``threshold_sigma`` is not used
        here: the model selection sets the residual search's threshold).
    sigma_px : float, optional
        Column width (px), held as the centre of the width prior; default measured.
    period_px : float, optional
        Lattice period (px): the starting width (a sixth of it) and an upper bound of the
        column spacing.
    max_rounds : int
        Rounds of the residual search (each refits the whole model).
    fixed : ColumnGlobals, optional
        Use these image-wide quantities (width, selection threshold, noise model, spacings,
        batch size, residual-search noise and thresholds) instead of estimating them from
        ``image``, and run the same fits (``fixed.fits``: their number, widths, iterations
        and thresholds; which columns are kept is decided here): for a tile of a larger
        image, or an image larger than the crop they were measured on
        (:func:`measure_column_globals`). Default: estimated here.
    record : list, optional
        If given, the :class:`ColumnGlobals` of this run are appended to it.

    Returns
    -------
    Columns
    """
    from scipy.spatial import cKDTree

    from .fit import estimate_column_width, fit_gaussian_columns

    img = np.asarray(image, dtype=np.float32)
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 2:
        raise AnalysisError("need at least two columns to fit the column model")
    d, _ = cKDTree(xy).query(xy, k=2)
    spacing = float(np.median(d[:, 1]))
    if fixed is not None:
        spacing, sigma_px = fixed.search_spacing, fixed.sigma
    elif period_px:
        # Few candidates (a faint sublattice missed) spread far apart: the spacing of a
        # lattice is never larger than its period.
        spacing = min(spacing, float(period_px))
    if sigma_px:
        sigma = float(sigma_px)
    elif period_px:
        # From the period; the pooled width (common_width, in settle) then moves it.
        sigma = starting_width(period_px)
    else:
        sigma = estimate_column_width(img, xy, spacing)
    # The widths the fits use, in order (a change when common_width moves by 5 % or more).
    widths = [sigma]
    if fixed is not None and fixed.widths:
        widths = [fixed.widths[0]]
        sigma = widths[0]

    search_spacing = spacing
    rounds: list[tuple[float, float, float]] = []
    fit_kw = {}
    if fixed is not None:
        fit_kw = dict(spacing_px=fixed.fit_spacing, noise_model=fixed.noise_model,
                      image_bytes=fixed.image_bytes)

    correlation = [1.0]
    # The fits run so far (recorded, or replayed from ``fixed.fits``).
    steps: list[FitStep] = []
    script = tuple(fixed.fits) if fixed is not None else ()

    def scripted(kind):
        """Replaying, and the whole image's next fit is of this kind."""
        return len(steps) < len(script) and script[len(steps)].kind == kind

    def significance(fit):
        if script:
            step = script[len(steps) - 1]  # the fit just run
            return fit.significance / step.noise_correlation, np.full(len(fit), step.threshold)
        if fixed is not None:
            kappa = fixed.noise_correlation
            return fit.significance / kappa, np.full(len(fit), fixed.threshold)
        # Correlated noise (real scans) inflates the independent-pixel gains: measured on
        # this fit's residual, at the current width.
        correlation[0] = noise_correlation(_Residual(img, fit), sigma)
        return column_significance(fit, float(img.size), correlation[0])

    def fit_and_select(points, judged=None, kind="settle"):
        """Fit, then keep the significant columns (only those in ``judged`` are judged)."""
        nonlocal sigma
        if script:
            step = script[len(steps)]
            sigma = step.sigma
            fit = fit_gaussian_columns(
                img, points, sigma, return_model=True, n_iter=step.n_iter, converge=False,
                spacing_px=step.spacing, noise_model=step.noise_model,
                image_bytes=fixed.image_bytes)
            steps.append(step)
            chi2, threshold = significance(fit)
        else:
            fit = fit_gaussian_columns(img, points, sigma, return_model=True, **fit_kw)
            chi2, threshold = significance(fit)
            kappa = correlation[0] if fixed is None else fixed.noise_correlation
            steps.append(FitStep(
                kind, float(sigma), int(fit.n_iter), float(fit.spacing_px),
                tuple(float(v) for v in fit.noise_model), max(float(kappa), 1.0),
                float(threshold[0]) if len(threshold) else 0.0))
        keep = chi2 > threshold
        if judged is not None:
            keep |= ~judged
        # Two candidates on one column converge onto it: keep the more significant. Two
        # Gaussians of width sigma closer than 2 sigma make a single maximum (Sparrow's
        # limit): the model cannot tell them from one broad or elongated column.
        keep &= suppress_non_maxima(fit.xy, np.where(keep, chi2, -1.0), max(0.5, 2 * sigma))
        return fit, keep

    def settle(held, keep, judge):
        """Refit without the rejected columns (judging again if ``judge``) and with the
        pooled width (:func:`common_width`), until neither changes. ``held`` is a list
        holding the fit, emptied here, so that the caller keeps no reference to its model
        image while the next fit builds its own."""
        nonlocal sigma
        replay = fixed is not None and bool(fixed.widths)
        kind = "judge" if judge else "settle"  # (the record tells the two calls apart)
        fit = held.pop()
        if script:
            # The whole image's refits: as many as it ran here, each from the previous fit
            # (the columns this tile would reject are dropped as there; a column the whole
            # image rejected in a fit this tile has no counterpart of stays to the end).
            k = 0
            while True:
                if keep.sum() < 2:
                    raise AnalysisError(
                        "no column survives the model selection: the image shows no columns"
                    )
                if not scripted(kind):
                    break
                points, fit = fit.xy[keep], None
                judged = None if (judge and k == 0) else np.zeros(len(points), bool)
                fit, keep = fit_and_select(points, judged, kind)
                k += 1
            final_keep[0] = keep
            return fit
        for k in range(4):
            if keep.sum() < 2:
                raise AnalysisError(
                    "no column survives the model selection: the image shows no columns"
                )
            changed = False
            if keep.all() and replay:
                # The whole image's sequence of widths, one step where it took one.
                changed = len(widths) < len(fixed.widths)
                if changed:
                    sigma = fixed.widths[len(widths)]
                    widths.append(sigma)
            elif keep.all() and sigma_px is None:
                new_sigma = common_width(img, fit, sigma)
                changed = abs(new_sigma / sigma - 1) >= 0.05
                sigma = new_sigma if changed else sigma
                if changed:
                    widths.append(sigma)
            if keep.all() and not changed:
                return fit
            points, fit = fit.xy[keep], None
            # Judged once (a second judgement after the refit), not in a cascade.
            judged = None if (judge and k == 0) else np.zeros(len(points), bool)
            fit, keep = fit_and_select(points, judged, kind)
        if not keep.all():
            fit, _ = fit_and_select(fit.xy[keep], np.zeros(int(keep.sum()), bool), kind)
        return fit

    # The width first (no column judged while it is off: too wide, neighbours merge), then
    # the selection.
    # Before each refit the previous fit (and its image-sized model) is released, so that
    # only one model image exists at a time.
    final_keep = [None]
    fit, keep = fit_and_select(xy, np.zeros(len(xy), bool), kind="start")
    held, fit = [fit], None
    fit = settle(held, keep, judge=False)
    chi2, threshold = significance(fit)
    keep = (chi2 > threshold) & suppress_non_maxima(
        fit.xy, np.where(chi2 > threshold, chi2, -1.0), max(0.5, 2 * sigma)
    )
    held, fit = [fit], None
    fit = settle(held, keep, judge=True)
    # Each round's residual is cleaner (the columns found are in the model), so its noise
    # estimate is lower and fainter columns pass; the rounds end when none is added.
    for round_ in range(max_rounds if residual_search else 0):
        if script and not scripted("round"):
            break
        kept = fit.xy
        residual = _Residual(img, fit)
        if fixed is not None and fixed.rounds:
            noise, reference, u = fixed.rounds[min(round_, len(fixed.rounds) - 1)]
        else:
            # The residual is (nearly) pure noise, so the plain difference estimate is right
            # here (on a central band of at most 512 rows: plenty of pixels, no image-sized
            # copy).
            mid = img.shape[0] // 2
            noise = estimate_noise(residual[max(0, mid - 256) : min(img.shape[0], mid + 256)])
            atten = sigma**2 / (sigma**2 + peak_sigma_px**2)
            reference = float(np.median(fit.height)) * atten
            # Candidates in the residual (its background is modelled: 0 off the columns) at
            # 3/4 of the deviation the selection asks for: the smoothing is not matched to
            # every column and the fit still moves it, so the selection, not this test,
            # decides.
            u = float(np.sqrt(selection_threshold(sigma, float(img.size), len(kept))))
        rounds.append((float(noise), float(reference), float(u)))
        # The smoothed residual's noise is sqrt(kappa) x the independent-pixel value: the
        # candidates' test uses the same deflation as the selection that judges them.
        kappa = fixed.noise_correlation if fixed is not None else correlation[0]
        rc, _, _ = find_peaks(
            residual,
            peak_sigma_px,
            background_radius_px=max(2.0, 2.0 * spacing),
            min_distance_px=min_distance_px,
            noise=noise * np.sqrt(kappa),
            threshold_sigma=0.75 * u,
            min_relative_prominence=min_relative_prominence,
            reference_prominence=reference,
            local_background=False,
        )
        # Replaying, the round's fit runs with no new candidate too (the others refit).
        if len(rc) == 0 and not script:
            break
        new = rc[:, ::-1].astype(np.float64).reshape(-1, 2)
        if len(new):
            dist, _ = cKDTree(kept).query(new)
            new = new[dist > max(1.0, 2 * sigma, min_distance_px)]
        if len(new) == 0 and not script:
            break
        # Only the new candidates are judged: the columns already selected stay.
        judged = np.r_[np.zeros(len(kept), bool), np.ones(len(new), bool)]
        residual = fit = None
        fit, keep = fit_and_select(np.vstack([kept, new]), judged, kind="round")
        added = int(keep[len(kept) :].sum())
        held, fit = [fit], None
        fit = settle(held, keep, judge=False)
        # Stop when a round adds no column (candidates that only merge with columns already
        # there add nothing either).
        if not script and (added == 0 or len(fit) <= len(kept)):
            break
    if record is not None:
        chi2, threshold = significance(fit)
        record.append(ColumnGlobals(
            sigma=float(sigma),
            threshold=float(threshold[0]) if len(threshold) else 0.0,
            noise_model=tuple(float(v) for v in fit.noise_model),
            fit_spacing=float(np.median(cKDTree(fit.xy).query(fit.xy, k=2)[0][:, 1])),
            search_spacing=float(search_spacing),
            image_bytes=int(img.nbytes),
            rounds=tuple(rounds),
            widths=tuple(float(v) for v in widths),
            noise_correlation=float(fixed.noise_correlation if fixed is not None
                                    else correlation[0]),
            fits=tuple(steps),
        ))
    sel = slice(None) if final_keep[0] is None else final_keep[0]
    out = dict(
        xy=fit.xy[sel],
        sigma=fit.sigma[sel],
        height=fit.height[sel],
        background=fit.background[sel],
        cross_section=fit.cross_section[sel],
        cross_section_err=fit.cross_section_err[sel],
        xy_err=fit.xy_err[sel],
    )
    fit = None  # its model image is released before the smoothed image is made
    if smooth is None:
        smooth = filter_in_bands(
            ndimage.gaussian_filter, img, int(4 * peak_sigma_px + 1), sigma=peak_sigma_px,
            mode="reflect",
        )
    out["intensity"] = ndimage.map_coordinates(
        np.asarray(smooth), [out["xy"][:, 1], out["xy"][:, 0]], order=1, mode="nearest"
    ).astype(np.float64)
    return Columns(**out)
