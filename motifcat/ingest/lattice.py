"""Lattice scales of an atomic-resolution image: dominant period and column spacing."""

from __future__ import annotations

import numpy as np
from scipy import fft as scipy_fft
from scipy.spatial import cKDTree

from ..errors import AnalysisError


def radial_power_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a 2-D image.

    The image is mean-subtracted and multiplied by a Hann window (to keep the frame edges out of
    the spectrum) and zero-padded to a square of side ``L = max(H, W)``.

    Parameters
    ----------
    image : ndarray, shape (H, W)

    Returns
    -------
    freq : ndarray, shape (L // 2,)
        Spatial frequency of each ring in cycles per pixel (ring k is at ``k / L``).
    power : ndarray, shape (L // 2,)
        Mean power on that ring.

    Examples
    --------
    >>> y, x = np.mgrid[:128, :128]
    >>> f, p = radial_power_spectrum(np.cos(2 * np.pi * x / 8.0))
    >>> round(1 / f[np.argmax(p[2:]) + 2], 1)
    8.0
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    size = max(h, w)
    window = np.outer(np.hanning(h), np.hanning(w))
    padded = np.zeros((size, size))
    padded[:h, :w] = (img - img.mean()) * window
    spec = np.abs(np.fft.fftshift(scipy_fft.fft2(padded, workers=-1))) ** 2
    c = size // 2
    yy, xx = np.indices(spec.shape)
    r = np.rint(np.hypot(yy - c, xx - c)).astype(np.int64).ravel()
    n_rings = size // 2
    keep = r < n_rings
    sums = np.bincount(r[keep], weights=spec.ravel()[keep], minlength=n_rings)
    counts = np.bincount(r[keep], minlength=n_rings)
    power = sums / np.maximum(counts, 1)
    freq = np.arange(n_rings) / size
    return freq, power


def lattice_period(
    image: np.ndarray, *, min_period_px: float = 3.0, max_side_px: int = 1024
) -> float:
    """Dominant lattice period of an image from the strongest ring of its power spectrum.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    min_period_px : float
        Shortest period considered (pixels); rings beyond the corresponding frequency are
        ignored, which keeps pixel noise out.
    max_side_px : int
        Larger images are measured on their central crop of this side: a 1024 px crop
        already holds dozens of periods and keeps the FFT cost independent of the image size.

    Returns
    -------
    float
        Period in pixels, refined to sub-ring precision by a parabola through the peak ring
        and its two neighbours.

    Raises
    ------
    AnalysisError
        If the spectrum has no ring between four periods per image and ``min_period_px``.

    Examples
    --------
    >>> y, x = np.mgrid[:256, :256]
    >>> img = np.cos(2 * np.pi * x / 10.0) + np.cos(2 * np.pi * y / 10.0)
    >>> abs(lattice_period(img) - 10.0) < 0.15  # 25.6 periods: the ring falls between FFT bins
    True
    """
    h, w = image.shape
    ch, cw = min(h, max_side_px), min(w, max_side_px)
    image = image[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
    freq, power = radial_power_spectrum(image)
    size = 2 * len(freq)
    # Ignore the lowest rings (background, scan drift): a lattice needs >= 4 periods in the frame.
    lo = max(4, int(np.ceil(4 * size / max(image.shape))))
    hi = int(np.floor(size / min_period_px))
    hi = min(hi, len(freq) - 2)
    if hi <= lo + 1:
        raise AnalysisError(
            f"image of shape {image.shape} is too small to measure a lattice period"
        )
    # Weight by frequency: the radial average of a smooth (1/f-like) background falls off
    # quickly, whereas Bragg rings stand out; this keeps a slow background from winning.
    band = power[lo:hi] * freq[lo:hi]
    k = lo + int(np.argmax(band))
    # Parabolic refinement of the peak position on the ring index.
    y0, y1, y2 = power[k - 1] * freq[k - 1], power[k] * freq[k], power[k + 1] * freq[k + 1]
    denom = y0 - 2 * y1 + y2
    shift = 0.5 * (y0 - y2) / denom if denom < 0 else 0.0
    shift = float(np.clip(shift, -0.5, 0.5))
    return float(size / (k + shift))


def nearest_neighbour_spacing(xy: np.ndarray) -> float:
    """Median nearest-neighbour distance of a point set (pixels).

    Parameters
    ----------
    xy : ndarray, shape (N, 2)
        Column positions.

    Returns
    -------
    float

    Examples
    --------
    >>> xy = np.array([[0, 0], [3, 0], [0, 3], [3, 3]], dtype=float)
    >>> nearest_neighbour_spacing(xy)
    3.0
    """
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 2:
        raise AnalysisError(f"need at least two columns to measure a spacing, got {len(xy)}")
    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(d[:, 1]))
