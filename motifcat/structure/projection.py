"""A crystal seen along a zone axis: its atoms grouped into projected columns.

The crystal is re-expressed in a cell whose third vector is the lattice vector along the zone
axis [uvw] and whose first two are the shortest lattice vectors perpendicular to it (a
unimodular change of basis, so the cell holds the same atoms), then rotated so that the zone is
+z and the first vector is +x. Atoms whose in-plane positions coincide (modulo the in-plane
lattice, within a tolerance) form one column: a list of (species, z) in one period along the
zone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.data import atomic_numbers
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import ExportError

#: HAADF contrast exponent: a column's intensity grows as sum(Z ** Z_EXPONENT).
Z_EXPONENT = 1.7

#: Vacuum (Å) given along a slab's normal when the reference has no cell there.
SLAB_VACUUM_A = 10.0


def column_contrast_of(symbols, z_exponent: float = Z_EXPONENT) -> float:
    """HAADF contrast ``sum(Z ** z_exponent)`` of a list of element symbols (0 when empty).

    Examples
    --------
    >>> round(column_contrast_of(["Se", "Se"]) / column_contrast_of(["Mo"]), 2)
    1.4
    """
    return float(sum(atomic_numbers[s] ** z_exponent for s in symbols))


@dataclass(frozen=True, eq=False)
class ProjectedCrystal:
    """A reference crystal oriented with its zone axis along z, and its projected columns.

    Attributes
    ----------
    zone : tuple of int
        [uvw] in the original cell.
    atoms : ase.Atoms
        The oriented cell: ``cell[0]``, ``cell[1]`` in the xy plane, ``cell[2]`` along +z
        (one period along the zone; a slab's thickness plus vacuum).
    periodic_z : bool
        Whether the crystal repeats along the zone (False for a slab such as an MX2 monolayer).
    xy : ndarray, shape (J, 2)
        Column positions in Å (mean over the column's atoms), inside the in-plane cell.
    column_of_atom : ndarray of int, shape (n_atoms,)
        The column of each atom of ``atoms``.
    symbols : list of tuple of str
        Each column's atoms, sorted by z.
    kind : ndarray of int, shape (J,)
        Columns with the same content (multiset of species) share a kind.
    contrast : ndarray, shape (J,)
        ``sum(Z ** 1.7)`` of each column.
    """

    zone: tuple[int, int, int]
    atoms: Atoms
    periodic_z: bool
    xy: np.ndarray
    column_of_atom: np.ndarray
    symbols: list[tuple[str, ...]]
    kind: np.ndarray
    contrast: np.ndarray

    @property
    def cell2(self) -> np.ndarray:
        """In-plane cell vectors (Å, rows, 2 × 2)."""
        return np.asarray(self.atoms.cell)[:2, :2].copy()

    def column_atoms(self, j: int) -> np.ndarray:
        """Indices (into ``atoms``) of column ``j``'s atoms, sorted by z."""
        idx = np.flatnonzero(self.column_of_atom == j)
        return idx[np.argsort(self.atoms.positions[idx, 2], kind="stable")]

    def tiled(self, radius_A: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column positions repeated over the in-plane lattice within ``radius_A`` of the origin.

        Returns
        -------
        xy : ndarray (M, 2)
        column : ndarray of int (M,)
            Index into the basis columns.
        shift : ndarray of int (M, 2)
            Lattice translation (n1, n2) of each copy.
        """
        c2 = self.cell2
        widths = np.abs(np.linalg.det(c2)) / np.linalg.norm(c2, axis=1)
        n = int(np.ceil(radius_A / widths.min())) + 1
        r = np.arange(-n, n + 1)
        shifts = np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)
        xy = (self.xy[None, :, :] + (shifts @ c2)[:, None, :]).reshape(-1, 2)
        col = np.tile(np.arange(len(self.xy)), len(shifts))
        sh = np.repeat(shifts, len(self.xy), axis=0)
        keep = np.linalg.norm(xy, axis=1) <= radius_A + np.linalg.norm(c2, axis=1).sum()
        return xy[keep], col[keep], sh[keep]


def _orient(atoms: Atoms, zone: tuple[int, int, int]) -> tuple[Atoms, bool]:
    """Re-express ``atoms`` in a cell (a, b ⊥ zone, c ∥ zone), rotated to a ∥ x, c ∥ z."""
    atoms = atoms.copy()
    cell = np.asarray(atoms.cell, dtype=float).copy()
    pbc = np.asarray(atoms.pbc, dtype=bool)
    lengths = np.linalg.norm(cell, axis=1)
    slab_axes = np.flatnonzero(~pbc | (lengths < 1e-9))
    if len(slab_axes) > 1:
        raise ExportError("reference: periodic in fewer than two directions; cannot project it")
    if len(slab_axes) == 1:
        ax = int(slab_axes[0])
        if tuple(int(v != 0) for v in zone) != tuple(int(i == ax) for i in range(3)):
            raise ExportError(
                f"reference: a slab (non-periodic along cell vector {ax + 1}) can only be "
                f"seen along that vector; zone {''.join(map(str, zone))} is not"
            )
        if lengths[ax] < 1e-9:  # ase.build.mx2(vacuum=None) leaves a zero vector
            normal = np.cross(cell[(ax + 1) % 3], cell[(ax + 2) % 3])
            normal /= np.linalg.norm(normal)
            span = float(np.ptp(atoms.positions @ normal))
            cell[ax] = normal * (span + 2 * SLAB_VACUUM_A)
            atoms.set_cell(cell, scale_atoms=False)
        order = [(ax + 1) % 3, (ax + 2) % 3, ax]
        new = cell[order]
        if np.linalg.det(new) < 0:
            order = [order[1], order[0], ax]
            new = cell[order]
        atoms.set_cell(new, scale_atoms=False)
        periodic_z = False
    else:
        g = np.gcd.reduce(np.abs(zone))
        uvw = np.asarray(zone, dtype=int) // g
        d = uvw @ cell
        # Two integer vectors completing a unimodular basis with the zone vector, with the
        # shortest projections onto the plane perpendicular to the zone: the projected columns'
        # lattice (finer than the perpendicular sublattice for a centred projection, e.g.
        # fcc [110]). The cell then holds the same atoms; its a, b may tilt out of the plane.
        e = d / np.linalg.norm(d)
        rng = np.arange(-3, 4)
        cand = np.array([v for v in itertools.product(rng, rng, rng) if any(v)])
        vec = cand @ cell
        proj = np.linalg.norm(vec - np.outer(vec @ e, e), axis=1)
        keep = proj > 1e-6
        cand, proj = cand[keep], proj[keep]
        cand = cand[np.lexsort((np.linalg.norm(vec[keep], axis=1), proj))]
        best = None
        for i in range(min(len(cand), 60)):
            for j in range(i + 1, len(cand)):
                m = np.array([cand[i], cand[j], uvw])
                det = round(np.linalg.det(m))
                if abs(det) == 1:
                    best = m if det == 1 else np.array([cand[j], cand[i], uvw])
                    break
            if best is not None:
                break
        if best is None:
            raise ExportError(f"reference: no cell with its third vector along zone {zone}")
        atoms = make_supercell(atoms, best, wrap=True)
        periodic_z = True
    c = np.asarray(atoms.cell, dtype=float)
    e3 = c[2] / np.linalg.norm(c[2])
    a_perp = c[0] - (c[0] @ e3) * e3
    e1 = a_perp / np.linalg.norm(a_perp)
    if np.cross(a_perp, c[1] - (c[1] @ e3) * e3) @ e3 < 0:  # keep the in-plane pair right-handed
        raise ExportError(f"reference: left-handed cell along zone {zone}")
    e2 = np.cross(e3, e1)
    rot = np.array([e1, e2, e3])
    atoms.set_cell(c @ rot.T, scale_atoms=False)
    atoms.positions = atoms.positions @ rot.T
    # c is along z by construction; tidy rounding so that the in-plane vectors have z = 0.
    cell = np.asarray(atoms.cell).copy()
    cell[np.abs(cell) < 1e-9] = 0.0
    cell[2, :2] = 0.0
    # Adding multiples of c to a and b keeps the lattice and the projection: least tilt.
    cell[:2] -= np.round(cell[:2, 2] / cell[2, 2])[:, None] * cell[2]
    atoms.set_cell(cell, scale_atoms=False)
    atoms.pbc = (True, True, periodic_z)
    atoms.wrap()
    if not periodic_z:  # a slab sits in the middle of its vacuum, inside the cell
        atoms.center(axis=2)
    return atoms, periodic_z


def project(atoms: Atoms, zone=(0, 0, 1), tol_A: float = 0.25) -> ProjectedCrystal:
    """Project a crystal along a zone axis into columns.

    Parameters
    ----------
    atoms : ase.Atoms
        The reference crystal (periodic in at least two directions).
    zone : sequence of 3 int
        Zone axis [uvw] in the cell of ``atoms``.
    tol_A : float
        Atoms closer than this in projection (Å) are one column.

    Returns
    -------
    ProjectedCrystal

    Raises
    ------
    ExportError
        If the crystal cannot be seen along that zone (a slab along an in-plane direction).

    Examples
    --------
    >>> from ase.build import mx2
    >>> pc = project(mx2("MoS2", a=3.18, vacuum=None))
    >>> sorted(pc.symbols)
    [('Mo',), ('S', 'S')]
    >>> from ase.spacegroup import crystal
    >>> sto = crystal(["Sr", "Ti", "O"], basis=[(0, 0, 0), (.5, .5, .5), (.5, .5, 0)],
    ...               spacegroup=221, cellpar=[3.905] * 3 + [90] * 3)
    >>> sorted(project(sto, (0, 0, 1)).symbols)
    [('O',), ('O',), ('O', 'Ti'), ('Sr',)]
    """
    zone = tuple(int(v) for v in zone)
    oriented, periodic_z = _orient(atoms, zone)  # type: ignore[arg-type]
    c2 = np.asarray(oriented.cell)[:2, :2]
    xy = oriented.positions[:, :2]
    frac = np.linalg.solve(c2.T, xy.T).T % 1.0
    frac[frac > 1 - 1e-9] = 0.0
    wrapped = frac @ c2
    # Group in projection with periodic images: link atoms closer than tol (3 x 3 images).
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=2)))
    images = (wrapped[None] + (shifts @ c2)[:, None]).reshape(-1, 2)
    owner = np.tile(np.arange(len(xy)), len(shifts))
    pairs = cKDTree(images).query_pairs(tol_A, output_type="ndarray")
    pairs = pairs.reshape(-1, 2)
    a, b = owner[pairs[:, 0]], owner[pairs[:, 1]]
    n = len(xy)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    n_col, label = connected_components(graph, directed=False)
    # Column centre: mean of its atoms, each unwrapped next to the column's first atom.
    first = np.zeros(n_col, dtype=int)
    first[label[::-1]] = np.arange(n)[::-1]
    delta = wrapped - wrapped[first[label]]
    dfrac = np.linalg.solve(c2.T, delta.T).T
    delta = (dfrac - np.round(dfrac)) @ c2
    centre = wrapped[first] + np.stack(
        [np.bincount(label, delta[:, k], n_col) for k in range(2)], 1
    ) / np.bincount(label, minlength=n_col)[:, None]
    cfrac = np.linalg.solve(c2.T, centre.T).T % 1.0
    centre = cfrac @ c2
    syms = oriented.get_chemical_symbols()
    zs = oriented.positions[:, 2]
    symbols = []
    for j in range(n_col):
        idx = np.flatnonzero(label == j)
        symbols.append(tuple(syms[i] for i in idx[np.argsort(zs[idx], kind="stable")]))
    contents = [tuple(sorted(s)) for s in symbols]
    uniq = sorted(set(contents), key=lambda s: (-column_contrast_of(s), s))
    kind = np.array([uniq.index(s) for s in contents])
    contrast = np.array([column_contrast_of(s) for s in symbols])
    return ProjectedCrystal(zone, oriented, periodic_z, centre, label, symbols, kind, contrast)


#: Low-index zone axes tried when none is given (the slab normal only, for a slab).
LOW_INDEX_ZONES: tuple[tuple[int, int, int], ...] = (
    (0, 0, 1), (1, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, -1, 0), (1, 1, 1),
)
