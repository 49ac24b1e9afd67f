"""Classification: level-1 names -> canonical keys -> level-2 and level-3 classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..canonical import (
    candidate_order,
    code_text,
    cycle_key,
    dihedral_canonical,
    plane_graph_code,
)
from ..model import Level, MotifClass
from .prototypes import (
    _align_graphs,
    _align_stars,
    _composite_prototype,
    _mean_image,
    _sample,
    _unit_prototype,
)
from .structure import (
    CLUSTER,
    NEIGHBOURHOOD,
    STAR,
    HierarchyStructure,
    _clusters,
    _next_in_row,
    _ranks_within,
)

_KIND_PREFIX = {STAR: "S", NEIGHBOURHOOD: "N", CLUSTER: "C"}


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
        sample = _sample(rows, p.get("max_average", 64))
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


# ---------------------------------------------------------------------------------------------
# Families and support (a layer above the exact keys)
# ---------------------------------------------------------------------------------------------


def _unit_shape(key: str) -> tuple[int, int]:
    """(ring size, number of interior columns) of a level-2 key ``"n[...](...)"``."""
    n = int(key[:key.index("[")])
    inner = key[key.index("]") + 1:].strip("()")
    return n, len(inner.split(",")) if inner else 0


def _composition_distance(a: dict[int, int], b: dict[int, int]) -> int:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b))


def assign_families(levels: list[Level], min_support: int, defect_majority: float,
                    irregular: np.ndarray | None = None) -> tuple[list[Level], dict]:
    """Family of every level-2/3 class, and the support report (``Hierarchy.support``).

    Keys stay exact canonical forms; a family groups classes above them:

    * a class with at least ``min_support`` instances is a family of its own (family = key);
    * a rare level-2 class whose units are all irregular (``irregular`` != 0: a ring edge
      between columns closer than lattice neighbours or an over-coordinated ring column, see
      :func:`~motifcat.ingest.hierarchy.structure.irregular_units`) joins
      ``"irregular <n>-ring"``: a detection artefact or a disordered spot, not a variant of a
      lattice unit;
    * another rare level-2 class joins ``"variant of <key>"``, the frequent unit of the same ring
      size and interior count whose composition (level-1 multiplicities) differs least (ties:
      the more frequent), or ``"rare <n>-ring"`` (``"rare <n>-ring+<m>"`` with m interior
      columns) when there is none;
    * a rare level-3 class joins ``"defect neighbourhood of <key>"`` (``"neighbourhood of
      <key>"`` when the dominant unit holds less than ``defect_majority`` of the units: then
      the image is not a lattice with defects) where ``<key>`` is its rarest unit class (the
      highest level-2 label it contains: classes are numbered by decreasing count), or
      ``"rare composite of <key>"`` when it holds the dominant unit only.

    The families depend on the image's counts (which classes are rare), not on a hash.

    Parameters
    ----------
    levels : list of Level
        ``[level 2, level 3]`` as classified (classes numbered by decreasing count).
    min_support : int
        Classes with fewer instances are rare.
    defect_majority : float
        Fraction of the units the dominant class needs for "defect" in the names.
    irregular : ndarray of uint8, shape (n_units,), optional
        ``HierarchyStructure.irregular`` of the level-2 instances.

    Returns
    -------
    levels : list of Level
        The same levels with ``MotifClass.family`` set.
    support : dict
        ``min_support``, ``defect_majority``, ``dominant_unit`` (key or None),
        ``dominant_fraction``, ``defect_lattice``, ``irregular_units`` (counts of flagged
        units: ``close_pair``, ``over_coordinated``, ``any``, ``of``) and per level
        (``"level2"``, ``"level3"``):
        ``classes, instances, frequent, frequent_instances, rare, rare_instances, families``.

    Examples
    --------
    >>> from motifcat.ingest.model import MotifClass
    >>> l2 = Level(2, [MotifClass(2, 0, "6[A,B,A,B,A,B]", 90, composed_of={0: 3, 1: 3}),
    ...                MotifClass(2, 1, "6[A,B,A,B,A,C]", 1, composed_of={0: 3, 1: 2, 2: 1})],
    ...            np.zeros(91, int), np.zeros((91, 2)), np.zeros(92, int), np.zeros(0, int))
    >>> l3 = Level(3, [MotifClass(3, 0, "S<A>{x}", 1, composed_of={0: 2, 1: 1})],
    ...            np.zeros(1, int), np.zeros((1, 2)), np.zeros(2, int), np.zeros(0, int))
    >>> (l2, l3), report = assign_families([l2, l3], min_support=3, defect_majority=0.75)
    >>> [c.family for c in l2.classes], l3.classes[0].family
    (['6[A,B,A,B,A,B]', 'variant of 6[A,B,A,B,A,B]'], 'defect neighbourhood of 6[A,B,A,B,A,C]')
    >>> report["level2"]["rare"], report["level3"]["families"]
    (1, 1)
    """
    from dataclasses import replace

    level2, level3 = levels
    c2 = level2.classes
    n_units = sum(c.count for c in c2)
    dominant_fraction = c2[0].count / n_units if n_units else 0.0
    defect_lattice = bool(c2) and dominant_fraction >= defect_majority
    shapes = [_unit_shape(c.key) for c in c2]
    frequent2 = [i for i, c in enumerate(c2) if c.count >= min_support]
    ucls = level2.instance_class
    flags = (np.zeros(len(ucls), dtype=np.uint8) if irregular is None or len(irregular)
             != len(ucls) else np.asarray(irregular, dtype=np.uint8))
    n_clean = np.bincount(ucls[flags == 0], minlength=len(c2))
    fam2 = []
    for i, c in enumerate(c2):
        if c.count >= min_support:
            fam2.append(c.key)
            continue
        if n_clean[i] == 0 and irregular is not None:
            fam2.append(f"irregular {shapes[i][0]}-ring")
            continue
        near = [j for j in frequent2 if shapes[j] == shapes[i]]
        if near:
            j = min(near, key=lambda j: (_composition_distance(c.composed_of, c2[j].composed_of),
                                         j))
            fam2.append(f"variant of {c2[j].key}")
        else:
            n, m = shapes[i]
            fam2.append(f"rare {n}-ring" + (f"+{m}" if m else ""))
    new2 = [replace(c, family=f) for c, f in zip(c2, fam2, strict=True)]
    prefix = "defect neighbourhood of " if defect_lattice else "neighbourhood of "
    new3 = []
    for c in level3.classes:
        if c.count >= min_support:
            family = c.key
        elif not c.composed_of:
            family = "rare composite"
        else:
            rarest = max(c.composed_of)
            family = (f"rare composite of {c2[0].key}" if rarest == 0
                      else prefix + c2[rarest].key)
        new3.append(replace(c, family=family))

    def summary(classes: list[MotifClass]) -> dict:
        freq = [c for c in classes if c.count >= min_support]
        rare = [c for c in classes if c.count < min_support]
        return dict(classes=len(classes), instances=sum(c.count for c in classes),
                    frequent=len(freq), frequent_instances=sum(c.count for c in freq),
                    rare=len(rare), rare_instances=sum(c.count for c in rare),
                    families=len({c.family for c in classes}))

    support = dict(min_support=int(min_support), defect_majority=float(defect_majority),
                   dominant_unit=c2[0].key if c2 else None,
                   dominant_fraction=round(float(dominant_fraction), 4),
                   defect_lattice=defect_lattice,
                   irregular_units=dict(close_pair=int(np.count_nonzero(flags & 1)),
                                        over_coordinated=int(np.count_nonzero(flags & 2)),
                                        any=int(np.count_nonzero(flags)), of=len(flags)),
                   level2=summary(new2), level3=summary(new3))
    return ([replace(level2, classes=new2), replace(level3, classes=new3)], support)
