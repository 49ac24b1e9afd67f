"""The command line end to end on a real embedded catalog: ingest, query, export."""

from __future__ import annotations

import json
import re

import ase.io
import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from motifcat.cli import app
from motifcat.demo import write_calibrated_tiff

runner = CliRunner()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, synthetic):
    """Two calibrated MoSe2 images and one corrupt file, ingested with `motifcat ingest`."""
    root = tmp_path_factory.mktemp("cli")
    images = root / "images"
    images.mkdir()
    for seed in (1, 2):
        write_calibrated_tiff(
            images / f"tmd{seed}.tif", synthetic("tmd", (288, 288), seed=seed).image, 0.15
        )
    (images / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    cat = str(root / "catalog")
    with threadpool_limits(1):
        result = runner.invoke(
            app,
            ["ingest", str(images), "--sample", "S1", "--material", "MoSe2", "-c", cat, "-j", "1"],
        )
    return cat, images, result


def test_ingest_writes_good_files_and_reports_the_bad_one(catalog):
    cat, images, result = catalog
    # One file failed, so the exit status says so; the others were written.
    assert result.exit_code == 1
    assert "broken.tif" in result.output
    assert "2 written, 0 skipped as duplicates, 1 failed" in result.output


def test_reingest_adds_nothing(catalog):
    cat, images, _ = catalog
    with threadpool_limits(1):
        result = runner.invoke(
            app,
            ["ingest", str(images / "tmd1.tif"), "-s", "S1", "-m", "MoSe2", "-c", cat, "-j", "1"],
        )
    assert result.exit_code == 0, result.output
    assert "0 written, 1 skipped as duplicates, 0 failed" in result.output


def test_query_samples_json(catalog):
    cat, _, _ = catalog
    result = runner.invoke(app, ["query", "samples", "-c", cat, "-f", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["sample"], r["material"], r["n_images"]) for r in rows] == [("S1", "MoSe2", 2)]


def test_query_cypher_readonly_and_refusal(catalog):
    cat, _, _ = catalog
    result = runner.invoke(
        app, ["query", "cypher", "MATCH (i:Image) RETURN count(i) AS n", "-c", cat, "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"n": 2}]
    refused = runner.invoke(app, ["query", "cypher", "MATCH (i:Image) DETACH DELETE i", "-c", cat])
    assert refused.exit_code == 1
    again = runner.invoke(
        app, ["query", "cypher", "MATCH (i:Image) RETURN count(i) AS n", "-c", cat, "-f", "json"]
    )
    assert json.loads(again.output) == [{"n": 2}]


def test_recurring_across_samples_and_composition_json(catalog):
    cat, _, _ = catalog
    result = runner.invoke(
        app,
        ["query", "recurring", "--min-materials", "1", "--level", "2", "-c", cat, "-f", "json"],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and all(r["level"] == 2 and r["n_images"] >= 1 for r in rows)
    top = max(rows, key=lambda r: r["n_instances"])["motif_id"]
    comp = runner.invoke(app, ["query", "composition", top, "-c", cat, "-f", "json"])
    doc = json.loads(comp.output)
    assert set(doc) == {"composed_of", "part_of"}
    assert sum(r["count"] for r in doc["composed_of"]) == 6  # a hexagon of six columns


def test_recurring_level1_motifs_carry_readable_names(catalog):
    # Issue 10: level-1 keys all read "L1:zernike-n10-…"; the CLI's tables name them by
    # cross-section rank and share, as `motifcat analyze` and the app do.
    cat, _, _ = catalog
    result = runner.invoke(
        app,
        ["query", "recurring", "--min-materials", "1", "--level", "1", "-c", cat, "-f", "json"],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and all(r["level"] == 1 for r in rows)
    word = re.compile(r"^(bright|medium|dim|brightest|dimmest|\d\.\d+×) \d+(\.\d+)? %( [a-z])?$")
    assert all(word.match(r["name"]) for r in rows), rows
    # Names tell the classes apart.
    assert len({r["name"] for r in rows}) == len(rows)


def test_context_and_similar_name_their_level1_motifs(catalog):
    cat, _, _ = catalog
    recurring = json.loads(runner.invoke(
        app, ["query", "recurring", "--min-materials", "1", "--level", "1", "-c", cat, "-f",
              "json"]).output)
    named = {r["motif_id"]: r["name"] for r in recurring}
    top = recurring[0]["motif_id"]
    for cmd in (["context", top], ["similar", top]):
        result = runner.invoke(app, ["query", *cmd, "-c", cat, "-f", "json"])
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)
        assert rows and all(r["name"] == named.get(r["motif_id"], "") for r in rows), rows
        assert any(r["name"] for r in rows)


def test_export_a_unit_to_extxyz(catalog, tmp_path):
    cat, _, _ = catalog
    rows = json.loads(
        runner.invoke(app, ["query", "persistent", "--level", "2", "-c", cat, "-f", "json"]).output
    )
    top = rows[0]["motif_id"]
    out = tmp_path / "unit.extxyz"
    result = runner.invoke(app, ["export", top, "--formula", "MoSe2", "-o", str(out), "-c", cat])
    assert result.exit_code == 0, result.output
    atoms = ase.io.read(out)
    symbols = atoms.get_chemical_symbols()
    assert symbols.count("Se") == 2 * symbols.count("Mo") and len(atoms) == 3  # the MoSe2 cell
    assert atoms.pbc.tolist() == [True, True, False]
    bad = runner.invoke(app, ["export", top, "--persistent", "-c", cat])
    assert bad.exit_code == 1 and "not both" in bad.output


def test_export_format_follows_the_output_name(catalog, tmp_path):
    # Issue 13 friction: `-o model.cif` used to write extxyz text under a .cif name.
    cat, _, _ = catalog
    rows = json.loads(
        runner.invoke(app, ["query", "persistent", "--level", "2", "-c", cat, "-f", "json"]).output
    )
    top = rows[0]["motif_id"]
    read_as = {"unit.cif": "cif", "POSCAR": "vasp", "unit.lmp": "lammps-data",
               "unit.db": "db", "unit.xyz": "extxyz"}
    for name, fmt in read_as.items():
        out = tmp_path / name
        result = runner.invoke(app, ["export", top, "-o", str(out), "-c", cat])
        assert result.exit_code == 0, (name, result.output)
        kw = {"atom_style": "atomic"} if fmt == "lammps-data" else {}
        back = ase.io.read(out, format=fmt, **kw)
        assert len(back) == 3 and back.cell.lengths()[0] == pytest.approx(3.288, abs=0.05), name
    assert (tmp_path / "unit.cif").read_text().lstrip().startswith("data_")
    # A --format that contradicts the name is refused, naming the file; agreeing aliases pass.
    bad = runner.invoke(app, ["export", top, "-f", "lammps", "-o", str(tmp_path / "x.cif"),
                              "-c", cat])
    assert bad.exit_code == 1 and "x.cif" in bad.output and "--format" in bad.output
    assert not (tmp_path / "x.cif").exists()
    ok = runner.invoke(app, ["export", top, "-f", "poscar", "-o", str(tmp_path / "x.vasp"),
                             "-c", cat])
    assert ok.exit_code == 0, ok.output


def test_missing_catalog_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["query", "samples", "-c", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "nothing" in result.output
