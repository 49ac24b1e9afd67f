"""The column image model: a sum of 2-D Gaussians on a smooth background, fitted in batches.

The image is modelled as ``B(x, y) + sum_i h_i exp(-|r - r_i|^2 / (2 s_i^2))``: one isotropic
Gaussian per column (position r_i, width s_i, height h_i) on one background ``B`` that is smooth
on the scale of a few column spacings (contamination, thickness gradients). As in StatSTEM,
neighbours are fitted together, so that overlapping tails are accounted for: every column is
fitted in its own square window *with the current model of all other columns and the background
subtracted*, the model image is updated after each batch (block Gauss-Seidel) and the background
after each sweep (a Gaussian-smoothed, block-averaged map of ``image - model``). The columns are
split into colour groups of columns about 3 sigma apart (:func:`colour_groups`), so one sweep is a
handful of batched Gauss-Newton (Levenberg-Marquardt damped) steps over thousands of columns at
once -- there is no Python loop over columns; the loops run over sweeps, colour groups and
chunks of columns (which bound the memory). Both the model and the pixel mask are separable in
x and y, so the normal matrix of every column is built from 1-D sums over 2R+1 pixels.

The integrated intensity above the background, the *scattering cross-section*
``2 pi h s^2`` (image units x px^2), is the physically meaningful Z-contrast quantity. Its
uncertainty, and those of position, width and height, come from the least-squares covariance
``(J^T J)^-1 J^T V J (J^T J)^-1`` with the pixel variance ``V = a + b * (model + background)``
fitted to the residuals of the whole image (Poisson noise grows with the signal: a variance
averaged over the window underestimates the errors of bright columns). The covariance is
conditional on the neighbours and the background (cross-column correlations are neglected, as
in StatSTEM's per-column errors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ...errors import AnalysisError

#: Fitted parameters per column: x, y (relative to the window centre), sigma, height.
N_PARAMS = 4
_X, _Y, _S, _H = range(N_PARAMS)
#: Index of the local background offset in each Gauss-Newton step: it is estimated with the
#: column's own parameters (so that a background still off by a constant does not leak into
#: the heights) and then dropped; the background map itself follows from the residuals.
_B = N_PARAMS


@dataclass(frozen=True, eq=False)
class GaussianFit:
    """Fitted Gaussian column model (all arrays per column, pixels and image units).

    Attributes
    ----------
    xy : ndarray, shape (N, 2)
        Positions (x, y) in px.
    sigma, height, background : ndarray, shape (N,)
        Gaussian width (px), peak height above the background and the background level under
        the column centre (image units).
    cross_section : ndarray, shape (N,)
        ``2 pi height sigma^2`` (image units x px^2).
    xy_err : ndarray, shape (N, 2)
        One-standard-deviation uncertainty of x and y (px).
    sigma_err, height_err, cross_section_err : ndarray, shape (N,)
    residual_var : ndarray, shape (N,)
        Residual variance per pixel in the column's window (the local noise estimate).
    significance : ndarray, shape (N,)
        Chi-square gain of the column's Gaussian with its fitted shape held fixed,
        ``(h sum G^2)^2 / sum G^2 V`` (the squared matched-filter signal-to-noise ratio).
    n_pixels : ndarray of int, shape (N,)
        Pixels of the window inside the image.
    radius : int
        Window radius (px).
    model : ndarray of float32, shape (H, W) or None
        Sum of the fitted Gaussians (no background), each truncated to its window.
    background_grid : ndarray or None
        The smooth background map on a grid of ``background_block`` px (see
        :func:`background_rows`).
    background_block : int
    """

    xy: np.ndarray
    sigma: np.ndarray
    height: np.ndarray
    background: np.ndarray
    cross_section: np.ndarray
    xy_err: np.ndarray
    sigma_err: np.ndarray
    height_err: np.ndarray
    cross_section_err: np.ndarray
    residual_var: np.ndarray
    significance: np.ndarray
    n_pixels: np.ndarray
    radius: int
    model: np.ndarray | None = None
    background_grid: np.ndarray | None = None
    background_block: int = 1

    def __len__(self) -> int:
        return len(self.xy)


def colour_groups(centres: np.ndarray, cell: int) -> list[np.ndarray]:
    """Split columns into groups in which any two columns are at least ``cell`` px apart.

    The plane is cut into square cells of side ``cell``. Column i gets the colour
    ``(cx mod 2) + 2 (cy mod 2) + 4 k`` where (cx, cy) is its cell and k its rank among the
    columns of that cell: two columns of one colour lie in different cells two apart along x
    or y, hence at least ``cell`` px apart. With ``cell > 2 * radius`` their windows are
    disjoint, so one group is updated in one batch. There are 4 x (most columns in a cell)
    groups.

    Examples
    --------
    >>> g = colour_groups(np.array([[0, 0], [5, 0], [10, 0], [0, 5], [1, 1]]), 5)
    >>> [a.tolist() for a in g]
    [[0, 2], [1], [3], [4]]
    """
    centres = np.asarray(centres)
    if len(centres) == 0:
        return []
    cells = np.floor_divide(centres, cell)
    parity = (cells[:, 0] % 2) + 2 * (cells[:, 1] % 2)
    cell_id = (cells[:, 1] - cells[:, 1].min()) * (cells[:, 0].max() - cells[:, 0].min() + 1) + (
        cells[:, 0] - cells[:, 0].min()
    )
    order = np.argsort(cell_id, kind="stable")
    sorted_id = cell_id[order]
    first = np.searchsorted(sorted_id, sorted_id, side="left")
    rank = np.empty(len(centres), dtype=np.int64)
    rank[order] = np.arange(len(centres)) - first
    colour = parity + 4 * rank
    groups = [np.flatnonzero(colour == k) for k in range(int(colour.max()) + 1)]
    return [g for g in groups if len(g)]


class _Windows:
    """Square windows ``(2R+1)^2`` of a batch of columns around fixed integer centres.

    ``flat`` (n, S, S) indexes the flattened image; pixels outside the image point at one extra
    "sink" element past its end (kept at 0), so that scattered additions never touch a real
    pixel twice and never need a mask. The validity of a pixel is separable (row inside and
    column inside), which is what makes every sum of the Jacobian separable too.
    """

    def __init__(self, shape, centres, off):
        h, w = shape
        rows = centres[:, 1, None] + off[None, :]
        cols = centres[:, 0, None] + off[None, :]
        self.vy = ((rows >= 0) & (rows < h)).astype(np.float32)
        self.vx = ((cols >= 0) & (cols < w)).astype(np.float32)
        inside = (self.vy[:, :, None] * self.vx[:, None, :]) > 0
        self.valid = inside
        self.flat = np.where(inside, rows[:, :, None] * w + cols[:, None, :], h * w)


def _profiles(q, off, win):
    """1-D Gaussian profiles along x and y (n, S), zero outside the image, and the offsets
    ``u = dx - x``, ``v = dy - y`` of the pixel centres from the column centre."""
    u = off[None, :] - q[:, _X, None]
    v = off[None, :] - q[:, _Y, None]
    k = -0.5 / (q[:, _S, None] ** 2)
    gx = np.exp(k * u * u) * win.vx
    gy = np.exp(k * v * v) * win.vy
    return gx, gy, u, v


def _sums(prof, u, k, orders):
    """``sum_i prof_i^k u_i^a`` for a in ``orders`` -> dict a -> (n,)."""
    base = prof**k
    return {a: (base * u**a).sum(axis=1) for a in orders}


def _normal_matrix(q, gx, gy, u, v, win, offset=True):
    """Exact ``J^T J`` over the square window, from 1-D sums: (n, 5, 5) with a local constant
    background offset as 5th parameter (``offset=True``), else (n, 4, 4).

    The Gaussian ``h gx(x) gy(y)`` and the pixel mask are separable, so every entry is a
    product of two 1-D sums over 2R+1 pixels instead of a sum over (2R+1)^2 pixels.
    """
    X = _sums(gx, u, 2, range(5))
    Y = _sums(gy, v, 2, range(5))
    s, h = q[:, _S], q[:, _H]
    hs2, hs3 = h / s**2, h / s**3
    e = {
        (_X, _X): hs2**2 * X[2] * Y[0],
        (_X, _Y): hs2**2 * X[1] * Y[1],
        (_X, _S): hs2 * hs3 * (X[3] * Y[0] + X[1] * Y[2]),
        (_X, _H): hs2 * X[1] * Y[0],
        (_Y, _Y): hs2**2 * X[0] * Y[2],
        (_Y, _S): hs2 * hs3 * (X[2] * Y[1] + X[0] * Y[3]),
        (_Y, _H): hs2 * X[0] * Y[1],
        (_S, _S): hs3**2 * (X[4] * Y[0] + 2 * X[2] * Y[2] + X[0] * Y[4]),
        (_S, _H): hs3 * (X[2] * Y[0] + X[0] * Y[2]),
        (_H, _H): X[0] * Y[0],
    }
    k = N_PARAMS + 1 if offset else N_PARAMS
    if offset:
        X1 = _sums(gx, u, 1, range(3))
        Y1 = _sums(gy, v, 1, range(3))
        e[_X, _B] = hs2 * X1[1] * Y1[0]
        e[_Y, _B] = hs2 * X1[0] * Y1[1]
        e[_S, _B] = hs3 * (X1[2] * Y1[0] + X1[0] * Y1[2])
        e[_H, _B] = X1[0] * Y1[0]
        e[_B, _B] = win.vx.sum(axis=1) * win.vy.sum(axis=1)
    a = np.empty((len(q), k, k))
    for (i, j), val in e.items():
        a[:, i, j] = val
        a[:, j, i] = val
    return a


def _gradient(q, gx, gy, u, v, resid, offset=True):
    """``J^T r`` (n, 5) or (n, 4) as two small batched products with the 1-D profiles."""
    s, h = q[:, _S], q[:, _H]
    px = np.stack([gx, gx * u, gx * u * u], axis=2)  # (n, S, 3)
    rx = resid @ px  # sum over x of r g u^a -> (n, S, 3)
    s00 = np.einsum("ny,ny->n", gy, rx[:, :, 0])
    s10 = np.einsum("ny,ny->n", gy, rx[:, :, 1])
    s20 = np.einsum("ny,ny->n", gy, rx[:, :, 2])
    s01 = np.einsum("ny,ny->n", gy * v, rx[:, :, 0])
    s02 = np.einsum("ny,ny->n", gy * v * v, rx[:, :, 0])
    out = np.empty((len(q), N_PARAMS + 1 if offset else N_PARAMS))
    out[:, _X] = h / s**2 * s10
    out[:, _Y] = h / s**2 * s01
    out[:, _S] = h / s**3 * (s20 + s02)
    out[:, _H] = s00
    if offset:
        out[:, _B] = resid.sum(axis=(1, 2))
    return out


def _sandwich(q, gx, gy, u, v, var):
    """``J^T V J`` (n, 5, 5), the local background offset included, with the per-pixel
    variance ``var`` (n, S, S) (2-D sums)."""
    g = gy[:, :, None] * gx[:, None, :]
    s, h = q[:, _S, None, None], q[:, _H, None, None]
    uu, vv = u[:, None, :], v[:, :, None]
    hg = h * g / s**2
    one = np.broadcast_to((var > 0).astype(g.dtype), g.shape)
    jac = np.stack([hg * uu, hg * vv, hg * (uu * uu + vv * vv) / s, g, one], axis=-1)
    jac = jac.reshape(len(q), -1, N_PARAMS + 1)
    weighted = jac * var.reshape(len(q), -1, 1)
    return (np.ascontiguousarray(weighted.transpose(0, 2, 1)) @ jac).astype(np.float64)


class _Background:
    """A smooth background map: block means of ``image - model``, Gaussian-smoothed.

    Kept on a grid of ``block`` px (memory and time ~ 1 / block^2 of the image); its value and
    gradient at a column give the plane under that column's window.
    """

    def __init__(self, image, scale_px):
        self.h, self.w = image.shape
        self.block = max(1, int(scale_px // 3))
        self.sigma = scale_px / self.block
        self.data_means = self._block_means(image)

    def _block_means(self, arr, square: bool = False, times=None):
        """Means over ``block`` x ``block`` pixels of ``arr`` (or of ``arr**2`` or
        ``arr * times``), computed in bands of rows so that no image-sized temporary exists."""
        b = self.block
        hb, wb = -(-self.h // b), -(-self.w // b)
        out = np.zeros((hb, wb))
        rows_per_band = max(1, (1 << 20) // max(1, self.w * b)) * b
        cols = np.minimum(np.arange(self.w) // b, wb - 1)
        for r0 in range(0, self.h, rows_per_band):  # bands, not pixels
            r1 = min(self.h, r0 + rows_per_band)
            band = np.asarray(arr[r0:r1], dtype=np.float64)
            if square:
                band = band * band
            elif times is not None:
                band = band * np.asarray(times[r0:r1], dtype=np.float64)
            # Sum the band's rows into block rows, then its columns into block columns.
            brow = np.minimum(np.arange(r0, r1) // b, hb - 1)
            starts = np.flatnonzero(np.r_[True, np.diff(brow) > 0])
            rs = np.add.reduceat(band, starts, axis=0)
            cstarts = np.flatnonzero(np.r_[True, np.diff(cols) > 0])
            out[brow[starts]] += np.add.reduceat(rs, cstarts, axis=1)
        rcount = np.bincount(np.minimum(np.arange(self.h) // b, hb - 1), minlength=hb)
        ccount = np.bincount(cols, minlength=wb)
        return out / np.maximum(np.outer(rcount, ccount), 1)

    def update(self, model_image):
        diff = self.data_means - self._block_means(model_image)
        self.map = ndimage.gaussian_filter(diff, self.sigma, mode="nearest")
        gy, gx = np.gradient(self.map)
        self.grad = (gx / self.block, gy / self.block)

    def coarse_correction(self, image, model_image):
        """Least-squares offset ``c`` and height scale ``beta`` of the residual
        ``image - model - background ~ c + beta * model``, local on the background's scale.

        Alternating between columns and background converges slowly where columns overlap:
        "all heights a bit lower, background a bit higher" is then nearly invisible to both
        steps. This correction solves for exactly that mode (a two-parameter fit per region),
        adds ``c`` to the background map and returns ``beta`` at the requested positions.
        """
        m = self._block_means(model_image)
        mm = self._block_means(model_image, square=True)
        dm = self._block_means(image, times=model_image)
        r = self.data_means - m - self.map
        rm = dm - mm - self.map * m

        def smooth(a):
            return ndimage.gaussian_filter(a, self.sigma, mode="nearest")

        s1, sm, smm, sr, srm = smooth(np.ones_like(m)), smooth(m), smooth(mm), smooth(r), smooth(rm)
        det = s1 * smm - sm * sm
        ridge = 1e-6 * (s1 * smm).max() + 1e-300
        c = (smm * sr - sm * srm) / (det + ridge)
        beta = (s1 * srm - sm * sr) / (det + ridge)
        self.map = self.map + c
        gy, gx = np.gradient(self.map)
        self.grad = (gx / self.block, gy / self.block)
        self.beta = beta

    def beta_at(self, xy):
        c = [(xy[:, 1] + 0.5) / self.block - 0.5, (xy[:, 0] + 0.5) / self.block - 0.5]
        return ndimage.map_coordinates(self.beta, c, order=1, mode="nearest")

    def at(self, xy):
        """Value and gradient (d/dx, d/dy per px) of the background at positions (x, y)."""
        c = [(xy[:, 1] + 0.5) / self.block - 0.5, (xy[:, 0] + 0.5) / self.block - 0.5]
        val = ndimage.map_coordinates(self.map, c, order=1, mode="nearest")
        gx = ndimage.map_coordinates(self.grad[0], c, order=1, mode="nearest")
        gy = ndimage.map_coordinates(self.grad[1], c, order=1, mode="nearest")
        return val, gx, gy


def fit_gaussian_columns(
    image: np.ndarray,
    xy: np.ndarray,
    sigma_px: float,
    *,
    radius: int | None = None,
    n_iter: int | None = None,
    width_prior: float = 0.25,
    background_px: float | None = None,
    chunk: int | None = None,
    return_model: bool = False,
) -> GaussianFit:
    """Fit the image as a sum of 2-D Gaussians (one per column) on a smooth background.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The micrograph (raw, not smoothed: smoothing widens the columns and correlates the
        noise, which biases the uncertainties).
    xy : ndarray, shape (N, 2)
        Starting positions (x, y) in px (e.g. centre-of-mass refined peaks), within about
        one sigma of the truth; a column moves at most ``max(1, sigma_px)`` px from its start.
    sigma_px : float
        Typical Gaussian width (px, see :func:`estimate_column_width`); the fit adapts it per
        column.
    radius : int, optional
        Half-side of each column's square window (px); default ``ceil(3 sigma_px)``, >= 2.
    n_iter : int, optional
        Gauss-Seidel sweeps (each one damped Gauss-Newton step per column and one background
        update), plus one that evaluates the covariance. Default: 6 when the median
        nearest-neighbour distance is at least 4 ``sigma_px``, else 14 -- overlapping columns
        converge more slowly (chosen on synthetic honeycomb images: with neighbours 3.3 sigma
        apart 12 sweeps bring cross-sections within 0.3 %).
    width_prior : float
        Relative spread of a Gaussian prior on each column's width around ``sigma_px``, so
        that the width cannot run away where the signal cannot fix it (low dose, faint
        columns); at high signal the data dominate. 0 disables it. (0.25: the widths of the
        species of one HAADF image differ by well under 25 %; not tuned on a benchmark.)
    background_px : float, optional
        Smoothing scale of the background (px); default ``3 * radius`` (about nine column
        widths): slower variations than that are background, faster ones are columns.
    chunk : int, optional
        Columns per batch. Default: as many as keep the batch's arrays (about 100 bytes per
        window pixel) within half the float32 image, between 256 and 8192.
    return_model : bool
        Keep the model image (float32, Gaussians only) in the result, for residual searches.

    Returns
    -------
    GaussianFit

    Raises
    ------
    AnalysisError
        If ``sigma_px`` is not positive or ``xy`` is not (N, 2).

    Examples
    --------
    >>> from motifcat.datasets import render_columns
    >>> truth = np.array([[20.3, 20.6], [25.1, 20.2]])
    >>> img = render_columns((40, 48), truth, np.array([100.0, 40.0]), 1.5, background=10.0)
    >>> fit = fit_gaussian_columns(img, np.rint(truth), 1.8)
    >>> np.round(fit.xy, 2).tolist()
    [[20.3, 20.6], [25.1, 20.2]]
    >>> np.round(fit.cross_section / (2 * np.pi * 1.5**2), 1).tolist()
    [100.0, 40.0]
    """
    img = np.asarray(image, dtype=np.float32)
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise AnalysisError(f"column positions must have shape (N, 2), got {xy.shape}")
    if not (np.isfinite(sigma_px) and sigma_px > 0):
        raise AnalysisError(f"starting column width must be > 0 px, got {sigma_px!r}")
    n = len(xy)
    h, w = img.shape
    radius = int(radius) if radius is not None else max(2, int(np.ceil(3.0 * sigma_px)))
    if n_iter is None:
        n_iter = 6 if n < 2 or _median_spacing(xy) >= 4.0 * sigma_px else 14
    off = np.arange(-radius, radius + 1, dtype=np.float64)
    off_int = off.astype(np.int64)
    img_flat = img.ravel()  # a view: no copy of the image

    class _Take:
        # Pixels outside the image (the sink index) read the last pixel; their residuals
        # are masked out everywhere they are used.
        def __getitem__(self, flat):
            return img_flat[np.minimum(flat, h * w - 1)]

    flat_img = _Take()
    centres = np.rint(xy).astype(np.int64)
    centres[:, 0] = np.clip(centres[:, 0], 0, w - 1)
    centres[:, 1] = np.clip(centres[:, 1], 0, h - 1)
    p = np.zeros((n, N_PARAMS))
    p[:, _X : _Y + 1] = xy - centres
    p[:, _S] = sigma_px
    start = p[:, _X : _Y + 1].copy()
    max_move = max(1.0, float(sigma_px))
    # Columns of one group are >= radius + 1 (about 3 sigma) px apart: their Gaussians barely
    # overlap, so updating them together (Jacobi within a group, Gauss-Seidel between
    # groups) converges like a full Gauss-Seidel sweep with 4x fewer, larger batches than
    # groups with disjoint windows (2 radius + 1 apart). Overlapping windows are accumulated
    # with np.add.at.
    if chunk is None:
        chunk = int(np.clip(0.5 * img.nbytes / (100 * (2 * radius + 1) ** 2), 256, 8192))
    groups = colour_groups(centres, radius + 1)
    batches = [g[i : i + chunk] for g in groups for i in range(0, len(g), chunk)]
    model = np.zeros(h * w + 1, dtype=np.float32)
    background = _Background(img, background_px or 3.0 * radius)

    def contribution(q, gx, gy):
        return (q[:, _H, None, None] * gy[:, :, None] * gx[:, None, :]).astype(np.float32)

    def plane(idx):
        b, bx, by = background.at(centres[idx].astype(np.float64))
        return b[:, None, None] + bx[:, None, None] * off[None, None, :] + (
            by[:, None, None] * off[None, :, None]
        )

    # Start: a background map of the image itself (no model yet), heights from each window's
    # centre pixel above it; then the model image of these starting Gaussians and a second
    # background map with them subtracted.
    background.update(np.zeros((h, w), dtype=np.float32))
    for idx in batches:
        win = _Windows((h, w), centres[idx], off_int)
        b0, _, _ = background.at(centres[idx].astype(np.float64))
        peak = flat_img[win.flat[:, radius, radius]]
        p[idx, _H] = np.maximum(peak - b0, 1e-6 * (np.abs(b0) + 1.0))
        gx, gy, _, _ = _profiles(p[idx], off, win)
        np.add.at(model, win.flat, contribution(p[idx], gx, gy))
        model[-1] = 0.0
    background.update(model[:-1].reshape(h, w))

    s2 = np.full(n, np.nan)
    cov = np.zeros((n, N_PARAMS + 1, N_PARAMS + 1))
    npix = np.zeros(n, dtype=np.int64)
    snr2 = np.zeros(n)
    bg_at = np.zeros(n)
    for it in range(n_iter + 1):
        last = it == n_iter
        if last:
            noise_a, noise_b = _noise_model(flat_img, model, background, batches, centres,
                                            off_int, plane, (h, w))
        for idx in batches:
            win = _Windows((h, w), centres[idx], off_int)
            q = p[idx]
            gx, gy, u, v = _profiles(q, off, win)
            bg = plane(idx)
            # data - neighbours - own = data - model (the model holds this column too).
            resid = flat_img[win.flat] - model[win.flat] - bg
            resid *= win.valid
            n_valid = win.vx.sum(axis=1) * win.vy.sum(axis=1)
            local_s2 = np.einsum("nij,nij->n", resid, resid) / np.maximum(n_valid - N_PARAMS, 1)
            jtj = _normal_matrix(q, gx, gy, u, v, win)
            if last:
                s2[idx] = local_s2
                npix[idx] = n_valid.astype(np.int64)
                bg_at[idx] = bg[:, radius, radius] + (
                    (bg[:, radius, radius + 1] - bg[:, radius, radius - 1]) / 2 * q[:, _X]
                    + (bg[:, radius + 1, radius] - bg[:, radius - 1, radius]) / 2 * q[:, _Y]
                )
                var = np.maximum(
                    noise_a + noise_b * (model[win.flat] + bg), 1e-12 * (1.0 + np.abs(bg))
                ) * win.valid
                meat = _sandwich(q, gx, gy, u, v, var)
                cov[idx] = _posterior_covariance(jtj, meat, local_s2, sigma_px, width_prior)
                # Matched-filter significance of the height with the shape held fixed:
                # (h sum G^2)^2 / sum G^2 V.
                hh = jtj[:, _H, _H]
                snr2[idx] = (q[:, _H] * hh) ** 2 / np.maximum(meat[:, _H, _H], 1e-300)
                continue
            jtr = _gradient(q, gx, gy, u, v, resid)
            if width_prior > 0:
                # Gaussian prior on the width, weighted by the local noise variance so that
                # it is worth the same at every dose.
                weight = local_s2 / (width_prior * sigma_px) ** 2
                jtj[:, _S, _S] += weight
                jtr[:, _S] += weight * (sigma_px - q[:, _S])
            step = _damped_step(jtj, jtr)[:, :N_PARAMS]
            q_new = _bounded_update(q, step, start[idx], max_move, radius)
            p[idx] = q_new
            # Replace this batch's contribution to the model by the new one.
            gx_new, gy_new, _, _ = _profiles(q_new, off, win)
            np.add.at(
                model, win.flat, contribution(q_new, gx_new, gy_new) - contribution(q, gx, gy)
            )
            model[-1] = 0.0
        if not last:
            background.update(model[:-1].reshape(h, w))
            background.coarse_correction(img, model[:-1].reshape(h, w))
            p[:, _H] *= np.clip(1.0 + background.beta_at(centres + p[:, _X : _Y + 1]), 0.5, 2.0)
            model[:] = 0.0
            for idx in batches:
                win = _Windows((h, w), centres[idx], off_int)
                gx, gy, _, _ = _profiles(p[idx], off, win)
                np.add.at(model, win.flat, contribution(p[idx], gx, gy))
                model[-1] = 0.0

    sigma, height = p[:, _S], p[:, _H]
    cs = 2.0 * np.pi * height * sigma**2
    err = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
    # d cs = 2 pi (s^2 dh + 2 h s ds), propagated with the (h, s) covariance.
    grad_h, grad_s = 2 * np.pi * sigma**2, 4 * np.pi * height * sigma
    cs_var = (
        grad_h**2 * cov[:, _H, _H]
        + grad_s**2 * cov[:, _S, _S]
        + 2 * grad_h * grad_s * cov[:, _H, _S]
    )
    return GaussianFit(
        xy=centres + p[:, _X : _Y + 1],
        sigma=sigma,
        height=height,
        background=bg_at,
        cross_section=cs,
        xy_err=err[:, _X : _Y + 1],
        sigma_err=err[:, _S],
        height_err=err[:, _H],
        cross_section_err=np.sqrt(np.maximum(cs_var, 0.0)),
        residual_var=s2,
        significance=snr2,
        n_pixels=npix,
        radius=radius,
        model=model[:-1].reshape(h, w) if return_model else None,
        background_grid=background.map,
        background_block=background.block,
    )


def background_rows(fit: GaussianFit, rows: slice, width: int) -> np.ndarray:
    """The fitted background map at full resolution for a band of image rows (float32).

    Examples
    --------
    >>> from motifcat.datasets import render_columns
    >>> xy = np.array([[10.0, 10.0], [30.0, 30.0]])
    >>> img = render_columns((40, 40), xy, np.array([50.0, 50.0]), 1.5, background=7.0)
    >>> fit = fit_gaussian_columns(img, xy, 1.5)
    >>> round(float(background_rows(fit, slice(0, 40), 40).mean()), 1)
    7.0
    """
    b = fit.background_block
    grid = fit.background_grid
    # Bilinear interpolation is separable: along y on the small grid, then along x; the
    # memory is the output band (float32), never an image-sized coordinate array.
    r = (np.arange(rows.start, rows.stop, dtype=np.float64) + 0.5) / b - 0.5
    c = (np.arange(width, dtype=np.float64) + 0.5) / b - 0.5
    by = _linear_weights(r, grid.shape[0])
    bx = _linear_weights(c, grid.shape[1])
    band = (grid[by[0]] * by[2][:, None] + grid[by[1]] * (1 - by[2])[:, None]).astype(np.float32)
    out = band[:, bx[0]] * bx[2].astype(np.float32) + band[:, bx[1]] * (1 - bx[2]).astype(
        np.float32
    )
    return out


def _linear_weights(t: np.ndarray, n: int):
    """Indices (lo, hi) and weight of ``lo`` for linear interpolation at ``t`` on 0..n-1
    (clamped at the ends, like ``mode="nearest"``)."""
    t = np.clip(t, 0, n - 1)
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    return lo, hi, 1.0 - (t - lo)


def _median_spacing(xy: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(d[:, 1]))


def _noise_model(flat_img, model, background, batches, centres, off_int, plane, shape):
    """Pixel variance ``a + b * level`` (level = model + background) fitted to the squared
    residuals in the columns' windows by least squares; b = 0 when the data show no trend."""
    sums = np.zeros(5)  # n, sum m, sum m^2, sum r2, sum m r2
    for idx in batches:
        win = _Windows(shape, centres[idx], off_int)
        level = (model[win.flat] + plane(idx))[win.valid]
        r2 = (flat_img[win.flat][win.valid] - level) ** 2
        sums += [level.size, level.sum(), (level * level).sum(), r2.sum(), (level * r2).sum()]
    n, sm, smm, sr, smr = sums
    det = n * smm - sm * sm
    b = (n * smr - sm * sr) / det if det > 1e-12 * max(n * smm, 1e-300) else 0.0
    b = max(float(b), 0.0)
    a = (sr - b * sm) / max(n, 1.0)
    if a <= 0:
        b, a = 0.0, sr / max(n, 1.0)
    return float(a), float(b)


def _posterior_covariance(jtj, jvj, s2, sigma_px, width_prior):
    """Covariance ``A^-1 (J^T V J + P) A^-1`` with ``A = J^T J + P``, P the width prior in
    the same noise units; singular systems give zeros. The local background offset is one of
    the parameters, so that the errors include the uncertainty of the background under the
    column (which matters most for the cross-section)."""
    a = jtj.copy()
    meat = jvj.copy()
    if width_prior > 0:
        weight = s2 / (width_prior * sigma_px) ** 2
        a[:, _S, _S] += weight
        meat[:, _S, _S] += weight * s2
    out = np.zeros_like(a)
    ok = np.linalg.cond(a) < 1e12
    if ok.any():
        inv = np.linalg.inv(a[ok])
        out[ok] = inv @ meat[ok] @ inv
    return out


def _damped_step(jtj: np.ndarray, jtr: np.ndarray, damping: float = 1e-3) -> np.ndarray:
    """Levenberg-Marquardt step ``(J^T J + lambda diag(J^T J)) d = J^T r`` for each column."""
    diag = np.einsum("nii->ni", jtj)
    a = jtj + (damping * diag + 1e-12)[:, :, None] * np.eye(jtj.shape[1])[None]
    try:
        return np.linalg.solve(a, jtr[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.zeros_like(jtr)
        ok = np.linalg.cond(a) < 1e12
        out[ok] = np.linalg.solve(a[ok], jtr[ok][..., None])[..., 0]
        return out


def _bounded_update(q, step, start, max_move, radius):
    """Apply a step within trust limits: a column moves at most half a width per step and
    ``max_move`` px from its start, its width changes by at most 30 % per step and stays in
    [0.3, radius] px, and its height stays positive."""
    step = np.where(np.isfinite(step), step, 0.0)
    s = q[:, _S]
    lim = 0.5 * s
    step[:, _X] = np.clip(step[:, _X], -lim, lim)
    step[:, _Y] = np.clip(step[:, _Y], -lim, lim)
    step[:, _S] = np.clip(step[:, _S], -0.3 * s, 0.3 * s)
    out = q + step
    out[:, _S] = np.clip(out[:, _S], 0.3, float(radius))
    out[:, _X : _Y + 1] = np.clip(out[:, _X : _Y + 1], start - max_move, start + max_move)
    out[:, _H] = np.maximum(out[:, _H], 1e-9)
    return out


def estimate_column_width(
    image: np.ndarray, xy: np.ndarray, spacing_px: float, *, max_columns: int = 400
) -> float:
    """Typical Gaussian width of the columns (px), from a joint fit of a central subset.

    Up to ``max_columns`` columns nearest the image centre are fitted together (neighbours
    included, so overlapping tails do not widen them), twice: first from a width of a quarter
    of the nearest-neighbour spacing, then from the median width found. The median over the
    inner half of the subset (whose neighbours were all fitted) is returned.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    xy : ndarray, shape (N, 2)
        Column positions (x, y) in px.
    spacing_px : float
        Nearest-neighbour column spacing (px).

    Examples
    --------
    >>> from motifcat.datasets import render_columns
    >>> g = np.stack(np.meshgrid(np.arange(6.0, 90, 8), np.arange(6.0, 90, 8)), -1).reshape(-1, 2)
    >>> img = render_columns((96, 96), g, np.full(len(g), 50.0), 1.7, background=5.0)
    >>> round(estimate_column_width(img, g, 8.0), 1)
    1.7
    """
    xy = np.asarray(xy, dtype=np.float64)
    h, w = np.shape(image)
    order = np.argsort(np.hypot(xy[:, 0] - w / 2, xy[:, 1] - h / 2), kind="stable")
    subset = xy[order[:max_columns]]
    inner = slice(0, max(1, len(subset) // 2))
    sigma = max(0.5, 0.25 * float(spacing_px))
    for _ in range(2):
        fit = fit_gaussian_columns(image, subset, sigma, n_iter=4, width_prior=0.0)
        sigma = float(np.median(fit.sigma[inner]))
        subset = fit.xy
    return max(0.3, sigma)
