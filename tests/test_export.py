"""The ASE exporter: motif -> Atoms -> files that ASE reads back, on real catalogs."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pandas as pd
import pytest
from ase.build import mx2
from ase.geometry import get_distances

import motifcat
from motifcat.catalog.embedded import LadybugStore
from motifcat.catalog.store import BulkNodes, BulkRels
from motifcat.errors import ExportError, QueryError
from motifcat.export import (
    ASE_MX2_THICKNESS_A,
    NOTE,
    column_brightness,
    default_layer_thickness,
    motif_to_atoms,
    parse_column,
    suggest_species,
    write_motif,
)

A_MOSE2 = 3.288
NN = A_MOSE2 / np.sqrt(3.0)


def _spot_image(centre: float, ring: float, size: int = 23) -> list:
    """A level-1 mean image: a column of height ``centre`` with 3 neighbours of ``ring``."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    img = centre * np.exp(-(xx**2 + yy**2) / 4.0)
    for ang in np.deg2rad([90, 210, 330]):
        cx, cy = 7 * np.cos(ang), 7 * np.sin(ang)
        img += ring * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 4.0)
    return img.round(4).tolist()


def _hexagon() -> dict:
    ang = np.deg2rad(30 + 60 * np.arange(6))
    xy = NN * np.column_stack([np.cos(ang), np.sin(ang)])
    return {"xy_A": xy.round(4).tolist(), "labels": ["L1-0001", "L1-0002"] * 3,
            "periodic": False, "cell_A": None}


def _cell() -> dict:
    a1, a2 = np.array([A_MOSE2, 0.0]), np.array([A_MOSE2 / 2, A_MOSE2 * np.sqrt(3) / 2])
    return {"xy_A": [[0.0, 0.0], ((a1 + a2) / 3).tolist()], "labels": ["L1-0001", "L1-0002"],
            "periodic": True, "cell_A": [a1.tolist(), a2.tolist()]}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """Mo columns (dimmer than their Se2 neighbours), Se2 columns, a hexagon, a unit cell."""
    store = LadybugStore(tmp_path_factory.mktemp("export") / "catalog.lbug")
    empty = json.dumps({"xy_A": None, "labels": None, "periodic": False, "cell_A": None})
    motifs = pd.DataFrame(
        {
            "id": ["L1-0001", "L1-0002", "L2-hex", "L2-cell", "L2-bare"],
            "level": [1, 1, 2, 2, 2],
            "key": ["L1:zernike-n10", "L1:zernike-n10", "6[L1-0001,L1-0002]", "cell", "bare"],
            "descriptor": [[1.0, 0.0], [0.0, 1.0], [], [], []],
            "n_instances": [60, 60, 20, 10, 1],
            "prototype": [empty, empty, json.dumps(_hexagon()), json.dumps(_cell()), empty],
            "mean_image": [json.dumps(_spot_image(573, 804)), json.dumps(_spot_image(804, 573)),
                           "", "", ""],
        }
    )
    store.write(
        [
            BulkNodes("Material", pd.DataFrame({"name": ["MoSe2"]})),
            BulkNodes("Sample", pd.DataFrame({"id": ["S1"], "name": ["S1"]})),
            BulkNodes("Image", pd.DataFrame({"id": ["img1"], "path": ["a.tif"],
                                             "pixel_size_A": [0.15]})),
            BulkNodes("Motif", motifs),
            BulkRels("OF_MATERIAL", "Sample", "Material",
                     pd.DataFrame({"src": ["S1"], "dst": ["MoSe2"]})),
            BulkRels("OF_SAMPLE", "Image", "Sample",
                     pd.DataFrame({"src": ["img1"], "dst": ["S1"]})),
            BulkRels("CONTAINS", "Image", "Motif",
                     pd.DataFrame({"src": "img1", "dst": motifs["id"],
                                   "count": motifs["n_instances"]})),
        ]
    )
    yield store
    store.close()


# --------------------------------------------------------------------------------- species


def test_parse_column():
    assert parse_column("Se2") == ["Se", "Se"]
    assert parse_column("MoS") == ["Mo", "S"]
    for bad in ("se2", "Xx", "Se0", "", "2Se"):
        with pytest.raises(ExportError):
            parse_column(bad)


def test_brightness_ranks_a_column_against_its_neighbours():
    dim, bright = np.array(_spot_image(573, 804)), np.array(_spot_image(804, 573))
    assert column_brightness(bright) > column_brightness(dim)
    # independent of the stored scaling (the writer min-max scales mean images)
    assert column_brightness(3 * bright + 7) == pytest.approx(column_brightness(bright))


def test_suggest_species_from_formula(catalog):
    assert suggest_species(catalog, "L2-hex", "MoSe2") == {"L1-0001": "Mo", "L1-0002": "Se2"}
    with pytest.raises(ExportError, match="formula"):
        suggest_species(catalog, "L2-hex", "not a formula")


def test_default_thickness_from_ase():
    assert default_layer_thickness("MoS2") == ASE_MX2_THICKNESS_A == 3.19
    assert default_layer_thickness("S2Mo") == ASE_MX2_THICKNESS_A
    assert default_layer_thickness("MoSe2") == 3.34
    assert default_layer_thickness(None) == ASE_MX2_THICKNESS_A


# ---------------------------------------------------------------------------------- atoms


def test_hexagon_to_atoms(catalog):
    atoms = motif_to_atoms(catalog, "L2-hex", species={"L1-0001": "Mo", "L1-0002": "Se2"},
                           layer_thickness_A=3.3, vacuum_A=8.0, reference=False)
    assert atoms.get_chemical_formula() == "Mo3Se6"
    assert not atoms.pbc.any()
    mo = atoms.positions[atoms.numbers == 42]
    se = atoms.positions[atoms.numbers == 34]
    np.testing.assert_allclose(mo[:, 2], mo[0, 2])  # metals in one plane
    # the chalcogen pair of each column at +-thickness/2 about the metal plane
    np.testing.assert_allclose(np.sort(np.unique(np.round(se[:, 2] - mo[0, 2], 6))),
                               [-1.65, 1.65])
    # in-plane metal-chalcogen distance: the projected nn distance
    d = np.linalg.norm(mo[:, None, :2] - se[None, :, :2], axis=2).min(axis=1)
    np.testing.assert_allclose(d, NN, atol=1e-3)
    # vacuum on every side
    lo, hi = atoms.positions.min(axis=0), atoms.positions.max(axis=0)
    np.testing.assert_allclose(lo, 8.0)
    np.testing.assert_allclose(atoms.cell.lengths() - hi, 8.0)
    info = atoms.info
    assert (info["motif_id"], info["level"], info["key"]) == ("L2-hex", 2, "6[L1-0001,L1-0002]")
    assert info["samples"] == ["S1"] and info["images"] == ["img1"]
    assert info["n_instances"] == 20 and info["note"] == NOTE
    assert info["software"] == f"motifcat {motifcat.__version__}"


def test_formula_suggests_species_and_thickness(catalog):
    atoms = motif_to_atoms(catalog, "L2-hex", formula="MoSe2", reference=False)
    assert atoms.get_chemical_formula() == "Mo3Se6"
    assert atoms.info["layer_thickness_A"] == 3.34
    # explicit species win over the suggestion; column_atoms changes the multiplicity
    # a single Se in the metal plane, 1.90 Å from Mo: refused, naming the atoms, unless forced
    with pytest.raises(ExportError, match=r"Mo0–Se1 1\.90 Å < 2\.05 Å.*nothing written"):
        motif_to_atoms(catalog, "L2-hex", formula="MoSe2", column_atoms={"L1-0002": 1},
                       reference=False)
    atoms = motif_to_atoms(catalog, "L2-hex", formula="MoSe2", column_atoms={"L1-0002": 1},
                           reference=False, force=True)
    assert atoms.get_chemical_formula() == "Mo3Se3" and atoms.info["overlaps"] == 6
    # W is not an element of MoSe2: never exported for a MoSe2 motif, with or without reference
    for ref in (None, False):
        with pytest.raises(ExportError, match="W not in material 'MoSe2'"):
            motif_to_atoms(catalog, "L2-hex", species={"L1-0001": "W"}, reference=ref)
    with pytest.raises(ExportError, match="never taken from another material"):
        motif_to_atoms(catalog, "L2-hex", formula="WSe2")


def test_periodic_cell_matches_ase_mx2(catalog):
    atoms = motif_to_atoms(catalog, "L2-cell", species={"L1-0001": "Mo", "L1-0002": "Se2"},
                           layer_thickness_A=3.34, vacuum_A=7.5, reference=False)
    assert atoms.pbc.tolist() == [True, True, False]
    ref = mx2("MoSe2", a=A_MOSE2, thickness=3.34, vacuum=7.5)
    np.testing.assert_allclose(atoms.cell.lengths(), ref.cell.lengths(), atol=1e-6)
    # the same lattice (ASE's a2 is at 120 degrees, the prototype's at 60: the same lattice)
    assert atoms.cell.volume == pytest.approx(ref.cell.volume)
    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    _, d_ref = get_distances(ref.positions, cell=ref.cell, pbc=ref.pbc)
    np.testing.assert_allclose(np.sort(d.ravel()), np.sort(d_ref.ravel()), atol=1e-3)


def test_export_errors(catalog):
    with pytest.raises(ExportError, match="no species for level-1 motif") as err:
        motif_to_atoms(catalog, "L2-hex", reference=False)
    # the hint names no Python syntax: it reads the same from the CLI, the app and Python
    assert "L1-0001=Mo (CLI: --species L1-0001=Mo)" in str(err.value)
    assert "{" not in str(err.value) and "=" + "'" not in str(err.value)
    with pytest.raises(ExportError, match="no prototype"):
        motif_to_atoms(catalog, "L2-bare", species={}, reference=False)
    with pytest.raises(ExportError, match="vacuum_A"):
        motif_to_atoms(catalog, "L2-hex", formula="MoSe2", vacuum_A=-1, reference=False)
    with pytest.raises(ExportError, match="column_atoms"):
        motif_to_atoms(catalog, "L2-hex", formula="MoSe2", column_atoms={"L1-0002": 0},
                       reference=False)
    with pytest.raises(QueryError, match="no motif"):
        motif_to_atoms(catalog, "L9-none", formula="MoSe2")
    # a level-1 motif without a stored neighbourhood is one column
    one = motif_to_atoms(catalog, "L1-0002", species={"L1-0002": "Se2"}, reference=False)
    assert one.get_chemical_formula() == "Se2"



def test_malformed_prototype_is_an_export_error(catalog):
    """The prototype is parsed once (MotifDetail.prototype_columns); a bad one says why."""
    from dataclasses import replace

    from motifcat.export import _prototype_columns
    from motifcat.query import motif_detail

    d = motif_detail(catalog, "L2-hex")
    bad = replace(d, prototype={"xy_A": [[0.0, 0.0], [1.0, 0.0]], "labels": ["L1-0001"]})
    with pytest.raises(ExportError, match="2 positions and 1 labels"):
        _prototype_columns(bad)
    # aliases the writer never writes are not read: no "motifs" key, no columns
    alias = replace(d, prototype={"xy_A": [[0.0, 0.0]], "motifs": ["L1-0001"]})
    with pytest.raises(ExportError, match="no prototype"):
        _prototype_columns(alias)
    xy, ids, periodic, cell = _prototype_columns(motif_detail(catalog, "L2-cell"))
    assert periodic and cell.shape == (2, 2) and ids == ["L1-0001", "L1-0002"]


# ---------------------------------------------------------------------------------- files


@pytest.mark.parametrize("fmt, name", [("extxyz", "m.xyz"), ("cif", "m.cif"),
                                       ("vasp", "POSCAR"), ("lammps-data", "m.data")])
@pytest.mark.parametrize("motif", ["L2-hex", "L2-cell"])
def test_round_trip_through_ase(catalog, tmp_path, fmt, name, motif):
    atoms = motif_to_atoms(catalog, motif, formula="MoSe2")
    path = write_motif(atoms, tmp_path / name, format=fmt)
    kwargs = {"atom_style": "atomic"} if fmt == "lammps-data" else {}
    back = ase.io.read(path, format=fmt, **kwargs)
    assert back.get_chemical_formula() == atoms.get_chemical_formula()
    assert back.pbc.tolist() == atoms.pbc.tolist() or fmt in ("vasp", "lammps-data", "cif")
    np.testing.assert_allclose(back.cell.cellpar(), atoms.cell.cellpar(), atol=1e-4)
    # same structure: identical sorted interatomic distances (LAMMPS may rotate the frame,
    # POSCAR sorts the species)
    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    _, d2 = get_distances(back.positions, cell=back.cell, pbc=atoms.pbc)
    np.testing.assert_allclose(np.sort(d.ravel()), np.sort(d2.ravel()), atol=1e-4)
    if fmt == "extxyz":  # the metadata survives
        assert back.info["motif_id"] == motif and back.info["note"] == NOTE
        assert back.info["samples"] == "S1"


def test_write_errors(catalog, tmp_path):
    atoms = motif_to_atoms(catalog, "L2-hex", formula="MoSe2")
    with pytest.raises(ExportError, match="format 'pdbx'"):
        write_motif(atoms, tmp_path / "m.pdbx", format="pdbx")
    with pytest.raises(ExportError, match="cannot write"):
        write_motif(atoms, tmp_path / "missing" / "dir" / "m.xyz")


# ------------------------------------------------------- a real catalog: pipeline + writer


@pytest.fixture(scope="module")
def mose2(tmp_path_factory, analysed):
    """Two synthetic MoSe2 images analysed and written by the real pipeline and writer."""
    from motifcat.catalog.writer import write_analysis

    store = LadybugStore(tmp_path_factory.mktemp("mose2") / "catalog.lbug")
    for seed, sample in ((1, "A"), (2, "B")):
        a = analysed("tmd", (256, 256), a_A=A_MOSE2, seed=seed)
        write_analysis(store, a, sample=sample, material="MoSe2")
    yield store
    store.close()


def test_exported_unit_from_real_catalog_has_mose2_geometry(mose2, tmp_path):
    from motifcat.query import persistent_motifs

    units = persistent_motifs(mose2, min_images=2, min_instances=5, level=2)
    assert len(units), "the synthetic MoSe2 catalog has no recurring level-2 unit"
    motif = units["motif_id"].iloc[0]  # the most persistent unit: the perfect hexagon
    atoms = motif_to_atoms(mose2, motif, formula="MoSe2")
    symbols = np.array(atoms.get_chemical_symbols())
    n_mo, n_se = (symbols == "Mo").sum(), (symbols == "Se").sum()
    assert n_mo > 0 and n_se == 2 * n_mo  # MoSe2 stoichiometry
    mo = atoms.positions[symbols == "Mo"]
    se = atoms.positions[symbols == "Se"]
    # every metal's nearest chalcogen column, in projection, at the generator's a / sqrt(3)
    d = np.linalg.norm(mo[:, None, :2] - se[None, :, :2], axis=2).min(axis=1)
    np.testing.assert_allclose(d, NN, atol=0.1)
    # the chalcogen pair at +-thickness/2 about the metal plane (ASE's 2H geometry)
    dz = np.unique(np.round(se[:, 2] - mo[:, 2].mean(), 3))
    np.testing.assert_allclose(dz, [-1.67, 1.67], atol=1e-3)
    assert atoms.info["samples"] == ["A", "B"] and atoms.info["n_instances"] >= 5
    back = ase.io.read(write_motif(atoms, tmp_path / "unit.xyz"))
    assert back.get_chemical_formula() == atoms.get_chemical_formula()
