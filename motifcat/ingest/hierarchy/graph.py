"""The column neighbour graph: a pruned Delaunay triangulation with interior columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay, QhullError, cKDTree

from ...errors import AnalysisError

# ---------------------------------------------------------------------------------------------
# Neighbour graph
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NeighbourGraph:
    """The pruned Delaunay graph of the columns.

    Attributes
    ----------
    pairs : ndarray of int, shape (E, 2)
        Kept column pairs (i < j): ring edges and spokes of interior columns.
    dist_px : ndarray of float, shape (E,)
        Their lengths in pixels.
    ring_pairs : ndarray of int, shape (R, 2)
        The ring edges alone (between non-interior columns): the plane graph whose faces are
        the level-2 units.
    interior : ndarray of bool, shape (N,)
        Columns found inside a ring of neighbours (centres of filled polygons).
    ring_triangles : ndarray of int, shape (T, 3)
        Delaunay triangles of the non-interior columns (column indices, counter-clockwise):
        every face of the ring graph is a union of them.
    ring_triangle_neighbours : ndarray of int, shape (T, 3)
        Triangle across the edge opposite each corner (-1 on the hull).
    interior_triangle : ndarray of int, shape (N,)
        For each interior column, the ring triangle that contains it (-1 otherwise).
    """

    pairs: np.ndarray
    dist_px: np.ndarray
    ring_pairs: np.ndarray
    interior: np.ndarray
    ring_triangles: np.ndarray
    ring_triangle_neighbours: np.ndarray
    interior_triangle: np.ndarray


def _empty_graph(n: int) -> NeighbourGraph:
    e = np.zeros((0, 2), dtype=np.int64)
    t = np.zeros((0, 3), dtype=np.int64)
    return NeighbourGraph(e, np.zeros(0), e, np.zeros(n, dtype=bool), t, t,
                          np.full(n, -1, dtype=np.int64))


def _check_xy(xy) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise AnalysisError(f"column positions xy must have shape (N, 2), got {xy.shape}")
    if not np.all(np.isfinite(xy)):
        raise AnalysisError("column positions xy contain NaN or Inf")
    return xy


@dataclass(frozen=True, eq=False)
class _Triangulation:
    """Delaunay triangles (counter-clockwise) with their edge roles and geometry."""

    simp: np.ndarray  # (T, 3) point indices
    neighbours: np.ndarray  # (T, 3) triangle opposite each corner, -1 on the hull
    edges: np.ndarray  # (E, 2) i < j
    length: np.ndarray  # (E,)
    edge_of_role: np.ndarray  # (3T,) edge of role k = the edge opposite corner k
    role_len: np.ndarray  # (T, 3)
    angle: np.ndarray  # (T, 3) angle at corner k (deg)
    on_hull: np.ndarray  # (N,) bool
    delaunay: Delaunay


def _triangulate(xy: np.ndarray) -> _Triangulation | None:
    n = len(xy)
    if n < 3:
        return None
    try:
        tri = Delaunay(xy)
    except QhullError:  # all points on one line: no polygons
        return None
    simp = tri.simplices.astype(np.int64)
    nbr = tri.neighbors.astype(np.int64)
    # Make every triangle counter-clockwise in (x, y) so that faces and fans have one sense.
    p = xy[simp]
    cw = _cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]) < 0
    simp[cw] = simp[cw][:, [0, 2, 1]]
    nbr[cw] = nbr[cw][:, [0, 2, 1]]
    p = xy[simp]
    a, b = simp[:, [1, 2, 0]].ravel(), simp[:, [2, 0, 1]].ravel()
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    uniq, edge_of_role = np.unique(lo * n + hi, return_inverse=True)
    edges = np.stack([uniq // n, uniq % n], axis=1)
    length = np.linalg.norm(xy[edges[:, 0]] - xy[edges[:, 1]], axis=1)
    role_len = length[edge_of_role.ravel()].reshape(-1, 3)
    u = p[:, [1, 2, 0]] - p
    v = p[:, [2, 0, 1]] - p
    angle = np.degrees(np.arctan2(np.abs(_cross(u, v)), np.einsum("tki,tki->tk", u, v)))
    on_hull = np.zeros(n, dtype=bool)
    on_hull[tri.convex_hull.ravel()] = True
    return _Triangulation(simp, nbr, edges, length, edge_of_role.ravel(), role_len, angle,
                          on_hull, tri)


def neighbour_graph(
    xy: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    spacing_px: float | None = None,
    max_edge_factor: float = 1.45,
    diagonal_angle_deg: float = 80.0,
    diagonal_sum_deg: float = 140.0,
    fan_ratio: float = 0.95,
    fan_max_angle_deg: float = 85.0,
    fan_class_fraction: float = 0.5,
) -> NeighbourGraph:
    """Neighbour graph of atom columns: pruned Delaunay triangulation with interior columns.

    1. *Interior columns.* In the Delaunay triangulation of all columns, a column passes the
       fan test when it is not on the hull, its mean spoke is shorter than ``fan_ratio`` × the
       mean edge of the ring of its neighbours, every ring edge is at most ``max_edge_factor``
       × the longer spoke of its triangle and is seen from the column under less than
       ``fan_max_angle_deg`` (the centre of a pentagon sees its edges at ~72 deg; a lattice
       vertex sees the ring of its own neighbours at >= 90 deg, e.g. 120 deg in a honeycomb).
       With ``labels``, interior columns are the columns (off the hull, with a mean spoke
       shorter than the mean ring edge) of the level-1 classes in which at least
       ``fan_class_fraction`` of the columns pass the test: one noisy fan does not make an
       interior column, one distorted filled pentagon does not lose its centre. Without
       labels, the columns that pass and beat every passing neighbour are interior.
    2. *Ring graph.* The other columns are triangulated again (so that two neighbouring
       centres never hide the edge between their polygons). An edge is kept when it is not
       longer than ``max_edge_factor`` × the larger nearest-neighbour distance of its two ends
       (drops the edges across vacancies and along the hull), no column of its two triangles
       sees it under ``diagonal_angle_deg`` or more and the two columns together see it under
       less than ``diagonal_sum_deg`` (the Delaunay in-circle angle: 180 deg when the four
       columns are on one circle). This drops the diagonals of empty polygons, seen at
       >= 90 deg from the vertex they cut off and at ~160 deg from both sides in a Cairo
       pentagon, whatever their length, while a bond of a lattice polygon is seen at <= ~60 deg
       from either side and <= ~120 deg from both (measured on noisy honeycomb and Cairo
       positions, 99.9th percentiles).
    3. *Spokes*: the Delaunay edges from each interior column that are at most
       ``max_edge_factor`` × its shortest one.

    A centre of a square is never an interior column (it is seen at 90 deg, exactly like a
    4-valent lattice vertex, e.g. of the Cairo tiling); nor is the centre of a hexagon (a
    filled hexagon is a triangular lattice).

    Parameters
    ----------
    xy : ndarray, shape (N, 2)
        Column positions (x, y) in pixels.
    labels : ndarray of int, shape (N,), optional
        Level-1 classes (-1 = unknown, never interior).
    spacing_px : float, optional
        Typical nearest-neighbour spacing (pixels). When given, each column's own
        nearest-neighbour distance is clipped to [0.5, 2] × ``spacing_px`` before use.
    max_edge_factor : float
        Edge-length pruning factor; 1.45 keeps every bond of a honeycomb, square or Cairo
        lattice and drops next-nearest neighbours of a honeycomb (× 1.73).
    diagonal_angle_deg : float
        Ring edges seen under this angle (degrees) or more from a neighbouring column go.
    diagonal_sum_deg : float
        Ring edges seen under this summed angle (degrees) or more from both sides go.
    fan_ratio, fan_max_angle_deg, fan_class_fraction : float
        Fan test thresholds, see above.

    Returns
    -------
    NeighbourGraph

    Raises
    ------
    AnalysisError
        If ``xy`` is not an (N, 2) array of finite numbers or a parameter is out of range.

    Examples
    --------
    A regular pentagon with a column at its centre, inside a ring of ten more columns: the
    centre is an interior column and the pentagon's five sides are ring edges.

    >>> t = np.arange(5) * 2 * np.pi / 5
    >>> pent = 10 * np.stack([np.cos(t), np.sin(t)], 1)
    >>> outer = 17 * np.stack([np.cos(t + np.pi / 5), np.sin(t + np.pi / 5)], 1)
    >>> xy = np.concatenate([pent, outer, 1.9 * pent, [[0.0, 0.0]]])
    >>> g = neighbour_graph(xy)
    >>> np.flatnonzero(g.interior).tolist()
    [15]
    >>> sorted(map(tuple, g.ring_pairs[(g.ring_pairs < 5).all(1)].tolist()))
    [(0, 1), (0, 4), (1, 2), (2, 3), (3, 4)]
    """
    xy = _check_xy(xy)
    if not (np.isfinite(max_edge_factor) and max_edge_factor >= 1.0):
        raise AnalysisError(f"max_edge_factor must be >= 1, got {max_edge_factor!r}")
    if not (0.0 < diagonal_angle_deg <= 180.0):
        raise AnalysisError(f"diagonal_angle_deg must be in (0, 180], got {diagonal_angle_deg!r}")
    if spacing_px is not None and not (np.isfinite(spacing_px) and spacing_px > 0):
        raise AnalysisError(f"spacing_px must be a positive number of pixels, got {spacing_px!r}")
    n = len(xy)
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (n,):
            raise AnalysisError(f"labels must have shape ({n},), got {labels.shape}")
    t1 = _triangulate(xy)
    if t1 is None:
        return _empty_graph(n)

    # ---- 1. interior columns
    corner = t1.simp.ravel()
    rl = t1.role_len
    rim_sum = np.bincount(corner, weights=rl.ravel(), minlength=n)
    # The two spokes of corner k are the edges of roles k+1 and k+2; every spoke of a fan lies
    # in two of its triangles, hence the factor 1/2.
    spoke1, spoke2 = rl[:, [1, 2, 0]], rl[:, [2, 0, 1]]
    spoke_sum = 0.5 * np.bincount(corner, weights=(spoke1 + spoke2).ravel(), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = spoke_sum / rim_sum
    bad_tri = (rl > max_edge_factor * np.maximum(spoke1, spoke2)) | (
        t1.angle >= fan_max_angle_deg)
    n_bad = np.bincount(corner, weights=bad_tri.ravel().astype(float), minlength=n)
    off_hull = ~t1.on_hull & np.isfinite(ratio)
    passes = off_hull & (ratio < fan_ratio) & (n_bad == 0)
    if labels is not None:
        known = off_hull & (labels >= 0)
        n_cls = int(labels.max(initial=-1)) + 1
        tot = np.bincount(labels[known], minlength=n_cls)
        hit = np.bincount(labels[known & passes], minlength=n_cls)
        fan_class = np.append((hit >= 3) & (hit >= fan_class_fraction * np.maximum(tot, 1)), False)
        interior = known & fan_class[labels] & (ratio < 1.0)  # label -1 -> the appended False
    else:
        e1 = t1.edges
        both = passes[e1[:, 0]] & passes[e1[:, 1]]
        ea, eb = e1[both, 0], e1[both, 1]
        a_loses = (ratio[ea] > ratio[eb]) | ((ratio[ea] == ratio[eb]) & (ea > eb))
        beaten = np.zeros(n, dtype=bool)
        beaten[np.where(a_loses, ea, eb)] = True
        interior = passes & ~beaten

    # ---- 3. spokes (from the first triangulation)
    e1 = t1.edges
    touch = interior[e1[:, 0]] | interior[e1[:, 1]]
    shortest = np.full(n, np.inf)
    np.minimum.at(shortest, e1[touch].ravel(), np.repeat(t1.length[touch], 2))
    own = np.where(interior[e1[:, 0]], shortest[e1[:, 0]], shortest[e1[:, 1]])
    spoke = touch & ~(interior[e1[:, 0]] & interior[e1[:, 1]]) & (
        t1.length <= max_edge_factor * own)

    # ---- 2. ring graph on the other columns
    ring_idx = np.flatnonzero(~interior)
    t2 = _triangulate(xy[ring_idx]) if len(ring_idx) < n else t1
    where = np.full(n, -1, dtype=np.int64)
    if t2 is None:
        ring_pairs = np.zeros((0, 2), dtype=np.int64)
        ring_len = np.zeros(0)
        tris = np.zeros((0, 3), dtype=np.int64)
        tri_nb = tris
    else:
        nn = np.full(len(ring_idx), np.inf)
        np.minimum.at(nn, t2.edges.ravel(), np.repeat(t2.length, 2))
        if spacing_px is not None:
            nn = np.clip(nn, 0.5 * spacing_px, 2.0 * spacing_px)
        scale = np.maximum(nn[t2.edges[:, 0]], nn[t2.edges[:, 1]])
        keep = t2.length <= max_edge_factor * scale
        seen = np.zeros(len(t2.edges))
        np.maximum.at(seen, t2.edge_of_role, t2.angle.ravel())
        both = np.bincount(t2.edge_of_role, weights=t2.angle.ravel(), minlength=len(seen))
        inner = np.bincount(t2.edge_of_role, minlength=len(seen)) == 2
        keep &= (seen < diagonal_angle_deg) & ~(inner & (both >= diagonal_sum_deg))
        ring_pairs = ring_idx[t2.edges[keep]]
        ring_len = t2.length[keep]
        tris = ring_idx[t2.simp]
        tri_nb = t2.neighbours
        ic = np.flatnonzero(interior)
        if len(ic):
            where[ic] = _locate(xy[ic], xy[tris], t2.delaunay)
    pairs = np.concatenate([ring_pairs, e1[spoke]])
    dist = np.concatenate([ring_len, t1.length[spoke]])
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return NeighbourGraph(
        pairs=pairs[order],
        dist_px=dist[order],
        ring_pairs=ring_pairs,
        interior=interior,
        ring_triangles=tris,
        ring_triangle_neighbours=tri_nb,
        interior_triangle=where,
    )


def _locate(points: np.ndarray, tri_xy: np.ndarray, delaunay: Delaunay, k: int = 12):
    """Index of the triangle (T, 3, 2) containing each point (M, 2); -1 outside.

    Tests the ``k`` triangles with the nearest centroids (vectorised barycentric signs);
    ``Delaunay.find_simplex`` is the fallback only, since its first call computes transforms
    for every triangle (seconds for 10^4 columns).
    """
    cent = tri_xy.mean(axis=1)
    k = min(k, len(cent))
    _, cand = cKDTree(cent).query(points, k=k)
    cand = cand.reshape(len(points), k)
    a, b, c = (tri_xy[cand, i] for i in range(3))
    p = points[:, None, :]
    tol = -1e-9 * np.abs(_cross(b - a, c - a))  # on an edge counts as inside
    inside = ((_cross(b - a, p - a) >= tol) & (_cross(c - b, p - b) >= tol)
              & (_cross(a - c, p - c) >= tol))
    found = inside.any(axis=1)
    out = np.where(found, cand[np.arange(len(points)), inside.argmax(axis=1)], -1)
    if not found.all():
        out[~found] = delaunay.find_simplex(points[~found])
    return out.astype(np.int64)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
