"""Canonical forms: invariant under rotation/reflection/re-indexing, distinct otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motifcat.errors import AnalysisError
from motifcat.ingest.canonical import (
    candidate_order,
    check_names,
    code_text,
    cycle_key,
    default_names,
    dihedral_canonical,
    plane_graph_code,
)


def canon1(seq):
    return tuple(dihedral_canonical(np.array([seq]))[0][0].tolist())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=12), st.integers(0, 100), st.booleans())
def test_dihedral_canonical_invariant_under_rotation_and_reflection(seq, shift, mirror):
    other = np.roll(seq, shift % len(seq))
    if mirror:
        other = other[::-1]
    assert canon1(seq) == canon1(other.tolist())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=10))
def test_dihedral_canonical_is_the_minimum_of_all_readings(seq):
    n = len(seq)
    readings = [tuple(np.roll(seq, -j)) for j in range(n)]
    readings += [tuple(np.roll(seq[::-1], -j)) for j in range(n)]
    assert canon1(seq) == min(readings)


def test_dihedral_start_and_ties_reproduce_the_canonical_form():
    seqs = np.array([[2, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1], [3, 2, 1, 0, 0, 1]])
    canon, start, refl, ties = dihedral_canonical(seqs)
    n = seqs.shape[1]
    for i in range(len(seqs)):
        choice = start[i] + n * refl[i]
        assert seqs[i][candidate_order(n, choice)].tolist() == canon[i].tolist()
        for c in np.flatnonzero(ties[i]):  # every tie reads the same sequence
            assert seqs[i][candidate_order(n, c)].tolist() == canon[i].tolist()
    # ABABAB has 3 rotations x 2 directions giving the same reading; 320011 only one.
    assert ties[1].sum() == 6
    assert ties[2].sum() == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0, 1, 0, 1, 0, 1], [0, 0, 1, 0, 1, 1]),  # ABABAB vs AABABB
        ([0, 0, 1, 1], [0, 1, 0, 1]),
        ([0, 1, 2, 0, 2, 1], [0, 1, 2, 0, 1, 2]),
    ],
)
def test_different_cycles_have_different_canonical_forms(a, b):
    assert canon1(a) != canon1(b)


def test_mirror_images_are_one_motif():
    # A chiral cycle (no reflection symmetry) and its mirror image.
    a = [0, 0, 1, 2]
    assert canon1(a) == canon1(a[::-1])
    assert canon1(a) != canon1([0, 1, 0, 2])


def test_cycle_key_text():
    assert cycle_key(5, ["A", "A", "B", "A", "B"]) == "5[A,A,B,A,B]"
    assert cycle_key(5, ["A", "A", "B", "A", "B"], ["C"]) == "5[A,A,B,A,B](C)"
    assert cycle_key(4, ["A"] * 4, ["Z", "C"]) == "4[A,A,A,A](C,Z)"


def test_names_are_validated():
    assert default_names(2) == ["A", "B"]
    assert default_names(30)[29] == "29"
    assert check_names(["m1", "m2"], 2) == ["m1", "m2"]
    with pytest.raises(AnalysisError, match="reserved"):
        check_names(["a,b"], 1)
    with pytest.raises(AnalysisError, match="up to 2"):
        check_names(["a", "b"], 3)
    with pytest.raises(AnalysisError, match="non-empty"):
        check_names([""], 1)


# ---------------------------------------------------------------------------------------------
# Plane graph codes
# ---------------------------------------------------------------------------------------------


def embed(xy, edges):
    """Darts (src, twin, rot_next) of a straight-line embedding, counter-clockwise."""
    xy = np.asarray(xy, float)
    edges = np.asarray(edges)
    e = len(edges)
    src = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    twin = (np.arange(2 * e) + e) % (2 * e)
    ang = np.arctan2(*(xy[dst] - xy[src])[:, ::-1].T)
    order = np.lexsort((ang, src))
    nxt = np.empty(2 * e, dtype=np.int64)
    for v in np.unique(src):
        ds = order[src[order] == v]
        nxt[ds] = np.roll(ds, -1)
    return src, twin, nxt


def star(leaves):
    """A centre 'c' joined to leaves placed counter-clockwise."""
    k = len(leaves)
    t = 2 * np.pi * np.arange(k) / k
    xy = np.concatenate([[[0.0, 0.0]], np.stack([np.cos(t), np.sin(t)], 1)])
    edges = [(0, i + 1) for i in range(k)]
    return ["c", *leaves], xy, edges


def code_of(labels, xy, edges):
    return plane_graph_code(labels, *embed(xy, edges))[0]


def transformed(labels, xy, edges, rng, mirror):
    """The same labelled plane graph rotated, maybe mirrored, with nodes re-indexed."""
    xy = np.asarray(xy, float)
    th = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    xy2 = xy @ rot.T + rng.normal(size=2)
    if mirror:
        xy2[:, 0] *= -1
    perm = rng.permutation(len(labels))  # new index of old node i is perm[i]
    labels2 = [None] * len(labels)
    xy3 = np.empty_like(xy2)
    for i, p in enumerate(perm):
        labels2[p] = labels[i]
        xy3[p] = xy2[i]
    edges2 = [(perm[a], perm[b]) for a, b in rng.permutation(np.array(edges))]
    return labels2, xy3, edges2


@pytest.mark.parametrize("seed", range(6))
def test_plane_code_invariant_under_rotation_reflection_reindexing(seed):
    rng = np.random.default_rng(seed)
    # A wheel-like composite: centre unit with a ring of 5 units, two of another kind.
    t = 2 * np.pi * np.arange(5) / 5
    xy = np.concatenate([[[0, 0]], np.stack([np.cos(t), np.sin(t)], 1)])
    labels = ["H", "H", "D", "H", "D", "H"]
    edges = [(0, i) for i in range(1, 6)] + [(i, i % 5 + 1) for i in range(1, 6)]
    ref = code_of(labels, xy, edges)
    for mirror in (False, True):
        assert code_of(*transformed(labels, xy, edges, rng, mirror)) == ref


def test_plane_code_distinguishes_arrangements():
    adjacent = code_of(*star(["a", "a", "b", "b"]))
    alternating = code_of(*star(["a", "b", "a", "b"]))
    assert adjacent != alternating
    assert code_of(*star(["b", "a", "a", "b"])) == adjacent  # a rotation of aabb
    # Chiral arrangement a,b,c,d around a centre and its mirror image a,d,c,b: one motif ...
    assert code_of(*star(["a", "b", "c", "d"])) == code_of(*star(["a", "d", "c", "b"]))
    # ... but a,c,b,d is a different cyclic order (not a rotation or reflection of abcd).
    assert code_of(*star(["a", "b", "c", "d"])) != code_of(*star(["a", "c", "b", "d"]))


def test_plane_code_uses_the_embedding_not_only_the_graph():
    # Same abstract graph (a path a-b-c plus b-d, b-e), leaves in different cyclic order.
    lab = ["b", "a", "c", "d", "e"]
    xy1 = [[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]]  # around b: a, c, d, e
    xy2 = [[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]]  # around b: a, d, c, e
    edges = [(0, 1), (0, 2), (0, 3), (0, 4)]
    assert code_of(lab, xy1, edges) != code_of(lab, xy2, edges)


def test_plane_code_orders_number_the_nodes():
    labels, xy, edges = star(["x", "y", "x"])
    code, orders = plane_graph_code(labels, *embed(xy, edges))
    assert code[0] == (0, "c")
    for order, _ in orders:
        assert sorted(order.tolist()) == [0, 1, 2, 3]
        assert order[0] == 0  # "c" is the smallest label: the code starts there
    assert code_text(code).startswith("c;x;x;y|")


def test_single_node_code():
    code, orders = plane_graph_code(["u"], np.zeros(0, int), np.zeros(0, int), np.zeros(0, int))
    assert code_text(code) == "u|"
    assert orders[0][0].tolist() == [0]
