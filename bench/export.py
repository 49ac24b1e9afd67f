"""Benchmark of the exporter: registered 3-D models from real analyses of TMD and perovskite
images.

Run ``python bench/export.py`` (``--quick`` for a smaller trial). Prints its tables and writes
``bench/results/export.md``; ``--synthetic`` uses the synthetic sets only and writes
``bench/results/export-synthetic.md``.

Data: each multislice set of helper "bench" (``bench/data/tmd.npz`` MoS2, ``perovskite.npz``
SrTiO3, read from this tree or from ``/work/wt/bench/bench/data``) that exists; otherwise images
whose columns are the ``ase.build``-projected reference crystals themselves: MoSe2 from
``motifcat.datasets.make_tmd`` (with its point defects) and SrTiO3 [001] from the projected
``ase.spacegroup.crystal`` cell (Sr, TiO and O columns at Z^1.7 contrast, a few Sr vacancies).
Every image is analysed (``analyze``) and written to one fresh embedded catalog (two
materials), then every persistent motif is exported per material with its default reference.

Measured per export: refused or written; model kind (periodic cell / defect supercell);
formula; atoms closer than 0.75 × the sum of covalent radii; species outside the motif's own
material; for periodic cells, the nearest-neighbour bond length of every species pair against
the freshly built ``ase`` reference and the formula against the reference's; the registration
residual and scale (the image's lattice against the reference); for TMD defect motifs, the
formula change against the one the columns' true types give (each level-1 class named after
the majority true type of its instances).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.formula import Formula  # noqa: E402
from ase.neighborlist import neighbor_list  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motifcat.catalog import open_catalog  # noqa: E402
from motifcat.catalog.writer import write_analysis  # noqa: E402
from motifcat.datasets import make_projected, make_tmd  # noqa: E402
from motifcat.errors import MotifcatError  # noqa: E402
from motifcat.export import material_elements, motif_to_atoms  # noqa: E402
from motifcat.ingest.io import micrograph_from_array  # noqa: E402
from motifcat.ingest.pipeline import analyze  # noqa: E402
from motifcat.query import (  # noqa: E402
    image_instances,
    list_images,
    motif_detail,
    persistent_motifs,
)
from motifcat.structure import check_overlaps, default_reference, project  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "export.md"
DATA_DIRS = [Path(__file__).resolve().parent / "data", Path("/work/wt/bench/bench/data")]

#: True column class -> content: make_tmd's class names (MoSe2) and the multislice MoS2 set's.
TMD_CONTENT = {"M": ("Mo",), "X2": ("Se", "Se"), "X1": ("Se",), "antisite": ("Mo",),
               "Mo": ("Mo",), "S2": ("S", "S"), "S1": ("S",), "Mo_S": ("Mo",),
               "SeS": ("S", "Se")}


def perovskite_image(shape=(384, 384), pixel_size_A=0.15, seed=0, vacancy=0.01):
    """SrTiO3 [001] from the projected reference cell, a few Sr columns empty."""
    pc = project(default_reference("SrTiO3").atoms, (0, 0, 1))
    return make_projected(pc, shape, pixel_size_A=pixel_size_A, empty_fraction={0: vacancy},
                          seed=seed)


def load_sets(quick: bool, synthetic: bool = False):
    """[(material, sample, image, pixel size, truth-or-None)]: each multislice set of helper
    "bench" that exists (dose-1 image), else the synthetic stand-in for that material."""
    shape = (256, 256) if quick else (384, 384)
    out, used = [], []
    for name, mat in (("tmd", "MoS2"), ("perovskite", "SrTiO3")):
        path = None if synthetic else next(
            (d / f"{name}.npz" for d in DATA_DIRS if (d / f"{name}.npz").exists()), None)
        if path is not None:
            z = np.load(path, allow_pickle=False)
            names = [str(n) for n in z["class_names"]]
            keep = z["present"]
            truth = (z["xy"][keep], [names[c] for c in z["cls"][keep]])
            out.append((mat, f"{name}-multislice", z["image"][0], float(z["pixel_size_A"]),
                        truth if name == "tmd" else None))
            used.append(f"{name}: multislice {path}")
        elif name == "tmd":
            for seed in (0, 1):
                syn = make_tmd(shape, seed=seed)
                truth = (syn.xy, [syn.class_names[c] for c in syn.column_class])
                out.append(("MoSe2", f"MoSe2-{seed}", syn.image, syn.pixel_size_A, truth))
            used.append("tmd: synthetic MoSe2 (make_tmd, 2 images)")
        else:
            for seed in (0, 1):
                img = perovskite_image(shape, seed=seed)
                out.append(("SrTiO3", f"SrTiO3-{seed}", img.image, 0.15, None))
            used.append("perovskite: synthetic SrTiO3 [001] (ase-projected, 2 images)")
    return out, "; ".join(used)


def nn_bonds(atoms, cutoff=3.6):
    """Shortest distance (Å) of every species pair within ``cutoff``."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    out = {}
    for a, b, dist in zip(sym[i], sym[j], d, strict=True):
        key = "-".join(sorted((a, b)))
        out[key] = min(out.get(key, np.inf), dist)
    return out


def class_truth(store, sets):
    """Level-1 motif id -> majority true TMD column type, over the images with truth."""
    votes: dict[str, Counter] = {}
    images = list_images(store)
    for _mat, sample, _, px, truth in sets:
        if truth is None:
            continue
        img_ids = images.loc[images["sample"] == sample, "image_id"]
        for iid in img_ids:
            inst = image_instances(store, iid, level=1)
            xy = inst[["x_A", "y_A"]].to_numpy() / px
            d, k = cKDTree(truth[0]).query(xy)
            for mid, dist, kk in zip(inst["motif_id"], d, k, strict=True):
                if dist < 1.0:
                    votes.setdefault(mid, Counter())[truth[1][kk]] += 1
    return {m: c.most_common(1)[0][0] for m, c in votes.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--synthetic", action="store_true",
                    help="synthetic sets only; writes bench/results/export-synthetic.md")
    args = ap.parse_args(argv)
    sets, source = load_sets(args.quick, args.synthetic)
    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="motifcat-export-bench-")
    rows = []
    with open_catalog(os.path.join(tmp, "catalog"), read_only=False) as store:
        for mat, sample, image, px, _ in sets:
            analysis = analyze(micrograph_from_array(image, pixel_size_A=px, path=sample))
            write_analysis(store, analysis, sample=sample, material=mat)
        t_ingest = time.perf_counter() - t0
        truth = class_truth(store, sets)
        ranked = persistent_motifs(store, min_images=1, min_instances=3)
        t1 = time.perf_counter()
        for mid, mats in zip(ranked["motif_id"], ranked["materials"], strict=True):
            for mat in mats:
                row = {"motif": mid, "material": mat}
                try:
                    atoms = motif_to_atoms(store, mid, material=mat)
                except MotifcatError as exc:
                    row.update(status="refused", why=str(exc)[:90])
                    rows.append(row)
                    continue
                ref = default_reference(mat)
                own = material_elements(mat)
                row.update(
                    status="written", model=atoms.info["model"],
                    formula=atoms.get_chemical_formula(), rms=atoms.info["rms_A"],
                    scale=atoms.info["scale"], overlaps=len(check_overlaps(atoms)),
                    foreign=sorted(set(atoms.get_chemical_symbols()) - own),
                    species=atoms.info["species"], empty=atoms.info["empty_sites"],
                )
                if atoms.info["model"].startswith("periodic"):
                    got, want = nn_bonds(atoms), nn_bonds(ref.atoms)
                    dev = max(abs(got.get(k, np.inf) / v - 1) for k, v in want.items())
                    row.update(bond_dev=dev, formula_ok=Formula(row["formula"]).reduce()[0]
                               == Formula(ref.formula).reduce()[0])
                    # The image's own projected bond: the motif's shortest column spacing
                    # against the reference's shortest projected column spacing.
                    xy, _ = motif_detail(store, mid).prototype_columns()
                    if len(xy) >= 2:
                        pc = project(ref.atoms)
                        tiles, tcol, _ = pc.tiled(6.0)
                        # only the column kinds the motif shows (faint O columns go undetected)
                        shown = {c.split("@")[1].split("=")[0] for c in atoms.info["columns"]}
                        keep = np.isin(["".join(pc.symbols[j]) for j in tcol], list(shown))
                        t = tiles[keep]
                        d_ref = cKDTree(t).query(t, k=2)[0][:, 1].min()
                        d_img = cKDTree(xy).query(xy, k=2)[0][:, 1].min()
                        row["proj_dev"] = abs(d_img / d_ref - 1)
                elif mat in ("MoSe2", "MoS2") and truth:
                    area = abs(np.linalg.det(project(ref.atoms).cell2))
                    row["delta_ok"] = _delta_ok(atoms, truth, area, ref)
                rows.append(row)
        t_export = time.perf_counter() - t1
    report = _report(rows, source, t_ingest, t_export, len(ranked))
    print(report)
    out = RESULTS.with_name("export-synthetic.md") if args.synthetic else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    return 0


def _delta_ok(atoms, truth, ref_cell_area, ref):
    """A TMD defect export's formula against the one its columns' true types give: the perfect
    supercell, plus for every motif column (true content - its site's perfect content), minus
    the empty sites' perfect content. None when a column's class has no truth."""
    n_cells = round(abs(np.linalg.det(atoms.cell[:2, :2])) / ref_cell_area)
    want = Counter({k: n_cells * v for k, v in Formula(ref.formula).count().items()})
    for item in atoms.info["columns"]:
        mid, rest = item.split("@")
        site, _ = rest.split("=")
        perfect = Counter(Formula(site).count())
        if mid == "empty":
            want.subtract(perfect)
            continue
        if mid not in truth or truth[mid] not in TMD_CONTENT:
            return None
        want.update(Counter(TMD_CONTENT[truth[mid]]))
        want.subtract(perfect)
    got = Counter(atoms.get_chemical_symbols())
    return dict(got) == {k: v for k, v in want.items() if v}


def _report(rows, source, t_ingest, t_export, n_motifs) -> str:
    written = [r for r in rows if r["status"] == "written"]
    cells = [r for r in written if r["model"].startswith("periodic")]
    defects = [r for r in written if not r["model"].startswith("periodic")]
    lines = [
        "# Export benchmark", "",
        f"Data: {source}. Ingest {t_ingest:.1f} s; {len(rows)} exports of {n_motifs} "
        f"persistent motifs in {t_export:.1f} s.", "",
        "| target | measured |", "|---|---|",
        f"| exports written / refused | {len(written)} / {len(rows) - len(written)} |",
        f"| exports with overlapping atoms | {sum(r['overlaps'] > 0 for r in written)} |",
        f"| exports with species of another material | "
        f"{sum(bool(r['foreign']) for r in written)} |",
        f"| periodic cells: formula = reference's | "
        f"{sum(r['formula_ok'] for r in cells)} / {len(cells)} |",
        f"| periodic cells: max nn bond deviation from the ase reference | "
        f"{max((r['bond_dev'] for r in cells), default=float('nan')) * 100:.2f} % |",
        f"| periodic cells: the image's shortest projected column spacing vs the reference's "
        f"(max deviation) | "
        f"{max((r['proj_dev'] for r in cells if 'proj_dev' in r), default=float('nan')) * 100:.2f}"
        f" % over {sum('proj_dev' in r for r in cells)} motifs |",
        f"| registration: max rms / max abs(scale-1) | "
        f"{max((r['rms'] for r in written), default=float('nan')):.3f} Å / "
        f"{max((abs(r['scale'] - 1) for r in written), default=float('nan')) * 100:.2f} % |",
        f"| TMD defect motifs: formula change as true classes say | "
        f"{sum(r.get('delta_ok') is True for r in defects)} / "
        f"{sum(r.get('delta_ok') is not None for r in defects)} "
        f"({sum(r.get('empty', 0) > 0 for r in defects)} with empty sites) |",
        "", "| motif | material | status | model | formula | rms Å | scale | species / why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] == "written":
            sp = ", ".join(f"{k}={v}" for k, v in r["species"].items())
            lines.append(f"| {r['motif']} | {r['material']} | written | {r['model']} | "
                         f"{r['formula']} | {r['rms']:.3f} | {r['scale']:.3f} | {sp} |")
        else:
            lines.append(f"| {r['motif']} | {r['material']} | refused | | | | | {r['why']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
