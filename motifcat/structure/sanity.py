"""Sanity of an exported model: no two atoms closer than a fraction of their covalent radii."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list

#: Two atoms closer than this fraction of the sum of their covalent radii overlap.
OVERLAP_FRACTION = 0.75


@dataclass(frozen=True)
class Overlap:
    """Two atoms too close: indices, symbols, distance and the limit (Å)."""

    i: int
    j: int
    symbol_i: str
    symbol_j: str
    distance_A: float
    limit_A: float

    def __str__(self) -> str:
        return (f"{self.symbol_i}{self.i}–{self.symbol_j}{self.j} {self.distance_A:.2f} Å "
                f"< {self.limit_A:.2f} Å")


def check_overlaps(atoms: Atoms, fraction: float = OVERLAP_FRACTION) -> list[Overlap]:
    """Pairs of atoms closer than ``fraction`` × the sum of their covalent radii (with the
    cell's periodic images), each pair once, closest first.

    Examples
    --------
    >>> check_overlaps(Atoms("Mo2", positions=[[0, 0, 0], [0, 0, 2.5]]))
    []
    >>> print(check_overlaps(Atoms("MoSe", positions=[[0, 0, 0], [0, 0, 1.2]]))[0])
    Mo0–Se1 1.20 Å < 2.05 Å
    """
    if len(atoms) < 2:
        return []
    radii = covalent_radii[atoms.numbers] * fraction
    i, j, d = neighbor_list("ijd", atoms, radii, self_interaction=False)
    keep = i < j
    i, j, d = i[keep], j[keep], d[keep]
    order = np.argsort(d, kind="stable")
    sym = atoms.get_chemical_symbols()
    seen: set[tuple[int, int]] = set()
    out = []
    for a, b, dist in zip(i[order], j[order], d[order], strict=True):
        if (a, b) in seen:
            continue
        seen.add((a, b))
        out.append(Overlap(int(a), int(b), sym[a], sym[b], float(dist),
                           float(radii[a] + radii[b])))
    return out


def minimum_distance(atoms: Atoms, cutoff_A: float = 8.0) -> tuple[float, tuple[int, int]]:
    """The shortest interatomic distance (Å, with periodic images) and its pair; ``inf`` and
    (-1, -1) when no pair is within ``cutoff_A``.

    Examples
    --------
    >>> minimum_distance(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]))
    (0.74, (0, 1))
    """
    if len(atoms) < 2 and not any(atoms.pbc):
        return float("inf"), (-1, -1)
    # Growing cutoffs: a dense supercell has many pairs within 8 Å, and the shortest is near.
    r = min(3.0, cutoff_A)
    while True:
        i, j, d = neighbor_list("ijd", atoms, r, self_interaction=False)
        if len(d) or r >= cutoff_A:
            break
        r = min(2 * r, cutoff_A)
    if not len(d):
        return float("inf"), (-1, -1)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    k = int(np.lexsort((hi, lo, np.round(d, 6)))[0])  # ties: the lowest pair of indices
    return round(float(d[k]), 6), (int(lo[k]), int(hi[k]))
