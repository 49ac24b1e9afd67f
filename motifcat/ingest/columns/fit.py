"""The column image model: a sum of 2-D Gaussians on a smooth background, fitted in batches.

The image is modelled as ``B(x, y) + sum_i h_i exp(-|r - r_i|^2 / (2 s_i^2))``: one isotropic
Gaussian per column (position r_i, width s_i, height h_i) on one background ``B`` that is smooth
on the scale of a few column spacings (contamination, thickness gradients). As in StatSTEM,
neighbours are fitted together, so that overlapping tails are accounted for: every column is
fitted in its own square window with all other columns and the background subtracted, and
the background is updated after each iteration (a Gaussian-smoothed, block-averaged map of
``image - model``).

No model image is formed while fitting. Each Gaussian is separable, ``h gx(x) gy(y)``, so
the model in a column's window is a small matrix product of the 1-D profiles of the column
and of its overlapping neighbours (:func:`_window_profiles`), and every sum the
Gauss-Newton step needs -- the normal matrix, the coupling to the neighbours, the
background's block sums -- is a product of 1-D sums over 2R+1 pixels or one batched matrix
product with the window. All columns are processed at once, in chunks that bound the memory;
the loops run over iterations and chunks, never over columns. Columns at least
``_JOINT_SPACING`` widths apart take one joint step per iteration, coupled to their nearest
neighbours (:func:`_joint_step`); closer columns are fitted by sweeps over colour groups of
columns about 3 sigma apart (:func:`colour_groups`, block Gauss-Seidel). The fit stops when
no parameter changes by more than a small fraction of its standard error.

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

import math
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
    #: The pixel-variance model ``(a, b)``: ``V = a + b * (model + background)``.
    noise_model: tuple[float, float] = (0.0, 0.0)
    #: Iterations run (the joint step stops once converged) and the column spacing (px)
    #: that chose the scheme and the cap: passed back as ``n_iter`` (with
    #: ``converge=False``) and ``spacing_px``, they repeat this fit's iterations exactly.
    n_iter: int = 0
    spacing_px: float = 0.0

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


_F32 = np.float32
#: The derivative of ``h gx(x) gy(y)`` with respect to x, y, sigma and height, divided by the
#: Gaussian and by a scale factor (h/s^2, h/s^2, h/s^3, 1; :func:`_scales`), is a sum of
#: monomials u^a v^b (u, v: pixel offsets from the column centre); these are their (a, b).
_MONO = (((1, 0),), ((0, 1),), ((2, 0), (0, 2)), ((0, 0),))
#: Neighbours (nearest first, the column itself included) whose coupling enters the joint
#: Gauss-Newton step. Only the speed of convergence depends on it, never the fitted values:
#: the residual is always computed with every overlapping neighbour.
_COUPLED = 9
#: Median neighbour spacing (in column widths) from which all columns take one joint step
#: (if they are also at least 1 px wide); closer or narrower columns are fitted by sweeps over
#: colour groups (chosen on the tests and the benchmark sets: at 3.5 widths (tmd) the joint
#: step converges in about ten steps, at 3.1 it oscillates; on columns 0.5 px wide
#: (coarse_cairo) it is slower than the sweeps and selects a few more false columns).
_JOINT_SPACING = 3.3
#: The fit has converged when no parameter's last step exceeds this fraction of its standard
#: error.
_STEP_TOL = 0.03
#: Most joint steps (default ``n_iter``) for neighbours closer than 4 widths (see
#: :func:`fit_gaussian_columns`).
_JOINT_ITER = 10


def _scales(s, h):
    """Scale factors (n, 4) of the derivatives of each column's Gaussian (see ``_MONO``)."""
    one = np.ones_like(h)
    return np.stack([h / s**2, h / s**2, h / s**3, one], axis=1)


def _powers(u, order):
    """``(..., S, order + 1)`` stack of ``u^0 .. u^order`` by repeated products (``u**3``
    on a float32 array goes through the general ``pow`` and costs ~10x a product)."""
    out = np.empty(u.shape + (order + 1,), dtype=u.dtype)
    out[..., 0] = 1.0
    out[..., 1] = u
    for k in range(2, order + 1):
        np.multiply(out[..., k - 1], u, out=out[..., k])
    return out


def _gauss1d(off, pos, s, mask):
    """1-D Gaussian profiles ``exp(-(off - pos)^2 / 2 s^2) * mask`` and the offsets
    ``u = off - pos`` (float32; ``pos``, ``s`` of any shape, ``off`` the pixel offsets)."""
    u = off - pos[..., None]
    g = np.exp((u * u) * (-0.5 / (s * s))[..., None])
    g *= mask
    return g, u


def _assemble(p2, p1, p0, sc):
    """Symmetric (n, 5, 5) sums over the window of ``w J_a J_b`` for the parameters
    (x, y, sigma, height, local offset) from weighted moments of the Gaussian:
    ``p2[n, b, a] = sum w g^2 u^a v^b``, ``p1[n, b, a] = sum w g u^a v^b``, ``p0 = sum w``."""
    a = np.empty((len(sc), 5, 5))
    for i in range(4):
        for j in range(i, 4):
            val = sum(p2[:, mi[1] + mj[1], mi[0] + mj[0]] for mi in _MONO[i] for mj in _MONO[j])
            a[:, i, j] = a[:, j, i] = sc[:, i] * sc[:, j] * val
        val = sum(p1[:, m[1], m[0]] for m in _MONO[i])
        a[:, i, 4] = a[:, 4, i] = sc[:, i] * val
    a[:, 4, 4] = p0
    return a


def _shifted(mom, delta, order):
    """``sum w u^a (u + delta)^b`` for a <= order, b <= 2 from ``mom[..., m] = sum w u^m``
    (m <= order + 2), by the binomial theorem -> (..., order + 1, 3)."""
    d = delta[..., None]
    lo = mom[..., : order + 1]
    m1 = mom[..., 1 : order + 2]
    m2 = mom[..., 2 : order + 3]
    return np.stack([lo, m1 + d * lo, m2 + 2 * d * m1 + d * d * lo], axis=-1)


def _cross_shape(mux, muy, nux, nuy, dx, dy):
    """Shape part (no scale factors) of the cross blocks ``J_i^T J_j`` over the window of
    column i, (n, 5, k, 4): rows x, y, sigma, height, offset of i; columns x, y, sigma,
    height of neighbour j. ``mu*[..., m] = sum g_i g_j u_i^m`` (m <= 4), ``nu*[..., m] =
    sum g_j u_i^m`` (m <= 2; g_j masked to the window of i), ``d* = u_j - u_i``."""
    X = _shifted(mux, dx, 2)  # sum g_i g_j u_i^a u_j^b
    Y = _shifted(muy, dy, 2)
    Zx = _shifted(nux, dx, 0)[..., 0, :]  # sum g_j u_j^b
    Zy = _shifted(nuy, dy, 0)[..., 0, :]
    n, k = mux.shape[:2]
    out = np.empty((n, 5, k, 4), dtype=_F32)
    for j in range(4):
        for i in range(4):
            out[:, i, :, j] = sum(
                X[..., mi[0], mj[0]] * Y[..., mi[1], mj[1]] for mi in _MONO[i] for mj in _MONO[j]
            )
        out[:, 4, :, j] = sum(Zx[..., mj[0]] * Zy[..., mj[1]] for mj in _MONO[j])
    return out


class _Geometry:
    """Everything about the columns' windows that does not change during the fit.

    Square windows ``(2R+1)^2`` around fixed integer centres; pixel validity (inside the
    image) is separable, ``vy[row] * vx[col]``. ``nbr`` lists, per column, itself (slot 0) and
    every column whose window overlaps its own (Chebyshev distance <= 2R), nearest first;
    padding slots point at the column itself and have ``nbr_ok`` False. ``*_local`` give the
    background block (relative to ``b*0``) of every window row and column.
    """

    def __init__(self, shape, centres, radius, block, grid_shape):
        from scipy.spatial import cKDTree

        h, w = shape
        n = len(centres)
        self.R = radius
        self.off_int = np.arange(-radius, radius + 1)
        self.off = self.off_int.astype(_F32)
        self.centres = centres
        rows = centres[:, 1, None] + self.off_int
        cols = centres[:, 0, None] + self.off_int
        self.vy = ((rows >= 0) & (rows < h)).astype(_F32)
        self.vx = ((cols >= 0) & (cols < w)).astype(_F32)
        self.rows = np.clip(rows, 0, h - 1).astype(np.int32)
        self.cols = np.clip(cols, 0, w - 1).astype(np.int32)
        # Windows wholly inside the image are read as views of a sliding window (fast);
        # the others by fancy indexing with clipped indices.
        self.inside = (self.vx.min(axis=1) > 0) & (self.vy.min(axis=1) > 0)
        self.cache = None  # the data windows, when they fit in memory (set by the caller)
        # Sums over the valid pixels of 1, off, off^2 along each axis.
        self.sx = np.stack([(self.vx * self.off**k).sum(1) for k in range(3)], 1).astype(float)
        self.sy = np.stack([(self.vy * self.off**k).sum(1) for k in range(3)], 1).astype(float)
        self.block, self.grid_shape = block, grid_shape
        self.kb = (2 * radius) // block + 2
        self.by0 = np.floor_divide(centres[:, 1] - radius, block)
        self.bx0 = np.floor_divide(centres[:, 0] - radius, block)
        self.by_local = (np.floor_divide(rows, block) - self.by0[:, None]).astype(np.int16)
        self.bx_local = (np.floor_divide(cols, block) - self.bx0[:, None]).astype(np.int16)
        if n > 1:
            pairs = cKDTree(centres).query_pairs(2 * radius, p=np.inf, output_type="ndarray")
        else:
            pairs = np.zeros((0, 2), dtype=np.int64)
        i = np.r_[np.arange(n), pairs[:, 0], pairs[:, 1]]
        j = np.r_[np.arange(n), pairs[:, 1], pairs[:, 0]]
        d2 = ((centres[i] - centres[j]) ** 2).sum(axis=1)
        order = np.lexsort((d2, i != j, i))
        i, j = i[order], j[order]
        counts = np.bincount(i, minlength=n)
        slot = np.arange(len(i)) - (np.cumsum(counts) - counts)[i]
        self.k = int(counts.max()) if n else 1
        self.nbr = np.repeat(np.arange(n, dtype=np.int32)[:, None], self.k, axis=1)
        self.nbr_ok = np.zeros((n, self.k), dtype=bool)
        self.nbr[i, slot] = j
        self.nbr_ok[i, slot] = True
        self.kc = min(self.k, _COUPLED)
        self.dc = (centres[self.nbr] - centres[:, None, :]).astype(np.int16)
        self.off16 = self.off_int.astype(np.int16)

    def _memo(self, name, sl, make, small=False):
        """``make(sl)`` computed once per batch (the chunks and colour-group batches are the
        same on every pass, so the window-constant arrays are built once). Window-sized
        arrays (``small`` False) are kept only while the data windows are cached (then they
        cost about as much memory as that cache); :meth:`forget` drops them."""
        if not (small or self.cache is not None):
            return make(sl)
        if isinstance(sl, slice):
            key = (name, sl.start, sl.stop, sl.step)
        else:
            # An index array: the batches live as long as the fit, and the entry holds a
            # reference to the array, so its id is not reused meanwhile.
            key = (name, id(sl))
        memo = self.__dict__.setdefault("memo", {})
        if key not in memo:
            memo[key] = (sl, make(sl))
        return memo[key][1]

    def forget(self):
        """Drop the cached data windows and per-batch arrays (memory)."""
        self.cache = None
        self.memo = {}

    def onehot(self, sl):
        """(n, S, kb) float32 indicators of each window row/column's background block."""
        return self._memo("onehot", sl, self._onehot)

    def _onehot(self, sl):
        kb = np.arange(self.kb, dtype=np.int16)
        oy = (self.by_local[sl][:, :, None] == kb).astype(_F32)
        ox = (self.bx_local[sl][:, :, None] == kb).astype(_F32)
        oy *= self.vy[sl][:, :, None]
        ox *= self.vx[sl][:, :, None]
        return oy, ox

    def profile_masks(self, sl):
        """(n, K, S) float32 masks of each neighbour's profile: its own window and the
        image, on the window grid of each column of ``sl``."""
        return self._memo("profile_masks", sl, self._profile_masks)

    def _profile_masks(self, sl):
        dc = self.dc[sl]
        mx = (np.abs(self.off16 - dc[..., 0, None]) <= self.R).astype(_F32)
        mx *= self.vx[sl][:, None, :]
        my = (np.abs(self.off16 - dc[..., 1, None]) <= self.R).astype(_F32)
        my *= self.vy[sl][:, None, :]
        return mx, my

    def valid(self, sl):
        """(n, S, S) float32 validity (inside the image) of the window pixels."""
        return self._memo("valid", sl, lambda s: self.vy[s][:, :, None] * self.vx[s][:, None, :])

    def _block_index(self, sl):
        hb, wb = self.grid_shape
        kb = np.arange(self.kb)
        gy = np.clip(self.by0[sl, None] + kb, 0, hb - 1)
        gx = np.clip(self.bx0[sl, None] + kb, 0, wb - 1)
        return (gy[:, :, None] * wb + gx[:, None, :]).ravel()

    def scatter(self, grid, sl, vals):
        """Add per-column block sums ``vals`` (n, kb, kb) into ``grid`` (hb, wb)."""
        hb, wb = self.grid_shape
        idx = self._memo("block_index", sl, self._block_index, small=True)
        grid += np.bincount(idx, weights=vals.ravel(), minlength=hb * wb).reshape(hb, wb)


def _window_profiles(geo, p, sl):
    """Profiles of every column of ``sl`` and of its neighbours on its window grid.

    Returns ``GX, GY`` (n, K, S) float32 (slot 0: the column itself; a neighbour's profile
    is masked to its own window and to the image) with their offsets ``UX, UY`` and the
    neighbours' heights ``hj`` (n, K) (0 on padding slots).
    """
    nb = geo.nbr[sl]
    dc = geo.dc[sl]
    pj = p[nb].astype(_F32)
    mx, my = geo.profile_masks(sl)
    s = pj[..., 2]
    GX, UX = _gauss1d(geo.off, dc[..., 0] + pj[..., 0], s, mx)
    GY, UY = _gauss1d(geo.off, dc[..., 1] + pj[..., 1], s, my)
    hj = pj[..., 3] * geo.nbr_ok[sl]
    return GX, GY, UX, UY, hj


def _window_data(img, geo, sl):
    """Data of the windows (n, S, S) float32, zero outside the image, and the validity."""
    valid = geo.valid(sl)
    if geo.cache is not None:
        return geo.cache[sl], valid
    inside = geo.inside[sl]
    rows, cols = geo.rows[sl], geo.cols[sl]
    data = np.empty(valid.shape, dtype=_F32)
    if inside.any():
        # Windows wholly inside: fancy indexing of a sliding-window view copies whole rows.
        view = np.lib.stride_tricks.sliding_window_view(img, valid.shape[1:])
        data[inside] = view[rows[inside, 0], cols[inside, 0]]
    if not inside.all():
        out = ~inside
        data[out] = img[rows[out][:, :, None], cols[out][:, None, :]] * valid[out]
    return data, valid


def _plane(b, bx, by, off, valid):
    """Background plane ``b + bx dx + by dy`` on each window (n, S, S), zero outside."""
    bf = b.astype(_F32)[:, None, None]
    out = bf + (bx.astype(_F32)[:, None, None] * off[None, None, :])
    out = out + by.astype(_F32)[:, None, None] * off[None, :, None]
    out *= valid
    return out


def _iteration_pass(img, geo, p, sl, plane_coef, grids=None, blocks_only=False):
    """One pass over the columns ``sl`` at parameters ``p`` (background plane ``plane_coef``):
    the background-block sums of the model (added into ``grids``: model, model^2 and
    (data - model) x model) and, unless ``blocks_only``, the sums the Gauss-Newton step
    needs (see :func:`_gn_system`)."""
    # Without ``grids`` (a colour group's step in a sweep) neither the block sums nor the
    # coupling to the neighbours are needed.
    coupled = grids is not None
    GX, GY, UX, UY, hj = _window_profiles(geo, p, sl)
    gx, gy, u, v = GX[:, 0], GY[:, 0], UX[:, 0], UY[:, 0]
    model = np.matmul((GY * hj[..., None]).transpose(0, 2, 1), GX)  # (n, rows, cols)
    data, valid = _window_data(img, geo, sl)
    h = hj[:, 0]
    if coupled:
        # Block sums for the background.
        oy, ox = geo.onehot(sl)
        bgx = np.matmul(gx[:, None, :], ox)  # (n, 1, kb)
        bgy = np.matmul(gy[:, None, :], oy)
        geo.scatter(grids[0], sl, h[:, None, None] * bgy.transpose(0, 2, 1) * bgx)
        gyo = (gy[:, :, None] * oy).transpose(0, 2, 1)  # (n, kb, S)
    if blocks_only:
        t = np.matmul(model, gx[:, :, None] * ox)
        geo.scatter(grids[1], sl, h[:, None, None] * np.matmul(gyo, t))
        t = np.matmul(np.subtract(data, model), gx[:, :, None] * ox)
        geo.scatter(grids[2], sl, h[:, None, None] * np.matmul(gyo, t))
        return None
    # Residual above the background plane's level under the column (the rest of the plane,
    # its slope, is subtracted analytically from the sums): small numbers, so float32 sums
    # of squares stay accurate.
    b0 = plane_coef[0].astype(_F32)
    resid = np.subtract(data, model)
    resid -= b0[:, None, None]
    resid *= valid
    off = geo.off
    vx, vy = geo.vx[sl], geo.vy[sl]
    wx = np.stack([gx, gx * u, gx * u * u, vx, vx * off], axis=2)
    if coupled:
        wx = np.concatenate([wx, gx[:, :, None] * ox], axis=2)
    wy = np.stack([gy, gy * v, gy * v * v, vy, vy * off], axis=2).transpose(0, 2, 1)
    t = np.matmul(resid, wx)
    g_r = np.matmul(wy, t[:, :, :5]).astype(float)
    ax = ay = None
    if coupled:
        # Block sums of (data - model) x own Gaussian (the coarse correction's regression).
        dq = np.matmul(gyo, t[:, :, 5:])
        dq += b0[:, None, None] * bgy.transpose(0, 2, 1) * bgx
        geo.scatter(grids[2], sl, h[:, None, None] * dq)
        t = np.matmul(model, wx)
        # Each neighbour's share of the model's sums (separable: 1-D sums of its profiles),
        # so that the step can use the neighbours' corrected heights.
        ax = np.matmul(GX, wx[:, :, :5])  # (n, K, 5)
        ay = np.matmul(GY, wy.transpose(0, 2, 1))
        # Block sums of model x own Gaussian (summed over the columns: of model^2).
        geo.scatter(grids[1], sl, h[:, None, None] * np.matmul(gyo, t[:, :, 5:]))
    ss = np.stack(
        [
            np.einsum("nij,nij->n", resid, resid),
            np.einsum("nij,nij->n", resid, model),
            np.einsum("nij,nij->n", model, model),
        ],
        axis=1,
    ).astype(float)
    # Moments: m-th powers of u up to 4.
    kc = geo.kc if coupled else 1
    px = gx[:, None, :] * GX[:, :kc]  # g_i g_j along x, nearest neighbours
    py = gy[:, None, :] * GY[:, :kc]
    upow, vpow = _powers(u, 4), _powers(v, 4)
    mux = np.matmul(px, upow)  # (n, kc, 5): sum g_i g_j u_i^m
    muy = np.matmul(py, vpow)
    nux = np.matmul(GX[:, :kc], upow[:, :, :4])  # sum g_j u_i^m
    nuy = np.matmul(GY[:, :kc], vpow[:, :, :4])
    self_sums = (mux[:, 0].astype(float), muy[:, 0].astype(float), nux[:, 0].astype(float),
                 nuy[:, 0].astype(float))
    cross = None
    if kc > 1:
        dx = UX[:, 1:kc, 0] - u[:, None, 0]  # u_j - u_i (constant along the window)
        dy = UY[:, 1:kc, 0] - v[:, None, 0]
        cross = _cross_shape(mux[:, 1:], muy[:, 1:], nux[:, 1:, :3], nuy[:, 1:, :3], dx, dy)
    return g_r, (ax, ay, hj), ss, self_sums, cross


def _final_pass(img, geo, p, sl, plane_coef):
    """Pass at the final parameters: residual variance, the normal matrix and ``J^T L J``
    (L = model + background level, for the variance model), and noise-model sums."""
    GX, GY, UX, UY, hj = _window_profiles(geo, p, sl)
    gx, gy, u, v = GX[:, 0], GY[:, 0], UX[:, 0], UY[:, 0]
    level = np.matmul((GY * hj[..., None]).transpose(0, 2, 1), GX)
    data, valid = _window_data(img, geo, sl)
    level += _plane(*plane_coef, geo.off, valid)
    resid = data
    resid -= level
    r2 = resid * resid
    noise = np.array([valid.sum(), level.sum(), (level * level).sum(), r2.sum(),
                      (level * r2).sum()], dtype=float)
    lmin = float(level[valid > 0].min()) if valid.any() else 0.0
    ss = r2.sum(axis=(1, 2)).astype(float)
    vx, vy = geo.vx[sl], geo.vy[sl]
    up, vp = _powers(u, 4), _powers(v, 4)
    wx = np.concatenate(
        [(gx * gx)[:, :, None] * up, gx[:, :, None] * up[:, :, :3], vx[:, :, None]], axis=2)
    wy = np.concatenate(
        [(gy * gy)[:, :, None] * vp, gy[:, :, None] * vp[:, :, :3], vy[:, :, None]],
        axis=2).transpose(0, 2, 1)
    lm = np.matmul(wy, np.matmul(level, wx)).astype(float)  # (n, 9, 9)
    sx = wx.sum(axis=1).astype(float)
    sy = wy.sum(axis=2).astype(float)
    q = p[sl]
    sc = _scales(q[:, _S], q[:, _H])
    jtj = _assemble(sy[:, :5, None] * sx[:, None, :5], sy[:, 5:8, None] * sx[:, None, 5:8],
                    sx[:, 8] * sy[:, 8], sc)
    jlj = _assemble(lm[:, :5, :5], lm[:, 5:8, 5:8], lm[:, 8, 8], sc)
    return ss, noise, lmin, jtj, jlj


class _Background:
    """A smooth background map: block means of ``image - model``, Gaussian-smoothed.

    Kept on a grid of ``block`` px (memory and time ~ 1 / block^2 of the image); its value and
    gradient at a column give the plane under that column's window. The block means of the
    model come from the columns' separable Gaussians (:func:`_iteration_pass`), so no model
    image is ever formed while fitting.
    """

    def __init__(self, image, scale_px):
        self.h, self.w = image.shape
        self.block = max(1, int(scale_px // 3))
        self.sigma = scale_px / self.block
        b = self.block
        hb, wb = -(-self.h // b), -(-self.w // b)
        rcount = np.bincount(np.minimum(np.arange(self.h) // b, hb - 1), minlength=hb)
        ccount = np.bincount(np.minimum(np.arange(self.w) // b, wb - 1), minlength=wb)
        self.counts = np.maximum(np.outer(rcount, ccount), 1).astype(float)
        self.data_means = self._block_means(image)

    def _block_means(self, arr):
        """Means over ``block`` x ``block`` pixels of ``arr`` (the last block row and column
        may be partial), by reshaping views: no image-sized temporary exists."""
        b = self.block
        h, w = self.h, self.w
        hb, wb = -(-h // b), -(-w // b)
        hf, wf = h // b, w // b  # full blocks
        out = np.zeros((hb, wb))
        arr = np.asarray(arr)
        out[:hf, :wf] = arr[: hf * b, : wf * b].reshape(hf, b, wf, b).sum(
            axis=(1, 3), dtype=np.float64)
        if wf < wb:
            out[:hf, wf] = arr[: hf * b, wf * b :].reshape(hf, b, -1).sum(
                axis=(1, 2), dtype=np.float64)
        if hf < hb:
            out[hf, :wf] = arr[hf * b :, : wf * b].reshape(-1, wf, b).sum(
                axis=(0, 2), dtype=np.float64)
            if wf < wb:
                out[hf, wf] = arr[hf * b :, wf * b :].sum(dtype=np.float64)
        return out / self.counts

    def _set(self, map_):
        self.map = map_
        gy, gx = np.gradient(self.map) if min(map_.shape) > 1 else (0 * map_, 0 * map_)
        self.grad = (gx / self.block, gy / self.block)

    def update(self, model_means):
        """Background from the block means of the model (Gaussians only)."""
        diff = self.data_means - model_means
        self._set(ndimage.gaussian_filter(diff, self.sigma, mode="nearest"))

    def coarse_correction(self, m, mm, dq):
        """Least-squares offset ``c`` and height scale ``beta`` of the residual
        ``image - model - background ~ c + beta * model``, local on the background's scale,
        from the block means of the model ``m``, of its square ``mm`` and of
        (image - model) x model ``dq``.

        Alternating between columns and background converges slowly where columns overlap:
        "all heights a bit lower, background a bit higher" is then nearly invisible to both
        steps. This correction solves for exactly that mode (a two-parameter fit per region),
        adds ``c`` to the background map and keeps ``beta`` for :meth:`beta_at`.
        """
        r = self.data_means - m - self.map
        rm = dq - self.map * m

        def smooth(a):
            return ndimage.gaussian_filter(a, self.sigma, mode="nearest")

        s1, sm, smm, sr, srm = smooth(np.ones_like(m)), smooth(m), smooth(mm), smooth(r), smooth(rm)
        det = s1 * smm - sm * sm
        ridge = 1e-6 * (s1 * smm).max() + 1e-300
        c = (smm * sr - sm * srm) / (det + ridge)
        self.beta = (s1 * srm - sm * sr) / (det + ridge)
        self._set(self.map + c)

    def _coords(self, xy):
        return [(xy[:, 1] + 0.5) / self.block - 0.5, (xy[:, 0] + 0.5) / self.block - 0.5]

    def beta_at(self, xy):
        return ndimage.map_coordinates(self.beta, self._coords(xy), order=1, mode="nearest")

    def at(self, xy):
        """Value and gradient (d/dx, d/dy per px) of the background at positions (x, y)."""
        c = self._coords(xy)
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
    spacing_px: float | None = None,
    noise_model: tuple[float, float] | None = None,
    image_bytes: int | None = None,
    converge: bool = True,
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
        Most iterations (each one damped Gauss-Newton step per column, then a background
        update); the fit stops earlier once no parameter of any column changed by more than
        3 % of its standard error in the last step. Default: 6 when the median
        nearest-neighbour distance is at least 4 ``sigma_px``, else 10 for the joint steps
        (at least 3.3 ``sigma_px``) and 14 for the sweeps -- overlapping columns converge
        more slowly (chosen on synthetic honeycomb images: with neighbours 3.3 sigma apart
        12 sweeps bring cross-sections within 0.3 %; the joint cap on the benchmark sets).
    width_prior : float
        Relative spread of a Gaussian prior on each column's width around ``sigma_px``, so
        that the width cannot run away where the signal cannot fix it (low dose, faint
        columns); at high signal the data dominate. 0 disables it. (0.25: the widths of the
        species of one HAADF image differ by well under 25 %; not tuned on a benchmark.)
    background_px : float, optional
        Smoothing scale of the background (px); default ``3 * radius`` (about nine column
        widths): slower variations than that are background, faster ones are columns.
    chunk : int, optional
        Columns per batch. Default: as many as keep a batch's temporaries within a quarter
        of the float32 image (at least 24 MB), between 64 and 8192.
    return_model : bool
        Keep the model image (float32, Gaussians only) in the result, for residual searches.
    spacing_px, noise_model, image_bytes : optional
        Quantities the fit otherwise takes from the image and columns it is given: the
        median nearest-neighbour spacing (px; it chooses the iterations and joint steps or
        sweeps), the pixel-variance model ``(a, b)`` (for the errors and significances) and
        the image's size in bytes (it sets the default ``chunk``). A tile of a larger image
        (:func:`motifcat.ingest.tiles.analyze_tiled`) passes the larger image's values, so
        that it is fitted as the larger image would be. Default: measured here.
    converge : bool
        Stop the joint steps once no parameter of any column moves by more than a small
        fraction of its error (then one more pass). False: run all ``n_iter`` iterations
        (to repeat another fit's iterations, :attr:`GaussianFit.n_iter`; the stop is a
        decision over all the columns, so a tile of the image would take its own).

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
    if spacing_px is not None:
        spacing = float(spacing_px)
    else:
        spacing = _median_spacing(xy) if n >= 2 else np.inf
    # Neighbours closer than _JOINT_SPACING widths overlap so much that a joint step over
    # all columns overshoots (the columns of a pair trade height and position together);
    # those images are fitted by sweeps over colour groups of columns about 3 sigma apart
    # (block Gauss-Seidel: each group's step sees the others' latest values).
    joint = spacing >= _JOINT_SPACING * sigma_px and sigma_px >= 1.0
    if n_iter is None:
        # Overlapping columns converge more slowly (chosen on synthetic honeycomb images:
        # with neighbours 3.3 sigma apart 12 sweeps bring cross-sections within 0.3 %).
        # The joint step stops by itself once converged; its cap is lower (chosen on the
        # benchmark: on tmd it converges in 9 iterations at full dose; at dose 1/100 and on
        # the real MoS2 image a tail of 1-7 % of the columns still moves after 14, and a cap
        # of 10 gives the same tmd figures at both doses, 8 changes them).
        n_iter = 6 if spacing >= 4.0 * sigma_px else (_JOINT_ITER if joint else 14)
    n_iter = int(n_iter)
    size = 2 * radius + 1
    centres = np.rint(xy).astype(np.int64)
    centres[:, 0] = np.clip(centres[:, 0], 0, w - 1)
    centres[:, 1] = np.clip(centres[:, 1], 0, h - 1)
    p = np.zeros((n, N_PARAMS))
    p[:, _X : _Y + 1] = xy - centres
    p[:, _S] = sigma_px
    start = p[:, _X : _Y + 1].copy()
    max_move = max(1.0, float(sigma_px))
    background = _Background(img, background_px or 3.0 * radius)
    if n == 0:
        background.update(np.zeros_like(background.data_means))
        e = np.zeros(0)
        return GaussianFit(
            xy=np.zeros((0, 2)), sigma=e, height=e, background=e, cross_section=e,
            xy_err=np.zeros((0, 2)), sigma_err=e, height_err=e, cross_section_err=e,
            residual_var=e, significance=e, n_pixels=np.zeros(0, dtype=np.int64),
            radius=radius, model=np.zeros((h, w), np.float32) if return_model else None,
            background_grid=background.map, background_block=background.block,
        )
    geo = _Geometry((h, w), centres, radius, background.block, background.data_means.shape)
    if chunk is None:
        per_column = 4 * (14 * geo.k * size + 10 * size * size)  # bytes of a batch's arrays
        nbytes = img.nbytes if image_bytes is None else int(image_bytes)
        chunk = int(np.clip(max(nbytes // 4, 24 << 20) // per_column, 64, 8192))
    slices = [slice(i, min(n, i + chunk)) for i in range(0, n, chunk)]
    if n * size * size * 4 <= max(img.nbytes // 2, 8 << 20):
        # The data windows are read on every pass; keep them when that is cheap in memory.
        geo.cache = np.concatenate([_window_data(img, geo, sl)[0] for sl in slices])

    # Start: a background map of the image itself (no model yet), heights from each column's
    # centre pixel above it.
    background.update(np.zeros_like(background.data_means))
    coef = background.at(centres.astype(np.float64))
    peak = img[centres[:, 1], centres[:, 0]]
    p[:, _H] = np.maximum(peak - coef[0], 1e-6 * (np.abs(coef[0]) + 1.0))

    def background_step(it, grids):
        """Background from the model's block means; from the second pass on also the joint
        offset / height-scale correction, whose height factor is returned."""
        m, mm, dm = (g / background.counts for g in grids)
        background.update(m)
        if it == 0:
            return np.ones(n)
        background.coarse_correction(m, mm, dm)
        return np.clip(1.0 + background.beta_at(centres + p[:, _X : _Y + 1]), 0.5, 2.0)

    batches = None
    if not joint:
        groups = colour_groups(centres, radius + 1)
        batches = [g[i : i + chunk] for g in groups for i in range(0, len(g), chunk)]
    damping = np.full(n, 1e-3)
    prev_post = None
    it = -1
    while True:
        it += 1
        last = it >= n_iter
        tol = np.zeros_like(p)
        if not joint and it > 0:
            # One sweep: a damped Gauss-Newton step per colour group, neighbours current
            # (n_iter of them, the last one followed only by the background update).
            for idx in batches:
                part = _iteration_pass(img, geo, p, idx, [c[idx] for c in coef], None)
                sys_ = _gn_system(part, geo, p, idx, np.ones(len(idx)),
                                  (np.zeros(len(idx)), coef[1][idx], coef[2][idx]),
                                  sigma_px, width_prior)
                step, var = _joint_step(sys_[0], None, None, sys_[1], damping[idx])
                p[idx] = _bounded_update(p[idx], step[:, :N_PARAMS], start[idx], max_move,
                                         radius)
                tol[idx] = np.sqrt(np.maximum(var[:, :N_PARAMS] * sys_[2][:, None], 0.0))
            post = p.copy()
        grids = [np.zeros(geo.grid_shape) for _ in range(3)]
        blocks_only = last or not joint
        parts = _collect(
            (_iteration_pass(img, geo, p, sl, [c[sl] for c in coef], grids, blocks_only)
             for sl in slices), slices, n)
        # Background from this model and the height correction (applied before the step,
        # as in a sweep that updates the background after the columns).
        f = background_step(it, grids)
        p[:, _H] *= f
        new = background.at(centres.astype(np.float64))
        # The pass's residual is above the old plane's level b0 only (see _iteration_pass).
        dplane = (new[0] - coef[0], new[1], new[2])
        coef = new
        if last:
            break
        if joint:
            jtj, grad, s2, cross = _gn_system(parts, geo, p, slice(None), f, dplane, sigma_px,
                                              width_prior)
            parts = None
            step, var = _joint_step(jtj, cross, geo.nbr[:, 1 : geo.kc], grad, damping)
            jtj = grad = cross = None  # not kept into the next pass (memory)
            p = _bounded_update(p, step[:, :N_PARAMS], start, max_move, radius)
            tol = np.sqrt(np.maximum(var[:, :N_PARAMS] * s2[:, None], 0.0))
            step = var = None
            post = p.copy()
        elif it == 0:
            post = p.copy()
            post[:, _H] /= f
        # Converged when no parameter of any column moved by more than a small fraction of
        # its standard error (from the local normal matrix and residual variance), or by
        # less than 1e-5 of its scale (noise-free images).
        scale = np.r_[1.0, 1.0, 1.0, 0.0][None, :] + np.abs(p) * np.r_[0, 0, 0, 1.0][None, :]
        tol = np.maximum(_STEP_TOL * tol, 1e-5 * scale)
        before, prev_post = prev_post, post
        if before is None:
            continue
        # (The sweeps run their full number, as they always did: on narrow or crowded
        # columns an early stop changes which faint candidates pass the selection.)
        if converge and joint and it >= 1 and (np.abs(post - before) <= tol).all():
            n_iter = it + 1  # one more pass: the background of the converged columns
    geo.forget()
    parts = jtj = grad = s2 = cross = step = var = tol = None  # free memory

    # Final pass: residual variance, noise model, covariance and significance.
    sums = [np.zeros(5), np.inf]

    def final(sl):
        out = _final_pass(img, geo, p, sl, [c[sl] for c in coef])
        sums[0] += out[1]
        sums[1] = min(sums[1], out[2])
        return out[0], out[3], out[4]

    ss, jtj, jlj = _collect((final(sl) for sl in slices), slices, n)
    if noise_model is None:
        noise_a, noise_b = _noise_model(sums[0], sums[1])
    else:
        noise_a, noise_b = (float(v) for v in noise_model)
    n_valid = geo.sx[:, 0] * geo.sy[:, 0]
    s2 = ss / np.maximum(n_valid - N_PARAMS, 1)
    meat = jlj
    meat *= noise_b
    meat += noise_a * jtj
    jlj = None
    cov = _posterior_covariance(jtj, meat, s2, sigma_px, width_prior)
    # Matched-filter significance of the height with the shape held fixed:
    # (h sum G^2)^2 / sum G^2 V.
    snr2 = (p[:, _H] * jtj[:, _H, _H]) ** 2 / np.maximum(meat[:, _H, _H], 1e-300)
    bg_at = coef[0] + coef[1] * p[:, _X] + coef[2] * p[:, _Y]

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
    cov = meat = jtj = None
    fit = GaussianFit(
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
        n_pixels=n_valid.astype(np.int64),
        radius=radius,
        model=None,
        background_grid=background.map,
        background_block=background.block,
        noise_model=(noise_a, noise_b),
        n_iter=n_iter,
        spacing_px=float(spacing),
    )
    if return_model:
        # Last, once the fit's temporaries are gone: the model image is the largest array.
        object.__setattr__(fit, "model", _model_image((h, w), geo, p, chunk))
    return fit


def _collect(results, slices, n):
    """The per-chunk results (nested tuples of arrays over the chunk's columns, or None)
    gathered into arrays over all ``n`` columns, one chunk at a time (no list of chunks)."""
    out = None

    def alloc(r):
        if r is None:
            return None
        if isinstance(r, tuple):
            return tuple(alloc(x) for x in r)
        return np.empty((n,) + r.shape[1:], dtype=r.dtype)

    def fill(o, r, sl):
        if r is None:
            return
        if isinstance(r, tuple):
            for a, b in zip(o, r, strict=True):
                fill(a, b, sl)
        else:
            o[sl] = r

    for sl, r in zip(slices, results, strict=True):  # every chunk runs (block sums)
        if r is None:
            continue
        if len(slices) == 1:
            return r
        if out is None:
            out = alloc(r)
        fill(out, r, sl)
    return out


def _gn_system(part, geo, p, idx, f, dplane, sigma_px, width_prior):
    """Normal equations of the columns ``idx`` from the sums of :func:`_iteration_pass`,
    with the background plane moved by ``dplane`` (db, dbx, dby; the pass's residual is
    above the old plane's level) and the heights scaled by ``f`` since the pass.

    Returns (jtj (n, 5, 5) with the width prior, gradient (n, 5), residual variance per
    pixel (n,), cross blocks (n, kc - 1, 5, 4) or None).
    """
    g_r, (ax, ay, hj), ss, (a2x, a2y, a1x, a1y), cross = part
    q = p[idx]
    n = len(q)
    db, dbx, dby = dplane
    vx_, vy_ = geo.sx[idx], geo.sy[idx]
    # Residual sums with the new plane and heights: r = r_pass - dP - sum_j (f_j - 1) M_j.
    x0, y0 = q[:, _X], q[:, _Y]
    sx = np.concatenate([a1x[:, :3], vx_[:, :2]], axis=1)
    sy = np.concatenate([a1y[:, :3], vy_[:, :2]], axis=1)
    sxo = np.concatenate([a1x[:, 1:4] + x0[:, None] * a1x[:, :3], vx_[:, 1:3]], axis=1)
    syo = np.concatenate([a1y[:, 1:4] + y0[:, None] * a1y[:, :3], vy_[:, 1:3]], axis=1)
    gsum = g_r.copy()  # updated in place: (n, 5, 5) temporaries are the memory peak here
    gsum -= db[:, None, None] * sy[:, :, None] * sx[:, None, :]
    gsum -= dbx[:, None, None] * sy[:, :, None] * sxo[:, None, :]
    gsum -= dby[:, None, None] * syo[:, :, None] * sx[:, None, :]
    fm = f - 1.0
    g_m = np.zeros((n, 5, 5))  # only the entries dot_plane reads
    if np.any(fm != 0):
        fj = np.ones(len(p))
        fj[idx] = f
        wf = ((fj[geo.nbr[idx]] - 1.0) * hj)[:, :, None].astype(_F32)
        gsum -= np.matmul((wf * ay).transpose(0, 2, 1), ax)
        wf = None
        for gam, alp in ((3, 3), (3, 4), (4, 3)):
            g_m[:, gam, alp] = (hj * ay[:, :, gam] * ax[:, :, alp]).sum(axis=1)
    dp2 = (
        db**2 * vy_[:, 0] * vx_[:, 0] + dbx**2 * vy_[:, 0] * vx_[:, 2]
        + dby**2 * vy_[:, 2] * vx_[:, 0] + 2 * db * dbx * vy_[:, 0] * vx_[:, 1]
        + 2 * db * dby * vy_[:, 1] * vx_[:, 0] + 2 * dbx * dby * vy_[:, 1] * vx_[:, 1]
    )

    def dot_plane(g):
        return db * g[:, 3, 3] + dbx * g[:, 3, 4] + dby * g[:, 4, 3]

    rr = (ss[:, 0] - 2 * dot_plane(g_r) - 2 * fm * ss[:, 1] + dp2
          + 2 * fm * dot_plane(g_m) + fm**2 * ss[:, 2])
    n_valid = vx_[:, 0] * vy_[:, 0]
    local_s2 = np.maximum(rr, 0.0) / np.maximum(n_valid - N_PARAMS, 1)
    sc = _scales(q[:, _S], q[:, _H])
    grad = np.empty((n, N_PARAMS + 1))
    for k in range(N_PARAMS):
        grad[:, k] = sc[:, k] * sum(gsum[:, m_[1], m_[0]] for m_ in _MONO[k])
    grad[:, _B] = gsum[:, 3, 3]
    jtj = _assemble(a2y[:, :, None] * a2x[:, None, :], a1y[:, :3, None] * a1x[:, None, :3],
                    n_valid, sc)
    if width_prior > 0:
        # Gaussian prior on the width, weighted by the local noise variance so that
        # it is worth the same at every dose.
        weight = local_s2 / (width_prior * sigma_px) ** 2
        jtj[:, _S, _S] += weight
        grad[:, _S] += weight * (sigma_px - q[:, _S])
    if cross is not None:
        nb = geo.nbr[idx, 1 : geo.kc]
        sc5 = np.concatenate([sc, np.ones((n, 1))], axis=1).astype(_F32)
        cross *= sc5[:, :, None, None]
        sc_all = _scales(p[:, _S], p[:, _H]).astype(_F32)
        cross *= sc_all[nb][:, None, :, :]
        cross *= geo.nbr_ok[idx, None, 1 : geo.kc, None]
    return jtj, grad, local_s2, cross


def _joint_step(jtj, cross, nbr, grad, damping):
    """Damped Gauss-Newton step of all columns together, ``(A + lambda diag A) d = g``.

    ``A`` has the 5x5 blocks ``jtj`` of every column (its Gaussian and a local background
    offset) on the diagonal and the 5x4 coupling ``cross`` to its nearest neighbours ``nbr``
    off it, so that the overlap of neighbouring Gaussians is accounted for in the step (two
    block-Jacobi iterations on the coupled system: an inexact Newton step, which the next
    iteration corrects). Returns the step (n, 5) and the diagonal of the inverse blocks.
    """
    n = len(jtj)
    diag = np.einsum("nii->ni", jtj)
    a = jtj + (damping[:, None] * diag + 1e-12)[:, :, None] * np.eye(5)[None]
    try:
        inv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(a)
    var = np.einsum("nii->ni", inv)
    x0 = np.matmul(inv, grad[:, :, None])[:, :, 0]
    if cross is None or n == 0:
        return x0, var

    k = nbr.shape[1]
    # Coupling as one small matrix per column: (n, 5, k*4) @ (n, k*4) neighbour steps.
    coupling = cross.reshape(n, 5, 4 * k)

    def couple(z):
        return np.matmul(coupling, z[nbr, :4].astype(_F32).reshape(n, 4 * k, 1))[:, :, 0]

    sol = x0
    for _ in range(2):  # block-Jacobi iterations on the coupled system
        sol = np.matmul(inv, (grad - couple(sol))[:, :, None])[:, :, 0]
    return np.where(np.isfinite(sol), sol, x0), var


def _model_image(shape, geo, p, chunk):
    """The model image (float32): the sum of every column's Gaussian, truncated to its window.
    Columns whose windows are disjoint (:func:`colour_groups` with cell 2R+1) are added in one
    fancy-indexed addition."""
    h, w = shape
    model = np.zeros(h * w + 1, dtype=np.float32)  # the last element collects off-image pixels
    for g in colour_groups(geo.centres, 2 * geo.R + 1):
        for i in range(0, len(g), chunk):
            idx = g[i : i + chunk]
            q = p[idx].astype(_F32)
            gx, _ = _gauss1d(geo.off, q[:, _X], q[:, _S], geo.vx[idx])
            gy, _ = _gauss1d(geo.off, q[:, _Y], q[:, _S], geo.vy[idx])
            rows = np.where(geo.vy[idx] > 0, geo.rows[idx], h)
            flat = np.where(geo.vx[idx][:, None, :] > 0,
                            rows[:, :, None] * w + geo.cols[idx][:, None, :], h * w)
            flat = np.minimum(flat, h * w)
            model[flat] += q[:, _H, None, None] * gy[:, :, None] * gx[:, None, :]
    return model[:-1].reshape(h, w)


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


def _noise_model(sums, level_min):
    """Pixel variance ``a + b * level`` (level = model + background) fitted to the squared
    residuals in the columns' windows by least squares, from ``sums`` = (pixels, sum level,
    sum level^2, sum r^2, sum level r^2); b = 0 when the data show no trend, or when the line
    would go negative at the lowest level (``level_min``) of the windows."""
    n, sm, smm, sr, smr = (float(v) for v in sums)
    det = n * smm - sm * sm
    b = (n * smr - sm * sr) / det if det > 1e-12 * max(n * smm, 1e-300) else 0.0
    b = max(float(b), 0.0)
    a = (sr - b * sm) / max(n, 1.0)
    if a <= 0 or a + b * level_min <= 0:
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


def _fit_radius(sigma_px: float) -> int:
    """The column fit's window radius for a width (as in fit_gaussian_columns)."""
    return max(2, int(np.ceil(3.0 * sigma_px)))


def _fit_align(sigma_px: float) -> int:
    """Origin multiple under which the fit batches columns and blocks its background as in
    the whole image: its colour cells (radius + 1, parity over two cells) and background
    blocks (radius px, see fit_gaussian_columns)."""
    r = _fit_radius(sigma_px)
    return math.lcm(2 * (r + 1), max(1, r))


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
