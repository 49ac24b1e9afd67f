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
is given, ``mean_image`` (average of up to ``max_images`` crops rotated/mirrored into the
canonical frame, at most 64 samples a side). :func:`relabel` recomputes all keys from the
stored structure when the level-1 classes get other names (the catalog's global ids) and
merges classes that coincide.

**Families and support.** Keys stay exact; :func:`assign_families` puts a layer above them:
a class with at least ``min_support`` instances is a family of its own, rarer ones are grouped
("defect neighbourhood of <unit key>", "variant of <unit key>", "irregular <n>-ring").
``Hierarchy.support`` reports the thresholds and how many classes and instances are frequent
or rare. **Irregular units**: a unit with a ring edge shorter than ``close_factor`` × the
spacing or a ring column with more bonds than is modal for its class is flagged
(``structure.irregular``, ``support["irregular_units"]``) — a spurious or doubled column, not
a lattice ring; it keeps its exact key (a class counts what was detected), and rare classes
of such units form the family "irregular <n>-ring" instead of passing for lattice variants.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from ...errors import AnalysisError
from ..canonical import check_names, default_names
from ..model import Hierarchy
from .classify import _classify, assign_families
from .graph import NeighbourGraph, _check_xy, neighbour_graph
from .relabel import relabel
from .structure import (
    CLUSTER,
    NEIGHBOURHOOD,
    STAR,
    HierarchyStructure,
    PlanarFaces,
    _structure,
    irregular_units,
    planar_faces,
)

__all__ = [
    "CLUSTER",
    "NEIGHBOURHOOD",
    "STAR",
    "HierarchyStructure",
    "NeighbourGraph",
    "PlanarFaces",
    "assign_families",
    "build_from_params",
    "build_hierarchy",
    "neighbour_graph",
    "planar_faces",
    "relabel",
]


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
    max_average: int = 64,
    max_images: int = 32,
    min_support: int = 3,
    min_separation: float = 0.5,
    close_factor: float = 0.75,
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
        At most this many instances per class enter the level-3 prototypes (level-2
        prototypes average all instances: that is vectorised).
    max_images : int
        At most this many instances per class (evenly spread over the image) enter
        ``mean_image``; crops wider than 64 px are sampled every k-th pixel (k the smallest
        integer that brings the side to <= 64 samples; the catalog keeps <= 32 px
        thumbnails), so that mean images cost a bounded share of the analysis.
    min_support : int
        Support threshold: classes with fewer instances are rare and grouped into families
        (see :func:`assign_families`); reported in ``Hierarchy.support``.
    min_separation : float
        Two columns closer than this × the spacing (``spacing_px`` or the median
        nearest-neighbour distance) are one column detected twice: the one of the rarer
        level-1 class is left out of the graph (no unit or star holds it; counted in
        ``support["doubles_left_out"]``). Lattice neighbours are >= ~0.8 spacing apart; the
        doubles met were 0.2-0.3 spacing apart (coarse_cairo through ``analyze``).
    close_factor : float
        A unit with a ring edge shorter than this × the spacing, or with a ring column that
        has more ring bonds than is modal for its level-1 class, is flagged irregular
        (``structure.irregular``, ``support["irregular_units"]``): still keyed and classed
        (keys are exact), but a rare class of irregular units joins the family
        ``"irregular <n>-ring"``. 0.75: no ring edge of the multislice tmd/perovskite or the
        coarse Cairo set at dose 1 through ``analyze`` is shorter than 0.9 spacing,
        while on the real Se-implanted MoS2 image 8 % of the columns have a neighbour
        closer than 0.75 spacing (over-detection).

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
                        ("max_average", max_average), ("max_images", max_images),
                        ("min_support", min_support)):
        if int(value) < 1:
            raise AnalysisError(f"{name} must be >= 1, got {value!r}")
    n_labels = int(labels.max()) + 1 if labels.size else 0
    names = (default_names(n_labels) if label_names is None
             else check_names(label_names, n_labels))

    kept = _undoubled(xy, labels, spacing_px, min_separation)
    sub = kept if len(kept) < len(xy) else slice(None)
    g = neighbour_graph(xy[sub], labels[sub], spacing_px=spacing_px,
                        max_edge_factor=max_edge_factor,
                        diagonal_angle_deg=diagonal_angle_deg, fan_ratio=fan_ratio)
    structure = _structure(xy[sub], labels[sub], g, image, int(max_unit_size),
                           int(star_min_valence))
    structure.irregular = irregular_units(structure, g.ring_pairs, float(close_factor))
    pairs = g.pairs
    if len(kept) < len(xy):  # back to the indices of all columns
        structure.xy, structure.labels = xy, labels
        structure.ring = kept[structure.ring]
        structure.interior = kept[structure.interior]
        structure.star_centre = kept[structure.star_centre]
        pairs = kept[pairs]
    structure.n_doubles = int(len(xy) - len(kept))
    structure.params = dict(majority_filter=bool(majority_filter),
                            defect_majority=float(defect_majority),
                            max_composite_units=int(max_composite_units),
                            max_average=int(max_average), max_images=int(max_images),
                            min_support=int(min_support))
    if not (np.isfinite(defect_majority) and 0.0 < defect_majority <= 1.0):
        raise AnalysisError(f"defect_majority must be in (0, 1], got {defect_majority!r}")
    structure.names = list(names)
    levels, support = assign_families(_classify(structure, names), int(min_support),
                                      float(defect_majority), structure.irregular)
    support["doubles_left_out"] = structure.n_doubles
    return Hierarchy(levels=levels, neighbour_pairs=pairs, neighbour_dist_px=g.dist_px,
                     structure=structure, support=support)


def _undoubled(xy: np.ndarray, labels: np.ndarray, spacing_px: float | None,
               min_separation: float) -> np.ndarray:
    """Indices of the columns kept: of two closer than ``min_separation`` × the spacing (a
    detector's double of one column), the one of the rarer level-1 class goes (higher label;
    unknown -1 first; then the higher index)."""
    n = len(xy)
    if n < 2 or min_separation <= 0:
        return np.arange(n)
    tree = cKDTree(xy)
    spacing = spacing_px or float(np.median(tree.query(xy, k=2)[0][:, 1]))
    pairs = tree.query_pairs(min_separation * spacing, output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(n)
    rank = np.where(labels < 0, np.iinfo(np.int64).max, labels)
    a, b = pairs[:, 0], pairs[:, 1]
    a_loses = (rank[a] > rank[b]) | ((rank[a] == rank[b]) & (a > b))
    drop = np.zeros(n, dtype=bool)
    drop[np.where(a_loses, a, b)] = True
    return np.flatnonzero(~drop)


def build_from_params(xy: np.ndarray, labels: np.ndarray, params, *,
                      spacing_px: float | None = None,
                      image: np.ndarray | None = None) -> Hierarchy:
    """:func:`build_hierarchy` with the settings of an ``AnalysisParams`` (what ``analyze``
    and ``load_analysis`` call, so that both build the same hierarchy).

    Examples
    --------
    >>> from motifcat.ingest.model import AnalysisParams
    >>> x, y = np.meshgrid(np.arange(5), np.arange(5))
    >>> xy = 10.0 * np.stack([x.ravel(), y.ravel()], 1)
    >>> h = build_from_params(xy, (x.ravel() + y.ravel()) % 2, AnalysisParams(min_support=2))
    >>> h.support["min_support"], [(c.key, c.count, c.family) for c in h.levels[0].classes]
    (2, [('4[A,B,A,B]', 4, '4[A,B,A,B]')])
    """
    return build_hierarchy(
        xy,
        labels,
        spacing_px=spacing_px,
        max_edge_factor=params.max_edge_factor,
        majority_filter=params.majority_filter,
        defect_majority=getattr(params, "defect_majority", 0.75),
        min_support=getattr(params, "min_support", 3),
        image=image,
    )
