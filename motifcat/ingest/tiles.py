"""``analyze_tiled``: one huge micrograph (8k² to 16k² px) analysed as overlapping tiles.

The whole-image analysis (:func:`motifcat.ingest.pipeline.analyze`) holds several image-sized
arrays at once (the smoothed image in float64, the column model, the padded image), so a
16k² scan needs many GB in one process. Here the image is cut into square *cores* that
partition it; each tile is its core plus a *halo* on every side, and every stage that only
looks at a neighbourhood runs per tile, serially or on a Dask cluster:

1. **Global quantities first** (driver): the lattice period (FFT of the central crop, as in
   :func:`analyze`), the pixel noise (:func:`~motifcat.ingest.columns.detect.flat_noise` and
   :func:`~motifcat.ingest.columns.detect.poisson_noise_bound`, as ``detect_columns``), so
   that every tile applies the same thresholds.
2. **Peaks** (tiles): local maxima above the local background and their centre-of-mass
   refinement. A tile keeps the peaks in its core. The driver then applies the median-based
   relative prominence threshold and the non-maximum suppression to the union -- the very
   candidate set of the whole image.
3. **Column-model globals** (driver, :func:`column_globals`): the column model
   (:func:`~.columns.detect.model_columns`) estimates, from the image it is given, the
   column width (and the widths its fits step through), the model selection's threshold,
   the noise model, the spacings that choose the fit's iterations, its batch size and the
   residual search's noise and thresholds, and the sequence of fits it ran
   (:class:`~.columns.detect.ColumnGlobals`). They are measured once, by the whole-image
   code, on the whole image or its central ``GLOBALS_PX``² crop if larger
   (:func:`~.columns.detect.measure_column_globals`: they depend on the density of columns
   and the dose, not on the image size; :func:`analyze` measures them on the same crop).
4. **Column model** (tiles): :func:`~.columns.detect.model_columns` on every tile, from the
   global candidates in the tile and with the global quantities (``fixed=``). A column
   belongs to the tile whose core holds it; columns near a seam, found by two tiles, are
   merged (:func:`merge_seams`): no duplicates, no gaps.
5. **Descriptors** (tiles): patches and Zernike moments of each tile's own columns, with the
   image-wide intensity offset and column scale; the halo holds the patches' pixels.
6. **Classes and hierarchy** (driver): on all columns at once, by the same code as
   :func:`analyze` (:func:`~motifcat.ingest.pipeline.classify_columns`), so the classes are
   the whole image's.

The halo is at least one patch plus the reach of the column fit, so a column in a core sees
the same pixels as in the whole image. Tile origins are multiples of the fit's colour cells
and background blocks, so the fit groups the columns and averages the background as on the
whole image. With the global quantities every tile runs the whole image's fits: the same
number (whether to refit is a decision over all columns: one rejected anywhere refits
everything), each with the same width, iterations (the joint step's convergence is a
decision over all columns too), spacing, noise model and threshold. A column the data
constrain weakly (cut by the image border, the slow tail at low dose) ends where its last
fit left it, so it ends where it ended in the whole image (``bench/tiles.py``, MoS2 at dose
1: at 768², 2048² and 4096² every column within 0.05 px of the whole image's, see
``bench/results/tiles.md``). Columns come in the whole image's order (the classes' random
subsamples depend on it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import AnalysisError
from . import io as mio
from .columns.detect import (
    ColumnGlobals,
    find_peaks,
    flat_noise,
    measure_column_globals,
    model_columns,
    poisson_noise_bound,
    refine_positions,
    smooth_image,
    starting_width,
    suppress_non_maxima,
)
from .columns.fit import _fit_align, _fit_radius
from .lattice import nearest_neighbour_spacing
from .model import Analysis, AnalysisParams, Columns, Micrograph
from .patches import default_patch_size, extract_patches, resampled_patch
from .pipeline import (
    _MIN_COLUMNS,
    Progress,
    classify_columns,
    environment_window,
    in_field_of_view,
    make_feature_extractor,
    measure_lattice,
    n_invariants,
    own_cross_sections,
    prepare_patches,
    run_on_micrograph,
    whole_patch_columns,
)
from .zernike import rotation_invariants, smallest_zernike_patch, zernike_indices

__all__ = ["TileGrid", "analyze_tiled", "merge_seams"]

@dataclass(frozen=True)
class TileGrid:
    """Square cores that partition an image, each grown by a halo into its tile.

    Attributes
    ----------
    shape : (H, W)
        Image shape (px).
    x_edges, y_edges : ndarray of int
        Core boundaries along x and y: core ``(i, j)`` is ``x_edges[i] <= x < x_edges[i+1]``,
        ``y_edges[j] <= y < y_edges[j+1]`` (the last edge is the image side).
    halo : int
        Overlap (px) before a core (above and to its left); a multiple of the grid's
        alignment, so that tile origins are multiples of it. Tiles are clipped to the image.
    halo_end : int
        Overlap (px) after a core (below and to its right); no alignment needed there.
        Default: ``halo``.

    Examples
    --------
    >>> g = TileGrid.make((100, 240), core_px=120, halo_px=10, align=10)
    >>> g.x_edges.tolist(), g.y_edges.tolist(), len(g)
    ([0, 120, 240], [0, 100], 2)
    >>> g.tile(1)
    (slice(0, 100, None), slice(110, 240, None))
    >>> g.owner(np.array([[119.9, 5.0], [120.0, 5.0]])).tolist()
    [0, 1]
    """

    shape: tuple[int, int]
    x_edges: np.ndarray
    y_edges: np.ndarray
    halo: int
    halo_end: int | None = None

    def __post_init__(self):
        if self.halo_end is None:
            object.__setattr__(self, "halo_end", self.halo)

    @classmethod
    def make(cls, shape, core_px: int, halo_px: int, align: int = 1) -> TileGrid:
        """Cores of at most about ``core_px`` with edges on multiples of ``align``.

        Each side is cut into ``ceil(n / core_px)`` cores of equal length, each inner edge
        moved to the nearest multiple of ``align`` (so cores differ from ``n / count`` by
        at most ``align / 2``). The halo before a core is ``halo_px`` rounded up to a
        multiple of ``align`` (tile origins stay multiples of it), the halo after it is
        ``halo_px``. Rounding the core *size* down to a multiple of ``align`` instead would
        waste up to one ``align`` per core, and add a thin last core, whose tile is mostly
        halo.
        """
        align = max(1, int(align))
        core_px = max(1, int(core_px))
        halo = int(math.ceil(halo_px / align)) * align

        def edges(n: int) -> np.ndarray:
            count = max(1, -(-n // core_px))
            inner = np.rint(np.arange(1, count) * (n / count) / align).astype(np.int64) * align
            e = np.unique(np.r_[0, inner[(inner > 0) & (inner < n)], n])
            return e.astype(np.int64)

        h, w = shape
        return cls((int(h), int(w)), edges(w), edges(h), halo, int(math.ceil(halo_px)))

    def with_halo(self, halo_px: int) -> TileGrid:
        """The same cores with another halo (on both sides, not aligned): a stage whose
        result does not depend on the tile origin (descriptors) needs only its own reach."""
        return dataclasses.replace(self, halo=int(halo_px), halo_end=int(halo_px))

    def __len__(self) -> int:
        return (len(self.x_edges) - 1) * (len(self.y_edges) - 1)

    def _ij(self, k: int) -> tuple[int, int]:
        nx = len(self.x_edges) - 1
        return k % nx, k // nx

    def core(self, k: int) -> tuple[slice, slice]:
        """Rows and columns of core ``k`` (row-major numbering of the cores)."""
        i, j = self._ij(k)
        return (
            slice(int(self.y_edges[j]), int(self.y_edges[j + 1])),
            slice(int(self.x_edges[i]), int(self.x_edges[i + 1])),
        )

    def tile(self, k: int) -> tuple[slice, slice]:
        """Rows and columns of tile ``k`` (its core plus the halo, inside the image)."""
        rows, cols = self.core(k)
        h, w = self.shape
        return (
            slice(max(0, rows.start - self.halo), min(h, rows.stop + self.halo_end)),
            slice(max(0, cols.start - self.halo), min(w, cols.stop + self.halo_end)),
        )

    def owner(self, xy: np.ndarray) -> np.ndarray:
        """Index of the core that holds each position (x, y) in px (outside: the nearest)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        nx = len(self.x_edges) - 1
        i = np.clip(np.searchsorted(self.x_edges, xy[:, 0], side="right") - 1, 0, nx - 1)
        j = np.clip(
            np.searchsorted(self.y_edges, xy[:, 1], side="right") - 1, 0, len(self.y_edges) - 2
        )
        return j * nx + i

    def distance_to_core_edge(self, xy: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Signed distance (px) of each position from the boundary of core ``k`` (positive
        inside); sides on the image border do not count (nothing lies beyond them)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        nx = len(self.x_edges) - 1
        i, j = k % nx, k // nx
        h, w = self.shape
        x0, x1 = self.x_edges[i], self.x_edges[i + 1]
        y0, y1 = self.y_edges[j], self.y_edges[j + 1]
        inf = np.inf
        d = np.stack([
            np.where(x0 > 0, xy[:, 0] - x0, inf),
            np.where(x1 < w, x1 - xy[:, 0], inf),
            np.where(y0 > 0, xy[:, 1] - y0, inf),
            np.where(y1 < h, y1 - xy[:, 1], inf),
        ])
        return d.min(axis=0)


def merge_seams(
    xy: Sequence[np.ndarray], grid: TileGrid, same_px: float
) -> list[np.ndarray]:
    """Which columns of each tile to keep so that every column is kept exactly once.

    Each tile reports its columns in its core and in a thin band around it. A column is
    kept by the tile whose core holds it. Near a seam two tiles may place one column on
    either side of the boundary (their fits agree only to their convergence): columns of
    different tiles closer than ``same_px`` are one column, and of such a group exactly one
    member is kept -- the one whose own tile holds it, the deepest inside its core if there
    are several (a duplicate), or the one nearest its own core if none (a gap).

    Parameters
    ----------
    xy : sequence of ndarray, shape (n_k, 2)
        Positions (x, y) in px, per tile, in image coordinates.
    grid : TileGrid
    same_px : float
        Two columns of different tiles closer than this are one column.

    Returns
    -------
    list of ndarray of bool
        Per tile, which of its columns to keep.

    Examples
    --------
    >>> g = TileGrid.make((10, 20), core_px=10, halo_px=2)
    >>> a = np.array([[5.0, 5.0], [9.99, 5.0], [11.0, 2.0]])   # 9.99 | 10.01: one column
    >>> b = np.array([[10.01, 5.0], [15.0, 5.0], [9.0, 8.0]])  # 9.0 seen by b only
    >>> [k.tolist() for k in merge_seams([a, b], g, 1.0)]
    [[True, True, False], [False, True, False]]
    """
    tile_of = np.concatenate([np.full(len(p), k) for k, p in enumerate(xy)]).astype(np.int64)
    pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in xy])
    owner = grid.owner(pts)
    keep = owner == tile_of
    depth = grid.distance_to_core_edge(pts, tile_of)  # > 0 in its own core
    near = np.flatnonzero(np.abs(depth) < same_px)
    if len(near) > 1:
        pairs = cKDTree(pts[near]).query_pairs(same_px, output_type="ndarray")
        pairs = pairs[tile_of[near[pairs[:, 0]]] != tile_of[near[pairs[:, 1]]]]
        if len(pairs):
            n = len(near)
            graph = _sparse_graph(pairs, n)
            _, group = _components(graph)
            grouped = np.zeros(n, bool)
            grouped[pairs.ravel()] = True
            g_idx = np.flatnonzero(grouped)
            # Score: own-tile members first, then the deepest inside its own core.
            score = np.where(keep[near[g_idx]], 1e9, 0.0) + depth[near[g_idx]]
            order = np.lexsort((-score, group[g_idx]))
            first = np.r_[True, np.diff(group[g_idx][order]) != 0]
            keep[near[g_idx]] = False
            keep[near[g_idx[order[first]]]] = True
    out, start = [], 0
    for p in xy:
        out.append(keep[start : start + len(p)])
        start += len(p)
    return out


def _sparse_graph(pairs: np.ndarray, n: int):
    from scipy.sparse import coo_matrix

    ones = np.ones(len(pairs))
    return coo_matrix((ones, (pairs[:, 0], pairs[:, 1])), shape=(n, n))


def _components(graph):
    from scipy.sparse.csgraph import connected_components

    return connected_components(graph, directed=False)


# ---------------------------------------------------------------------------------------
# Per-tile tasks (module-level functions of plain arrays, so that Dask can ship them).


@dataclass(frozen=True)
class _PeakTask:
    sigma_px: float
    background_radius_px: float
    noise: float
    threshold_sigma: float
    smoothing: float
    period_px: float
    refine: str


def _tile_peaks(tile: np.ndarray, origin: tuple[int, int], core: tuple[int, int, int, int],
                task: _PeakTask) -> dict[str, np.ndarray]:
    """Peaks of one tile above the noise threshold (no relative threshold, no non-maximum
    suppression: both need the whole image), refined, those in the core only."""
    img = np.asarray(tile, dtype=np.float32)
    rc, value, prom = find_peaks(
        img,
        task.sigma_px,
        background_radius_px=task.background_radius_px,
        min_distance_px=0.0,
        noise=task.noise,
        threshold_sigma=task.threshold_sigma,
    )
    r0, c0 = origin
    y0, y1, x0, x1 = core
    g = rc + np.array([r0, c0])
    own = (g[:, 0] >= y0) & (g[:, 0] < y1) & (g[:, 1] >= x0) & (g[:, 1] < x1)
    rc, g, value, prom = rc[own], g[own], value[own], prom[own]
    smooth = smooth_image(img, task.period_px, task.smoothing)
    radius = max(1, int(round(0.15 * task.period_px)))
    method = "com" if task.refine == "model" else task.refine
    xy = refine_positions(smooth, rc, radius=radius, method=method) + np.array([c0, r0])
    return {
        "rc": g,
        "value": value,
        "prominence": prom,
        "xy": xy,
        "intensity": smooth[rc[:, 0], rc[:, 1]].astype(np.float64),
        # The smoothed image at the refined position (the descriptors' intensity scale).
        "peak": ndimage.map_coordinates(
            smooth, [xy[:, 1] - r0, xy[:, 0] - c0], order=1
        ).astype(np.float64),
    }


@dataclass(frozen=True)
class _ModelTask:
    period_px: float
    smoothing: float
    peak_sigma_px: float
    min_distance_px: float
    threshold_sigma: float
    min_relative_prominence: float
    residual_search: bool
    globals: ColumnGlobals
    band_px: float


_COLUMN_FIELDS = (
    "sigma", "height", "background", "cross_section", "cross_section_err", "xy_err",
)


def _origins(out_xy: np.ndarray, start_xy: np.ndarray, max_move: float, index: np.ndarray):
    """Where each fitted column comes from, to restore the whole image's column order.

    :func:`~.columns.detect.model_columns` returns the surviving candidates first, in their
    order, then the columns each residual round added, round by round, each round in
    row-major order of its residual peaks. The longest prefix of the output whose nearest
    candidates (within the fit's largest move) increase is the survivors; in the rest, a
    new round starts where y falls back by more than two moves.

    Returns
    -------
    start : ndarray of int
        Index (in ``index``) of the candidate each column started from; -1 if added.
    rank : ndarray, shape (N, 2)
        For the added columns: residual round and a row-major key (the running maximum of
        y over the round, the tile's own row order); zeros for the others.
    """
    start = np.full(len(out_xy), -1, dtype=np.int64)
    rank = np.zeros((len(out_xy), 2))
    if len(out_xy) == 0 or len(start_xy) == 0:
        return start, rank
    # The fit moves a column at most max_move along x and along y.
    d, j = cKDTree(start_xy).query(out_xy, distance_upper_bound=np.sqrt(2) * max_move + 1e-6)
    good = np.isfinite(d) & np.r_[True, np.diff(j) > 0]
    n = len(j) if good.all() else int(np.argmin(good))
    start[:n] = index[j[:n]]
    if n == len(j):
        return start, rank
    y = out_xy[n:, 1]
    new_round = np.r_[True, np.diff(y) < -(2 * max_move + 1)]
    rounds = np.cumsum(new_round)
    mono = y.copy()
    for r in np.unique(rounds):  # a few rounds
        m = rounds == r
        mono[m] = np.maximum.accumulate(np.rint(y[m]))
    rank[n:, 0], rank[n:, 1] = rounds, mono
    return start, rank


def _tile_model(tile: np.ndarray, origin: tuple[int, int], core: tuple[int, int, int, int],
                xy: np.ndarray, index: np.ndarray, task: _ModelTask) -> dict[str, np.ndarray]:
    """The column model of one tile from its candidates ``xy`` (image coordinates; their
    indices ``index`` in the image's candidate list); the columns in the core grown by
    ``band_px`` (for the seam merge), with the candidate each started from (-1: added by
    the residual search)."""
    img = np.asarray(tile, dtype=np.float32)
    r0, c0 = origin
    shift = np.array([c0, r0], dtype=np.float64)
    smooth = smooth_image(img, task.period_px, task.smoothing)
    cols = model_columns(
        img,
        np.asarray(xy, dtype=np.float64) - shift,
        smooth=smooth,
        peak_sigma_px=task.peak_sigma_px,
        min_distance_px=task.min_distance_px,
        threshold_sigma=task.threshold_sigma,
        min_relative_prominence=task.min_relative_prominence,
        residual_search=task.residual_search,
        fixed=task.globals,
    )
    g = cols.xy + shift
    y0, y1, x0, x1 = core
    b = task.band_px
    sel = (g[:, 0] >= x0 - b) & (g[:, 0] < x1 + b) & (g[:, 1] >= y0 - b) & (g[:, 1] < y1 + b)
    start, rank = _origins(cols.xy, xy - shift, max(1.0, task.globals.sigma), index)
    out = {"xy": g[sel], "intensity": cols.intensity[sel], "origin": start[sel],
           "rank": rank[sel]}
    for name in _COLUMN_FIELDS:
        out[name] = getattr(cols, name)[sel]
    return out


@dataclass(frozen=True)
class _DescribeTask:
    size: int
    step: float
    background: float
    scale: float
    fill: float
    window: np.ndarray
    n_max: int
    zernike: bool
    chunk: int = 4096


def _tile_describe(tile: np.ndarray, origin: tuple[int, int], shape: tuple[int, int],
                   xy: np.ndarray, extractor, task: _DescribeTask) -> dict[str, np.ndarray]:
    """Environment descriptors (and Zernike moments) of the columns ``xy`` (image
    coordinates) from one tile; outside the image the tile is padded with ``task.fill``
    (the whole image's mean), as the whole-image analysis pads the image."""
    r0, c0 = origin
    h, w = shape
    th, tw = tile.shape
    pad = int(np.ceil((task.size // 2) * task.step)) + 2
    # Pad only the sides on the image border: inside the image the halo holds real pixels.
    top, left = pad if r0 == 0 else 0, pad if c0 == 0 else 0
    bottom, right = pad if r0 + th == h else 0, pad if c0 + tw == w else 0
    padded = np.pad(
        np.asarray(tile, dtype=np.float32),
        ((top, bottom), (left, right)),
        mode="constant",
        constant_values=task.fill,
    )
    local = np.asarray(xy, dtype=np.float64) - np.array([c0 - left, r0 - top])
    n = len(local)
    env = np.empty((n, n_invariants(task.n_max) if task.zernike else extractor.n_components))
    moments = np.empty((n, len(zernike_indices(task.n_max)))) if task.zernike else None
    for start in range(0, n, task.chunk):  # chunks of patches bound the memory
        sl = slice(start, min(n, start + task.chunk))
        patches = prepare_patches(
            extract_patches(padded, local[sl], task.size, task.step),
            task.background, task.scale, task.window,
        )
        if moments is not None:
            moments[sl] = extractor.moments(patches)
            env[sl] = rotation_invariants(moments[sl], task.n_max)
        else:
            env[sl] = extractor.transform(patches)
    return {"env": env, "moments": moments}


# ---------------------------------------------------------------------------------------


def _mean_padded_patches(image, xy, size, step, fill, pad):
    """Patches of a few columns (a bounded number: the PCA fit subsample, the class means)
    from the image padded with ``fill``, without padding the whole image."""
    half = int(np.ceil((size // 2) * step)) + 2
    out = np.empty((len(xy), size, size), dtype=np.float32)
    h, w = image.shape
    for k, (x, y) in enumerate(np.asarray(xy, dtype=np.float64)):  # few, bounded
        cx, cy = int(np.floor(x)), int(np.floor(y))
        win = np.full((2 * half + 2, 2 * half + 2), fill, dtype=np.float32)
        ys, xs = cy - half, cx - half
        a0, a1 = max(0, ys), min(h, ys + 2 * half + 2)
        b0, b1 = max(0, xs), min(w, xs + 2 * half + 2)
        if a1 > a0 and b1 > b0:
            win[a0 - ys : a1 - ys, b0 - xs : b1 - xs] = image[a0:a1, b0:b1]
        out[k] = extract_patches(win, np.array([[x - xs, y - ys]]), size, step)[0]
    return out


def column_globals(image: np.ndarray, xy: np.ndarray, task: _ModelTask, period_px: float,
                   align: int) -> ColumnGlobals:
    """The column model's image-wide quantities, measured as :func:`analyze` measures them
    (:func:`~.columns.detect.measure_column_globals`: the whole image, or its central
    ``GLOBALS_PX``² crop, origin a multiple of ``align``)."""
    return measure_column_globals(
        image, xy, align=align,
        peak_sigma_px=task.peak_sigma_px, min_distance_px=task.min_distance_px,
        threshold_sigma=task.threshold_sigma,
        min_relative_prominence=task.min_relative_prominence,
        residual_search=task.residual_search, period_px=period_px,
    )


def _run(client, fn: Callable, args: list[tuple]) -> list:
    """``fn(*a)`` for every ``a``: on the Dask client if given (in order), else in process."""
    if client is None:
        return [fn(*a) for a in args]
    futures = client.map(fn, *zip(*args, strict=True), pure=False)
    return client.gather(futures)


def analyze_tiled(
    micrograph: Micrograph,
    params: AnalysisParams | None = None,
    *,
    tile_px: int = 2048,
    halo_px: int | None = None,
    client=None,
    progress: Progress | None = None,
) -> Analysis:
    """Analyse one (huge) micrograph tile by tile; the same result as :func:`analyze`.

    See the module docstring for the stages. Memory per tile is a few tile-sized arrays;
    the driver holds the image, the columns and their descriptors.

    Parameters
    ----------
    micrograph : Micrograph or signal
        As in :func:`~motifcat.ingest.pipeline.analyze`.
    params : AnalysisParams, optional
    tile_px : int
        Side of a tile's *core* (px); the tiles partition the image into cores and each
        tile adds the halo on every side.
    halo_px : int, optional
        Overlap on each side (px). Default: one patch plus the column fit's reach (the
        background map's smoothing, four times its scale, plus a window), at least 64 px.
    client : distributed.Client, optional
        Run the tiles on this Dask client (``client.map``); default: serially, in process.
    progress : callable, optional
        ``progress(stage, fraction)``.

    Returns
    -------
    Analysis
        Columns in the whole image's order (see :func:`_origins`).

    Raises
    ------
    InvalidImageError, AnalysisError
        As :func:`analyze`.

    Examples
    --------
    >>> from motifcat.datasets import make_tmd
    >>> from motifcat.ingest import analyze
    >>> mg = make_tmd((192, 192), seed=2, pixel_size_A=0.3).micrograph()
    >>> p = AnalysisParams(hierarchy=False)
    >>> tiled = analyze_tiled(mg, p, tile_px=96, halo_px=40)  # 2 x 2 tiles
    >>> whole = analyze(mg, p)
    >>> len(tiled.columns) == len(whole.columns)
    True
    >>> bool(np.abs(tiled.columns.xy - whole.columns.xy).max() < 0.05)
    True
    """
    return run_on_micrograph(
        micrograph,
        params,
        lambda m: _analyze_tiled(m, params, tile_px, halo_px, client, progress),
    )


def _analyze_tiled(micrograph, params, tile_px, halo_px, client, progress) -> Analysis:
    params = params or AnalysisParams()
    report = progress or (lambda stage, fraction: None)
    if not isinstance(micrograph, Micrograph):
        raise AnalysisError(f"analyze_tiled expects a Micrograph, got {type(micrograph).__name__}")
    if not (isinstance(tile_px, (int, np.integer)) and tile_px >= 16):
        raise AnalysisError(f"tile_px must be an integer >= 16, got {tile_px!r}")
    name = micrograph.path or "<array>"
    image = micrograph.data
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape

    # 1. Global quantities.
    report("lattice", 0.0)
    period = measure_lattice(micrograph, params)
    mio.check_size(micrograph, period)
    sigma_s = max(0.5, params.smoothing * period)
    min_distance = max(1.0, params.min_distance_factor * period)
    noise = min(flat_noise(img), poisson_noise_bound(image))  # as detect_columns
    size = params.patch_size or default_patch_size(period)
    if size % 2 == 0 or size < 5:
        raise AnalysisError(f"patch_size must be odd and >= 5, got {size}")
    step = 1.0
    if params.patch_size is None and params.features == "zernike":
        size, step = resampled_patch(size, smallest_zernike_patch(params.n_max))
    patch_px = int(np.ceil((size // 2) * step)) + 3

    # Peaks: the halo covers the peak filter, the local background and the refinement.
    bg_radius = max(2.0, period)
    peak_halo = int(np.ceil(4 * sigma_s)) + int(bg_radius) + int(4 * sigma_s + 1) + 4
    grid = TileGrid.make((h, w), tile_px, halo_px or peak_halo)
    if grid.halo < peak_halo:
        raise AnalysisError(f"halo_px must be at least {peak_halo} px, got {halo_px}")

    def tile_args(k, *extra):
        rows, cols = grid.tile(k)
        crows, ccols = grid.core(k)
        core = (crows.start, crows.stop, ccols.start, ccols.stop)
        return (img[rows, cols], (rows.start, cols.start), core, *extra)

    report("columns", 0.05)
    task = _PeakTask(sigma_s, bg_radius, noise, params.threshold_sigma, params.smoothing,
                     period, params.refine)
    parts = _run(client, _tile_peaks, [tile_args(k, task) for k in range(len(grid))])
    peaks = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    # Row-major, as the whole image's peak search returns them (ties keep that order).
    order = np.lexsort((peaks["rc"][:, 1], peaks["rc"][:, 0]))
    peaks = {key: v[order] for key, v in peaks.items()}
    prom = peaks["prominence"]
    if len(prom) == 0:
        raise AnalysisError(
            "no column rises above the noise (threshold "
            f"{params.threshold_sigma:g} sigma above the local background)"
        )
    keep = np.ones(len(prom), bool)
    if params.min_relative_prominence > 0:
        keep &= prom > params.min_relative_prominence * float(np.median(prom))
    keep[keep] = suppress_non_maxima(
        peaks["rc"][keep].astype(np.float64), peaks["value"][keep], min_distance
    )
    xy0 = peaks["xy"][keep]

    report("columns", 0.15)
    if params.refine == "model":
        if len(xy0) < 2:
            raise AnalysisError("need at least two columns to fit the column model")
        spacing0 = nearest_neighbour_spacing(xy0)
        # The fit's reach: its window, and the background map smoothed at 3 windows' radius
        # (truncated at 4 sigma) twice per sweep; one patch for the descriptors on top.
        # The image-wide quantities of the column model, measured once (the batching of
        # the measurement aligned for the starting width, a sixth of the period).
        mtask = _ModelTask(period, params.smoothing, sigma_s, min_distance,
                           params.threshold_sigma, params.min_relative_prominence,
                           params.residual_search, None, 0.0)
        glob = column_globals(img, xy0, mtask, period, _fit_align(starting_width(period)))
        width = glob.sigma
        align = _fit_align(width)
        radius = _fit_radius(width)
        fit_reach = 2 * (4 * 3 * radius) + 2 * radius + 1
        resid_halo = int(np.ceil(4 * sigma_s)) + int(max(2.0, 2.0 * spacing0)) + 4
        # The descriptors have their own halo (one patch, below), so the fit's need not
        # hold a patch on top of its reach.
        halo = halo_px or max(64, fit_reach, resid_halo, peak_halo)
        grid = TileGrid.make((h, w), tile_px, halo, align)
        if grid.halo_end < max(peak_halo, resid_halo, patch_px):
            raise AnalysisError(
                f"halo_px must be at least {max(peak_halo, resid_halo, patch_px)} px"
            )
        # Distinct columns stay max(0.5, width) apart (the model selection's suppression).
        band = max(0.5, width)
        mtask = dataclasses.replace(mtask, globals=glob, band_px=band)
        args = []
        for k in range(len(grid)):
            rows, cols = grid.tile(k)
            inside = ((xy0[:, 0] >= cols.start) & (xy0[:, 0] < cols.stop)
                      & (xy0[:, 1] >= rows.start) & (xy0[:, 1] < rows.stop))
            args.append(tile_args(k, xy0[inside], np.flatnonzero(inside), mtask))
        parts = _run(client, _tile_model, args)
        kept = merge_seams([p["xy"] for p in parts], grid, band)
        fields = {
            key: np.concatenate([p[key][m] for p, m in zip(parts, kept, strict=True)])
            for key in parts[0]
        }
        # The whole image's order (the classes' random subsamples depend on it): the
        # surviving candidates in candidate order, then the residual search's additions
        # round by round, each round row-major (see _origins).
        start, rank = fields.pop("origin"), fields.pop("rank")
        order = np.lexsort((fields["xy"][:, 0], rank[:, 1], rank[:, 0], start, start < 0))
        fields = {key: v[order] for key, v in fields.items()}
        columns = Columns(**fields)
        columns = in_field_of_view(columns, (h, w))  # as analyze
    else:
        if halo_px is None:
            grid = TileGrid.make((h, w), tile_px, max(64, patch_px, peak_halo))
        order = np.lexsort((xy0[:, 0], np.floor(xy0[:, 1])))
        columns = Columns(xy=xy0[order], intensity=peaks["intensity"][keep][order])
        peak = peaks["peak"][keep][order]
    if len(columns) < _MIN_COLUMNS:
        raise AnalysisError(f"{name}: only {len(columns)} atom columns found; need {_MIN_COLUMNS}")

    # 5. Descriptors, with the image-wide scales (see pipeline.image_intensity_scale).
    spacing = params.spacing_px or nearest_neighbour_spacing(columns.xy)
    has_patch, inner = whole_patch_columns(columns, (h, w), size, step, name)
    report("features", 0.3)
    extractor = make_feature_extractor(params)
    offset = float(img.mean(dtype=np.float64))
    background = offset
    if columns.cross_section is not None:
        peak = columns.intensity  # the smoothed image at the fitted position
    scale = float(peak[inner].mean(dtype=np.float64)) - offset
    if not scale > 0:
        raise AnalysisError(
            f"columns are not brighter than the image mean (mean column {scale + offset:g}, "
            f"image mean {offset:g}); cannot scale the descriptors"
        )
    if columns.sigma is not None:
        # As analyze: heights refitted with one common width (pipeline.own_cross_sections).
        # It is linear and chunked, so it runs on the whole image here, exactly as there.
        own = own_cross_sections(columns, None, background, img)
    else:
        own = peak - background
        if not (np.isfinite(own).all() and own.mean() > 0):
            raise AnalysisError("column cross-sections are not finite and positive on average")
        own = own / own.mean()
    if params.intensity_scale != "image":
        background, scale = 0.0, 1.0
    window = environment_window(params, size, spacing, step)
    pad = int(np.ceil((size // 2) * step)) + 2
    rng = np.random.default_rng(params.random_state)
    n_fit = min(len(inner), 3000) if params.features == "pca" else 1
    fit_idx = np.sort(rng.choice(inner, n_fit, replace=False))
    extractor.fit(prepare_patches(
        _mean_padded_patches(img, columns.xy[fit_idx], size, step, offset, pad),
        background, scale, window,
    ))
    zernike = params.features == "zernike"
    dtask = _DescribeTask(size, step, background, scale, offset, window, params.n_max, zernike)
    # A patch is all a column's descriptors read: the cores' tiles grown by one patch only.
    grid = grid.with_halo(patch_px)
    owner = grid.owner(columns.xy)
    members = [np.flatnonzero(owner == k) for k in range(len(grid))]
    args = []
    for k in range(len(grid)):
        rows, cols = grid.tile(k)
        args.append((img[rows, cols], (rows.start, cols.start), (h, w),
                     columns.xy[members[k]], extractor, dtask))
    parts = _run(client, _tile_describe, args)
    n_env = parts[0]["env"].shape[1]
    features = np.empty((len(columns), 1 + n_env), dtype=np.float64)
    features[:, 0] = own
    moments = np.empty((len(columns), len(zernike_indices(params.n_max)))) if zernike else None
    for idx, part in zip(members, parts, strict=True):
        features[idx, 1:] = part["env"]
        if moments is not None:
            moments[idx] = part["moments"]
    del parts, args

    result = classify_columns(
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
        patches=lambda idx: _mean_padded_patches(img, columns.xy[idx], size, 1.0, offset, pad),
        progress=report,
    )
    return result
