"""Geometry of the hierarchy: faces of the plane graph, units, interior columns, stars.

Nothing here depends on the level-1 names; :mod:`.classify` turns this structure into keyed
classes and :func:`~motifcat.ingest.hierarchy.relabel` re-keys it under other names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .graph import NeighbourGraph, _cross

#: Kinds of level-3 composites (``HierarchyStructure``/``Level.instance_class`` order).
STAR, NEIGHBOURHOOD, CLUSTER = 0, 1, 2
#: Bits of ``HierarchyStructure.irregular`` (why a unit is not a clean ring of the lattice).
CLOSE_PAIR, OVER_COORDINATED = 1, 2


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
# Structure: units, interior columns and stars (geometry only, independent of names)
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
    #: Columns left out of the graph as doubles of a neighbour (see ``build_hierarchy``).
    n_doubles: int = 0
    #: Per unit, bits ``CLOSE_PAIR`` | ``OVER_COORDINATED`` (see :func:`irregular_units`);
    #: 0 = a clean ring. The unit is keyed and classed all the same (exact keys).
    irregular: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        return len(self.ring_indptr) - 1


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


def _ranks_within(indptr: np.ndarray) -> np.ndarray:
    """0, 1, ... within each CSR row."""
    total = int(indptr[-1])
    return np.arange(total) - np.repeat(indptr[:-1], np.diff(indptr))


def _next_in_row(indptr: np.ndarray) -> np.ndarray:
    """Index of the cyclically next element within each CSR row."""
    total = int(indptr[-1])
    idx = np.arange(total)
    row_end = np.repeat(indptr[1:], np.diff(indptr))
    row_start = np.repeat(indptr[:-1], np.diff(indptr))
    return np.where(idx + 1 < row_end, idx + 1, row_start)


def irregular_units(s: HierarchyStructure, ring_pairs: np.ndarray,
                    close_factor: float) -> np.ndarray:
    """Why each unit is not a clean ring of the lattice (bits, 0 = clean).

    * ``CLOSE_PAIR``: a ring edge shorter than ``close_factor`` × ``s.spacing_px`` (two columns
      closer than lattice neighbours: a column detected twice or off its site);
    * ``OVER_COORDINATED``: a ring column with more ring-graph bonds than the modal count of
      its level-1 class (a column inserted in or next to the ring gave it an extra bond).

    Parameters
    ----------
    s : HierarchyStructure
    ring_pairs : ndarray of int, shape (R, 2)
        The ring graph's edges (``NeighbourGraph.ring_pairs``, in the indices of ``s.xy``).
    close_factor : float
        Shortest edge of a clean ring, in units of the spacing.

    Returns
    -------
    ndarray of uint8, shape (n_units,)
    """
    n_units = s.n_units
    out = np.zeros(n_units, dtype=np.uint8)
    if n_units == 0:
        return out
    ring, start = s.ring, s.ring_indptr[:-1]
    nxt = ring[_next_in_row(s.ring_indptr)]
    edge = np.linalg.norm(s.xy[ring] - s.xy[nxt], axis=1)
    out[np.minimum.reduceat(edge, start) < close_factor * s.spacing_px] |= CLOSE_PAIR
    n = len(s.xy)
    deg = np.bincount(ring_pairs.ravel(), minlength=n)
    lab = s.labels
    known = (lab >= 0) & (deg > 0)
    if known.any():
        table = np.zeros((int(lab.max()) + 1, int(deg.max()) + 1), dtype=np.int64)
        np.add.at(table, (lab[known], deg[known]), 1)
        over = known & (deg > table.argmax(axis=1)[np.maximum(lab, 0)])
        out[np.maximum.reduceat(over[ring].astype(np.int8), start) > 0] |= OVER_COORDINATED
    return out
