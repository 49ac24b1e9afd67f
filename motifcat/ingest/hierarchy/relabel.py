"""Re-keying a hierarchy under new level-1 names (the catalog's global motif ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ...errors import AnalysisError
from ..canonical import (
    check_names,
    code_text,
)
from ..model import Hierarchy, Level, MotifClass
from .classify import _classify, _plane_code, _rank_of, _star_keys, _unit_keys, assign_families
from .structure import HierarchyStructure, _next_in_row, _ranks_within


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

    >>> from motifcat.ingest.hierarchy import build_hierarchy
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
    # Families name unit keys, so they are recomputed in the new names (and merged counts).
    levels, support = assign_families(levels, s.params.get("min_support", 3),
                                      s.params.get("defect_majority", 0.75), s.irregular)
    # A copy of the structure (arrays shared): the input hierarchy keeps its own names.
    return Hierarchy(levels=levels, neighbour_pairs=hierarchy.neighbour_pairs,
                     neighbour_dist_px=hierarchy.neighbour_dist_px,
                     structure=replace(s, names=list(names)), support=support)


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
