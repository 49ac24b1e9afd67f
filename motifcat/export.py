"""Motif → :class:`ase.Atoms` → extxyz / CIF / POSCAR / LAMMPS data / ASE db: starting
structures for DFT/MD that a user can trust.

A STEM image is a projection along the beam, so the heights of the atoms come from a
**reference crystal** of the motif's material (:mod:`motifcat.structure`): given at export, stored
with the material at ingest, or motifcat's default for a known formula. :func:`motif_to_atoms`

* takes the motif's own material (never species of another one);
* projects the reference along the zone axis (given, or the best low-index axis) into columns
  and registers the motif's prototype columns to them (rotation or mirror, translation, scale
  within a few %; the RMS residual is reported);
* gives each column the atoms of the reference column it sits on, with atoms removed or
  substituted where its class's predicted contrast (cross-section or intensity, calibrated per
  image within the material, ``sum Z^1.7``) says it is a defect;
* with the sample's thickness (``thickness_A``, bulk references) repeats the reference along
  the zone so that a column holds the sample's atoms (one Sr fewer of four can be built);
* writes a perfect motif as the periodic reference cell, a defect motif embedded in a supercell
  at least ``min_cell_A`` wide;
* refuses a model with two atoms closer than 0.75 × the sum of their covalent radii (naming
  them) unless forced, and puts a one-line report in ``atoms.info["report"]``.

Without any reference, :func:`flat_model` stacks each column's atoms evenly over a layer
thickness (the old model, still checked for overlaps). The result is *unrelaxed*: relax it
before trusting bond lengths; ``atoms.info["note"]`` says so in every file written.
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
from .query import material_level1, material_reference, motif_detail
from .structure import (
    CONTENT_TOLERANCE,
    LOW_INDEX_ZONES,
    MIN_CELL_A,
    SCALE_TOLERANCE,
    Reference,
    build_model,
    check_overlaps,
    choose_content,
    default_reference,
    load_reference,
    minimum_distance,
    n_changes,
    parse_zone,
    project,
    reference_from_json,
    register,
)

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
    "db": "db",
    "ase-db": "db",
}

#: A registration whose RMS residual exceeds this (Å) is refused: the motif does not sit on the
#: reference's columns (about a quarter of the shortest projected column spacing of MX2 and
#: ABO3 crystals along [001], ~1.8-2.0 Å; chosen by hand, not on a benchmark).
MAX_RMS_A = 0.5

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


def material_elements(material: str | None) -> set[str] | None:
    """The elements of a material whose name is a chemical formula, else None.

    Examples
    --------
    >>> sorted(material_elements("SrTiO3")), material_elements("sample-7")
    (['O', 'Sr', 'Ti'], None)
    """
    if not material:
        return None
    try:
        counts = Formula(material).count()
    except Exception:
        return None
    if not counts or any(sym not in atomic_numbers for sym in counts):
        return None
    return set(counts)


def _material_of(detail, material: str | None) -> str | None:
    """The one material an export draws on: given, or the motif's only material."""
    if material is not None:
        if material not in detail.materials:
            found = ", ".join(detail.materials) or "no material"
            raise ExportError(
                f"motif {detail.motif_id}: not found in material {material!r} (found in {found})"
            )
        return material
    if len(detail.materials) == 1:
        return detail.materials[0]
    if not detail.materials:
        return None
    raise ExportError(
        f"motif {detail.motif_id} occurs in {len(detail.materials)} materials "
        f"({', '.join(detail.materials)}); species are never taken across materials: choose "
        "one (CLI: --material NAME)"
    )


def class_measures(store: GraphStore, material: str
                   ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], str]:
    """Per image of one material, per level-1 class: its Z-contrast measure and its count.

    The measure is the class's mean column cross-section in that image when the catalog
    stores cross-sections for every class of the material, else :func:`column_brightness` of
    the class's mean image (relative to its surroundings). Only the images of ``material`` are
    read. Images are kept apart because an image is where the perfect lattice dominates (one
    image's classes are one set of column kinds; cross-sections scale with each image's dose).

    Returns
    -------
    measure, count : dict
        Image id -> {level-1 motif id -> value} (classes without a measure left out).
    kind : str
        ``"cross-section"`` or ``"intensity"``.
    """
    df = material_level1(store, material)
    xs = df["cross_section"].to_numpy(dtype=float)
    use_xs = bool(len(xs)) and bool(np.isfinite(xs).all()) and bool((xs > 0).all())
    bright: dict[str, float] = {}
    measure: dict[str, dict[str, float]] = {}
    count: dict[str, dict[str, float]] = {}
    for img, mid, n, mean, x in zip(df["image_id"], df["motif_id"], df["count"],
                                    df["mean_image"], xs, strict=True):
        count.setdefault(img, {})[mid] = float(n)
        if use_xs:
            measure.setdefault(img, {})[mid] = float(x)
        elif mean is not None:
            if mid not in bright:
                bright[mid] = column_brightness(mean)
            measure.setdefault(img, {})[mid] = bright[mid]
    return measure, count, "cross-section" if use_xs else "intensity"


def detected_kinds(store: GraphStore, images, crystal) -> dict[str, int]:
    """How many of a reference's brightest column kinds each image shows, from geometry: the
    median nearest-neighbour spacing of the image's columns against the shortest projected
    spacing of the brightest 1, 2, … kinds (faint columns — S2 beside Mo at 37 %, O in a
    perovskite — may go undetected, and then the brighter kinds must not be split among them).

    Parameters
    ----------
    store : GraphStore
    images : iterable of str
        Image ids.
    crystal : ProjectedCrystal

    Returns
    -------
    dict
        Image id -> number of kinds (images with fewer than 3 columns are left out).
    """
    from scipy.spatial import cKDTree

    from .query import image_instances

    contrasts = np.unique(crystal.contrast)[::-1]
    tiles, col, _ = crystal.tiled(12.0)
    spacing = []
    for m in range(1, len(contrasts) + 1):
        t = tiles[np.isin(crystal.contrast[col], contrasts[:m])]
        spacing.append(float(cKDTree(t).query(t, k=2)[0][:, 1].min()))
    out = {}
    for img in images:
        inst = image_instances(store, img, level=1)
        if len(inst) < 3:
            continue
        xy = inst[["x_A", "y_A"]].to_numpy(dtype=float)
        observed = float(np.median(cKDTree(xy).query(xy, k=2)[0][:, 1]))
        out[img] = 1 + int(np.argmin(np.abs(np.log(observed / np.array(spacing)))))
    return out


def material_contrast(measure: Mapping[str, Mapping[str, float]],
                      count: Mapping[str, Mapping[str, float]], kinds: np.ndarray,
                      fractions: np.ndarray | None = None,
                      through_origin: bool = False,
                      n_kinds: Mapping[str, int] | None = None) -> dict[str, float]:
    """:func:`calibrate_contrast` in every image of a material, combined per class (mean over
    images weighted by the class's count in each).

    Examples
    --------
    >>> kinds = np.array([column_contrast("Se2"), column_contrast("Mo")])
    >>> meas = {"img1": {"a": 2.0, "b": 1.0}, "img2": {"c": 3.0, "d": 2.5}}
    >>> cnt = {"img1": {"a": 50, "b": 50}, "img2": {"c": 40, "d": 40}}
    >>> pred = material_contrast(meas, cnt, kinds)
    >>> bool(pred["a"] == pred["c"] == kinds[0]), bool(pred["b"] == pred["d"] == kinds[1])
    (True, True)
    """
    total: dict[str, float] = {}
    weight: dict[str, float] = {}
    for img, meas in measure.items():
        pred = calibrate_contrast(meas, count.get(img, {}), kinds, fractions, through_origin,
                                  (n_kinds or {}).get(img))
        for mid, v in pred.items():
            if np.isfinite(v):
                w = float(count.get(img, {}).get(mid, 1.0))
                total[mid] = total.get(mid, 0.0) + w * v
                weight[mid] = weight.get(mid, 0.0) + w
    ids = {m for meas in measure.values() for m in meas}
    return {m: total[m] / weight[m] if weight.get(m) else float("nan") for m in sorted(ids)}


#: The most frequent classes covering this share of a material's instances are its perfect
#: lattice columns; the rest are defect (or near-defect) classes. Chosen by hand.
PERFECT_SHARE = 0.9


def calibrate_contrast(measure: Mapping[str, float], count: Mapping[str, float],
                       kinds: np.ndarray, fractions: np.ndarray | None = None,
                       through_origin: bool = False,
                       max_kinds: int | None = None) -> dict[str, float]:
    """Predicted HAADF contrast (``sum Z^1.7`` units) of each class from its measure.

    The perfect lattice dominates an image: the most frequent classes (covering
    :data:`PERFECT_SHARE` of the instances) are matched to the perfect column kinds by rank
    and abundance — classes sorted by measure fill the kinds sorted by contrast in proportion
    to each kind's share of the projected cell (``fractions``), so two O classes of a
    perovskite both become O. Faint kinds may go undetected: with fewer perfect classes than
    kinds, only the brightest kinds are used. A perfect class's prediction is its kind's
    contrast; any other class is interpolated (piecewise linearly in the measure, extrapolated
    from the end segments; through the origin for a cross-section) between the perfect
    classes. Only rank and monotonicity are assumed, which holds for the relative brightness
    of normalised mean images as for cross-sections.

    Parameters
    ----------
    measure, count : mapping
        Class id -> measure (cross-section or brightness) and -> instances.
    kinds : ndarray
        Contrast of the reference's perfect column kinds.
    fractions : ndarray, optional
        Share of each kind among the projected cell's columns (default equal).
    through_origin : bool
        Cross-sections are proportional to the contrast (an empty column measures 0).
    max_kinds : int, optional
        How many of the brightest kinds the image shows (:func:`detected_kinds`).

    Returns
    -------
    dict
        Class id -> predicted contrast (NaN when nothing can be calibrated).

    Examples
    --------
    >>> kinds = np.array([column_contrast("Se2"), column_contrast("Mo")])
    >>> m = {"a": 2 * kinds[0], "b": 2 * kinds[1], "c": kinds[0]}  # Se2, Mo, and Se
    >>> pred = calibrate_contrast(m, {"a": 100, "b": 100, "c": 2}, kinds, through_origin=True)
    >>> {k: round(v / column_contrast("Se"), 2) for k, v in pred.items()}
    {'a': 2.0, 'b': 1.43, 'c': 1.0}
    """
    ids = [k for k in measure if np.isfinite(measure[k])]
    kinds = np.asarray(kinds, dtype=float)
    frac = (np.ones(len(kinds)) if fractions is None else np.asarray(fractions, float))
    order = np.argsort(-kinds, kind="stable")
    kinds, frac = kinds[order], frac[order]
    nan = {k: float("nan") for k in measure}
    if not ids or not len(kinds):
        return nan
    m = np.array([measure[k] for k in ids], dtype=float)
    w = np.array([max(float(count.get(k, 1.0)), 1e-9) for k in ids])
    by_count = np.argsort(-w, kind="stable")
    cover = np.cumsum(w[by_count]) / w.sum()
    perfect = by_count[: int(np.searchsorted(cover, PERFECT_SHARE - 1e-9)) + 1]
    perfect = perfect[np.argsort(-m[perfect], kind="stable")]
    share = np.cumsum(w[perfect]) - w[perfect] / 2
    share /= w[perfect].sum()
    # Faint kinds may go undetected: with fewer perfect classes than kinds, the brightest kinds.
    n = min(len(kinds), len(perfect), max_kinds or len(kinds))
    edges = np.cumsum(frac[:n]) / frac[:n].sum()
    assign = np.minimum(np.searchsorted(edges, share), n - 1)
    if len(perfect) == n:
        # One class per kind shown: by rank alone. Abundance would mislead where a faint kind
        # is detected only in part (a third of the O columns of a perovskite, which then look
        # rarer than the cell says and push the Ti-O class onto the O kind).
        assign = np.arange(n)
    pts_m = np.array([np.average(m[perfect][assign == u], weights=w[perfect][assign == u])
                      for u in np.unique(assign)])
    pts_c = kinds[np.unique(assign)]
    if through_origin:
        pts_m, pts_c = np.append(pts_m, 0.0), np.append(pts_c, 0.0)
    srt = np.argsort(pts_m)
    pts_m, pts_c = pts_m[srt], pts_c[srt]
    out = {}
    for k, mk in zip(ids, m, strict=True):
        if len(pts_m) == 1:
            out[k] = float(pts_c[0] * mk / pts_m[0]) if pts_m[0] else float("nan")
        elif mk < pts_m[0]:
            slope = (pts_c[1] - pts_c[0]) / max(pts_m[1] - pts_m[0], 1e-12)
            out[k] = float(pts_c[0] + slope * (mk - pts_m[0]))
        elif mk > pts_m[-1]:
            slope = (pts_c[-1] - pts_c[-2]) / max(pts_m[-1] - pts_m[-2], 1e-12)
            out[k] = float(pts_c[-1] + slope * (mk - pts_m[-1]))
        else:
            out[k] = float(np.interp(mk, pts_m, pts_c))
    for pos, u in zip(perfect, assign, strict=True):  # a perfect class is its kind exactly
        out[ids[pos]] = float(kinds[u])
    return {k: out.get(k, float("nan")) for k in measure}


def suggest_species(store: GraphStore, motif_id: str, formula: str,
                    material: str | None = None) -> dict[str, str]:
    """Suggest the column content of every level-1 class of a motif's material, from a formula.

    The formula gives the perfect column kinds (each element one kind holding all its atoms of
    a formula unit: ``"MoSe2"`` -> ``Mo`` and ``Se2`` columns, as in a 2H TMD along c) and
    their partial columns (``Se``). The classes' measures (:func:`class_measures`) **of that
    material only** are calibrated against the kinds' contrast (:func:`calibrate_contrast`);
    each class gets the candidate nearest to its predicted contrast.

    Parameters
    ----------
    store : GraphStore
    motif_id : str
        The motif to export (any level): it sets the material.
    formula : str
        Chemical formula, e.g. ``"MoSe2"``; when the material's name is a formula too, both
        must have the same elements.
    material : str, optional
        Needed when the motif occurs in several materials.

    Returns
    -------
    dict
        Level-1 motif id -> column content (``{"L1-0001": "Mo", "L1-0002": "Se2"}``).

    Raises
    ------
    ExportError
        Not a formula, a formula of other elements than the material's, no measurable class.

    Examples
    --------
    >>> from motifcat.query import image_units
    >>> unit = image_units(store, image_id)["motif_id"].iloc[0]  # a hexagon of MoSe2
    >>> sp = suggest_species(store, unit, "MoSe2")  # classes ordered by count: Se2 sites first
    >>> sp["L1-0001"], sp["L1-0002"]
    ('Se2', 'Mo')
    """
    kinds = _formula_columns(formula)
    detail = motif_detail(store, motif_id)
    mat = _material_of(detail, material)
    if mat is None:
        raise ExportError(f"motif {detail.motif_id}: the catalog records no material for it")
    own = material_elements(mat)
    if own is not None and own != {sym for sym, _ in kinds}:
        raise ExportError(
            f"formula {formula!r}: its elements are not those of material {mat!r} of motif "
            f"{detail.motif_id}; species are never taken from another material"
        )
    measure, count, how = class_measures(store, mat)
    if not measure:
        raise ExportError(
            f"material {mat}: no level-1 class with a mean image or cross-section to measure; "
            "map the level-1 motifs to species explicitly"
        )
    full = np.array([column_contrast(_column_spec(sym, n)) for sym, n in kinds])
    pred = material_contrast(measure, count, full, through_origin=how == "cross-section")
    candidates = sorted(
        {(column_contrast(_column_spec(sym, k)), _column_spec(sym, k)) for sym, n in kinds
         for k in range(1, n + 1)}
    )
    cand_c = np.array([c for c, _ in candidates])
    out = {}
    for mid in sorted(pred):
        p = pred[mid]
        out[mid] = (candidates[-1][1] if not np.isfinite(p)
                    else candidates[int(np.argmin(np.abs(cand_c - p)))][1])
    return out


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
    *,
    material: str | None = None,
    reference: Reference | str | bool | None = None,
    zone: Any = None,
    min_cell_A: float = MIN_CELL_A,
    scale_tolerance: float = SCALE_TOLERANCE,
    max_rms_A: float = MAX_RMS_A,
    force: bool = False,
    thickness_A: float | None = None,
) -> Atoms:
    """A 3-D model of one motif for DFT/MD, registered to its material's reference crystal.

    1. The material is the motif's own (``material`` when it occurs in several); species are
       never taken from another material.
    2. The reference crystal is ``reference`` (a :class:`~motifcat.structure.Reference` or its
       spec text), else the one stored with the material at ingest, else motifcat's default for
       a known formula (:func:`~motifcat.structure.default_reference`); ``reference=False``, or
       no reference at all, falls back to :func:`flat_model`.
    3. The reference is projected along the zone axis (``zone``, the reference's own, or the
       best registration over :data:`~motifcat.structure.LOW_INDEX_ZONES`) and the motif's
       columns are registered to its columns (:func:`~motifcat.structure.register`) using the
       classes' predicted contrast (:func:`calibrate_contrast`, within the material).
    4. Each column takes the atoms of its reference column; a column whose class is a defect
       (its predicted contrast, or ``species``) has atoms removed or substituted; reference
       sites inside the motif without a column (of a kind the motif does show) are emptied.
    5. A perfect motif is the periodic oriented reference cell; a defect motif is embedded in a
       supercell at least ``min_cell_A`` wide.
    6. No two atoms may be closer than 0.75 × the sum of their covalent radii unless ``force``.

    Parameters
    ----------
    store : GraphStore
    motif_id : str
    species : mapping, optional
        Level-1 motif id -> column content (``"Se"``): overrides the suggestion for the columns
        of that class (elements of the material only).
    formula, column_atoms, layer_thickness_A, vacuum_A
        Used by the flat fallback only (:func:`flat_model`); ``formula`` must have the
        material's elements.
    material : str, optional
    reference : Reference, str, False or None
    zone : str or sequence of 3 int, optional
        Zone axis in the reference's cell, e.g. ``"001"``.
    min_cell_A : float
        Smallest width (Å) of a defect supercell.
    scale_tolerance : float
        Allowed |scale - 1| of the registration.
    max_rms_A : float
        Largest accepted registration residual (Å).
    force : bool
        Write a model with overlapping atoms anyway (the report still lists them).
    thickness_A : float, optional
        Sample thickness along the beam (Å), for a bulk reference: its oriented cell is
        repeated along the zone to the nearest whole number of periods, so a column holds as
        many atoms as the sample's (a perovskite [001] column 4 cells thick holds 4 Sr) and a
        column with one atom fewer or substituted can be told and built. A perfect motif is
        still the reference cell. Ignored for a slab (an MX2 monolayer).

    Returns
    -------
    ase.Atoms
        ``info`` has the provenance (``motif_id, key, level, samples, images, materials,
        material, n_instances, software, note``) and the report (``model, formula,
        min_distance_A, rms_A, scale, zone, reference, provenance, species, report``).

    Raises
    ------
    ExportError
        Ambiguous material, species of another material, bad reference, failed registration,
        or overlapping atoms (naming them).
    QueryError
        If there is no such motif.

    Examples
    --------
    >>> from motifcat.query import persistent_motifs
    >>> ranked = persistent_motifs(store, min_images=1, level=2)
    >>> unit = ranked[[list(m) == ["MoSe2"] for m in ranked["materials"]]]["motif_id"].iloc[0]
    >>> atoms = motif_to_atoms(store, unit)  # MoSe2's default reference: ase.build.mx2
    >>> atoms.get_chemical_formula(), atoms.info["model"], atoms.info["zone"]
    ('MoSe2', 'periodic reference cell', '[001]')
    >>> atoms.info["report"].split(", ")[2]
    'min distance 2.53 Å (Mo0–Se1)'
    """
    detail = motif_detail(store, motif_id)
    mat = _material_of(detail, material)
    own = material_elements(mat)
    if formula is not None and own is not None:
        f_elems = {sym for sym, _ in _formula_columns(formula)}
        if f_elems != own:
            raise ExportError(
                f"formula {formula!r}: its elements are not those of material {mat!r} of motif "
                f"{detail.motif_id}; species are never taken from another material"
            )
    if species is not None and own is not None and isinstance(species, Mapping):
        foreign = {sym for v in species.values() for sym in parse_column(v)} - own
        if foreign:
            raise ExportError(
                f"species: {', '.join(sorted(foreign))} not in material {mat!r} of motif "
                f"{detail.motif_id}; species are never taken from another material"
            )
    ref = _resolve_reference(store, reference, mat, formula)
    if ref is None:
        atoms = flat_model(store, detail.motif_id, species=species, formula=formula,
                           column_atoms=column_atoms, layer_thickness_A=layer_thickness_A,
                           vacuum_A=vacuum_A, material=mat)
    else:
        if own is not None and not ref.elements <= own:
            raise ExportError(
                f"reference {ref.source}: elements {', '.join(sorted(ref.elements - own))} are "
                f"not in material {mat!r} of motif {detail.motif_id}; species are never taken "
                "from another material"
            )
        atoms = _registered_model(store, detail, mat, ref, species, zone, min_cell_A,
                                  scale_tolerance, max_rms_A, thickness_A)
    atoms.info["material"] = mat or ""
    _finish(atoms, force)
    return atoms


def _resolve_reference(store, reference, material, formula) -> Reference | None:
    if reference is False:
        return None
    if isinstance(reference, Reference):
        return reference
    if isinstance(reference, str):
        return load_reference(reference)
    if reference is not None:
        raise ExportError(f"reference: expected a Reference, a spec text or False, got "
                          f"{type(reference).__name__}")
    if material:
        text = material_reference(store, material)
        if text:
            return reference_from_json(text)
    return default_reference(material if material_elements(material) else formula)


def _thick(pc, thickness_A):
    """The projected crystal repeated along its zone to ``thickness_A`` (bulk only) and the
    number of periods."""
    if thickness_A is None or not pc.periodic_z:
        return pc, 1
    n = max(1, int(round(thickness_A / float(pc.atoms.cell[2, 2]))))
    if n == 1:
        return pc, 1
    return project(pc.atoms.repeat((1, 1, n)), (0, 0, 1)), n


def _registered_model(store, detail, material, ref: Reference, species, zone, min_cell_A,
                      scale_tolerance, max_rms_A, thickness_A=None) -> Atoms:
    if not (isinstance(min_cell_A, int | float) and np.isfinite(min_cell_A) and min_cell_A > 0):
        raise ExportError(f"min_cell_A: expected a number > 0 Å, got {min_cell_A!r}")
    if thickness_A is not None and not (isinstance(thickness_A, int | float)
                                        and np.isfinite(thickness_A) and thickness_A > 0):
        raise ExportError(f"thickness_A: expected a number > 0 Å, got {thickness_A!r}")
    xy, ids, _, _ = _prototype_columns(detail)
    user = {}
    if species is not None:
        if not isinstance(species, Mapping):
            raise ExportError("species: expected a mapping of level-1 motif id -> 'Se'-like text")
        user = {str(k): tuple(sorted(parse_column(v))) for k, v in species.items()}
        bad = {sym for c in user.values() for sym in c} - ref.elements
        if bad:
            raise ExportError(
                f"species: {', '.join(sorted(bad))} not in the reference of material "
                f"{material!r} ({ref.formula}); species are never taken from another material"
            )
    given = parse_zone(zone) or ref.zone
    zones = [given] if given else list(LOW_INDEX_ZONES)
    trials = []
    errors = []
    measure, count, how = class_measures(store, material) if material else ({}, {}, "none")
    for z in zones:
        try:
            pc, periods = _thick(project(ref.atoms, z), thickness_A)
        except ExportError as exc:
            errors.append(str(exc))
            continue
        kinds, n_kind = np.unique(pc.contrast, return_counts=True)
        shown = detected_kinds(store, measure, pc)
        pred = material_contrast(measure, count, kinds, n_kind,
                                 through_origin=how == "cross-section", n_kinds=shown)
        # Kinds the material's images show at all: only those can have empty sites.
        m_shown = max(shown.values(), default=len(kinds))
        visible = _complete_kinds(np.sort(kinds)[::-1][:m_shown], kinds, n_kind, pred, count)
        con = np.array([pred.get(m, np.nan) for m in ids])
        try:
            reg = register(xy, pc, con, scale_tolerance=scale_tolerance)
        except ExportError as exc:
            errors.append(f"zone {''.join(map(str, z))}: {exc}")
            continue
        trials.append((reg, pc, z, pred, visible, periods))
    if not trials:
        raise ExportError(f"motif {detail.motif_id}: cannot register to reference {ref.source}: "
                          + "; ".join(errors))
    reg, pc, z, pred, visible, periods = min(trials, key=lambda t: (round(t[0].rms_A, 2),
                                                           -np.nan_to_num(t[0].chemistry)))
    if reg.rms_A > max_rms_A:
        raise ExportError(
            f"motif {detail.motif_id}: its columns do not sit on the columns of reference "
            f"{ref.source} along {''.join(map(str, z))} (registration residual "
            f"{reg.rms_A:.2f} Å > {max_rms_A} Å); give the right reference or --zone"
        )
    if len(ids) == 1:
        reg = _single_site(reg, pc, pred.get(ids[0], np.nan), ref.elements)
    contents: list[tuple[str, ...] | None] = []
    for mid, j in zip(ids, reg.column, strict=True):
        perfect = tuple(pc.symbols[j])
        if mid in user:
            contents.append(user[mid])
        else:
            contents.append(choose_content(pred.get(mid, np.nan), perfect, ref.elements))
    empty = _empty_sites(pc, reg, visible)
    atoms, perfect = build_model(pc, reg.column, reg.shift, contents, empty, min_cell_A)
    if perfect and periods > 1:  # the reference's own cell, not the sample-thick stack
        atoms = project(ref.atoms, z).atoms.copy()
        atoms.pbc = True
    used = {}
    columns = []
    for mid, c, j in zip(ids, contents, reg.column, strict=True):
        used.setdefault(mid, "".join(c) if c else "empty")
        columns.append(f"{mid}@{''.join(pc.symbols[j])}={''.join(c) if c else 'empty'}")
    columns += [f"empty@{''.join(pc.symbols[j])}=empty" for j, _ in empty]
    atoms.info.update(
        _provenance(detail),
        model="periodic reference cell" if perfect else "defect in reference supercell",
        reference=ref.source,
        provenance=ref.provenance,
        zone="[" + "".join(str(v) for v in z) + "]",
        rms_A=round(float(reg.rms_A), 4),
        scale=round(float(reg.scale), 4),
        mirrored=bool(reg.mirrored),
        measure=how,
        species=used,
        columns=columns,
        empty_sites=len(empty),
        periods_along_zone=int(periods),
    )
    return atoms


#: A column kind whose detected columns number at least this fraction of what the cell's
#: proportions and the best-detected kind predict counts as fully detected; only then is a
#: site of that kind without a column an empty site (a faint O column found in a third of its
#: sites is not a vacancy elsewhere). Chosen by hand.
COMPLETE_DETECTION = 0.8


def _complete_kinds(visible, kinds, n_kind, pred, count):
    """The ``visible`` kinds detected in (nearly) all their sites over the material's images:
    each class's instances counted on the kind nearest its predicted contrast."""
    seen = np.zeros(len(kinds))
    for per_image in count.values():
        for mid, n in per_image.items():
            p = pred.get(mid, np.nan)
            if np.isfinite(p):
                seen[int(np.argmin(np.abs(kinds - p)))] += n
    rate = seen / np.asarray(n_kind, float)
    if not rate.max() > 0:
        return visible
    full = kinds[rate >= COMPLETE_DETECTION * rate.max()]
    return np.array([v for v in visible if np.isclose(full, v).any()])


def _single_site(reg, pc, predicted: float, elements):
    """The site of a lone column (a level-1 motif): among the reference columns whose best
    content (:func:`~motifcat.structure.choose_content`) comes within the content tolerance
    (:data:`~motifcat.structure.CONTENT_TOLERANCE` of the site's perfect contrast) of the
    predicted contrast, the one needing the fewest changed atoms; then a vacancy (atoms
    removed) before a substitution, which is rarer; then the nearest. (A 3-Sr column of a
    perovskite is one Sr fewer on an Sr site, not Sr put on a Ti-O site.)"""
    if not np.isfinite(predicted):
        return reg
    options = []
    for j in range(len(pc.xy)):
        perfect = tuple(pc.symbols[j])
        c = choose_content(predicted, perfect, elements)
        dist = abs(predicted - column_contrast(''.join(c))) if c else abs(predicted)
        substituted = bool(set(c) - set(perfect)) or any(c.count(e) > perfect.count(e)
                                                         for e in set(c))
        tol = CONTENT_TOLERANCE * column_contrast(''.join(perfect))
        options.append((dist, tol, n_changes(perfect, c), substituted, j))
    best_d = min(o[0] for o in options)
    near = [o for o in options if o[0] <= max(best_d, o[1]) + 1e-9]
    j = min(near, key=lambda o: (o[2], o[3], o[0]))[4]
    return type(reg)(reg.rotation, reg.scale, pc.xy[j] - reg.mapped_xy[0] + reg.translation,
                     np.array([j]), np.zeros((1, 2), int), pc.xy[[j]], pc.xy[[j]], 0.0,
                     reg.chemistry)


def _empty_sites(pc, reg, visible=None) -> list[tuple[int, tuple[int, int]]]:
    """Reference sites surrounded by the motif's columns but holding none: every nearest-
    neighbour site of theirs (within 1.15 × the shortest column spacing) is a motif column, and
    they are of a kind the motif shows elsewhere and the material's images detect at all
    (``visible`` contrasts, :func:`detected_kinds`: faint O or S2 columns left undetected are
    kept, even where a brighter defect column on that sublattice was seen)."""
    from scipy.spatial import cKDTree

    if len(reg.site_xy) < 3:
        return []
    lo, hi = reg.shift.min(0) - 1, reg.shift.max(0) + 1
    r = [np.arange(lo[i], hi[i] + 1) for i in range(2)]
    shifts = np.stack(np.meshgrid(*r, indexing="ij"), -1).reshape(-1, 2)
    xy = (pc.xy[None] + (shifts @ pc.cell2)[:, None]).reshape(-1, 2)
    col = np.tile(np.arange(len(pc.xy)), len(shifts))
    sh = np.repeat(shifts, len(pc.xy), axis=0)
    tree = cKDTree(xy)
    d, _ = tree.query(xy, k=2)
    nn = float(d[:, 1].min())
    taken = {(int(j), int(a), int(b)) for j, (a, b) in zip(reg.column, reg.shift, strict=True)}
    is_taken = np.array([(int(j), int(a), int(b)) in taken
                         for j, (a, b) in zip(col, sh, strict=True)])
    shown = np.isin(pc.kind[col], np.unique(pc.kind[reg.column]))
    if visible is not None:
        shown &= np.isin(pc.contrast[col], np.asarray(visible))
    neighbours = tree.query_ball_point(xy, 1.15 * nn)
    out = []
    for i in np.flatnonzero(~is_taken & shown):
        others = [n for n in neighbours[i] if n != i]
        if len(others) >= 3 and is_taken[others].all():
            out.append((int(col[i]), (int(sh[i, 0]), int(sh[i, 1]))))
    return out


def _provenance(detail) -> dict[str, Any]:
    return dict(
        motif_id=detail.motif_id,
        key=detail.key,
        level=detail.level,
        samples=list(detail.samples),
        images=list(detail.images),
        materials=list(detail.materials),
        n_instances=int(detail.n_instances),
        software=f"motifcat {__version__}",
        note=NOTE,
    )


def report_line(atoms: Atoms) -> str:
    """The one-line report of an export: formula, minimum distance, cell, registration
    residual and the reference's provenance.

    Examples
    --------
    >>> from ase.build import mx2
    >>> a = mx2("MoS2", vacuum=5.0)
    >>> a.info.update(motif_id="L2-x", material="MoS2", min_distance_A=2.41, rms_A=0.03,
    ...               scale=1.01, zone="001", reference="proto:mx2", provenance="ase.build.mx2")
    >>> report_line(a).split(":")[0]
    'L2-x MoS2'
    """
    info = atoms.info
    cell = atoms.cell.cellpar()
    pbc = "".join("T" if p else "F" for p in atoms.pbc)
    d = info.get("min_distance_A", float("nan"))
    pair = info.get("min_pair", "")
    rms = info.get("rms_A")
    reg = ("no registration" if rms is None else
           f"registration rms {rms:.3f} Å, scale {info.get('scale', 1.0):.3f}, "
           f"zone {info.get('zone', '?')}")
    return (
        f"{info.get('motif_id', '?')} {info.get('material', '')}: formula "
        f"{atoms.get_chemical_formula()}, {len(atoms)} atoms, min distance {d:.2f} Å {pair}, "
        f"cell {cell[0]:.2f} {cell[1]:.2f} {cell[2]:.2f} Å {cell[3]:.0f} {cell[4]:.0f} "
        f"{cell[5]:.0f}° pbc {pbc}, {reg}, reference {info.get('reference', 'none')} "
        f"({info.get('provenance', '')})"
    )


def _finish(atoms: Atoms, force: bool) -> None:
    """Sanity (overlaps, minimum distance) and the report, into ``atoms.info``."""
    d, (i, j) = minimum_distance(atoms)
    syms = atoms.get_chemical_symbols()
    atoms.info["formula"] = atoms.get_chemical_formula()
    atoms.info["min_distance_A"] = round(d, 4) if np.isfinite(d) else float("inf")
    atoms.info["min_pair"] = f"({syms[i]}{i}–{syms[j]}{j})" if i >= 0 else ""
    overlaps = check_overlaps(atoms)
    atoms.info["overlaps"] = len(overlaps)
    atoms.info["report"] = report_line(atoms)
    if overlaps and not force:
        shown = "; ".join(str(o) for o in overlaps[:5])
        more = f" and {len(overlaps) - 5} more" if len(overlaps) > 5 else ""
        raise ExportError(
            f"motif {atoms.info.get('motif_id', '?')}: atoms closer than 0.75 × the sum of "
            f"their covalent radii: {shown}{more}; nothing written (force to write anyway)"
        )


def flat_model(
    store: GraphStore,
    motif_id: str,
    species: Mapping[str, str] | None = None,
    formula: str | None = None,
    column_atoms: Mapping[str, int] | None = None,
    layer_thickness_A: float | None = None,
    vacuum_A: float = 10.0,
    material: str | None = None,
) -> Atoms:
    """The model used when a material has no reference crystal: columns from the prototype,
    species from ``species``/``formula``, multi-atom columns spread over a layer thickness.

    Prefer :func:`motif_to_atoms`, which registers the motif to a reference crystal; this model
    knows nothing of the material's real heights (a perovskite comes out flat).

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
    >>> atoms = flat_model(store, unit, formula="MoSe2")
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
        mapping.update(suggest_species(store, detail.motif_id, formula, material=material))
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
        _provenance(detail),
        layer_thickness_A=float(thickness),
        species={mid: mapping[mid] for mid in sorted(set(ids))},
        model="flat (no reference crystal)",
        reference="none",
        provenance="layer thickness of motifcat.export.LAYER_THICKNESS_A",
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
    format : {"extxyz", "cif", "vasp" (or "poscar"), "lammps-data", "db"}
        ``"vasp"`` writes a POSCAR (Cartesian, species line sorted); ``"lammps-data"`` writes
        ``atom_style atomic`` with a ``Masses`` section and atom types numbered in
        alphabetical order of the symbols (``specorder``), so that ``ase.io.read`` recovers
        the elements from the masses; ``"db"`` appends a row to an ASE database (metadata as
        key-value pairs and data). The metadata of ``atoms.info`` is kept in extxyz (as
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
    if fmt == "db":
        return _write_db(atoms, path)
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


def _write_db(atoms: Atoms, path: Path) -> Path:
    """One row per export in an ASE database (SQLite ``.db``), appended: scalar metadata as
    key-value pairs (searchable: ``ase db FILE motif_id=L2-…``), the rest under ``data``."""
    import ase.db
    from ase.db.core import reserved_keys

    pairs, data = {}, {}
    for k, v in atoms.info.items():
        key = re.sub(r"\W", "_", str(k))
        if key in reserved_keys:  # e.g. "formula": ASE computes it from the atoms
            data[key] = v
        elif isinstance(v, bool | int | float | np.integer | np.floating) and np.isfinite(v):
            pairs[key] = v.item() if isinstance(v, np.generic) else v
        elif isinstance(v, str) and key not in ("report", "provenance", "note"):
            pairs[key] = v
        else:
            data[key] = v if not isinstance(v, Mapping) else dict(v)
    out = atoms.copy()
    out.info = {}
    try:
        with ase.db.connect(path, type="db") as db:
            db.write(out, key_value_pairs=pairs, data=data)
    except Exception as exc:  # sqlite / ase.db errors: name the file
        raise ExportError(f"{path}: cannot write an ASE database: {exc}") from exc
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
    "MAX_RMS_A",
    "calibrate_contrast",
    "class_measures",
    "material_contrast",
    "column_brightness",
    "column_contrast",
    "default_layer_thickness",
    "detected_kinds",
    "flat_model",
    "material_elements",
    "motif_to_atoms",
    "parse_column",
    "report_line",
    "suggest_species",
    "write_motif",
]
