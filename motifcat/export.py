"""Motif → :class:`ase.Atoms` → extxyz / CIF / POSCAR / LAMMPS data: starting structures.

A motif's prototype (stored with the ``Motif`` node) gives the mean positions of its atom
columns in Å, relative to the motif's centre, and the level-1 motif (column environment) of
each. A STEM image is a projection along the beam, so a column becomes one or several atoms
stacked along z:

* each level-1 motif is mapped to a column content such as ``"Mo"`` (one atom) or ``"Se2"``
  (two Se atoms along the beam), given by the user or suggested by :func:`suggest_species`
  from a formula;
* a column of one atom sits at z = 0 (the metal plane of a 2H TMD); a column of n > 1 atoms is
  spread evenly over the layer thickness, so a chalcogen pair sits at ±thickness/2 exactly as
  in :func:`ase.build.mx2`;
* the model is padded with vacuum and given a cell; a motif that is a lattice cell gets its
  in-plane cell vectors and periodic boundary conditions in x and y.

The result is an *unrelaxed* model from a projection: relax it (DFT/MD) before trusting
z coordinates or bond lengths; ``atoms.info["note"]`` says so in every file written.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import mx2
from ase.data import atomic_numbers
from ase.formula import Formula

from . import __version__
from .catalog import GraphStore
from .errors import ExportError, MotifcatError, QueryError
from .query import level1_motifs_in_images_of, motif_detail

#: ``ase.build.mx2``'s default layer thickness (Å, chalcogen–chalcogen along c): its MoS2 value.
ASE_MX2_THICKNESS_A: float = float(inspect.signature(mx2).parameters["thickness"].default)

#: Chalcogen–chalcogen distance along c (Å) of 2H monolayers, used when ``layer_thickness_A``
#: is not given. MoS2 is ASE's own default (``ase.build.mx2``); the others are approximate
#: relaxed (PBE) values of the common TMD monolayers, good to ~0.05 Å — enough for a starting
#: structure, which is relaxed anyway. Any other formula falls back to ASE's default.
LAYER_THICKNESS_A: dict[str, float] = {
    "MoS2": ASE_MX2_THICKNESS_A,
    "MoSe2": 3.34,
    "MoTe2": 3.60,
    "WS2": 3.14,
    "WSe2": 3.34,
    "WTe2": 3.59,
}

#: HAADF contrast exponent: the intensity of a column grows as sum(Z ** Z_EXPONENT).
Z_EXPONENT = 1.7

#: Output formats of :func:`write_motif` -> ``ase.io.write`` format names.
FORMATS: dict[str, str] = {
    "extxyz": "extxyz",
    "xyz": "extxyz",
    "cif": "cif",
    "vasp": "vasp",
    "poscar": "vasp",
    "lammps-data": "lammps-data",
    "lammps": "lammps-data",
}

NOTE = "unrelaxed model from STEM motif"

_COLUMN = re.compile(r"^(?:[A-Z][a-z]?\d*)+$")


# ------------------------------------------------------------------------------ species


def parse_column(spec: str) -> list[str]:
    """The atoms of one column, from bottom to top of the stack, from ``"Se2"``-like text.

    Parameters
    ----------
    spec : str
        Element symbols with counts: ``"Mo"``, ``"Se2"``, ``"MoS"`` (a Mo and an S atom).

    Returns
    -------
    list of str

    Raises
    ------
    ExportError
        If the text is not a sequence of element symbols with counts.

    Examples
    --------
    >>> parse_column("Se2")
    ['Se', 'Se']
    >>> parse_column("Mo")
    ['Mo']
    """
    if not isinstance(spec, str) or not _COLUMN.match(spec):
        raise ExportError(f"species {spec!r}: expected element symbols with counts, e.g. 'Se2'")
    symbols: list[str] = []
    for sym, n in re.findall(r"([A-Z][a-z]?)(\d*)", spec):
        if sym not in atomic_numbers:
            raise ExportError(f"species {spec!r}: {sym!r} is not a chemical element")
        count = int(n) if n else 1
        if count < 1:
            raise ExportError(f"species {spec!r}: a count must be >= 1")
        symbols += [sym] * count
    return symbols


def column_contrast(spec: str, z_exponent: float = Z_EXPONENT) -> float:
    """Expected HAADF intensity of a column, ``sum(Z ** z_exponent)`` over its atoms.

    Examples
    --------
    >>> round(column_contrast("Se2") / column_contrast("Mo"), 2)
    1.4
    """
    return float(sum(atomic_numbers[s] ** z_exponent for s in parse_column(spec)))


def _formula_columns(formula: str) -> list[tuple[str, int]]:
    """Column types of a formula: each element one column kind holding all its atoms of a
    formula unit (the 2H-TMD projection: "MoSe2" -> Mo columns and Se2 columns)."""
    try:
        counts = Formula(formula).count()
    except Exception as exc:
        raise ExportError(f"formula {formula!r}: not a chemical formula ({exc})") from exc
    if not counts or any(s not in atomic_numbers for s in counts):
        raise ExportError(f"formula {formula!r}: not a chemical formula")
    return [(sym, int(n)) for sym, n in counts.items()]


def _column_spec(symbol: str, n: int) -> str:
    return symbol if n == 1 else f"{symbol}{n}"


def column_brightness(mean_image: np.ndarray) -> float:
    """Brightness of the central column of a level-1 mean image, relative to its surroundings.

    The level-1 mean image is the reconstruction of the class's mean Zernike moments, which
    were taken after removing each patch's mean and scaling it to unit norm; so its absolute
    scale is gone and what remains is how much brighter the centre is than its environment.
    The value is the mean of the central 3 × 3 pixels minus the mean of the inscribed disk,
    divided by the standard deviation over the disk.

    Parameters
    ----------
    mean_image : ndarray, shape (S, S)

    Returns
    -------
    float
        Dimensionless; larger for a column brighter than its neighbours.

    Examples
    --------
    >>> yy, xx = np.mgrid[-7:8, -7:8]
    >>> column_brightness(np.exp(-(xx**2 + yy**2) / 4.0)) > 1
    True
    """
    img = np.asarray(mean_image, dtype=float)
    s = img.shape[0]
    c = s // 2
    yy, xx = np.mgrid[:s, :s]
    disk = (xx - c) ** 2 + (yy - c) ** 2 <= (s / 2) ** 2
    vals = img[disk]
    std = vals.std()
    centre = img[c - 1 : c + 2, c - 1 : c + 2].mean()
    return float((centre - vals.mean()) / std) if std > 0 else 0.0


def suggest_species(store: GraphStore, motif_id: str, formula: str) -> dict[str, str]:
    """Suggest the column content of each level-1 motif a motif is made of, from a formula.

    How: the formula gives the column kinds of the perfect lattice (each element one kind
    holding all its atoms of a formula unit: ``"MoSe2"`` -> ``Mo`` and ``Se2`` columns) and
    their HAADF contrast ``sum(Z^1.7)``; their partial columns (``Se``) are candidates too.
    Every level-1 motif found in the images where ``motif_id`` occurs is measured by
    :func:`column_brightness` of its mean image. A linear map ``brightness = α·contrast + β``
    is fitted by matching the most frequent motifs (by instances in those images), ranked by
    brightness, to the perfect-lattice kinds ranked by contrast — the perfect lattice
    dominates any real image. Each level-1 motif then gets the candidate whose predicted
    brightness is nearest to its own.

    The brightness is relative to the column's neighbourhood (the stored mean images are
    normalised), so the ranking of the majority columns is reliable but a defect column may
    be named after the perfect column it resembles; pass ``species`` explicitly to
    :func:`motif_to_atoms` when it matters.

    Parameters
    ----------
    store : GraphStore
    motif_id : str
        The motif to export (any level).
    formula : str
        Chemical formula of the material, e.g. ``"MoSe2"``.

    Returns
    -------
    dict
        Level-1 motif id -> column content (``{"L1-0001": "Mo", "L1-0002": "Se2"}``).

    Raises
    ------
    ExportError
        If the formula is not one, or a level-1 motif has no mean image to measure.

    Examples
    --------
    >>> from motifcat.query import image_units
    >>> unit = image_units(store, image_id)["motif_id"].iloc[0]  # a hexagon of MoSe2
    >>> suggest_species(store, unit, "MoSe2")
    {'L1-0001': 'Mo', 'L1-0002': 'Se2'}
    """
    kinds = _formula_columns(formula)
    rows = level1_motifs_in_images_of(store, motif_id)
    if rows.empty:
        detail = motif_detail(store, motif_id)  # raises QueryError for an unknown motif
        raise ExportError(f"motif {detail.motif_id}: no level-1 motif found in its images")
    ids = rows["motif_id"].tolist()
    counts = rows["count"].to_numpy(dtype=float)
    bright = np.empty(len(rows))
    for i, (level1_id, img) in enumerate(zip(ids, rows["mean_image"], strict=True)):
        if img is None:
            raise ExportError(
                f"level-1 motif {level1_id}: no mean image to measure its brightness; "
                "map the level-1 motifs to species explicitly"
            )
        bright[i] = column_brightness(img)
    full = sorted((column_contrast(_column_spec(s, n)), _column_spec(s, n)) for s, n in kinds)
    candidates = sorted(
        {(column_contrast(_column_spec(s, k)), _column_spec(s, k)) for s, n in kinds
         for k in range(1, n + 1)}
    )
    # Calibrate on the most frequent motifs (one per perfect-lattice kind).
    n_ref = min(len(full), len(ids))
    ref = np.argsort(-counts, kind="stable")[:n_ref]
    ref = ref[np.argsort(bright[ref], kind="stable")]
    x = np.array([c for c, _ in full[len(full) - n_ref :]])
    y = bright[ref]
    if n_ref >= 2 and np.ptp(x) > 0:
        alpha, beta = np.polyfit(x, y, 1)
    else:  # one kind only: every column is that element; nothing to calibrate
        alpha, beta = 0.0, float(y.mean()) if len(y) else 0.0
    cand_c = np.array([c for c, _ in candidates])
    cand_s = [s for _, s in candidates]
    if alpha == 0.0:
        best = np.full(len(ids), int(np.argmax(cand_c)))
    else:
        best = np.argmin(np.abs(bright[:, None] - (alpha * cand_c[None, :] + beta)), axis=1)
    return {mid: cand_s[b] for mid, b in zip(ids, best, strict=True)}


# ---------------------------------------------------------------------------- prototype


def _prototype_columns(detail) -> tuple[np.ndarray, list[str], bool, np.ndarray | None]:
    """Column positions (Å, K × 2), their level-1 motif ids, periodicity and in-plane cell,
    from :meth:`motifcat.query.MotifDetail.prototype_columns` / ``prototype_cell``."""
    try:
        xy, ids = detail.prototype_columns()
        cell = detail.prototype_cell()
    except QueryError as exc:
        raise ExportError(str(exc)) from exc
    if not len(xy):
        if detail.level == 1:  # a column environment stored without its neighbourhood
            return np.zeros((1, 2)), [detail.motif_id], False, None
        raise ExportError(f"motif {detail.motif_id}: the catalog holds no prototype for it")
    return xy, ids, cell is not None, cell


def default_layer_thickness(formula: str | None) -> float:
    """Layer thickness (Å) for a formula: :data:`LAYER_THICKNESS_A`, else ASE's mx2 default.

    Examples
    --------
    >>> default_layer_thickness("MoS2") == ASE_MX2_THICKNESS_A
    True
    >>> default_layer_thickness("MoSe2")
    3.34
    """
    if formula:
        try:
            key = Formula(formula).format("metal")
        except Exception:
            key = formula
        for name, t in LAYER_THICKNESS_A.items():
            if Formula(name).format("metal") == key:
                return t
    return ASE_MX2_THICKNESS_A


# ------------------------------------------------------------------------------ export


def motif_to_atoms(
    store: GraphStore,
    motif_id: str,
    species: Mapping[str, str] | None = None,
    formula: str | None = None,
    column_atoms: Mapping[str, int] | None = None,
    layer_thickness_A: float | None = None,
    vacuum_A: float = 10.0,
) -> Atoms:
    """An atomic model of one motif from its prototype, for DFT/MD.

    Parameters
    ----------
    store : GraphStore
    motif_id : str
        Any level; its prototype gives the columns.
    species : mapping, optional
        Level-1 motif id -> column content, e.g. ``{"L1-0001": "Mo", "L1-0002": "Se2"}``
        (``"Se2"``: two Se atoms along the beam). Entries override the suggestion.
    formula : str, optional
        Material formula (``"MoSe2"``): the species of the level-1 motifs not in ``species``
        are suggested by :func:`suggest_species`, and the default layer thickness is the
        formula's. Without it, the motif's material name is tried for the thickness.
    column_atoms : mapping, optional
        Level-1 motif id -> number of atoms in its column, overriding the count of
        ``species`` (``{"L1-0002": 1}`` makes a single-Se column).
    layer_thickness_A : float, optional
        Distance (Å) along z between the lowest and highest atom of a multi-atom column
        (default :func:`default_layer_thickness`).
    vacuum_A : float
        Vacuum (Å) on each side: along z always, in-plane too unless the motif is periodic.

    Returns
    -------
    ase.Atoms
        Positions in Å, a cell, ``pbc`` = (True, True, False) for a periodic motif, else all
        False. ``info``: ``motif_id, key, level, samples, images, materials, n_instances,
        software, note, layer_thickness_A, species`` (the mapping used).

    Raises
    ------
    ExportError
        Missing species for a column, bad species text, non-positive thickness or vacuum, or
        no usable prototype.
    QueryError
        If there is no such motif.

    Examples
    --------
    >>> from motifcat.query import image_units
    >>> unit = image_units(store, image_id)["motif_id"].iloc[0]  # a hexagon of MoSe2
    >>> atoms = motif_to_atoms(store, unit, formula="MoSe2")
    >>> atoms.get_chemical_formula()
    'Mo3Se6'
    """
    detail = motif_detail(store, motif_id)
    if not (isinstance(vacuum_A, int | float) and np.isfinite(vacuum_A) and vacuum_A >= 0):
        raise ExportError(f"vacuum_A: expected a number >= 0 Å, got {vacuum_A!r}")
    if formula is None and len(detail.materials) == 1:
        try:
            _formula_columns(detail.materials[0])
            material_formula: str | None = detail.materials[0]
        except ExportError:
            material_formula = None
    else:
        material_formula = formula
    if layer_thickness_A is None:
        thickness = default_layer_thickness(material_formula)
    else:
        thickness = layer_thickness_A
    if not (isinstance(thickness, int | float) and np.isfinite(thickness) and thickness >= 0):
        raise ExportError(f"layer_thickness_A: expected a number >= 0 Å, got {thickness!r}")

    xy, ids, periodic, cell2 = _prototype_columns(detail)
    mapping: dict[str, str] = {}
    if formula is not None:
        mapping.update(suggest_species(store, detail.motif_id, formula))
    if species is not None:
        if not isinstance(species, Mapping):
            raise ExportError("species: expected a mapping of level-1 motif id -> 'Se2'-like text")
        mapping.update({str(k): v for k, v in species.items()})
    missing = sorted(set(ids) - set(mapping))
    if missing:
        raise ExportError(
            f"motif {detail.motif_id}: no species for level-1 motif(s) {', '.join(missing)}; "
            f"map each level-1 motif to a species, e.g. {missing[0]}=Mo "
            f"(CLI: --species {missing[0]}=Mo), or give the material formula, e.g. MoSe2 "
            "(CLI: --formula MoSe2)"
        )
    columns = {mid: parse_column(mapping[mid]) for mid in set(ids)}
    for mid, n in (column_atoms or {}).items():
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ExportError(f"column_atoms[{mid!r}]: expected an integer >= 1, got {n!r}")
        if mid in columns:
            columns[mid] = [columns[mid][0]] * int(n)

    # Columns -> atoms, vectorised: repeat each column's xy by its atom count, then spread the
    # atoms of a column evenly over [-t/2, t/2] (one atom: z = 0).
    per_col = [columns[mid] for mid in ids]
    n_atoms = np.array([len(c) for c in per_col])
    symbols = [s for c in per_col for s in c]
    rank = np.arange(n_atoms.sum()) - np.repeat(np.cumsum(n_atoms) - n_atoms, n_atoms)
    n_rep = np.repeat(n_atoms, n_atoms)
    frac = np.where(n_rep > 1, rank / np.maximum(n_rep - 1, 1) - 0.5, 0.0)
    positions = np.column_stack([np.repeat(xy, n_atoms, axis=0), frac * thickness])

    atoms = Atoms(symbols=symbols, positions=positions)
    if periodic:
        height = float(np.ptp(positions[:, 2])) + 2 * vacuum_A
        atoms.set_cell(
            [[*cell2[0], 0.0], [*cell2[1], 0.0], [0.0, 0.0, max(height, 1.0)]], scale_atoms=False
        )
        atoms.pbc = (True, True, False)
        atoms.center(vacuum=vacuum_A, axis=2)
        atoms.wrap()
    else:
        atoms.center(vacuum=vacuum_A)
        atoms.pbc = False
        # A zero-width direction (a one-column motif with no vacuum) would give a singular cell.
        lengths = atoms.cell.lengths()
        if np.any(lengths <= 0):
            atoms.set_cell(np.diag(np.maximum(lengths, 1.0)))
            atoms.center()
    atoms.info.update(
        motif_id=detail.motif_id,
        key=detail.key,
        level=detail.level,
        samples=list(detail.samples),
        images=list(detail.images),
        materials=list(detail.materials),
        n_instances=int(detail.n_instances),
        software=f"motifcat {__version__}",
        note=NOTE,
        layer_thickness_A=float(thickness),
        species={mid: mapping[mid] for mid in sorted(set(ids))},
    )
    return atoms


def write_motif(atoms: Atoms, path: str | os.PathLike, format: str = "extxyz") -> Path:
    """Write a motif model with :func:`ase.io.write`.

    Parameters
    ----------
    atoms : ase.Atoms
        From :func:`motif_to_atoms`.
    path : str or path-like
        Output file (its folder must exist).
    format : {"extxyz", "cif", "vasp", "lammps-data"}
        ``"vasp"`` writes a POSCAR (Cartesian, species line sorted); ``"lammps-data"`` writes
        ``atom_style atomic`` with a ``Masses`` section and atom types numbered in
        alphabetical order of the symbols (``specorder``), so that ``ase.io.read`` recovers
        the elements from the masses. The metadata of ``atoms.info`` is kept in extxyz (as
        key=value pairs; lists become comma-separated text); CIF, POSCAR and LAMMPS data
        cannot hold it.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ExportError
        For an unknown format or a file that cannot be written.

    Examples
    --------
    >>> from ase import Atoms
    >>> import tempfile, os
    >>> a = Atoms("MoSe2", positions=[[0, 0, 0], [1.9, 0, 1.6], [1.9, 0, -1.6]], cell=[8, 8, 8])
    >>> p = write_motif(a, os.path.join(tempfile.mkdtemp(), "m.xyz"))
    >>> p.suffix
    '.xyz'
    """
    import ase.io

    fmt = FORMATS.get(str(format).lower())
    if fmt is None:
        raise ExportError(f"format {format!r}: expected one of {', '.join(sorted(FORMATS))}")
    if not isinstance(atoms, Atoms):
        raise ExportError(f"atoms: expected ase.Atoms, got {type(atoms).__name__}")
    path = Path(os.fspath(path))
    out = atoms.copy()
    # extxyz stores info as key=value pairs: lists and dicts become plain strings.
    out.info = {k: _info_value(v) for k, v in atoms.info.items()}
    kwargs: dict[str, Any] = {}
    if fmt == "lammps-data":
        kwargs = {"specorder": sorted(set(out.get_chemical_symbols())), "atom_style": "atomic",
                  "masses": True, "units": "metal"}
    elif fmt == "vasp":
        kwargs = {"direct": False, "sort": True}
    try:
        ase.io.write(path, out, format=fmt, **kwargs)
    except (OSError, ValueError, TypeError, MotifcatError) as exc:
        raise ExportError(f"{path}: cannot write {fmt}: {exc}") from exc
    return path


def _info_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


__all__ = [
    "ASE_MX2_THICKNESS_A",
    "FORMATS",
    "LAYER_THICKNESS_A",
    "NOTE",
    "column_brightness",
    "column_contrast",
    "default_layer_thickness",
    "motif_to_atoms",
    "parse_column",
    "suggest_species",
    "write_motif",
]
