"""Canonical forms of motifs, invariant to the rotations and reflections of the plane.

Two kinds of structure name a higher-level motif:

* a **cycle** of labels (the vertices of a polygon, or the units around a column): its
  canonical form is the lexicographically smallest sequence over every starting position and
  both directions of travel, i.e. the minimum over the dihedral group acting on the cycle
  (:func:`dihedral_canonical`, vectorised over many cycles of one length);
* a small **labelled plane graph** (units and the edges they share): its canonical code is the
  smallest breadth-first code over every start dart and both orientations of the embedding
  (:func:`plane_graph_code`). The code lists every node label and every adjacency, so two
  graphs get the same code if and only if they are isomorphic as labelled plane graphs up to
  reflection; it is an exact key, not a hash.

Keys are plain strings built from level-1 *names* (see :func:`check_names`), so that a key can
be recomputed when an image's level-1 classes are renamed to the catalog's global motif ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import AnalysisError

#: Characters that structure the keys; level-1 names may not contain them.
RESERVED = set("[](){};,|#<>")


def check_names(names: Sequence[str], n_labels: int) -> list[str]:
    """Validate the level-1 names used in canonical keys.

    Parameters
    ----------
    names : sequence of str
        ``names[i]`` is the name of level-1 label ``i``.
    n_labels : int
        Number of level-1 labels in use (``max(labels) + 1``).

    Returns
    -------
    list of str

    Raises
    ------
    AnalysisError
        If a name is missing, empty, not a string or contains a reserved character.

    Examples
    --------
    >>> check_names(["A", "B"], 2)
    ['A', 'B']
    """
    names = list(names)
    if len(names) < n_labels:
        raise AnalysisError(
            f"label_names has {len(names)} names but the labels go up to {n_labels - 1}"
        )
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise AnalysisError(f"label_names[{i}] = {name!r} is not a non-empty string")
        bad = RESERVED.intersection(name)
        if bad:
            raise AnalysisError(
                f"label_names[{i}] = {name!r} contains reserved character(s) {sorted(bad)}"
            )
    return names


def default_names(n_labels: int) -> list[str]:
    """Default level-1 names: ``"A", "B", ...`` up to 26 labels, else ``"0", "1", ...``.

    Examples
    --------
    >>> default_names(3)
    ['A', 'B', 'C']
    """
    if n_labels <= 26:
        return [chr(ord("A") + i) for i in range(n_labels)]
    return [str(i) for i in range(n_labels)]


def dihedral_canonical(seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Smallest rotation or reflection of each cyclic sequence (vectorised).

    The candidates of a cycle ``s`` of length ``n`` are the ``2n`` sequences
    ``s[j], s[j+1], ...`` (candidate ``j``, forward) and ``s[j], s[j-1], ...`` (candidate
    ``n + j``, backward), indices modulo ``n``. The canonical form is the lexicographically
    smallest candidate; it is the same for a cycle and for any rotated or mirrored copy.

    Parameters
    ----------
    seqs : array_like of int, shape (M, n)
        M cycles of length n (integer codes whose order is the order wanted for the keys).

    Returns
    -------
    canon : ndarray of int, shape (M, n)
        Canonical sequences.
    start : ndarray of int, shape (M,)
        Index in ``seqs`` of the first element of the (first) minimal candidate.
    reflected : ndarray of bool, shape (M,)
        True when that candidate runs backward.
    ties : ndarray of bool, shape (M, 2n)
        Every candidate equal to the canonical form (more than one when the cycle has a
        symmetry); used to pick the best geometric alignment among equivalent ones.

    Examples
    --------
    >>> canon, start, refl, _ = dihedral_canonical(np.array([[2, 0, 1], [1, 0, 2]]))
    >>> canon.tolist(), start.tolist(), refl.tolist()
    ([[0, 1, 2], [0, 1, 2]], [1, 1], [False, True])
    """
    seqs = np.asarray(seqs)
    if seqs.ndim != 2:
        raise ValueError(f"seqs must be 2-D (M cycles x length), got shape {seqs.shape}")
    m, n = seqs.shape
    if n == 0:
        empty = np.zeros(m, dtype=np.int64)
        return seqs.copy(), empty, empty.astype(bool), np.ones((m, 0), dtype=bool)
    j = np.arange(n)
    fwd = (j[:, None] + j[None, :]) % n  # candidate j reads s[j + t]
    bwd = (j[:, None] - j[None, :]) % n  # candidate n + j reads s[j - t]
    cand = seqs[:, np.concatenate([fwd, bwd])]  # (M, 2n, n)
    alive = np.ones((m, 2 * n), dtype=bool)
    big = np.iinfo(np.int64).max
    # Narrow the set of minimal candidates position by position: n vectorised passes.
    for t in range(n):
        col = cand[:, :, t].astype(np.int64)
        low = np.where(alive, col, big).min(axis=1)
        alive &= col == low[:, None]
    choice = alive.argmax(axis=1)
    canon = cand[np.arange(m), choice]
    return canon, choice % n, choice >= n, alive


def candidate_order(n: int, choice: np.ndarray) -> np.ndarray:
    """Index arrays that read a cycle in the order of dihedral candidate ``choice``.

    Parameters
    ----------
    n : int
        Cycle length.
    choice : ndarray of int, shape (...)
        Candidate numbers as in :func:`dihedral_canonical` (``j`` forward, ``n + j`` backward).

    Returns
    -------
    ndarray of int, shape (..., n)

    Examples
    --------
    >>> candidate_order(4, np.array([1, 5])).tolist()
    [[1, 2, 3, 0], [1, 0, 3, 2]]
    """
    choice = np.asarray(choice)
    start = (choice % n)[..., None]
    t = np.arange(n)
    return np.where((choice >= n)[..., None], start - t, start + t) % n


def cycle_key(n: int, ring: Sequence[str], interior: Sequence[str] = ()) -> str:
    """Text key of a polygon unit from its canonical ring names and interior names.

    Parameters
    ----------
    n : int
        Polygon size.
    ring : sequence of str
        Vertex names in canonical order (see :func:`dihedral_canonical`).
    interior : sequence of str
        Names of the interior column(s); empty for an empty polygon.

    Examples
    --------
    >>> cycle_key(5, ["A", "A", "B", "A", "B"], ["C"])
    '5[A,A,B,A,B](C)'
    """
    key = f"{n}[{','.join(ring)}]"
    if len(interior):
        key += f"({','.join(sorted(interior))})"
    return key


def plane_graph_code(
    node_keys: Sequence[str],
    src: np.ndarray,
    twin: np.ndarray,
    rot_next: np.ndarray,
) -> tuple[tuple, list[tuple[np.ndarray, bool]]]:
    """Exact canonical code of a connected, node-labelled plane graph.

    The embedding is given by darts (directed half-edges): dart ``d`` leaves node ``src[d]``,
    ``twin[d]`` is the same edge in the other direction, and ``rot_next[d]`` is the next dart
    leaving ``src[d]`` counter-clockwise. Multi-edges are allowed (they are distinct darts).

    For each start dart and each orientation (counter-clockwise, or clockwise = the mirror
    image) the nodes are numbered breadth-first; each node, in numbering order, lists its darts
    in rotation order starting from the dart it was discovered by, writing the label of a node
    seen for the first time or the number of a node already seen. The code is the smallest such
    list over all starts and both orientations. The code determines the labelled plane graph
    up to rotation and reflection, so equal codes mean equal motifs (no collisions).

    Parameters
    ----------
    node_keys : sequence of str
        Label of each node.
    src, twin, rot_next : ndarray of int, shape (D,)
        Dart structure as above.

    Returns
    -------
    code : tuple
        Canonical code (tuples of ``(0, label)`` for a new node, ``(1, number)`` for a known
        node, ``(2, 0)`` at the end of each node's list).
    orders : list of (ndarray, bool)
        For every (start, orientation) that attains the code: the node numbering as an array
        of node indices in discovery order, and whether the orientation was mirrored.

    Examples
    --------
    A path of two nodes "x" - "y", as two darts:

    >>> code, orders = plane_graph_code(["y", "x"], np.array([0, 1]), np.array([1, 0]),
    ...                                 np.array([0, 1]))
    >>> code
    ((0, 'x'), (0, 'y'), (2, 0), (1, 0), (2, 0))
    >>> orders[0][0].tolist()
    [1, 0]
    """
    n_nodes = len(node_keys)
    src = np.asarray(src, dtype=np.int64)
    if len(src) == 0:
        if n_nodes != 1:
            raise ValueError(f"a plane graph without edges must have one node, got {n_nodes}")
        return ((0, node_keys[0]), (2, 0)), [(np.zeros(1, dtype=np.int64), False)]
    src_l = src.tolist()
    twin_l = np.asarray(twin, dtype=np.int64).tolist()
    nxt = np.asarray(rot_next, dtype=np.int64)
    prv = np.empty_like(nxt)
    prv[nxt] = np.arange(len(nxt))
    rotations = (nxt.tolist(), prv.tolist())
    low = min(node_keys)
    starts = [d for d in range(len(src_l)) if node_keys[src_l[d]] == low]

    best: list | None = None
    orders: list[tuple[np.ndarray, bool]] = []
    for mirrored, rot in enumerate(rotations):
        for d0 in starts:
            code, order = _bfs_code(d0, rot, src_l, twin_l, node_keys, n_nodes, best)
            if code is None:
                continue
            if best is None or code < best:
                best, orders = code, [(order, bool(mirrored))]
            elif code == best:
                orders.append((order, bool(mirrored)))
    assert best is not None
    return tuple(best), orders


def _bfs_code(d0, rot, src, twin, node_keys, n_nodes, best):
    """Breadth-first code from start dart ``d0``; None as soon as it exceeds ``best``."""
    number = [-1] * n_nodes
    entry = [0] * n_nodes
    first = src[d0]
    number[first] = 0
    entry[first] = d0
    queue = [first]
    code: list[tuple] = [(0, node_keys[first])]
    # Compare with the best code token by token so that worse starts stop early.
    tight = best is not None
    head = 0
    while head < len(queue):
        node = queue[head]
        head += 1
        d = entry[node]
        while True:
            other = src[twin[d]]
            if number[other] < 0:
                number[other] = len(queue)
                entry[other] = twin[d]
                queue.append(other)
                tok = (0, node_keys[other])
            else:
                tok = (1, number[other])
            code.append(tok)
            if tight:
                ref = best[len(code) - 1]
                if tok > ref:
                    return None, None
                if tok < ref:
                    tight = False
            d = rot[d]
            if d == entry[node]:
                break
        code.append((2, 0))
        if tight:
            ref = best[len(code) - 1]
            if (2, 0) > ref:
                return None, None
            if (2, 0) < ref:
                tight = False
    return code, np.asarray(queue, dtype=np.int64)


def code_text(code: tuple) -> str:
    """Text form of a :func:`plane_graph_code` (labels, ``#k`` back-references, ``|`` ends).

    Examples
    --------
    >>> code_text(((0, 'x'), (0, 'y'), (2, 0), (1, 0), (2, 0)))
    'x;y|#0|'
    """
    out = []
    for kind, value in code:
        if kind == 0:
            out.append(f"{value};")
        elif kind == 1:
            out.append(f"#{value};")
        else:
            if out and out[-1].endswith(";"):
                out[-1] = out[-1][:-1]
            out.append("|")
    return "".join(out)
