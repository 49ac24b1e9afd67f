"""The motif hierarchy on real point sets: honeycomb, vacancies, Cairo tilings, TMD images."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motifcat.errors import AnalysisError
from motifcat.ingest.hierarchy import (
    build_hierarchy,
    neighbour_graph,
    planar_faces,
    relabel,
)

HEX = "6[A,B,A,B,A,B]"


def honeycomb(n=10, bond=10.0):
    """Honeycomb patch: sublattice A (label 0) and B (label 1), bond length ``bond``."""
    i, j = np.meshgrid(np.arange(n), np.arange(n))
    a1 = np.array([1.5, 3**0.5 / 2]) * bond
    a2 = np.array([1.5, -(3**0.5) / 2]) * bond
    base = i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2
    xy = np.concatenate([base, base + [bond, 0.0]])
    return xy, np.repeat([0, 1], len(base))


def level_counts(level):
    return sorted((c.key, c.count) for c in level.classes)


def units_as_sets(h):
    """Ring vertex set -> (unit index, interior columns) of every level-2 instance."""
    l2 = h.levels[0]
    out = {}
    for i in range(len(l2)):
        m = l2.members(i)
        n = int(l2.classes[l2.instance_class[i]].key.split("[")[0])
        out[frozenset(m[:n].tolist())] = (i, m[n:])
    return out


def rigid(xy, theta, mirror, shift):
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    out = xy @ rot.T + shift
    if mirror:
        out[:, 0] = -out[:, 0]
    return out


@pytest.fixture(scope="module")
def cairo(synthetic):
    return synthetic("cairo", (320, 320), fill_fraction=0.5, noise=False, seed=4)


@pytest.fixture(scope="module")
def cairo_h(cairo):
    return build_hierarchy(cairo.xy, cairo.column_class, label_names=cairo.class_names,
                           image=cairo.image)


# ---------------------------------------------------------------------------------------------
# Neighbour graph and faces
# ---------------------------------------------------------------------------------------------


def test_honeycomb_graph_keeps_only_bonds():
    xy, lab = honeycomb(8)
    g = neighbour_graph(xy, lab)
    assert not g.interior.any()
    assert np.allclose(g.dist_px, 10.0)
    assert np.all(g.pairs[:, 0] < g.pairs[:, 1])
    # Every column off the border has exactly its three bonds.
    deg = np.bincount(g.pairs.ravel(), minlength=len(xy))
    assert np.count_nonzero(deg == 3) > 0.6 * len(xy)
    assert deg.max() == 3


def test_planar_faces_of_a_grid():
    x, y = np.meshgrid(np.arange(4), np.arange(3))
    xy = np.stack([x.ravel(), y.ravel()], 1).astype(float)
    idx = np.arange(12).reshape(3, 4)
    pairs = np.concatenate([
        np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
        np.stack([idx[:-1].ravel(), idx[1:].ravel()], 1),
    ])
    f = planar_faces(xy, pairs)
    bounded = f.area > 0
    assert bounded.sum() == 6
    assert np.allclose(f.area[bounded], 1.0)
    assert np.all(f.size[bounded] == 4)
    assert f.area[~bounded].sum() == pytest.approx(-6.0)


def test_honeycomb_units_are_hexagons_with_one_key():
    xy, lab = honeycomb(10)
    h = build_hierarchy(xy, lab)
    l2 = h.levels[0]
    assert [c.key for c in l2.classes] == [HEX]
    assert len(l2) == 49  # the (n-3)^2 hexagons not touching the outer boundary
    assert l2.classes[0].composed_of == {0: 3, 1: 3}
    # Members: six ring columns in cyclic order, neighbours one bond apart.
    for i in range(len(l2)):
        ring = xy[l2.members(i)]
        assert np.allclose(np.linalg.norm(ring - np.roll(ring, -1, 0), axis=1), 10.0)
    # Prototype: a regular hexagon of radius one bond with alternating labels.
    c = l2.classes[0]
    assert np.allclose(np.linalg.norm(c.prototype_xy, axis=1), 10.0, atol=1e-6)
    assert c.prototype_labels.tolist() in ([0, 1, 0, 1, 0, 1],)


@settings(max_examples=8, deadline=None)
@given(st.floats(0, 2 * np.pi), st.booleans(), st.floats(-500, 500), st.integers(0, 2**31))
def test_keys_and_counts_invariant_under_rigid_motion_and_reindexing(theta, mirror, dx, seed):
    xy, lab = honeycomb(7)
    lab = lab.copy()
    lab[[20, 33, 70]] = 2  # a few substituted columns make several unit and star classes
    ref = build_hierarchy(xy, lab)
    perm = np.random.default_rng(seed).permutation(len(xy))
    moved = rigid(xy, theta, mirror, np.array([dx, -dx / 2]))[perm]
    h = build_hierarchy(moved, lab[perm])
    for a, b in zip(ref.levels, h.levels, strict=True):
        assert level_counts(a) == level_counts(b)
    assert len(h.neighbour_pairs) == len(ref.neighbour_pairs)


def test_vacancy_merges_three_hexagons_into_a_dodecagon():
    xy, lab = honeycomb(10)
    centre = np.argmin(np.linalg.norm(xy - xy.mean(0), axis=1))
    keep = np.ones(len(xy), bool)
    keep[centre] = False
    h = build_hierarchy(xy[keep], lab[keep])
    counts = dict(level_counts(h.levels[0]))
    assert counts[HEX] == 49 - 3
    dodeca = [k for k in counts if k.startswith("12[")]
    assert len(dodeca) == 1 and counts[dodeca[0]] == 1
    # The dodecagon is a defect unit: its neighbourhood is a level-3 composite of itself and
    # the nine hexagons around it.
    l3 = h.levels[1]
    nb = [c for c in l3.classes if c.key.startswith("N{")]
    assert len(nb) == 1 and nb[0].count == 1
    labels2 = {c.key: c.label for c in h.levels[0].classes}
    assert nb[0].composed_of == {labels2[HEX]: 9, labels2[dodeca[0]]: 1}


def test_unknown_labels_make_units_incomplete():
    xy, lab = honeycomb(10)
    full = build_hierarchy(xy, lab)
    centre = np.argmin(np.linalg.norm(xy - xy.mean(0), axis=1))
    lab2 = lab.copy()
    lab2[centre] = -1
    h = build_hierarchy(xy, lab2)
    assert len(h.levels[0]) == len(full.levels[0]) - 3
    assert centre not in h.levels[0].members_indices
    # The graph still has the column (its three bonds are NEAR edges).
    assert np.count_nonzero(h.neighbour_pairs == centre) == 3


def test_units_cut_by_the_border_do_not_count():
    xy, lab = honeycomb(10)
    h = build_hierarchy(xy, lab)
    g = neighbour_graph(xy, lab)
    f = planar_faces(xy, g.ring_pairs)
    outer = f.area[f.face] <= 0  # darts walking an outer boundary
    border_edges = {frozenset(e) for e in zip(f.src[outer].tolist(), f.dst[outer].tolist(),
                                                   strict=True)}
    assert len(border_edges) > 20
    l2 = h.levels[0]
    for i in range(len(l2)):
        ring = l2.members(i).tolist()
        edges = {frozenset(e) for e in zip(ring, ring[1:] + ring[:1], strict=True)}
        assert not edges & border_edges
    # The faces along the border are real hexagons, but they are not counted.
    bounded_hex = np.count_nonzero((f.area > 0) & (f.size == 6))
    assert bounded_hex > len(l2)


# ---------------------------------------------------------------------------------------------
# Cairo tiling: pentagons, filled/empty, groups of four
# ---------------------------------------------------------------------------------------------


def eligible_pentagons(s):
    adj = s.truth["pentagon_adjacency"]
    return np.bincount(adj.ravel(), minlength=len(s.truth["pentagons"])) == 5


def test_cairo_interior_pentagons_found_with_fill_flags(cairo, cairo_h):
    found = units_as_sets(cairo_h)
    pents, filled = cairo.truth["pentagons"], cairo.truth["filled"]
    centre = cairo.truth["centre_column"]
    elig = eligible_pentagons(cairo)
    assert elig.sum() >= 80
    for p, f, c in zip(pents[elig], filled[elig], centre[elig], strict=True):
        _, interior = found[frozenset(p.tolist())]
        assert interior.tolist() == ([c] if f else [])
    # Nothing else: every unit is a true pentagon.
    truth = {frozenset(p.tolist()) for p in pents}
    assert set(found) <= truth
    keys = {c.key: c for c in cairo_h.levels[0].classes}
    assert set(keys) == {"5[vertex3,vertex3,vertex4,vertex3,vertex4]",
                         "5[vertex3,vertex3,vertex4,vertex3,vertex4](centre)"}
    assert keys["5[vertex3,vertex3,vertex4,vertex3,vertex4](centre)"].composed_of == {
        0: 3, 1: 2, 2: 1}


def test_cairo_groups_of_four_match_truth_patterns(cairo, cairo_h):
    l2, l3 = cairo_h.levels
    n_ring = np.array([int(l2.classes[k].key.split("[")[0]) for k in l2.instance_class])
    unit_filled = np.diff(l2.members_indptr) > n_ring
    elig = eligible_pentagons(cairo)
    groups = cairo.truth["groups_4"]
    ok = elig[groups].all(axis=1)
    truth = Counter(cairo.truth["group_pattern"][ok].tolist())
    centres = set(cairo.truth["group_vertex"][ok].tolist())
    mine = Counter()
    star_of = {}
    for i in range(len(l3)):
        key = l3.classes[l3.instance_class[i]].key
        if key.startswith("S<vertex4>"):
            u = l3.members(i)
            centre = int(np.argmin(np.linalg.norm(cairo.xy - l3.instance_xy[i], axis=1)))
            star_of[centre] = key
            if centre in centres:
                f = unit_filled[u]
                n = int(f.sum())
                name = {0: "0", 1: "1", 3: "3", 4: "4"}.get(
                    n, "2-opposite" if f[0] == f[2] else "2-adjacent")
                mine[name] += 1
    assert mine == truth
    # One level-3 class per pattern among the 4-stars (keys up to rotation/reflection).
    keys_4 = {k for k in star_of.values()}
    assert len(keys_4) == len([p for p in truth if truth[p]])
    c4 = [c for c in l3.classes if c.key.startswith("S<vertex4>")]
    l2_labels = {c.key: c.label for c in l2.classes}
    for c in c4:
        assert sum(c.composed_of.values()) == 4
        assert set(c.composed_of) <= set(l2_labels.values())


def test_cairo_prototypes_and_mean_images(cairo_h, cairo):
    l2 = cairo_h.levels[0]
    filled = next(c for c in l2.classes if c.key.endswith("(centre)"))
    empty = next(c for c in l2.classes if not c.key.endswith("(centre)"))
    edge = cairo.truth["edge_px"]
    # Equilateral pentagon: consecutive prototype vertices one edge apart.
    ring = filled.prototype_xy[:5]
    assert np.allclose(np.linalg.norm(ring - np.roll(ring, -1, 0), axis=1), edge, rtol=1e-6)
    assert filled.prototype_labels.tolist()[5] == 2
    assert np.linalg.norm(filled.prototype_xy[5]) < 0.05 * edge  # centre column at centroid
    # Mean images: the filled pentagon is bright at the centre, the empty one is not.
    for c in (filled, empty):
        assert c.mean_image is not None and np.isfinite(c.mean_image).all()
    mid = filled.mean_image.shape[0] // 2
    assert filled.mean_image[mid, mid] > 1.5 * empty.mean_image[mid, mid]
    # Aligned averaging keeps the vertex columns sharp: the mean image is brightest near them.
    q = np.rint(empty.prototype_xy + mid).astype(int)
    assert empty.mean_image[q[:, 1], q[:, 0]].min() > np.median(empty.mean_image)
    l3 = cairo_h.levels[1]
    for c in l3.classes:
        assert c.prototype_xy is not None and len(c.prototype_xy) == len(c.prototype_labels)
        assert c.mean_image is not None


def test_cairo_keys_invariant_under_rotation_and_mirror(cairo):
    ref = build_hierarchy(cairo.xy, cairo.column_class)
    moved = rigid(cairo.xy, 0.7, True, np.array([13.0, -7.0]))
    h = build_hierarchy(moved, cairo.column_class)
    assert level_counts(h.levels[0]) == level_counts(ref.levels[0])
    assert level_counts(h.levels[1]) == level_counts(ref.levels[1])


def test_cairo_with_position_noise_still_finds_pentagons(synthetic):
    s = synthetic("cairo", (320, 320), noise=False, seed=7)
    xy = s.xy + np.random.default_rng(1).normal(0, 0.4, s.xy.shape)  # 2 % of an edge
    h = build_hierarchy(xy, s.column_class)
    found = units_as_sets(h)
    elig = eligible_pentagons(s)
    hit = [frozenset(p.tolist()) in found for p in s.truth["pentagons"][elig]]
    assert np.mean(hit) >= 0.99


# ---------------------------------------------------------------------------------------------
# relabel, majority filter, TMD defects
# ---------------------------------------------------------------------------------------------


def test_relabel_with_same_names_is_identity(cairo, cairo_h):
    again = relabel(cairo_h, cairo.class_names)
    for a, b in zip(cairo_h.levels, again.levels, strict=True):
        assert level_counts(a) == level_counts(b)
        assert np.array_equal(a.instance_class, b.instance_class)


def test_relabel_merges_classes(cairo, cairo_h):
    h = relabel(cairo_h, ["v", "v", "c"])  # both vertex kinds get one global id
    l2 = h.levels[0]
    assert level_counts(l2) == sorted([
        ("5[v,v,v,v,v]", sum(c.count for c in cairo_h.levels[0].classes
                             if "(" not in c.key)),
        ("5[v,v,v,v,v](c)", sum(c.count for c in cairo_h.levels[0].classes if "(" in c.key)),
    ])
    # Stars: 3- and 4-valent centres now share a name, so the S<v> keys depend only on the
    # fill pattern around the vertex; counts are conserved.
    old3, new3 = cairo_h.levels[1], h.levels[1]
    assert len(new3) == len(old3)
    assert sum(c.count for c in new3.classes) == len(new3)
    assert len(new3.classes) == len(old3.classes)  # 3- and 4-stars still differ by valence
    assert all(c.key.startswith("S<v>") for c in new3.classes)
    for c in new3.classes:  # composed_of refers to the merged level-2 labels
        assert set(c.composed_of) <= {k.label for k in l2.classes}
        rows = np.flatnonzero(new3.instance_class == c.label)
        first = new3.members(int(rows[0]))
        assert sum(c.composed_of.values()) == len(first)
    # Members and instances unchanged.
    assert np.array_equal(h.levels[0].instance_xy, cairo_h.levels[0].instance_xy)
    with pytest.raises(AnalysisError):
        relabel(cairo_h, ["v"])


def test_relabel_merges_units_and_composites():
    xy, lab = honeycomb(9)
    lab = lab.copy()
    lab[np.argmin(np.linalg.norm(xy - xy.mean(0) - [5, 0], axis=1))] = 2
    h = build_hierarchy(xy, lab, label_names=["M", "X2", "X1"])
    assert len(h.levels[0].classes) == 2
    assert any(c.key.startswith("N{") for c in h.levels[1].classes)
    merged = relabel(h, ["m", "x", "x"])  # X1 matched to the same global motif as X2
    assert level_counts(merged.levels[0]) == [("6[m,x,m,x,m,x]", len(h.levels[0]))]
    # Stars merge into one class per centre name; no unit is a defect any more.
    assert sorted(c.key[:4] for c in merged.levels[1].classes) == ["S<m>", "S<x>"]
    n_stars = sum(c.count for c in h.levels[1].classes if c.key.startswith("S"))
    assert sum(c.count for c in merged.levels[1].classes) == n_stars
    assert [c.composed_of for c in merged.levels[1].classes] == [{0: 3}, {0: 3}]


@pytest.fixture(scope="module")
def tmd(synthetic):
    return synthetic("tmd", (256, 256), noise=False, seed=3,
                     defects={"chalcogen_double": 0.01, "metal_vacancy": 0.01,
                              "chalcogen_single": 0.02})


def test_tmd_faces_match_truth(tmd):
    h = build_hierarchy(tmd.xy, tmd.column_class, label_names=tmd.class_names)
    found = units_as_sets(h)
    tf = tmd.truth["faces"]
    truth = {}
    for k in range(len(tf["key"])):
        ring = tf["indices"][tf["indptr"][k]:tf["indptr"][k + 1]]
        truth[frozenset(ring.tolist())] = tf["key"][k]
    l2 = h.levels[0]
    assert len(found) > 50
    for ring, (i, _) in found.items():
        key = l2.classes[l2.instance_class[i]].key  # "6[M,X2,...]" vs synth's "M-X2-..."
        assert ring in truth
        assert key.split("[")[1].rstrip("]").replace(",", "-") == truth[ring]
    n_removed = sum(tmd.truth["defect_counts"][k] for k in ("chalcogen_double",
                                                             "metal_vacancy"))
    n_dodeca = sum(c.count for c in l2.classes if c.key.startswith("12["))
    assert 0 < n_dodeca <= n_removed


def test_majority_filter_clusters_and_keeps_counts(tmd):
    plain = build_hierarchy(tmd.xy, tmd.column_class, label_names=tmd.class_names)
    filt = build_hierarchy(tmd.xy, tmd.column_class, label_names=tmd.class_names,
                           majority_filter=True)
    assert level_counts(plain.levels[0]) == level_counts(filt.levels[0])
    l3 = filt.levels[1]
    assert len(l3) > 0 and all(c.key.startswith("C{") for c in l3.classes)
    major = plain.levels[0].classes[0].label
    assert not np.any(filt.levels[0].instance_class[l3.members_indices] == major)
    # Without the filter: stars everywhere plus defect neighbourhoods.
    kinds = Counter(c.key[0] for c in plain.levels[1].classes)
    assert kinds["S"] > 0 and kinds["N"] > 0


def test_single_x1_column_makes_three_modified_hexagons():
    xy, lab = honeycomb(9)
    centre = np.argmin(np.linalg.norm(xy - xy.mean(0) - [5, 0], axis=1))
    lab = lab.copy()
    lab[centre] = 2
    h = build_hierarchy(xy, lab, label_names=["M", "X2", "X1"])
    counts = dict(level_counts(h.levels[0]))
    assert counts["6[M,X1,M,X2,M,X2]"] == 3
    # Three defect neighbourhoods (one per modified hexagon), one class.
    nb = [c for c in h.levels[1].classes if c.key.startswith("N{")]
    assert len(nb) == 1 and nb[0].count == 3


# ---------------------------------------------------------------------------------------------
# Edge cases and validation
# ---------------------------------------------------------------------------------------------


def test_degenerate_inputs_give_an_empty_hierarchy():
    for xy in (np.zeros((0, 2)), np.array([[0.0, 0.0], [1.0, 0.0]]),
               np.stack([np.arange(5.0), np.zeros(5)], 1)):
        h = build_hierarchy(xy, np.zeros(len(xy), dtype=int))
        assert len(h.levels) == 2 and len(h.levels[0]) == 0 and len(h.levels[1]) == 0
        assert h.levels[0].members_indptr.tolist() == [0]


def test_all_unknown_labels_give_no_units():
    xy, lab = honeycomb(6)
    h = build_hierarchy(xy, np.full(len(xy), -1))
    assert len(h.levels[0]) == 0
    assert len(h.neighbour_pairs) > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(xy=np.zeros((4, 3)), labels=np.zeros(4, int)), "shape"),
        (dict(xy=np.full((4, 2), np.nan), labels=np.zeros(4, int)), "NaN"),
        (dict(xy=np.zeros((4, 2)), labels=np.zeros(3, int)), "labels"),
        (dict(xy=np.zeros((4, 2)), labels=np.full(4, -2)), ">= -1"),
        (dict(xy=np.zeros((4, 2)), labels=np.zeros(4)), "integer"),
        (dict(xy=np.zeros((4, 2)), labels=np.zeros(4, int), max_edge_factor=0.5),
         "max_edge_factor"),
        (dict(xy=np.zeros((4, 2)), labels=np.zeros(4, int), label_names=["a|b"]), "reserved"),
        (dict(xy=np.zeros((4, 2)), labels=np.zeros(4, int), image=np.zeros(5)), "2-D"),
    ],
)
def test_invalid_inputs_raise(kwargs, match):
    with pytest.raises(AnalysisError, match=match):
        build_hierarchy(kwargs.pop("xy"), kwargs.pop("labels"), **kwargs)


# ---------------------------------------------------------------------------------------------
# relabel fast path (injective names) against the full classification
# ---------------------------------------------------------------------------------------------


def _full(h, names):
    from motifcat.ingest.hierarchy.classify import _classify

    return _classify(h.structure, list(names))


def _assert_same_classification(fast_levels, full_levels):
    for fast, full in zip(fast_levels, full_levels, strict=True):
        assert [(c.key, c.count) for c in fast.classes] == [(c.key, c.count)
                                                               for c in full.classes]
        assert [c.composed_of for c in fast.classes] == [c.composed_of for c in full.classes]
        np.testing.assert_array_equal(fast.instance_class, full.instance_class)
        np.testing.assert_array_equal(fast.members_indptr, full.members_indptr)
        np.testing.assert_allclose(fast.instance_xy, full.instance_xy)
        for i in range(len(full)):
            assert set(fast.members(i).tolist()) == set(full.members(i).tolist())
    # Level-2 rings and star member orders are canonical readings: equal to the full path.
    np.testing.assert_array_equal(fast_levels[0].members_indices, full_levels[0].members_indices)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relabel_injective_fast_path_matches_full_classification(tmd, seed):
    h = build_hierarchy(tmd.xy, tmd.column_class, image=tmd.image)
    assert any(c.key.startswith("N{") for c in h.levels[1].classes)
    n = int(h.structure.labels.max()) + 1
    rng = np.random.default_rng(seed)
    names = [f"L1-{k:04d}" for k in rng.permutation(50)[:n]]
    fast = relabel(h, names)
    assert len(fast.levels[1].classes) > 1
    _assert_same_classification(fast.levels, _full(h, names))
    # Relabelling again (from the relabelled hierarchy) stays exact, and the input is intact.
    names2 = names[::-1]
    _assert_same_classification(relabel(fast, names2).levels, _full(h, names2))
    assert h.structure.names != names


def test_relabel_injective_fast_path_on_cairo_stars(cairo, cairo_h):
    names = ["z9", "a1", "m5"][: int(cairo_h.structure.labels.max()) + 1]
    fast = relabel(cairo_h, names)
    assert any(c.key.startswith("S<") for c in fast.levels[1].classes)
    _assert_same_classification(fast.levels, _full(cairo_h, names))


def test_relabel_non_injective_after_injective_still_merges():
    xy, lab = honeycomb(9)
    lab = lab.copy()
    lab[np.argmin(np.linalg.norm(xy - xy.mean(0) - [5, 0], axis=1))] = 2
    h = build_hierarchy(xy, lab, label_names=["M", "X2", "X1"])
    renamed = relabel(h, ["p", "q", "r"])  # fast path
    _assert_same_classification(renamed.levels, _full(h, ["p", "q", "r"]))
    merged = relabel(renamed, ["m", "x", "x"])
    assert level_counts(merged.levels[0]) == [("6[m,x,m,x,m,x]", len(h.levels[0]))]
    assert len(renamed.levels[0].classes) == 2
    # Back to distinct names: the classes split again (full path, not the merged partition).
    again = relabel(merged, ["p", "q", "r"])
    for a, b in zip(again.levels, renamed.levels, strict=True):
        assert level_counts(a) == level_counts(b)


# ---------------------------------------------------------------------------------------------
# Families, support, doubles, bounded mean images (issue 11)
# ---------------------------------------------------------------------------------------------


def test_families_group_rare_classes_above_exact_keys(tmd):
    h = build_hierarchy(tmd.xy, tmd.column_class, label_names=tmd.class_names, min_support=3)
    l2, l3 = h.levels
    unit_keys = {c.key for c in l2.classes}
    for c in l2.classes + l3.classes:
        assert c.family is not None
        if c.count >= 3:
            assert c.family == c.key  # a frequent class is a family of its own
    rare3 = [c for c in l3.classes if c.count < 3]
    assert rare3
    for c in rare3:
        # "defect neighbourhood of <its rarest unit>": the unit with the highest label.
        rarest = l2.classes[max(c.composed_of)].key
        assert c.family.endswith(f"of {rarest}") and rarest in unit_keys
        assert c.family.startswith(("defect neighbourhood of ", "neighbourhood of "))
    for c in (c for c in l2.classes if c.count < 3):
        assert c.family.startswith(("variant of ", "rare "))
    sup = h.support
    assert sup["min_support"] == 3 and sup["dominant_unit"] == l2.classes[0].key
    assert sup["defect_lattice"] == (sup["dominant_fraction"] >= sup["defect_majority"])
    for name, lev in (("level2", l2), ("level3", l3)):
        s = sup[name]
        assert s["classes"] == len(lev.classes) and s["instances"] == len(lev)
        assert s["frequent"] + s["rare"] == s["classes"]
        assert s["frequent_instances"] + s["rare_instances"] == s["instances"]
        assert s["families"] == len({c.family for c in lev.classes}) <= s["classes"]
    # A higher threshold makes more classes rare and fewer families; keys do not change.
    h9 = build_hierarchy(tmd.xy, tmd.column_class, label_names=tmd.class_names, min_support=9)
    assert level_counts(h9.levels[1]) == level_counts(l3)
    assert h9.support["level3"]["rare"] > sup["level3"]["rare"]
    assert h9.support["level3"]["families"] < sup["level3"]["families"]


def test_relabel_recomputes_families_in_the_new_names(tmd):
    h = build_hierarchy(tmd.xy, tmd.column_class, min_support=3)
    names = [f"m{k}" for k in range(len(tmd.class_names))]
    r = relabel(h, names)
    fam = [c.family for c in r.levels[1].classes if c.count < 3]
    assert fam and all("m0" in f for f in fam)
    assert not any("[A," in f for f in fam)
    assert r.support["level3"] == h.support["level3"]


def test_a_doubled_column_is_left_out_of_the_graph():
    xy, lab = honeycomb(8)
    ref = build_hierarchy(xy, lab)
    k = int(np.argmin(np.linalg.norm(xy - xy.mean(0), axis=1)))
    doubled = np.concatenate([xy, xy[k:k + 1] + [0.8, 0.6]])  # 1 px off, bond 10 px
    h = build_hierarchy(doubled, np.append(lab, 2))
    assert h.support["doubles_left_out"] == 1 and ref.support["doubles_left_out"] == 0
    assert level_counts(h.levels[0]) == level_counts(ref.levels[0])
    assert len(h.levels[1]) == len(ref.levels[1])
    assert not np.isin(len(xy), h.levels[0].members_indices)
    assert not np.isin(len(xy), h.neighbour_pairs)
    # Same class: the higher index goes, the original stays in its units.
    h2 = build_hierarchy(doubled, np.append(lab, lab[k]))
    assert level_counts(h2.levels[0]) == level_counts(ref.levels[0])
    assert np.isin(k, h2.levels[0].members_indices)


def test_mean_images_are_bounded_in_size_and_sample(tmd):
    h = build_hierarchy(tmd.xy, tmd.column_class, image=tmd.image, max_images=4)
    for lev in h.levels:
        for c in lev.classes:
            assert c.mean_image is not None and max(c.mean_image.shape) <= 64
            assert c.mean_image.shape[0] % 2 == 1 and np.isfinite(c.mean_image).all()
    # Level-3 neighbourhoods span more than 64 px here: sampled every k-th pixel.
    wide = max(np.abs(c.prototype_xy).max() for c in h.levels[1].classes)
    assert 2 * wide > 64
    big = build_hierarchy(tmd.xy, tmd.column_class, image=tmd.image, max_images=1000)
    c0, c1 = h.levels[0].classes[0], big.levels[0].classes[0]
    assert c0.mean_image.shape == c1.mean_image.shape
    # Four instances already give the average unit (a perfect lattice, noise-free image).
    corr = np.corrcoef(c0.mean_image.ravel(), c1.mean_image.ravel())[0, 1]
    assert corr > 0.95


@pytest.mark.parametrize("kwargs", [dict(min_support=0), dict(max_images=0),
                                    dict(defect_majority=0.0), dict(defect_majority=1.5)])
def test_invalid_support_settings_raise(kwargs):
    xy, lab = honeycomb(4)
    with pytest.raises(AnalysisError):
        build_hierarchy(xy, lab, **kwargs)


# ---- irregular units: spurious and over-coordinated columns (issue 11, real-image tail)


def test_clean_honeycomb_has_no_irregular_units():
    xy, lab = honeycomb()
    h = build_hierarchy(xy, lab)
    assert h.support["irregular_units"]["any"] == 0
    assert h.support["irregular_units"]["of"] == h.levels[0].classes[0].count
    assert not h.structure.irregular.any()


def test_close_pair_flags_its_units_and_family():
    # A second column 0.6 bond from a B column (a spurious detection beyond min_separation)
    # splits the rings around it; every unit holding it is flagged CLOSE_PAIR, and the rare
    # classes made only of flagged units are the family "irregular <n>-ring".
    from motifcat.ingest.hierarchy.structure import CLOSE_PAIR

    xy, lab = honeycomb(bond=10.0)
    mid = int(np.argmin(np.linalg.norm(xy - xy.mean(axis=0), axis=1)))
    extra = xy[mid] + [0.0, 6.0]
    h = build_hierarchy(np.vstack([xy, extra]), np.append(lab, 1), min_support=3)
    s, l2 = h.structure, h.levels[0]
    new = len(xy)
    holds = np.array([new in s.ring[s.ring_indptr[u]:s.ring_indptr[u + 1]]
                      for u in range(s.n_units)])
    assert holds.any()
    assert np.all((s.irregular[holds] & CLOSE_PAIR) > 0)
    assert h.support["irregular_units"]["close_pair"] == int(holds.sum())
    for c in l2.classes[1:]:
        if c.count < 3:
            assert c.family.startswith("irregular ")
    assert l2.classes[0].key == HEX and l2.classes[0].family == HEX


def test_column_at_hexagon_centre_flags_over_coordinated_units():
    # A column detected at a hexagon's centre has 6 ring bonds where its class (A) has 3:
    # the six triangles it makes (and the rings around, whose vertices gained a bond) are
    # flagged OVER_COORDINATED; the rare triangle class is the family "irregular 3-ring".
    from motifcat.ingest.hierarchy.structure import OVER_COORDINATED

    xy, lab = honeycomb()
    l2 = build_hierarchy(xy, lab).levels[0]
    u = int(np.argmin(np.linalg.norm(l2.instance_xy - xy.mean(axis=0), axis=1)))
    h = build_hierarchy(np.vstack([xy, l2.instance_xy[u]]), np.append(lab, 0), min_support=7)
    counts = dict(level_counts(h.levels[0]))
    assert counts["3[A,A,B]"] == 6
    tri = next(c for c in h.levels[0].classes if c.key == "3[A,A,B]")
    assert tri.family == "irregular 3-ring"
    s = h.structure
    assert np.all((s.irregular[h.levels[0].instance_class == tri.label] & OVER_COORDINATED) > 0)
    assert h.support["irregular_units"]["over_coordinated"] >= 6
