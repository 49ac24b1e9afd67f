"""The motif hierarchy: column neighbour graph, level-2 units and level-3 composites.

Level 1 are the atom-column classes. Above them (Dan et al., Sci. Adv. 8, eabk1005, 2022, Fig. 2):

* **Neighbour graph.** Delaunay triangulation of the columns (``scipy.spatial.Delaunay``). First
  the *interior columns* are found: columns whose Delaunay neighbours surround them as one ring
  longer than their spokes and seen under < 85 deg per edge (the centre of a filled pentagon),
  decided per level-1 class (a class is interior when most of its columns pass). The other
  columns are triangulated again; an edge is kept when it is not longer than
  ``max_edge_factor`` times the larger nearest-neighbour distance of its two ends (drops the
  edges across vacancies and along the hull) and when the columns of its two triangles do not
  see it under a large angle (drops the diagonals of empty polygons, whatever their length).
  ``Hierarchy.neighbour_pairs`` holds these edges plus the spokes of the interior columns.
  See :func:`neighbour_graph` for the thresholds and what they were measured on.
* **Level 2 — units** are the bounded faces of the plane graph of the non-interior columns,
  found by walking darts (the face to the left of ``u -> v`` continues with the edge out of
  ``v`` just clockwise of ``v -> u``). An interior column is attached to the face around it
  ("filled" unit). A face counts only if it is complete: simple, at most ``max_unit_size``
  vertices, no edge on the outer boundary of the graph (which also drops the units cut by the
  image border), and every vertex and interior column has a level-1 label (label -1, a border
  column without a patch, makes a unit incomplete: it is skipped, never keyed with "?").
  Key: ``"n[a,b,...](c)"``: polygon size, the dihedral-canonical cycle of vertex names
  (smallest over all rotations and both directions), the sorted interior names if filled.
* **Level 3 — composites** are groups of units (see :func:`build_hierarchy` for the three
  kinds: vertex stars, defect neighbourhoods, clusters), keyed by an exact canonical form:
  the dihedral-canonical cycle of unit keys around a column for stars, the canonical
  breadth-first code of the labelled plane graph of units for the others.

Every class has ``composed_of`` (lower-level label -> multiplicity), a prototype (mean aligned
column positions relative to the instance centre, px, with level-1 labels) and, when an image
is given, ``mean_image`` (average of up to ``max_average`` crops rotated/mirrored into the
canonical frame). :func:`relabel` recomputes all keys from the stored structure when the
level-1 classes get other names (the catalog's global ids) and merges classes that coincide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import sparse
from scipy.ndimage import map_coordinates
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay, QhullError, cKDTree

from ...errors import AnalysisError
from ..canonical import (
    candidate_order,
    check_names,
    code_text,
    cycle_key,
    default_names,
    dihedral_canonical,
    plane_graph_code,
)
from ..model import Hierarchy, Level, MotifClass

#: Kinds of level-3 composites (``HierarchyStructure``/``Level.instance_class`` order).
STAR, NEIGHBOURHOOD, CLUSTER = 0, 1, 2
_KIND_PREFIX = {STAR: "S", NEIGHBOURHOOD: "N", CLUSTER: "C"}


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


# ---------------------------------------------------------------------------------------------
# Faces of the plane graph
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PlanarFaces:
    """Faces of a plane straight-line graph, from its darts.

    Attributes
    ----------
    src, dst : ndarray of int, shape (D,)
        Dart d runs from column ``src[d]`` to ``dst[d]``; D = 2 × edges; the twin of d is
        ``(d + D/2) % D``.
    face : ndarray of int, shape (D,)
        The face to the left of each dart.
    next : ndarray of int, shape (D,)
        The next dart along the same face (counter-clockwise around bounded faces).
    area : ndarray of float, shape (F,)
        Signed area of each face walk (px²): > 0 for bounded faces, <= 0 for the outer
        boundary of each connected component.
    size : ndarray of int, shape (F,)
        Number of darts of each face.
    first : ndarray of int, shape (F,)
        Smallest dart of each face (where its walk starts).
    out_order : ndarray of int, shape (D,)
        Darts sorted by source column, then counter-clockwise by angle.
    out_start : ndarray of int, shape (N,)
        Where each column's darts start in ``out_order`` (``np.bincount(src)`` gives counts).
    """

    src: np.ndarray
    dst: np.ndarray
    face: np.ndarray
    next: np.ndarray
    area: np.ndarray
    size: np.ndarray
    first: np.ndarray
    out_order: np.ndarray
    out_start: np.ndarray

    @property
    def twin(self) -> np.ndarray:
        d = len(self.src)
        return (np.arange(d) + d // 2) % max(d, 1)

    def walk(self, faces: np.ndarray, length: int) -> np.ndarray:
        """Darts of ``faces`` (all of size ``length``) in walk order, shape (len(faces), length)."""
        cur = self.first[faces]
        out = np.empty((len(faces), length), dtype=np.int64)
        for t in range(length):  # loop over positions along the face, vectorised over faces
            out[:, t] = cur
            cur = self.next[cur]
        return out


def planar_faces(xy: np.ndarray, pairs: np.ndarray) -> PlanarFaces:
    """Faces of the plane graph drawn with straight edges ``pairs`` between points ``xy``.

    Each column's neighbours are sorted by angle; the face to the left of dart ``u -> v``
    continues with the dart out of ``v`` just clockwise of ``v -> u``. The faces are the cycles
    of that permutation of darts (connected components of a sparse graph: no Python loop).

    Parameters
    ----------
    xy : ndarray, shape (N, 2)
        Vertex positions (px).
    pairs : ndarray of int, shape (E, 2)
        Edges; the graph must be plane (no crossing edges), e.g. a subgraph of a Delaunay
        triangulation.

    Returns
    -------
    PlanarFaces

    Examples
    --------
    Two squares sharing an edge: two bounded faces of area 1 and the outer face.

    >>> xy = np.array([[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]], dtype=float)
    >>> f = planar_faces(xy, np.array([[0, 1], [1, 2], [0, 3], [1, 4], [2, 5], [3, 4], [4, 5]]))
    >>> sorted(f.area.tolist())
    [-2.0, 1.0, 1.0]
    """
    xy = np.asarray(xy, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    n = len(xy)
    e = len(pairs)
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    d = 2 * e
    twin = (np.arange(d) + e) % max(d, 1)
    vec = xy[dst] - xy[src]
    ang = np.arctan2(vec[:, 1], vec[:, 0])
    order = np.lexsort((ang, src))
    pos = np.empty(d, dtype=np.int64)
    pos[order] = np.arange(d)
    deg = np.bincount(src, minlength=n)
    start = np.concatenate([[0], np.cumsum(deg)[:-1]]).astype(np.int64)
    v = dst
    rank = pos[twin] - start[v]
    nxt = order[start[v] + (rank - 1) % np.maximum(deg[v], 1)] if d else np.zeros(0, np.int64)
    graph = sparse.coo_matrix((np.ones(d), (np.arange(d), nxt)), shape=(d, d))
    n_face, face = connected_components(graph, directed=True, connection="strong")
    if d == 0:
        n_face, face = 0, np.zeros(0, dtype=np.int64)
    size = np.bincount(face, minlength=n_face)
    area = 0.5 * np.bincount(face, weights=_cross(xy[src], xy[dst]), minlength=n_face)
    first = np.full(n_face, d, dtype=np.int64)
    np.minimum.at(first, face, np.arange(d))
    return PlanarFaces(src, dst, face.astype(np.int64), nxt, area, size, first, order, start)


# ---------------------------------------------------------------------------------------------
# Structure (geometry only) and classification (names -> keys -> classes)
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class HierarchyStructure:
    """Geometry of the hierarchy, independent of level-1 names (what ``relabel`` reuses).

    Units (level-2 instances) are stored as CSR lists: ``ring`` holds the vertex cycle of each
    unit counter-clockwise in (x, y), ``ring_across`` the unit on the other side of each edge
    ``ring[t] -> ring[t+1]`` (-1 when that side is not a complete unit) and ``interior`` the
    interior columns. Stars are the units around one column, counter-clockwise.
    """

    xy: np.ndarray
    labels: np.ndarray
    image: np.ndarray | None
    spacing_px: float
    ring_indptr: np.ndarray
    ring: np.ndarray
    ring_across: np.ndarray
    interior_indptr: np.ndarray
    interior: np.ndarray
    star_centre: np.ndarray
    star_indptr: np.ndarray
    star_units: np.ndarray
    params: dict = field(default_factory=dict)
    #: Level-1 names the classes of the hierarchy holding this structure were keyed with
    #: (``relabel`` takes its fast path only when these and the new names are distinct).
    names: list[str] | None = None

    @property
    def n_units(self) -> int:
        return len(self.ring_indptr) - 1


def build_hierarchy(
    xy: np.ndarray,
    labels: np.ndarray,
    *,
    spacing_px: float | None = None,
    max_edge_factor: float = 1.45,
    label_names: Sequence[str] | None = None,
    majority_filter: bool = False,
    image: np.ndarray | None = None,
    diagonal_angle_deg: float = 80.0,
    fan_ratio: float = 0.95,
    max_unit_size: int = 24,
    star_min_valence: int = 3,
    defect_majority: float = 0.75,
    max_composite_units: int = 16,
    max_average: int = 200,
) -> Hierarchy:
    """Levels 2 (units) and 3 (composites) of the motif hierarchy over level-1 columns.

    Level-3 composites are of three kinds, each keyed with its own prefix:

    * ``"S<c>{...}"`` **star** of column ``c``: the units around a column of valence
      ``>= star_min_valence`` whose units are all complete, e.g. the four pentagons around a
      4-valent vertex of a Cairo tiling; key = centre name + dihedral-canonical cycle of the
      unit keys. Formed unless ``majority_filter``.
    * ``"N{...}"`` **defect neighbourhood**: a unit not of the dominant (most frequent) unit
      class with all its edge-sharing neighbour units, when the dominant class holds at least
      ``defect_majority`` of all units (a lattice with defects, e.g. a vacancy in a TMD).
      Formed unless ``majority_filter``.
    * ``"C{...}"`` **cluster** (only with ``majority_filter``, the paper's majority filter): the
      dominant unit class is set aside and every edge-connected group of the remaining units
      (at most ``max_composite_units``, none touching an incomplete unit) is a composite.
      Level-2 counts always include the dominant class.

    Neighbourhoods and clusters are keyed by the exact canonical code of their plane graph
    (units labelled by their keys, joined across shared edges, with the embedding).

    Parameters
    ----------
    xy : ndarray, shape (N, 2)
        Column positions (x, y) in pixels.
    labels : ndarray of int, shape (N,)
        Level-1 class of each column; -1 = unknown (a border column without a patch: it is a
        vertex of the graph, but no unit or star containing it is kept).
    spacing_px : float, optional
        Nearest-neighbour column spacing (px); see :func:`neighbour_graph`.
    max_edge_factor : float
        Edge-length pruning factor (see :func:`neighbour_graph`).
    label_names : sequence of str, optional
        Name of each level-1 label in the keys (default ``"A", "B", ...``); no characters
        among ``[](){};,|#<>``.
    majority_filter : bool
        Form clusters of non-dominant units instead of stars and neighbourhoods.
    image : ndarray, shape (H, W), optional
        The micrograph; when given every class gets an aligned ``mean_image``.
    diagonal_angle_deg, fan_ratio : float
        See :func:`neighbour_graph`.
    max_unit_size : int
        Faces with more vertices are holes, not units.
    star_min_valence : int
        Smallest valence of a star's centre column.
    defect_majority : float
        Fraction of all units the dominant class needs for neighbourhoods to be formed.
    max_composite_units : int
        Larger clusters are not keyed (an extended domain is not a motif).
    max_average : int
        At most this many instances per class enter ``mean_image`` and level-3 prototypes.

    Returns
    -------
    Hierarchy
        ``levels[0]``: level 2 (members = ring columns in canonical order, then interior
        columns), ``levels[1]``: level 3 (members = unit indices). Classes are numbered by
        decreasing count.

    Raises
    ------
    AnalysisError
        For inputs of the wrong shape, non-finite positions, labels < -1 or bad names.

    Examples
    --------
    A patch of honeycomb with two alternating column classes:

    >>> i, j = np.meshgrid(np.arange(8), np.arange(8))
    >>> a1, a2 = np.array([1.5, 3 ** 0.5 / 2]), np.array([1.5, -(3 ** 0.5) / 2])
    >>> base = 10 * (i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2)
    >>> xy = np.concatenate([base, base + [10, 0]])
    >>> labels = np.repeat([0, 1], len(base))
    >>> h = build_hierarchy(xy, labels)
    >>> [(c.key, c.count) for c in h.levels[0].classes]
    [('6[A,B,A,B,A,B]', 25)]
    >>> h.levels[0].classes[0].composed_of
    {0: 3, 1: 3}
    """
    xy = _check_xy(xy)
    labels = np.asarray(labels)
    if labels.shape != (len(xy),) or not np.issubdtype(labels.dtype, np.integer):
        raise AnalysisError(
            f"labels must be an integer array of shape ({len(xy)},), got {labels.dtype} "
            f"{labels.shape}"
        )
    if labels.size and labels.min() < -1:
        raise AnalysisError(f"labels must be >= -1 (-1 = unknown), got {labels.min()}")
    labels = labels.astype(np.int64)
    if image is not None:
        image = np.asarray(image)
        if image.ndim != 2:
            raise AnalysisError(f"image must be 2-D, got shape {image.shape}")
    for name, value in (("max_unit_size", max_unit_size), ("star_min_valence", star_min_valence),
                        ("max_composite_units", max_composite_units),
                        ("max_average", max_average)):
        if int(value) < 1:
            raise AnalysisError(f"{name} must be >= 1, got {value!r}")
    n_labels = int(labels.max()) + 1 if labels.size else 0
    names = (default_names(n_labels) if label_names is None
             else check_names(label_names, n_labels))

    g = neighbour_graph(xy, labels, spacing_px=spacing_px, max_edge_factor=max_edge_factor,
                        diagonal_angle_deg=diagonal_angle_deg, fan_ratio=fan_ratio)
    structure = _structure(xy, labels, g, image, int(max_unit_size), int(star_min_valence))
    structure.params = dict(majority_filter=bool(majority_filter),
                            defect_majority=float(defect_majority),
                            max_composite_units=int(max_composite_units),
                            max_average=int(max_average))
    structure.names = list(names)
    levels = _classify(structure, names)
    return Hierarchy(levels=levels, neighbour_pairs=g.pairs, neighbour_dist_px=g.dist_px,
                     structure=structure)


def relabel(hierarchy: Hierarchy, label_names: Sequence[str]) -> Hierarchy:
    """Recompute every level-2/3 key with new level-1 names and merge classes that coincide.

    The catalog writer matches an image's level-1 classes to global motifs and calls this with
    the global ids, so that the keys of higher levels are written in the global vocabulary.
    Classes whose keys become equal (two local classes named alike) are merged; counts,
    ``composed_of``, prototypes and mean images are recomputed from the stored structure.

    When the hierarchy was keyed with pairwise distinct names and the new names are pairwise
    distinct too (the catalog's case: level-1 classes map one-to-one to global motifs), the
    renaming is injective, so the partition of units and composites into classes cannot
    change: only the keys and the canonical member orders are recomputed (level-2 rings and
    stars vectorised, one plane-graph code per neighbourhood/cluster class), while counts,
    ``composed_of``, prototypes and mean images are kept (prototypes and mean images stay in
    the canonical frame of the previous names). Classes are renumbered by decreasing count,
    then key, exactly as a full classification would number them.

    Parameters
    ----------
    hierarchy : Hierarchy
        A result of :func:`build_hierarchy`.
    label_names : sequence of str
        New name of each level-1 label.

    Returns
    -------
    Hierarchy
        Same neighbour graph and instances (in the same order); new classes.

    Raises
    ------
    AnalysisError
        If the hierarchy carries no structure or a name is invalid.

    Examples
    --------
    A 4 × 4 grid of columns, labelled by column parity: its one complete unit is the central
    square (the eight around it touch the outer boundary).

    >>> x, y = np.meshgrid(np.arange(4), np.arange(4))
    >>> xy = 10.0 * np.stack([x.ravel(), y.ravel()], 1)
    >>> h = build_hierarchy(xy, x.ravel() % 2)
    >>> [c.key for c in h.levels[0].classes]
    ['4[A,A,B,B]']
    >>> [c.key for c in relabel(h, ["m7", "m7"]).levels[0].classes]
    ['4[m7,m7,m7,m7]']
    """
    s = hierarchy.structure
    if not isinstance(s, HierarchyStructure):
        raise AnalysisError("this hierarchy carries no structure to relabel (not built here?)")
    n_labels = int(s.labels.max()) + 1 if s.labels.size else 0
    names = check_names(label_names, n_labels)
    levels = None
    if (s.names is not None and len(hierarchy.levels) == 2
            and _distinct(s.names, n_labels) and _distinct(names, n_labels)):
        levels = _relabel_injective(hierarchy, s, names)
    if levels is None:
        levels = _classify(s, names)
    # A copy of the structure (arrays shared): the input hierarchy keeps its own names.
    return Hierarchy(levels=levels, neighbour_pairs=hierarchy.neighbour_pairs,
                     neighbour_dist_px=hierarchy.neighbour_dist_px,
                     structure=replace(s, names=list(names)))


def _distinct(names: Sequence[str], n_labels: int) -> bool:
    return len(set(names[:n_labels])) == n_labels


def _first_of_each(cls: np.ndarray, n_classes: int) -> np.ndarray:
    """First instance of each class 0..n_classes-1 (every class has one)."""
    labels, first = np.unique(cls, return_index=True)
    if not np.array_equal(labels, np.arange(n_classes)):
        raise AnalysisError("hierarchy level has a class without instances")
    return first


def _renumber(old: list[MotifClass], keys: list[str]) -> np.ndarray | None:
    """New label of each old class: by decreasing count, then key (as _classes_from_keys).

    ``None`` when two classes got equal keys: impossible under an injective renaming, so the
    caller falls back to the full classification rather than trusting a broken assumption.
    """
    if len(set(keys)) != len(keys):
        return None
    order = sorted(range(len(old)), key=lambda i: (-old[i].count, keys[i]))
    new = np.empty(len(old), dtype=np.int64)
    new[order] = np.arange(len(old))
    return new


def _relabel_injective(h: Hierarchy, s: HierarchyStructure, names: list[str]):
    """Levels 2 and 3 under injective new names, reusing the partition (see :func:`relabel`).

    Returns ``None`` (-> full classification) if the stored levels do not look like the
    output of :func:`_classify` on ``s`` or two classes would share a key.
    """
    old2, old3 = h.levels
    n_units = s.n_units
    if len(old2.instance_class) != n_units:
        return None
    # ---- level 2: keys and canonical rings of all units (cheap, vectorised per size).
    keys, canon_ring, _ = _unit_keys(s, names)
    n2 = len(old2.classes)
    rep2 = _first_of_each(old2.instance_class, n2) if n2 else np.zeros(0, np.int64)
    key2 = [str(keys[r]) for r in rep2]
    new2 = _renumber(old2.classes, key2)
    if new2 is None:
        return None
    sizes = np.diff(s.ring_indptr)
    indptr2 = np.asarray(old2.members_indptr, dtype=np.int64)
    members2 = np.array(old2.members_indices, dtype=np.int64, copy=True)
    members2[np.repeat(indptr2[:-1], sizes) + _ranks_within(s.ring_indptr)] = canon_ring
    cls2 = new2[old2.instance_class] if n2 else np.zeros(0, np.int64)
    classes2 = [None] * n2
    for i, c in enumerate(old2.classes):
        classes2[new2[i]] = replace(c, label=int(new2[i]), key=key2[i])
    level2 = Level(level=2, classes=classes2, instance_class=cls2,
                   instance_xy=old2.instance_xy, members_indptr=indptr2,
                   members_indices=members2)

    # ---- level 3: stars vectorised; one plane-graph code per neighbourhood/cluster class.
    n3 = len(old3.classes)
    cls3_old = np.asarray(old3.instance_class, dtype=np.int64)
    indptr3 = np.asarray(old3.members_indptr, dtype=np.int64)
    old_m3 = np.asarray(old3.members_indices, dtype=np.int64)
    members3 = old_m3.copy()
    rep3 = _first_of_each(cls3_old, n3) if n3 else np.zeros(0, np.int64)
    key3: list[str | None] = [None] * n3
    unit_keys = np.array(key2, dtype=object)[np.argsort(new2)] if n2 else np.zeros(0, object)
    key_rank, key_alpha = _rank_of(list(unit_keys)) if n2 else (np.zeros(0, int), [])
    n_star = 0
    if not s.params.get("majority_filter") and len(s.star_centre):
        n_star = len(s.star_centre)  # stars come first, in star_centre order
        if len(cls3_old) < n_star:
            return None
        skeys, sunits, _ = _star_keys(s, names, cls2, key_rank, key_alpha)
        star_m = np.concatenate(sunits).astype(np.int64) if n_star else np.zeros(0, np.int64)
        if len(star_m) != indptr3[n_star]:
            return None
        members3[:indptr3[n_star]] = star_m
    nxt_pos = _next_in_row(s.ring_indptr) if n_units else None
    for c in range(n3):
        r = int(rep3[c])
        if r < n_star:
            key3[c] = str(skeys[r])
            continue
        old = old_m3[indptr3[r]:indptr3[r + 1]]
        g = np.sort(old)
        code, orders, _ = _plane_code(s, g, unit_keys[cls2[g]], nxt_pos)
        key3[c] = f"{old3.classes[c].key[0]}{{{code_text(code)}}}"
        # The old canonical numbering is an isomorphism between all instances of the class,
        # so the representative's new reading, as positions in its old one, reads them all.
        new_rep = g[orders[0][0]]
        srt = np.argsort(old)
        perm = srt[np.searchsorted(old[srt], new_rep)]
        rows = np.flatnonzero(cls3_old == c)
        members3[indptr3[rows][:, None] + np.arange(len(perm))] = old_m3[indptr3[rows][:, None]
                                                                         + perm]
    new3 = _renumber(old3.classes, key3)
    if new3 is None:
        return None
    classes3 = [None] * n3
    for i, c in enumerate(old3.classes):
        composed = {int(new2[k]): v for k, v in c.composed_of.items()}
        classes3[new3[i]] = replace(c, label=int(new3[i]), key=key3[i],
                                    composed_of=dict(sorted(composed.items())))
    level3 = Level(level=3, classes=classes3,
                   instance_class=new3[cls3_old] if n3 else np.zeros(0, np.int64),
                   instance_xy=old3.instance_xy, members_indptr=indptr3,
                   members_indices=members3)
    return [level2, level3]


def _triangle_faces(g: NeighbourGraph, f: PlanarFaces, n: int) -> np.ndarray:
    """Face of the ring graph that contains each ring triangle (-1: no bounded face found)."""
    tri, nb = g.ring_triangles, g.ring_triangle_neighbours
    t_count = len(tri)
    a = tri[:, [1, 2, 0]]  # role k: dart corner k+1 -> corner k+2, the triangle on its left
    b = tri[:, [2, 0, 1]]
    dart_code = f.src * n + f.dst
    order = np.argsort(dart_code)
    code = (a * n + b).ravel()
    at = np.clip(np.searchsorted(dart_code[order], code), 0, len(order) - 1)
    kept = dart_code[order][at] == code
    face_role = np.where(kept, f.face[order[at]], -1).reshape(t_count, 3)
    link = (~kept.reshape(t_count, 3)) & (nb >= 0)
    rows = np.repeat(np.arange(t_count), 3).reshape(t_count, 3)[link]
    adj = sparse.coo_matrix((np.ones(len(rows)), (rows, nb[link])), shape=(t_count, t_count))
    _, comp = connected_components(adj, directed=False)
    comp_face = np.full(comp.max(initial=-1) + 1, -1, dtype=np.int64)
    has = face_role >= 0
    comp_face[np.repeat(comp, 3).reshape(t_count, 3)[has]] = face_role[has]
    return comp_face[comp]


def _structure(xy, labels, g: NeighbourGraph, image, max_unit_size, star_min_valence):
    """Faces, interior columns, unit adjacency and stars from the neighbour graph."""
    n = len(xy)
    f = planar_faces(xy, g.ring_pairs)
    n_face = len(f.size)
    d = len(f.src)
    twin = f.twin
    # A bounded face is complete when it is simple, not too large, does not share an edge with
    # an outer boundary (the hull, or the rim of a hole bigger than a unit) and knows the
    # level-1 label of each vertex.
    ok = (f.area > 0) & (f.size <= max_unit_size) & (f.size >= 3)
    outer = (f.area <= 0) | (f.size > max_unit_size)
    touches = np.zeros(n_face, dtype=bool)
    if d:
        touches[f.face[outer[f.face[twin]]]] = True
        unknown = np.zeros(n_face, dtype=bool)
        unknown[f.face[labels[f.src] < 0]] = True
        ok &= ~touches & ~unknown
    # Simple: no vertex repeated along the walk (a dangling edge is walked on both sides).
    vdeg_face = np.zeros(n_face, dtype=np.int64)
    if d:
        pair = np.unique(f.face * n + f.src)
        vdeg_face = np.bincount(pair // n, minlength=n_face)
    ok &= vdeg_face == f.size

    # Interior columns: locate them in the ring triangulation; a triangle belongs to the face
    # to the left of any of its kept edges, and triangles joined across dropped edges belong
    # to the same face (connected components, vectorised).
    int_face = np.full(n, -1, dtype=np.int64)
    ic = np.flatnonzero(g.interior & (g.interior_triangle >= 0))
    if len(ic) and d:
        tri_face = _triangle_faces(g, f, n)
        int_face[ic] = tri_face[g.interior_triangle[ic]]
        # A filled face is complete only if its interior columns are labelled.
        bad = ic[(int_face[ic] >= 0) & (labels[ic] < 0)]
        ok[int_face[bad]] = False

    units = np.flatnonzero(ok)
    unit_of_face = np.full(n_face, -1, dtype=np.int64)
    unit_of_face[units] = np.arange(len(units))
    sizes = f.size[units]
    ring_indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    ring_darts = np.zeros(int(ring_indptr[-1]), dtype=np.int64)
    for s in np.unique(sizes):  # a few distinct polygon sizes
        rows = np.flatnonzero(sizes == s)
        walk = f.walk(units[rows], int(s))
        ring_darts[(ring_indptr[rows][:, None] + np.arange(s)).ravel()] = walk.ravel()
    ring = f.src[ring_darts]
    ring_across = unit_of_face[f.face[twin[ring_darts]]] if d else ring_darts

    has = np.flatnonzero(int_face >= 0)
    owner = unit_of_face[int_face[has]]
    has, owner = has[owner >= 0], owner[owner >= 0]
    order = np.lexsort((labels[has], owner))
    interior = has[order]
    interior_indptr = np.concatenate(
        [[0], np.cumsum(np.bincount(owner, minlength=len(units)))]).astype(np.int64)

    # Stars: units to the left of each column's darts, counter-clockwise; complete ones only.
    deg = np.bincount(f.src, minlength=n) if d else np.zeros(n, dtype=np.int64)
    face_ccw = unit_of_face[f.face[f.out_order]] if d else np.zeros(0, dtype=np.int64)
    bad_dart = face_ccw < 0
    bad_vertex = np.zeros(n, dtype=bool)
    if d:
        bad_vertex[f.src[f.out_order][bad_dart]] = True
    star_ok = (deg >= star_min_valence) & ~bad_vertex & (labels >= 0)
    centres = np.flatnonzero(star_ok)
    sel = np.repeat(star_ok, deg)
    star_units = face_ccw[sel]
    star_indptr = np.concatenate([[0], np.cumsum(deg[centres])]).astype(np.int64)
    if image is not None:
        image = np.asarray(image, dtype=np.float32)
    return HierarchyStructure(
        xy=xy, labels=labels, image=image,
        spacing_px=float(np.median(np.linalg.norm(
            xy[g.ring_pairs[:, 0]] - xy[g.ring_pairs[:, 1]], axis=1))) if len(g.ring_pairs)
        else 1.0,
        ring_indptr=ring_indptr, ring=ring, ring_across=ring_across,
        interior_indptr=interior_indptr, interior=interior,
        star_centre=centres, star_indptr=star_indptr, star_units=star_units,
    )


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------


def _rank_of(strings: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Rank of each string in sorted order of the distinct strings (ties share a rank)."""
    alphabet = sorted(set(strings))
    where = {s: i for i, s in enumerate(alphabet)}
    return np.array([where[s] for s in strings], dtype=np.int64), alphabet


def _classes_from_keys(keys: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Class label per instance, numbered by decreasing count then key."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64)
    uniq, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    order = np.lexsort((uniq, -counts))
    label_of = np.empty(len(uniq), dtype=np.int64)
    label_of[order] = np.arange(len(uniq))
    return label_of[inv.ravel()], [str(uniq[i]) for i in order], counts[order]


def _classify(s: HierarchyStructure, names: list[str]) -> list[Level]:
    level2 = _classify_units(s, names)
    level3 = _classify_composites(s, names, level2)
    return [level2, level3]


def _unit_keys(s: HierarchyStructure, names: list[str]):
    """Key, canonical ring order and the tie mask of every unit (vectorised per size)."""
    n_units = s.n_units
    sizes = np.diff(s.ring_indptr)
    n_int = np.diff(s.interior_indptr)
    name_rank, alphabet = _rank_of(names) if names else (np.zeros(0, np.int64), [])
    keys = np.empty(n_units, dtype=object)
    canon_ring = np.empty(len(s.ring), dtype=np.int64)
    ties: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for size in np.unique(sizes):
        rows = np.flatnonzero(sizes == size)
        idx = s.ring_indptr[rows][:, None] + np.arange(size)
        cyc = s.ring[idx]
        canon, _, _, tie = dihedral_canonical(name_rank[s.labels[cyc]])
        choice = tie.argmax(axis=1)
        canon_ring[idx.ravel()] = np.take_along_axis(cyc, candidate_order(size, choice),
                                                     axis=1).ravel()
        ties[int(size)] = (rows, tie)
        m = n_int[rows].max(initial=0)
        # Interior names in sorted order, padded with -1: one row per distinct unit identity.
        inner = np.full((len(rows), m), -1, dtype=np.int64)
        for t in range(m):
            has = n_int[rows] > t
            inner[has, t] = name_rank[s.labels[s.interior[s.interior_indptr[rows[has]] + t]]]
        inner.sort(axis=1)
        sig = np.concatenate([canon, inner], axis=1)
        uniq, first, inv = np.unique(sig, axis=0, return_index=True, return_inverse=True)
        text = [cycle_key(int(size), [alphabet[c] for c in canon[i]],
                          [alphabet[c] for c in inner[i] if c >= 0]) for i in first]
        keys[rows] = np.array(text, dtype=object)[inv.ravel()]
    return keys, canon_ring, ties


def _classify_units(s: HierarchyStructure, names: list[str]) -> Level:
    n_units = s.n_units
    keys, canon_ring, ties = _unit_keys(s, names)
    cls, class_keys, counts = _classes_from_keys(keys.astype(str))
    sizes = np.diff(s.ring_indptr)
    n_int = np.diff(s.interior_indptr)
    centroid = (np.add.reduceat(s.xy[s.ring], s.ring_indptr[:-1], axis=0) / sizes[:, None]
                if n_units else np.zeros((0, 2)))
    # Members: canonical ring, then interior columns.
    counts_m = sizes + n_int
    indptr = np.concatenate([[0], np.cumsum(counts_m)]).astype(np.int64)
    members = np.empty(int(indptr[-1]), dtype=np.int64)
    ring_pos = np.repeat(indptr[:-1], sizes) + _ranks_within(s.ring_indptr)
    members[ring_pos] = canon_ring
    int_pos = np.repeat(indptr[:-1] + sizes, n_int) + _ranks_within(s.interior_indptr)
    members[int_pos] = s.interior

    classes = []
    for label, (key, count) in enumerate(zip(class_keys, counts, strict=True)):
        rows = np.flatnonzero(cls == label)
        size = int(sizes[rows[0]])
        first = members[indptr[rows[0]]:indptr[rows[0] + 1]]
        comp = np.bincount(s.labels[first])
        composed = {int(k): int(v) for k, v in enumerate(comp) if v}
        proto_xy, proto_lab, xform = _unit_prototype(s, rows, size, ties[size], centroid)
        mean_image = _mean_image(s, xform, proto_xy)
        classes.append(MotifClass(level=2, label=label, key=key, count=int(count),
                                  mean_image=mean_image, prototype_xy=proto_xy,
                                  prototype_labels=proto_lab, composed_of=composed))
    return Level(level=2, classes=classes, instance_class=cls, instance_xy=centroid,
                 members_indptr=indptr, members_indices=members)


def _ranks_within(indptr: np.ndarray) -> np.ndarray:
    """0, 1, ... within each CSR row."""
    total = int(indptr[-1])
    return np.arange(total) - np.repeat(indptr[:-1], np.diff(indptr))


# ---------------------------------------------------------------------------------------------
# Alignment and prototypes
# ---------------------------------------------------------------------------------------------


def _rotate(p: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Rotate points p (M, k, 2) by angles theta (M,) counter-clockwise (in x, y)."""
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    x, y = p[..., 0], p[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


def _align_cycles(pts: np.ndarray, tie: np.ndarray, fixed: np.ndarray | None = None):
    """Align M point cycles (M, n, 2) (relative to their centres) under dihedral ties.

    Every candidate reading order allowed by ``tie`` (M, 2n) is tried against a reference (the
    first instance, then the mean) and the best rotation (2-D Kabsch) kept; backward readings
    are mirrored (y -> -y) first. ``fixed`` (M, f, 2) are extra points with fixed
    correspondence (e.g. a star's centre). Returns the chosen candidate (M,), mirrored flag,
    rotation angle (M,) such that ``aligned = R(theta) F p``, and the aligned cycle points.
    """
    m, n, _ = pts.shape
    orders = candidate_order(n, np.arange(2 * n))  # (2n, n)
    cand = pts[:, orders]  # (M, 2n, n, 2)
    mirror = np.arange(2 * n) >= n
    cand[:, mirror, :, 1] *= -1
    if fixed is not None and fixed.shape[1]:
        fx = np.repeat(fixed[:, None], 2 * n, axis=1).copy()
        fx[:, mirror, :, 1] *= -1
        cand = np.concatenate([cand, fx], axis=2)
    ref = cand[0, int(np.argmax(tie[0]))]
    for _ in range(2):  # align to the first instance, then to the mean of that alignment
        dot = np.einsum("mcki,ki->mc", cand, ref)
        crs = np.einsum("mcki,ki->mc", cand[..., [1, 0]] * np.array([-1.0, 1.0]), ref)
        # Sum |R p - r|^2 = |p|^2 + |r|^2 - 2 sqrt(dot^2 + cross^2) at the best rotation.
        resid = -np.hypot(dot, crs)
        resid[~tie] = np.inf
        choice = np.argmin(resid, axis=1)
        rows = np.arange(m)
        theta = np.arctan2(crs[rows, choice], dot[rows, choice])
        aligned = _rotate(cand[rows, choice], theta)
        ref = aligned.mean(axis=0)
    return choice, mirror[choice], theta, aligned


def _transform(pts: np.ndarray, centre: np.ndarray, mirrored: np.ndarray, theta: np.ndarray):
    """Image points (M, k, 2) -> canonical frame: R(theta) F (p - centre)."""
    rel = pts - centre[:, None, :]
    rel[..., 1] = np.where(mirrored[:, None], -rel[..., 1], rel[..., 1])
    return _rotate(rel, theta)


def _sample(rows: np.ndarray, cap: int) -> np.ndarray:
    if len(rows) <= cap:
        return rows
    return rows[np.linspace(0, len(rows) - 1, cap).astype(np.int64)]


def _unit_prototype(s, rows, size, tie_info, centroid):
    """Mean aligned ring (+ interior) of one level-2 class; transform of a sample for images."""
    all_rows, tie = tie_info
    tie_rows = tie[np.searchsorted(all_rows, rows)]
    idx = s.ring_indptr[rows][:, None] + np.arange(size)
    cyc = s.ring[idx]
    c = centroid[rows]
    choice, mirrored, theta, aligned = _align_cycles(s.xy[cyc] - c[:, None, :], tie_rows)
    order = np.take_along_axis(cyc, candidate_order(size, choice), axis=1)
    proto = aligned.mean(axis=0)
    lab = s.labels[order[0]]
    n_int = int(s.interior_indptr[rows[0] + 1] - s.interior_indptr[rows[0]])
    if n_int:
        ii = s.interior[s.interior_indptr[rows][:, None] + np.arange(n_int)]
        inner = _transform(s.xy[ii], c, mirrored, theta)
        if n_int > 1:  # order by label, then by angle in the canonical frame
            ang = np.arctan2(inner[..., 1], inner[..., 0])
            o = np.lexsort((ang, s.labels[ii]), axis=-1)
            inner = np.take_along_axis(inner, o[..., None], axis=1)
            ii = np.take_along_axis(ii, o, axis=1)
        proto = np.concatenate([proto, inner.mean(axis=0)])
        lab = np.concatenate([lab, s.labels[ii[0]]])
    pick = _sample(np.arange(len(rows)), s.params.get("max_average", 200))
    return proto, lab.astype(np.int64), (c[pick], mirrored[pick], theta[pick])


def _mean_image(s: HierarchyStructure, xform, proto_xy: np.ndarray) -> np.ndarray | None:
    """Average of crops around instances, resampled in the canonical frame (bilinear)."""
    if s.image is None or proto_xy is None or len(proto_xy) == 0:
        return None
    centre, mirrored, theta = xform
    half = int(np.ceil(np.abs(proto_xy).max() + 0.75 * s.spacing_px))
    q = np.arange(-half, half + 1, dtype=np.float64)
    gy, gx = np.meshgrid(q, q, indexing="ij")
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)  # canonical frame points (x, y)
    # p = centre + F R(-theta) q, for every sampled instance at once.
    rel = _rotate(np.broadcast_to(grid, (len(theta),) + grid.shape), -theta)
    rel[..., 1] = np.where(mirrored[:, None], -rel[..., 1], rel[..., 1])
    pts = rel + centre[:, None, :]
    vals = map_coordinates(s.image, [pts[..., 1].ravel(), pts[..., 0].ravel()], order=1,
                           mode="constant", cval=np.nan).reshape(len(centre), -1)
    inside = np.isfinite(vals)
    n_in = inside.sum(axis=0)
    if not n_in.any():
        return None
    total = np.where(inside, vals, 0.0).sum(axis=0)
    # Pixels no crop reached (beyond the image border) get the mean of the others.
    mean = np.where(n_in > 0, total / np.maximum(n_in, 1), total.sum() / n_in.sum())
    return mean.reshape(gy.shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Level 3
# ---------------------------------------------------------------------------------------------


def _classify_composites(s: HierarchyStructure, names: list[str], level2: Level) -> Level:
    p = s.params
    ucls = level2.instance_class
    n_units = len(ucls)
    unit_keys = np.array([c.key for c in level2.classes], dtype=object)
    key_rank, key_alpha = _rank_of(list(unit_keys)) if len(unit_keys) else (np.zeros(0, int), [])
    majority = 0  # classes are numbered by decreasing count
    inst_kind: list[np.ndarray] = []
    inst_keys: list[np.ndarray] = []
    inst_units: list[list[np.ndarray]] = []
    inst_meta: list[list] = []

    if not p.get("majority_filter") and len(s.star_centre):
        keys, units, meta = _star_keys(s, names, ucls, key_rank, key_alpha)
        inst_kind.append(np.full(len(keys), STAR))
        inst_keys.append(keys)
        inst_units.append(units)
        inst_meta.append(meta)

    groups: list[tuple[int, np.ndarray]] = []
    if n_units:
        if p.get("majority_filter"):
            groups = [(CLUSTER, g) for g in _clusters(s, ucls != majority,
                                                       p.get("max_composite_units", 16))]
        elif np.mean(ucls == majority) >= p.get("defect_majority", 0.75):
            for u in np.flatnonzero(ucls != majority):
                nb = s.ring_across[s.ring_indptr[u]:s.ring_indptr[u + 1]]
                if np.all(nb >= 0):
                    groups.append((NEIGHBOURHOOD, np.unique(np.concatenate([[u], nb]))))
    if groups:
        keys, units, meta = [], [], []
        nxt_pos = _next_in_row(s.ring_indptr)
        for kind, g in groups:
            code, orders, dual = _plane_code(s, g, unit_keys[ucls[g]], nxt_pos)
            keys.append(f"{_KIND_PREFIX[kind]}{{{code_text(code)}}}")
            units.append(g[orders[0][0]])
            meta.append((g, orders, dual))
        inst_kind.append(np.array([k for k, _ in groups]))
        inst_keys.append(np.array(keys, dtype=object))
        inst_units.append(units)
        inst_meta.append(meta)

    kinds = np.concatenate(inst_kind) if inst_kind else np.zeros(0, dtype=np.int64)
    keys = np.concatenate(inst_keys) if inst_keys else np.zeros(0, dtype=object)
    units_all = [u for part in inst_units for u in part]
    meta_all = [m for part in inst_meta for m in part]
    cls, class_keys, counts = _classes_from_keys(keys.astype(str))
    indptr = np.concatenate([[0], np.cumsum([len(u) for u in units_all])]).astype(np.int64)
    members = (np.concatenate(units_all).astype(np.int64) if units_all
               else np.zeros(0, dtype=np.int64))
    ucent = level2.instance_xy
    inst_xy = np.zeros((len(units_all), 2))
    for k, (kind, u, meta) in enumerate(zip(kinds, units_all, meta_all, strict=True)):
        inst_xy[k] = s.xy[meta] if kind == STAR else ucent[u].mean(axis=0)

    classes = []
    for label, (key, count) in enumerate(zip(class_keys, counts, strict=True)):
        rows = np.flatnonzero(cls == label)
        first = members[indptr[rows[0]]:indptr[rows[0] + 1]]
        composed = {int(k): int(v) for k, v in enumerate(np.bincount(ucls[first])) if v}
        sample = _sample(rows, p.get("max_average", 200))
        if kinds[rows[0]] == STAR:
            xform = _align_stars(s, sample, units_all, meta_all, ucent, ucls, key_rank)
        else:
            xform = _align_graphs(sample, meta_all, ucent)
        proto_xy, proto_lab = _composite_prototype(s, sample, units_all, meta_all, kinds,
                                                   xform, level2)
        classes.append(MotifClass(level=3, label=label, key=key, count=int(count),
                                  mean_image=_mean_image(s, xform, proto_xy),
                                  prototype_xy=proto_xy, prototype_labels=proto_lab,
                                  composed_of=composed))
    return Level(level=3, classes=classes, instance_class=cls, instance_xy=inst_xy,
                 members_indptr=indptr, members_indices=members)


def _star_keys(s, names, ucls, key_rank, key_alpha):
    """Keys of all stars (vectorised per valence); members in canonical order."""
    val = np.diff(s.star_indptr)
    keys = np.empty(len(val), dtype=object)
    units: list[np.ndarray] = [np.zeros(0, np.int64)] * len(val)
    name_rank, alphabet = _rank_of(names)
    for k in np.unique(val):
        rows = np.flatnonzero(val == k)
        uu = s.star_units[s.star_indptr[rows][:, None] + np.arange(k)]
        canon, _, _, tie = dihedral_canonical(key_rank[ucls[uu]])
        ordered = np.take_along_axis(uu, candidate_order(int(k), tie.argmax(axis=1)), axis=1)
        centre = name_rank[s.labels[s.star_centre[rows]]]
        sig = np.concatenate([centre[:, None], canon], axis=1)
        _, first, inv = np.unique(sig, axis=0, return_index=True, return_inverse=True)
        text = [f"S<{alphabet[sig[i, 0]]}>{{{';'.join(key_alpha[c] for c in canon[i])}}}"
                for i in first]
        keys[rows] = np.array(text, dtype=object)[inv.ravel()]
        for r, o in zip(rows, ordered, strict=True):
            units[r] = o
    return keys, units, list(s.star_centre)


def _clusters(s: HierarchyStructure, member: np.ndarray, cap: int) -> list[np.ndarray]:
    """Edge-connected groups of ``member`` units not touching an incomplete unit."""
    n_units = s.n_units
    owner = np.repeat(np.arange(n_units), np.diff(s.ring_indptr))
    other = s.ring_across
    link = (other >= 0) & member[owner] & member[np.maximum(other, 0)]
    adj = sparse.coo_matrix((np.ones(int(link.sum())), (owner[link], other[link])),
                            shape=(n_units, n_units))
    _, comp = connected_components(adj, directed=False)
    comp = np.where(member, comp, -1)
    # A cluster that reaches an incomplete unit (or the border) is cut: skip it.
    edge_bad = member[owner] & (other < 0)
    bad = np.zeros(n_units + 1, dtype=bool)
    bad[comp[owner[edge_bad]]] = True
    out = []
    order = np.argsort(comp, kind="stable")
    cs = comp[order]
    bounds = np.flatnonzero(np.diff(cs)) + 1
    for grp in np.split(order, bounds):
        if len(grp) == 0 or comp[grp[0]] < 0 or bad[comp[grp[0]]] or len(grp) > cap:
            continue
        out.append(np.sort(grp))
    return out


def _plane_code(s: HierarchyStructure, group: np.ndarray, node_keys,
                nxt_pos: np.ndarray | None = None) -> tuple:
    """Canonical code of the plane graph of units ``group`` joined across shared edges.

    ``nxt_pos`` is ``_next_in_row(s.ring_indptr)``; callers keying many groups pass it once
    (computing it per group is O(all ring positions) each time).
    """
    local = {int(u): i for i, u in enumerate(group)}
    src, pos, dst = [], [], []
    for i, u in enumerate(group):
        lo, hi = s.ring_indptr[u], s.ring_indptr[u + 1]
        for t in range(hi - lo):
            o = int(s.ring_across[lo + t])
            if o in local:
                src.append(i)
                dst.append(local[o])
                pos.append(lo + t)
    src_a = np.array(src, dtype=np.int64)
    if len(src_a) == 0:
        code, orders = plane_graph_code(list(node_keys), src_a, src_a, src_a)
        return code, orders, None
    pos_a = np.array(pos, dtype=np.int64)
    # Twin of the dart at ring position t of unit u: the position in the other unit whose
    # edge runs the other way (ring[t], ring[t+1]) = (ring'[t'+1], ring'[t']).
    if nxt_pos is None:
        nxt_pos = _next_in_row(s.ring_indptr)
    a, b = s.ring[pos_a], s.ring[nxt_pos[pos_a]]
    code_fwd = a * len(s.xy) + b
    code_rev = b * len(s.xy) + a
    o = np.argsort(code_fwd)
    twin = o[np.searchsorted(code_fwd[o], code_rev)]
    # Rotation around a unit: its darts in ring order (counter-clockwise around the unit).
    order = np.lexsort((pos_a, src_a))
    rot_next = np.empty(len(src_a), dtype=np.int64)
    grp_start = np.searchsorted(src_a[order], src_a[order], side="left")
    grp_end = np.searchsorted(src_a[order], src_a[order], side="right")
    k = np.arange(len(order))
    rot_next[order] = order[np.where(k + 1 < grp_end, k + 1, grp_start)]
    code, orders = plane_graph_code(list(node_keys), src_a, twin, rot_next)
    return code, orders, (src_a, twin, rot_next)


def _next_in_row(indptr: np.ndarray) -> np.ndarray:
    """Index of the cyclically next element within each CSR row."""
    total = int(indptr[-1])
    idx = np.arange(total)
    row_end = np.repeat(indptr[1:], np.diff(indptr))
    row_start = np.repeat(indptr[:-1], np.diff(indptr))
    return np.where(idx + 1 < row_end, idx + 1, row_start)


def _align_stars(s, sample, units_all, centres, ucent, ucls, key_rank):
    """Alignment (centre, mirrored, theta) of sampled stars: centre + unit centroids."""
    uu = np.stack([units_all[r] for r in sample])  # canonical order already
    c = s.xy[np.array([centres[r] for r in sample])]
    k = uu.shape[1]
    # All readings that give the same canonical sequence are equivalent: re-derive the ties in
    # the canonical order (relative to the first reading).
    _, _, _, tie = dihedral_canonical(key_rank[ucls[uu]])
    pts = ucent[uu] - c[:, None, :]
    _, mirrored, theta, _ = _align_cycles(pts, tie, fixed=np.zeros((len(uu), 1, 2)))
    del k
    return c, mirrored, theta


def _align_graphs(sample, meta_all, ucent):
    """Alignment of sampled plane-graph composites over their automorphic numberings."""
    ref = None
    out_c, out_m, out_t = [], [], []
    for r in sample:
        group, orders, _ = meta_all[r]
        c = ucent[group].mean(axis=0)
        best = None
        for order, mirrored in orders:
            p = ucent[group[order]] - c
            if mirrored:
                p = p * np.array([1.0, -1.0])
            if ref is None:
                best = (0.0, mirrored, 0.0, p)
                break
            dot = float(np.sum(p * ref))
            crs = float(np.sum(p[:, 0] * ref[:, 1] - p[:, 1] * ref[:, 0]))
            score = -np.hypot(dot, crs)
            if best is None or score < best[0]:
                theta = np.arctan2(crs, dot)
                best = (score, mirrored, theta, p)
        _, mirrored, theta, p = best
        if ref is None:
            ref = p
        out_c.append(c)
        out_m.append(mirrored)
        out_t.append(theta)
    return np.array(out_c), np.array(out_m, dtype=bool), np.array(out_t)


def _composite_prototype(s, sample, units_all, meta_all, kinds, xform, level2):
    """Mean aligned columns of sampled composites, matched to the first one's columns."""
    c, mirrored, theta = xform
    ref_xy = ref_lab = None
    acc = cnt = None
    l2 = level2
    for k, r in enumerate(sample):
        units = units_all[r]
        cols = np.unique(np.concatenate([l2.members(int(u)) for u in units]))
        if kinds[r] == STAR:
            cols = np.union1d(cols, [meta_all[r]])
        q = _transform(s.xy[cols][None], c[k:k + 1], mirrored[k:k + 1], theta[k:k + 1])[0]
        lab = s.labels[cols]
        if ref_xy is None:
            ref_xy, ref_lab = q, lab
            acc, cnt = q.copy(), np.ones(len(q))
            continue
        cost = np.linalg.norm(ref_xy[:, None] - q[None], axis=2)
        cost += 1e3 * (ref_lab[:, None] != lab[None])  # match like with like
        i, j = linear_sum_assignment(cost)
        good = cost[i, j] < 0.5 * s.spacing_px
        acc[i[good]] += q[j[good]]
        cnt[i[good]] += 1
    if ref_xy is None:
        return None, None
    return acc / cnt[:, None], ref_lab.astype(np.int64)
