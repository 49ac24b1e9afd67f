"""The demo behind ``make demo``: synthesize, ingest, query, export — on the embedded catalog.

Three samples of two materials are synthesized with ground truth (two MoSe2-like TMD samples and
one Cairo-tiling oxide), written as calibrated ImageJ TIFF files, ingested into the catalog
through the same path as ``motifcat ingest``, then queried (what was stored, recurring motifs)
and the top persistent motif is exported to extxyz.
"""

from __future__ import annotations

from pathlib import Path

import tifffile
from rich.console import Console
from rich.table import Table

from .catalog import resolve_uri

#: (sample, material, generator, seeds, pixel size Å). Two TMD samples so that motifs recur
#: across samples; the Cairo oxide is a second material.
DEMO_SAMPLES = [
    ("MoSe2-A", "MoSe2", "tmd", (0, 1), 0.15),
    ("MoSe2-B", "MoSe2", "tmd", (2,), 0.15),
    ("MoVTeNbO-1", "MoVTeNbO", "cairo", (0,), 0.2),
]


def write_calibrated_tiff(path: Path, image, pixel_size_A: float) -> Path:
    """An ImageJ TIFF whose resolution tag carries the pixel size (in nm), as a microscope
    export would; :func:`motifcat.ingest.io.load_image` reads it back in Å."""
    px_nm = pixel_size_A / 10.0
    tifffile.imwrite(
        path,
        image.astype("float32"),
        imagej=True,
        resolution=(1.0 / px_nm, 1.0 / px_nm),
        metadata={"unit": "nm"},
    )
    return path


def synthesize(out_dir: Path, size: int = 512) -> list[tuple[str, str, list[Path]]]:
    """Write the demo micrographs; return (sample, material, files) triples."""
    from .datasets import make_cairo, make_tmd

    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for sample, material, kind, seeds, px in DEMO_SAMPLES:
        files = []
        for seed in seeds:
            if kind == "tmd":
                syn = make_tmd((size, size), pixel_size_A=px, seed=seed)
            else:
                syn = make_cairo((size, size), pixel_size_A=px, seed=seed)
            path = out_dir / f"{sample}_{seed}.tif"
            files.append(write_calibrated_tiff(path, syn.image, px))
        made.append((sample, material, files))
    return made


def run_demo(out_dir: Path = Path("demo-out"), catalog: str | None = None, console=None) -> None:
    """Run the whole demo and print what it does."""
    from .batch import ingest_files
    from .catalog import open_catalog
    from .export import motif_to_atoms, write_motif
    from .query import (
        list_materials,
        list_samples,
        persistent_motifs,
        recurring_motifs,
        with_level1_names,
    )
    from .query import vocabulary as vocabulary_table
    from .report import emit, print_ingest_summary

    console = console or Console()
    uri = resolve_uri(catalog)
    console.rule("1. Synthesize micrographs with ground truth")
    made = synthesize(out_dir)
    for sample, material, files in made:
        console.print(f"{sample} ({material}): {', '.join(str(f) for f in files)}")

    console.rule(f"2. Ingest into the catalog at {uri}")
    for sample, material, files in made:
        summary = ingest_files(
            [str(f) for f in files], sample=sample, material=material, catalog=uri
        )
        print_ingest_summary(summary, uri)

    console.rule("3. What the catalog holds")
    with open_catalog(uri, read_only=True) as store:
        emit(list_materials(store), "table", "Materials")
        emit(list_samples(store), "table", "Samples")
        vocab = vocabulary_table(store)
        per_level = (
            vocab.groupby("level")
            .agg(motifs=("motif_id", "count"), instances=("n_instances", "sum"))
            .reset_index()
        )
        emit(per_level, "table", "Motif vocabulary per level")

        console.rule("4. Recurring motifs")
        across_materials = with_level1_names(store, recurring_motifs(store, min_materials=2))
        if across_materials.empty:
            console.print(
                "No motif is shared by the two materials — as expected: a TMD honeycomb and a "
                "Cairo pentagonal tiling have no column environment or unit in common."
            )
        else:
            emit(_brief(across_materials), "table", "Motifs found in both materials")
        across_samples = with_level1_names(
            store, recurring_motifs(store, min_materials=1, min_samples=2)
        )
        emit(_brief(across_samples).head(10), "table", "Motifs found in several samples")

        console.rule("5. Export the top persistent motif")
        # A unit (level 2) is the smallest motif that makes a structure rather than one column.
        ranked = persistent_motifs(store, min_images=2, level=2)
        if ranked.empty:
            ranked = persistent_motifs(store, min_images=2)
        if ranked.empty:
            console.print("no motif is persistent enough to export")
            return
        top = ranked.iloc[0]
        atoms = motif_to_atoms(store, top["motif_id"], formula=_material_of(store, top))
    path = write_motif(atoms, out_dir / f"{top['motif_id']}.extxyz")
    table = Table(title="Exported model")
    for col in ("motif", "level", "atoms", "formula", "file"):
        table.add_column(col)
    table.add_row(
        str(top["motif_id"]),
        str(top["level"]),
        str(len(atoms)),
        atoms.get_chemical_formula(),
        str(path),
    )
    console.print(table)
    console.print(atoms.info.get("report", ""), markup=False, soft_wrap=True)
    console.print("Browse the catalog with: [bold]motifcat app[/]")


def _brief(frame, key_width: int = 30):
    """The columns of a motif table worth showing in a terminal, keys shortened."""
    cols = ["motif_id", "name", "level", "n_samples", "n_images", "n_instances", "key"]
    out = frame[[c for c in cols if c in frame.columns]].copy()
    if "key" in out:
        out["key"] = [k if len(k) <= key_width else k[: key_width - 1] + "…" for k in out["key"]]
    return out


def _material_of(store, row) -> str | None:
    """The material to suggest species from: the first material the motif occurs in."""
    from .query import motif_detail

    materials = motif_detail(store, row["motif_id"]).materials
    return materials[0] if materials else None
