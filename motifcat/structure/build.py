"""3-D models from registered columns: perfect cells, and defects embedded in supercells.

Each motif column sits on a reference column (its *site*). Its content is the site's own atoms
(a perfect column) or those atoms with some removed or substituted (a defect column): a single
chalcogen vacancy keeps one of the two chalcogens, a heavier substitution replaces one, an
empty site removes them all. The atoms keep the reference's heights; only their species change.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
from ase import Atoms

from ..errors import ExportError
from .projection import ProjectedCrystal, column_contrast_of

#: A defect content replaces the perfect one only when its contrast is this much closer to the
#: column's predicted contrast (fraction of the perfect column's distance): the perfect lattice
#: is the prior, a defect needs evidence. Chosen by hand, not tuned on a benchmark.
DEFECT_EVIDENCE = 0.5

#: Contents whose contrast is within this fraction of the perfect column's contrast of the
#: nearest one count as equally good, and the one with the fewest changed atoms (removed plus
#: substituted) wins: the smallest defect that explains the column. Chosen by hand; checked on
#: the perovskite benchmark, whose single Sr vacancy of a 4-Sr column measures 0.63 of the
#: perfect column (channelling), between Sr2 and Sr3, where a bare nearest-contrast rule
#: picks a two-atom antisite (Sr2Ti).
CONTENT_TOLERANCE = 0.15

#: Default smallest in-plane (and, for bulk, along-zone) width of a defect supercell (Å).
MIN_CELL_A = 12.0


def column_candidates(perfect: tuple[str, ...], elements) -> list[tuple[str, ...]]:
    """Contents a site can hold: every multiset of ``elements`` with at most as many atoms as
    the perfect column (the empty column included), sorted.

    Examples
    --------
    >>> column_candidates(("Se", "Se"), {"Mo", "Se"})
    [(), ('Mo',), ('Mo', 'Mo'), ('Mo', 'Se'), ('Se',), ('Se', 'Se')]
    """
    elems = sorted(set(elements))
    out = {()}
    for n in range(1, len(perfect) + 1):
        out.update(itertools.combinations_with_replacement(elems, n))
    return sorted(out)


def choose_content(predicted: float, perfect: tuple[str, ...], elements,
                   evidence: float = DEFECT_EVIDENCE) -> tuple[str, ...]:
    """The content of a column whose predicted contrast (``sum Z^1.7`` units) is ``predicted``
    at a site whose perfect column is ``perfect``; NaN keeps the perfect column.

    Examples
    --------
    >>> z = lambda *s: column_contrast_of(s)
    >>> choose_content(z("Se"), ("Se", "Se"), {"Mo", "Se"})
    ('Se',)
    >>> choose_content(z("Se", "Se") * 0.95, ("Se", "Se"), {"Mo", "Se"})
    ('Se', 'Se')
    >>> choose_content(z("Mo"), ("Se", "Se"), {"Mo", "Se"})
    ('Mo',)
    >>> choose_content(z("Sr") * 2.5, ("Sr",) * 4, {"Sr", "Ti", "O"})  # one Sr fewer
    ('Sr', 'Sr', 'Sr')
    """
    perfect_sorted = tuple(sorted(perfect))
    if not np.isfinite(predicted):
        return perfect_sorted
    cands = column_candidates(perfect, elements)
    dist = np.array([abs(predicted - column_contrast_of(c)) for c in cands])
    best = cands[int(np.argmin(dist))]
    d_perfect = abs(predicted - column_contrast_of(perfect))
    if best == perfect_sorted or not dist.min() < evidence * d_perfect:
        return perfect_sorted
    # Among the contents about as near as the nearest, the smallest defect.
    tol = max(float(dist.min()), CONTENT_TOLERANCE * column_contrast_of(perfect))
    near = [i for i in np.flatnonzero(dist <= tol + 1e-9) if cands[i] != perfect_sorted]
    return cands[min(near, key=lambda i: (n_changes(perfect, cands[i]), dist[i]))]


def n_changes(perfect: tuple[str, ...], content: tuple[str, ...]) -> int:
    """Atoms removed plus atoms substituted to turn column ``perfect`` into ``content``.

    Examples
    --------
    >>> n_changes(("Sr",) * 4, ("Sr",) * 3), n_changes(("Sr",) * 4, ("Sr", "Sr", "Ti"))
    (1, 2)
    """
    gone, subs = fill_column(tuple(perfect), tuple(content))
    return len(gone) + len(subs)


def fill_column(perfect: tuple[str, ...], content: tuple[str, ...]
                ) -> tuple[list[int], dict[int, str]]:
    """Which atoms of a perfect column (sorted by z) to remove and which to re-label so that
    it holds ``content``. Atoms whose species stay are kept first (topmost first); substituted
    species take the remaining topmost slots.

    Returns
    -------
    removed : list of int
        Slot indices (into ``perfect``) to delete.
    substituted : dict
        Slot index -> new symbol.

    Raises
    ------
    ExportError
        If ``content`` has more atoms than the site.

    Examples
    --------
    >>> fill_column(("Se", "Se"), ("Se",))
    ([0], {})
    >>> fill_column(("Se", "Se"), ("Mo", "Se"))
    ([], {0: 'Mo'})
    >>> fill_column(("Mo",), ())
    ([0], {})
    """
    if len(content) > len(perfect):
        raise ExportError(f"column content {''.join(content) or 'empty'} has more atoms than "
                          f"its site ({''.join(perfect)}): a projection cannot add atoms")
    need = Counter(content)
    slots = list(range(len(perfect)))[::-1]  # topmost first
    kept: list[int] = []
    for s in slots:
        if need[perfect[s]] > 0:
            need[perfect[s]] -= 1
            kept.append(s)
    free = [s for s in slots if s not in kept]
    substituted: dict[int, str] = {}
    for sym in sorted(need.elements()):
        substituted[free.pop(0)] = sym
    removed = sorted(free)
    return removed, substituted


def supercell_repeats(crystal: ProjectedCrystal, min_cell_A: float,
                      span: np.ndarray) -> tuple[int, int, int]:
    """Repeats (n1, n2, n3) of the oriented cell: in-plane widths >= ``min_cell_A`` and room for
    a motif spanning ``span`` = (s1, s2) cells; along the zone too for a bulk crystal.

    Examples
    --------
    >>> from ase.build import mx2
    >>> from motifcat.structure import project
    >>> supercell_repeats(project(mx2("MoS2", a=3.18, vacuum=None)), 12.0, np.array([1, 1]))
    (5, 5, 1)
    """
    cell = np.asarray(crystal.atoms.cell)
    c2 = cell[:2, :2]
    area = abs(np.linalg.det(c2))
    widths = area / np.linalg.norm(c2[::-1], axis=1)  # distance between opposite faces
    n = [max(int(np.ceil(min_cell_A / w - 1e-9)), int(s) + 3) for w, s in zip(widths, span,
                                                                             strict=True)]
    n3 = max(1, int(np.ceil(min_cell_A / cell[2, 2] - 1e-9))) if crystal.periodic_z else 1
    return n[0], n[1], n3


def build_model(
    crystal: ProjectedCrystal,
    site_column: np.ndarray,
    site_shift: np.ndarray,
    contents: list[tuple[str, ...] | None],
    empty_sites: list[tuple[int, tuple[int, int]]] = (),
    min_cell_A: float = MIN_CELL_A,
) -> tuple[Atoms, bool]:
    """Atoms for registered columns.

    Parameters
    ----------
    crystal : ProjectedCrystal
    site_column, site_shift : ndarray (K,), (K, 2)
        Each motif column's reference column and lattice translation.
    contents : list
        Each column's content (sorted symbols) or None for the perfect column.
    empty_sites : list of (column, (n1, n2))
        Reference sites inside the motif where no column was found (all atoms removed).
    min_cell_A : float
        Smallest width of a defect supercell (Å).

    Returns
    -------
    atoms : ase.Atoms
        The oriented reference cell when every column is perfect (periodic, formula of the
        reference), else a supercell with the defects near its centre (along a bulk crystal's
        zone, in the middle period only).
    perfect : bool

    Examples
    --------
    >>> from ase.build import mx2
    >>> from motifcat.structure import project
    >>> pc = project(mx2("MoSe2", a=3.288, thickness=3.34, vacuum=None))
    >>> se = int(np.flatnonzero(pc.kind == 0)[0])  # the Se2 column (brightest kind)
    >>> atoms, perfect = build_model(pc, np.array([se]), np.zeros((1, 2), int), [("Se",)])
    >>> atoms.get_chemical_formula(), perfect
    ('Mo25Se49', False)
    """
    site_column = np.asarray(site_column, dtype=int)
    site_shift = np.asarray(site_shift, dtype=int).reshape(-1, 2)
    changes: list[tuple[int, tuple[int, int], tuple[str, ...]]] = []
    for j, sh, content in zip(site_column, site_shift, contents, strict=True):
        if content is not None and tuple(sorted(content)) != tuple(sorted(crystal.symbols[j])):
            changes.append((int(j), (int(sh[0]), int(sh[1])), tuple(content)))
    changes += [(int(j), (int(s[0]), int(s[1])), ()) for j, s in empty_sites]
    base = crystal.atoms
    if not changes:
        out = base.copy()
        out.pbc = (True, True, crystal.periodic_z)
        return out, True
    shifts = np.array([c[1] for c in changes])
    lo, hi = shifts.min(0), shifts.max(0)
    n1, n2, n3 = supercell_repeats(crystal, min_cell_A, hi - lo + 1)
    centre = np.round((lo + hi) / 2).astype(int)
    sc = base.repeat((n1, n2, n3))
    sc.pbc = (True, True, crystal.periodic_z)
    n_base = len(base)
    symbols = sc.get_chemical_symbols()
    remove: list[int] = []
    seen: set[tuple[int, int, int]] = set()
    for j, sh, content in changes:
        if (j, *sh) in seen:
            continue
        seen.add((j, *sh))
        i0 = (sh[0] - centre[0] + n1 // 2) % n1
        i1 = (sh[1] - centre[1] + n2 // 2) % n2
        copy = (i0 * n2 + i1) * n3 + n3 // 2
        slots = crystal.column_atoms(j) + copy * n_base
        gone, subs = fill_column(tuple(crystal.symbols[j]), content)
        remove += [int(slots[s]) for s in gone]
        for s, sym in subs.items():
            symbols[int(slots[s])] = sym
    sc.set_chemical_symbols(symbols)
    del sc[sorted(set(remove))]
    return sc, False
