"""Per-image overlays: the instances of one image and the outlines of its units and composites.

Only these questions (and the spatial context of a motif) visit ``Instance`` nodes, and then only
those of one image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import ConvexHull, QhullError

from ..catalog.store import GraphStore
from ..errors import QueryError
from .reading import _check_level, _frame, _read, _require_image

__all__ = [
    "image_instances",
    "image_units",
]


def image_instances(store: GraphStore, image_id: str, level: int = 1) -> pd.DataFrame:
    """The instances of one level in one image, with positions and motifs (for overlays).

    Parameters
    ----------
    store : GraphStore
    image_id : str
        Image id (sha256 of the pixels).
    level : {1, 2, 3}

    Returns
    -------
    DataFrame
        Columns ``instance_id, x_A, y_A, motif_id`` (positions in Å from the image origin),
        sorted by instance id.

    Examples
    --------
    >>> cols = image_instances(store, image_id)
    >>> cols.columns.tolist(), bool(cols["motif_id"].str.startswith("L1-").all())
    (['instance_id', 'x_A', 'y_A', 'motif_id'], True)
    """
    level = _check_level(level, allow_none=False)
    image_id = _require_image(store, image_id)
    return _frame(
        _read(store, "image_instances", image_id=image_id, level=level),
        ["instance_id", "x_A", "y_A", "motif_id"],
    )


def image_units(
    store: GraphStore, image_id: str, level: int = 2, outline: bool = True
) -> pd.DataFrame:
    """The level-2 (or 3) instances of one image, with their outlines (for overlays).

    Level 2: a unit is a face of the column neighbour graph; its outline is its ring of
    columns in cyclic order (``PART_OF.pos``), and the columns inside the ring (the centre of a
    filled pentagon) are listed apart in ``interior``. Catalogs written before ``pos`` existed
    fall back to ordering the columns by angle around their mean, taking a column as interior
    when it is the one nearest that mean and less than half as far from it as the median of the
    others (a ring's vertices are all about equally far from its centre).

    Level 3: a composite joins several units; ``units`` lists them (in the order of
    ``PART_OF.pos``, else by id), and its outline is the convex hull of their columns, computed
    for all composites at once, or skipped with ``outline=False`` (one hop less in the graph).

    Parameters
    ----------
    store : GraphStore
    image_id : str
    level : {2, 3}
    outline : bool
        Level 3 only: compute the ``polygon`` (None when False). Level 2 outlines cost nothing.

    Returns
    -------
    DataFrame
        One row per instance, sorted by ``instance_id``. Level 2: columns ``instance_id,
        motif_id, x_A, y_A, polygon, interior``; level 3: ``instance_id, motif_id, x_A, y_A,
        units, polygon``. ``x_A, y_A`` is the stored centre (Å); ``polygon`` and ``interior``
        are lists of ``(x_A, y_A)`` tuples in Å. Columns too close to the image border are
        not stored, so a unit at the border may have fewer vertices than its motif.

    Examples
    --------
    >>> units = image_units(store, image_id)
    >>> units.columns.tolist(), min(len(p) for p in units["polygon"])  # hexagons of MoSe2
    (['instance_id', 'motif_id', 'x_A', 'y_A', 'polygon', 'interior'], 6)
    >>> comp = image_units(store, image_id, level=3, outline=False)
    >>> bool(comp["polygon"].isna().all()), comp["units"].iloc[0][0].startswith(image_id[:16])
    (True, True)
    """
    level = _check_level(level, allow_none=False)
    if level == 1:
        raise QueryError("level: image_units needs level 2 or 3 (level 1 has no polygons)")
    image_id = _require_image(store, image_id)
    if level == 2:
        return _units_level2(store, image_id)
    return _units_level3(store, image_id, bool(outline))


def _read_pos(store: GraphStore, name: str, columns: list[str], **params: Any) -> pd.DataFrame:
    """Run ``name`` (returns ``pos``), or its ``_NOPOS`` variant on a catalog without
    ``PART_OF.pos`` (Ladybug refuses an unknown property; Neo4j returns null for it)."""
    try:
        df = _frame(_read(store, name, **params), [*columns, "pos"])
    except QueryError:
        df = _frame(_read(store, f"{name}_NOPOS", **params), columns).assign(pos=None)
    if df["pos"].isna().any():
        df["pos"] = np.nan
    return df


def _xy_tuples(x: pd.Series, y: pd.Series) -> list[tuple[float, float]]:
    return list(zip(x.astype(float), y.astype(float), strict=True))


def _units_level2(store: GraphStore, image_id: str) -> pd.DataFrame:
    cols = ["instance_id", "motif_id", "x_A", "y_A", "polygon", "interior"]
    pts = _read_pos(
        store, "image_units_2",
        ["instance_id", "motif_id", "ux_A", "uy_A", "column_id", "x_A", "y_A"],
        image_id=image_id,
    )
    if pts.empty:
        return pd.DataFrame(columns=cols)
    pts = pts.drop_duplicates(["instance_id", "column_id"])
    if pts["pos"].isna().any():
        pts = _guess_ring(pts)
    pts = pts.sort_values(["instance_id", "pos"], kind="stable")
    pts["xy"] = _xy_tuples(pts["x_A"], pts["y_A"])
    units = pts.groupby("instance_id", sort=True)[["motif_id", "ux_A", "uy_A"]].first()
    ring, inner = pts[pts["pos"] >= 0], pts[pts["pos"] < 0]
    out = units.rename(columns={"ux_A": "x_A", "uy_A": "y_A"})
    out["polygon"] = ring.groupby("instance_id")["xy"].agg(list).reindex(out.index)
    out["interior"] = inner.groupby("instance_id")["xy"].agg(list).reindex(out.index)
    for c in ("polygon", "interior"):
        out[c] = out[c].map(lambda v: v if isinstance(v, list) else [])
    return out.reset_index()[cols]


def _guess_ring(pts: pd.DataFrame) -> pd.DataFrame:
    """``pos`` for catalogs without it: angle order around the mean, -1 for a centre column."""
    g = pts.groupby("instance_id", sort=False)
    dx = pts["x_A"] - g["x_A"].transform("mean")
    dy = pts["y_A"] - g["y_A"].transform("mean")
    r = np.hypot(dx, dy)
    gr = r.groupby(pts["instance_id"])
    nearest = r == gr.transform("min")
    # median of the others ~ median of all for a ring of >= 4 vertices plus one centre
    centre = nearest & (gr.transform("size") >= 4) & (r < 0.5 * gr.transform("median"))
    angle = np.arctan2(dy, dx)
    out = pts.assign(pos=np.where(centre, -1.0, 0.0), angle=angle)
    out = out.sort_values(["instance_id", "pos", "angle"])
    ring_rank = out.groupby(["instance_id", "pos"]).cumcount()
    out["pos"] = np.where(out["pos"] < 0, -1, ring_rank)
    return out.drop(columns="angle")


def _units_level3(store: GraphStore, image_id: str, outline: bool) -> pd.DataFrame:
    cols = ["instance_id", "motif_id", "x_A", "y_A", "units", "polygon"]
    mem = _read_pos(
        store, "image_units_3", ["instance_id", "motif_id", "ux_A", "uy_A", "unit_id"],
        image_id=image_id,
    )
    if mem.empty:
        return pd.DataFrame(columns=cols)
    mem = mem.drop_duplicates(["instance_id", "unit_id"])
    order = ["instance_id", "unit_id"] if mem["pos"].isna().any() else ["instance_id", "pos"]
    mem = mem.sort_values(order)
    g = mem.groupby("instance_id", sort=True)
    out = g[["motif_id", "ux_A", "uy_A"]].first().rename(columns={"ux_A": "x_A", "uy_A": "y_A"})
    out["units"] = g["unit_id"].agg(list)
    out["polygon"] = None
    if outline:
        pts = _frame(
            _read(store, "image_units_3_COLUMNS", image_id=image_id),
            ["instance_id", "column_id", "x_A", "y_A"],
        ).drop_duplicates(["instance_id", "column_id"])
        out["polygon"] = pd.Series(_group_hulls(pts), dtype=object).reindex(out.index)
        out["polygon"] = out["polygon"].map(lambda v: v if isinstance(v, list) else [])
    return out.reset_index()[cols]


def _group_hulls(pts: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    """Convex hull (counter-clockwise in x-right/y-up axes) of each instance's points.

    One ``scipy.spatial.ConvexHull`` per composite (a display outline, asked for only when the
    overlay is drawn), starting at the lowest (then leftmost) corner. Collinear points on an
    edge are not corners. A group of fewer than 3 points keeps them all; collinear points give
    their two ends.
    """
    if pts.empty:
        return {}
    pts = pts.sort_values("instance_id", kind="stable")
    ids, start, size = np.unique(pts["instance_id"].to_numpy(), return_index=True,
                                 return_counts=True)
    xy = pts[["x_A", "y_A"]].to_numpy(dtype=float)
    hulls: dict[str, list[tuple[float, float]]] = {}
    for key, lo, n in zip(ids, start, size, strict=True):
        group = xy[lo:lo + n]
        if n < 3:
            corners = group
        else:
            try:
                corners = group[ConvexHull(group).vertices]  # counter-clockwise in 2-D
            except QhullError:  # collinear (or coincident): the two ends of the segment
                along = (group - group[0]) @ (group[np.argmax(np.hypot(*(group - group[0]).T))]
                                              - group[0])
                corners = group[[np.argmin(along), np.argmax(along)]]
        # start at the lowest, then leftmost, corner
        first = np.lexsort((corners[:, 0], corners[:, 1]))[0]
        corners = np.roll(corners, -first, axis=0)
        hulls[key] = list(zip(corners[:, 0].tolist(), corners[:, 1].tolist(), strict=True))
    return hulls
