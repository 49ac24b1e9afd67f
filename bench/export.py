"""Benchmark of the exporter: registered 3-D models from real analyses of the multislice TMD
and perovskite sets, both in ONE catalog, checked against their ground truth.

Run ``python bench/export.py``. Prints its tables and writes ``bench/results/export.md``.

Data: ``bench/data/tmd.npz`` (MoS2 monolayer) and ``bench/data/perovskite.npz`` (SrTiO3 [001],
4 cells thick), dose-1 image of each. Each image is analysed by ``motifcat.analyze`` with its
DEFAULT parameters (no true positions) and written to one fresh embedded catalog with its
material; each material's reference crystal is stored with it as at ingest (``ingest
--reference``), built from the set's ``meta_json``: ``proto:mx2:formula=MoS2,a=3.19,
thickness=3.13`` (thickness = twice the S half-gap) and ``proto:perovskite:formula=SrTiO3,
a=3.905``. The perovskite exports are given the sample's thickness (``thickness_cells`` × a =
15.62 Å; an experimenter's estimate, e.g. from PACBED), so that a column can hold one Sr fewer.

Measured per persistent motif (min 1 image, 3 instances) and material, through the API
(:func:`motifcat.export.motif_to_atoms`):

* written or refused (and why);
* perfect-lattice cells: formula against the reference's; shortest distance of every species
  pair against the freshly built reference (bond lengths within 2 %);
* defect motifs: the change of formula against the perfect supercell, compared with the change
  the ground truth gives for the motif's instances (each instance's level-1 columns matched to
  the true sites within 0.9 Å; true empty sites inside the instance's columns count as
  removed), the most common over its instances;
* atoms closer than 0.75 × the sum of covalent radii; species outside the material's elements
  (the two materials share the catalog).

Then through the CLI: ``motifcat export --persistent --material M`` for each material in every
format (extxyz, cif, poscar, vasp, lammps-data, db); every file is read back with ``ase.io``
(or ``ase.db``) and checked for overlaps and foreign species, and every export's report line
in ``exports-report.txt`` is checked for its fields.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.formula import Formula  # noqa: E402
from ase.neighborlist import neighbor_list  # noqa: E402
from scipy.spatial import Delaunay, cKDTree  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motifcat.catalog import open_catalog, store_reference  # noqa: E402
from motifcat.catalog.writer import write_analysis  # noqa: E402
from motifcat.errors import MotifcatError  # noqa: E402
from motifcat.export import material_elements, motif_to_atoms  # noqa: E402
from motifcat.ingest.io import micrograph_from_array  # noqa: E402
from motifcat.ingest.pipeline import analyze  # noqa: E402
from motifcat.query import list_images, motif_detail, persistent_motifs  # noqa: E402
from motifcat.structure import (  # noqa: E402
    check_overlaps,
    load_reference,
    project,
    reference_to_json,
)

RESULTS = Path(__file__).resolve().parent / "results" / "export.md"
DATA = Path(__file__).resolve().parent / "data"
FORMATS = ("extxyz", "cif", "poscar", "vasp", "lammps-data", "db")
MATCH_A = 0.9  # detected column -> true site (half the shortest projected spacing, 1.84 Å)


def set_specs():
    """Per set: material, reference spec, thickness (Å, bulk only), true content per class and
    perfect content per site (atoms in the column), from ``meta_json``."""
    out = []
    z = np.load(DATA / "tmd.npz", allow_pickle=False)
    m = json.loads(str(z["meta_json"]))
    t = round(2 * m["s_half_gap_A"], 3)
    out.append(dict(
        name="tmd", material="MoS2", npz=z, meta=m, thickness=None,
        reference=f"proto:mx2:formula=MoS2,a={m['a_A']},thickness={t}",
        content={"Mo": {"Mo": 1}, "S2": {"S": 2}, "S1": {"S": 1}, "SeS": {"S": 1, "Se": 1},
                 "Mo_S": {"Mo": 1}, "V_S2": {}, "V_Mo": {}},
        site={"metal": {"Mo": 1}, "chalcogen": {"S": 2}},
    ))
    z = np.load(DATA / "perovskite.npz", allow_pickle=False)
    m = json.loads(str(z["meta_json"]))
    n = int(m["thickness_cells"])
    out.append(dict(
        name="perovskite", material="SrTiO3", npz=z, meta=m, thickness=n * m["a_A"],
        reference=f"proto:perovskite:formula=SrTiO3,a={m['a_A']}",
        content={"Sr": {"Sr": n}, "TiO": {"Ti": n, "O": n}, "O": {"O": n},
                 "Sr_vac": {"Sr": n - 1}, "La_Sr": {"Sr": n - 1, "La": 1}},
        site={"A": {"Sr": n}, "B": {"Ti": n, "O": n}, "O": {"O": n}},
    ))
    return out


def nn_bonds(atoms, cutoff=3.6):
    """Shortest distance (Å) of every species pair within ``cutoff``."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    out = {}
    for a, b, dist in zip(sym[i], sym[j], d, strict=True):
        key = "-".join(sorted((a, b)))
        out[key] = min(out.get(key, np.inf), dist)
    return out


_MEMBERS = {
    1: "MATCH (m:Motif) WHERE m.id = $id MATCH (u:Instance)-[:INSTANCE_OF]->(m) "
       "MATCH (u)-[:IN_IMAGE]->(img:Image) "
       "RETURN u.id AS uid, u.x_A AS x, u.y_A AS y, img.id AS image",
    2: "MATCH (m:Motif) WHERE m.id = $id MATCH (u:Instance)-[:INSTANCE_OF]->(m) "
       "MATCH (u)-[:IN_IMAGE]->(img:Image) MATCH (c:Instance)-[:PART_OF]->(u) "
       "RETURN u.id AS uid, c.x_A AS x, c.y_A AS y, img.id AS image",
    3: "MATCH (m:Motif) WHERE m.id = $id MATCH (u:Instance)-[:INSTANCE_OF]->(m) "
       "MATCH (u)-[:IN_IMAGE]->(img:Image) MATCH (a:Instance)-[:PART_OF]->(u) "
       "MATCH (c:Instance)-[:PART_OF]->(a) "
       "WITH DISTINCT u.id AS uid, c.id AS cid, c.x_A AS x, c.y_A AS y, img.id AS image "
       "RETURN uid, x, y, image",
}


class Truth:
    """The ground truth of one set: true sites, their content change, and lookups."""

    def __init__(self, spec):
        z = spec["npz"]
        px = float(z["pixel_size_A"])
        self.xy_A = z["xy"] * px
        names = [str(n) for n in z["class_names"]]
        sites = [str(n) for n in z["site_names"]]
        self.cls = [names[c] for c in z["cls"]]
        self.present = z["present"].astype(bool)
        self.delta = []
        for c, s in zip(self.cls, [sites[k] for k in z["site"]], strict=True):
            d = Counter(spec["content"][c])
            d.subtract(spec["site"][s])
            self.delta.append(Counter({k: v for k, v in d.items() if v}))
        self.tree = cKDTree(self.xy_A[self.present])
        self.present_idx = np.flatnonzero(self.present)
        self.absent_idx = np.flatnonzero(~self.present)

    def instance_delta(self, xy_A):
        """Formula change of one instance (its columns, Å) and its true column classes."""
        d, k = self.tree.query(xy_A)
        total: Counter = Counter()
        classes = []
        for dist, kk in zip(d, k, strict=True):
            if dist <= MATCH_A:
                i = self.present_idx[kk]
                total.update(self.delta[i])
                classes.append(self.cls[i])
        if len(xy_A) >= 3 and len(self.absent_idx):
            try:
                inside = Delaunay(xy_A).find_simplex(self.xy_A[self.absent_idx]) >= 0
            except Exception:  # collinear columns: no interior
                inside = np.zeros(len(self.absent_idx), bool)
            for i in self.absent_idx[inside]:
                total.update(self.delta[i])
                classes.append(self.cls[i])
        return frozenset((k, v) for k, v in total.items() if v), classes


def motif_truth(store, motif_id, level, truth: Truth, image_id):
    """Most common true formula change over a motif's instances in the set's image, its share,
    and the true classes of the level-1 columns (a level-1 motif: all its instances)."""
    rows = store.read(_MEMBERS[level], {"id": motif_id})
    by: dict[str, list] = {}
    for r in rows:
        if r["image"] == image_id:
            by.setdefault(r["uid"], []).append((r["x"], r["y"]))
    votes: Counter = Counter()
    classes: Counter = Counter()
    for pts in by.values():
        delta, cl = truth.instance_delta(np.array(pts, float))
        votes[delta] += 1
        if level == 1:
            classes.update(cl)
    if not votes:
        return None, 0.0, classes
    best, n = votes.most_common(1)[0]
    return dict(best), n / sum(votes.values()), classes


def model_delta(atoms, ref):
    """Formula change of an export against the perfect supercell of the same cell."""
    got = Counter(atoms.get_chemical_symbols())
    if atoms.info["model"].startswith("periodic"):
        return {}
    pc = project(ref.atoms)
    if pc.periodic_z:
        n_cells = round(abs(atoms.cell.volume) / abs(pc.atoms.cell.volume))
    else:
        n_cells = round(abs(np.linalg.det(atoms.cell[:2, :2])) / abs(np.linalg.det(pc.cell2)))
    want = Counter({k: n_cells * v for k, v in Formula(ref.formula).count().items()})
    got.subtract(want)
    return {k: v for k, v in got.items() if v}


def fmt_delta(d) -> str:
    if d is None:
        return "?"
    if not d:
        return "perfect"
    return " ".join(f"{'+' if v > 0 else ''}{v}{k}" for k, v in sorted(d.items()))


def api_exports(store, specs, refs, image_ids):
    ranked = persistent_motifs(store, min_images=1, min_instances=3)
    rows = []
    truths = {s["material"]: Truth(s) for s in specs}
    thick = {s["material"]: s["thickness"] for s in specs}
    for mid, mats, level in zip(ranked["motif_id"], ranked["materials"], ranked["level"],
                                strict=True):
        for mat in mats:
            row = {"motif": mid, "material": mat, "level": int(level)}
            want, share, classes = motif_truth(store, mid, int(level), truths[mat],
                                               image_ids[mat])
            row.update(truth=want, share=share, classes=classes)
            try:
                atoms = motif_to_atoms(store, mid, material=mat, thickness_A=thick[mat])
            except MotifcatError as exc:
                row.update(status="refused", why=str(exc))
                rows.append(row)
                continue
            ref = refs[mat]
            own = material_elements(mat)
            row.update(
                status="written", model=atoms.info["model"],
                formula=atoms.get_chemical_formula(), rms=atoms.info["rms_A"],
                scale=atoms.info["scale"], overlaps=len(check_overlaps(atoms)),
                foreign=sorted(set(atoms.get_chemical_symbols()) - own),
                species=atoms.info["species"], report=atoms.info["report"],
                delta=model_delta(atoms, ref),
            )
            if atoms.info["model"].startswith("periodic"):
                got, ref_b = nn_bonds(atoms), nn_bonds(ref.atoms)
                row["bond_dev"] = max(abs(got.get(k, np.inf) / v - 1) for k, v in ref_b.items())
                row["formula_ok"] = (Formula(row["formula"]).reduce()[0]
                                     == Formula(ref.formula).reduce()[0])
                # the image's own projected spacing against the reference's (shown kinds only)
                xy, _ = motif_detail(store, mid).prototype_columns()
                if len(xy) >= 2:
                    pc = project(ref.atoms)
                    tiles, tcol, _ = pc.tiled(6.0)
                    shown = {frozenset(re.findall(r"[A-Z][a-z]?", c.split("@")[1].split("=")[0]))
                             for c in atoms.info["columns"]}
                    keep = np.array([frozenset(pc.symbols[j]) in shown for j in tcol])
                    t = tiles[keep]
                    d_ref = cKDTree(t).query(t, k=2)[0][:, 1].min()
                    d_img = cKDTree(xy).query(xy, k=2)[0][:, 1].min()
                    row["proj_dev"] = abs(d_img / d_ref - 1)
            rows.append(row)
    return rows


NOTES = """\
- The demo's refused persistent export: today's `motifcat demo` catalog exports all 26 of
  its persistent motifs (main's code too), so that refusal no longer reproduces there. The
  same refusal was `L2-ebcd8fdd26f3` in the earlier synthetic results and, with main's code,
  on this MoS2 set with 3 others (37 written, 4 refused); it was a bug, now fixed: the motif
  is the ring of six columns around a double chalcogen vacancy, whose three Mo columns are
  detected ~0.3 Å off their sites, so the registration's seed pair (the most central column
  and its nearest neighbour, 1.46 Å apart instead of 1.84 Å) fell outside the search window
  and two columns competed for one site. The registration now also seeds from pairs at the
  motif's typical spacing and gives distinct sites by least-cost assignment; the ring exports
  as one S2 column fewer, as its truth says.
- A refusal left is a prototype whose mean positions are not a lattice fragment (residual
  above 0.5 Å): a correct refusal, nothing is written.
- Defect motifs whose true change needs an element the material lacks are all built on the
  MoS2 class that merges SeS columns (one S replaced by Se) with Mo_S antisites: their
  Z^1.7 contrasts differ by 10 % and the class's cross-section is that of Mo, so the exporter
  builds every one as an antisite (+1 Mo, -2 S) — right for the Mo_S instances, wrong for the
  SeS ones, and Se is not an element of MoS2 (species never come from outside the material).
  The SrTiO3 class with the 5 La_Sr columns is the perfect Sr class (classification limit).
- Two V_S2 motifs (`L3-f384…`, `L3-4138…`) export as V_Mo: their stored prototype holds a
  Mo site without a column and three Mo columns rotated ~15° about an S2 column, i.e. the
  prototype's geometry disagrees with the majority of its instances.
- Bond lengths of perfect-lattice cells are those of the reference by construction (the cell
  is the registered reference); the image's own lattice agrees with the reference's to the
  projected-spacing figure above.
"""

REPORT_FIELDS = re.compile(r"formula \S+, \d+ atoms, min distance [\d.]+ Å .*cell [\d. ]+Å .*"
                           r"(registration rms [\d.]+ Å|no registration).* reference \S+ \(.+\)")


def cli_exports(catalog, specs, tmp):
    """``motifcat export --persistent --material M --format F`` for every material and format;
    every file read back and checked."""
    import ase.db
    import ase.io
    from typer.testing import CliRunner

    from motifcat.cli import app

    runner = CliRunner()
    out = []
    for s in specs:
        mat = s["material"]
        own = material_elements(mat)
        for fmt in FORMATS:
            folder = Path(tmp) / f"cli-{mat}-{fmt}"
            args = ["export", "--persistent", "--material", mat, "--format", fmt,
                    "--out-dir", str(folder), "--min-images", "1", "--min-instances", "3",
                    "--catalog", catalog]
            if s["thickness"]:
                args += ["--thickness", str(s["thickness"])]
            t0 = time.perf_counter()
            res = runner.invoke(app, args)
            dt = time.perf_counter() - t0
            files = sorted(p for p in folder.glob("*") if p.name != "exports-report.txt")
            report = (folder / "exports-report.txt")
            lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
            written = [ln for ln in lines if not ln.startswith("REFUSED")]
            refused = [ln for ln in lines if ln.startswith("REFUSED")]
            n_ok_lines = sum(bool(REPORT_FIELDS.search(ln)) for ln in written)
            overlaps = foreign = n_read = 0
            for f in files:
                frames = ([r.toatoms() for r in ase.db.connect(f).select()] if fmt == "db"
                          else [ase.io.read(f, format={"poscar": "vasp"}.get(fmt, fmt))])
                for a in frames:
                    n_read += 1
                    overlaps += bool(check_overlaps(a))
                    foreign += bool(set(a.get_chemical_symbols()) - own)
            out.append(dict(material=mat, format=fmt, exit=res.exit_code, files=len(files),
                            read=n_read, lines=len(written), lines_ok=n_ok_lines,
                            refused=len(refused), overlaps=overlaps, foreign=foreign, s=dt))
    return out


def main(argv=None) -> int:
    specs = set_specs()
    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="motifcat-export-bench-")
    catalog = os.path.join(tmp, "catalog")
    refs = {}
    with open_catalog(catalog, read_only=False) as store:
        for s in specs:
            z = s["npz"]
            px = float(z["pixel_size_A"])
            analysis = analyze(micrograph_from_array(z["image"][0], pixel_size_A=px,
                                                     path=f"{s['name']}.npz"))
            write_analysis(store, analysis, sample=f"{s['name']}-multislice",
                           material=s["material"])
            ref = load_reference(s["reference"], zone="001")
            store_reference(store, s["material"], reference_to_json(ref), ref.source,
                            ref.provenance)
            refs[s["material"]] = ref
        t_ingest = time.perf_counter() - t0
        images = list_images(store)
        image_ids = {s["material"]: images.loc[images["sample"] == f"{s['name']}-multislice",
                                               "image_id"].iloc[0] for s in specs}
        t1 = time.perf_counter()
        rows = api_exports(store, specs, refs, image_ids)
        t_export = time.perf_counter() - t1
    t2 = time.perf_counter()
    cli = cli_exports(catalog, specs, tmp)
    t_cli = time.perf_counter() - t2
    report = _report(rows, cli, specs, t_ingest, t_export, t_cli)
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report, encoding="utf-8")
    return 0


def _report(rows, cli, specs, t_ingest, t_export, t_cli) -> str:
    written = [r for r in rows if r["status"] == "written"]
    refused = [r for r in rows if r["status"] != "written"]
    cells = [r for r in written if r["model"].startswith("periodic")]
    perfect_truth = [r for r in written if r["truth"] == {}]
    defect_truth = [r for r in rows if r["truth"]]
    alien_truth = [r for r in defect_truth
                   if set(r["truth"]) - material_elements(r["material"])]
    own_truth = [r for r in defect_truth if r not in alien_truth]
    lines = [
        "# Export benchmark", "",
        "Command: `python bench/export.py`. Data: "
        + "; ".join(f"`bench/data/{s['name']}.npz` ({s['meta']['material']}), dose-1 image, "
                    f"reference `{s['reference']}`"
                    + (f", thickness {s['thickness']:.2f} Å" if s["thickness"] else "")
                    for s in specs)
        + ". Both analysed with `motifcat.analyze` defaults into ONE catalog. "
        f"Ingest {t_ingest:.1f} s; {len(rows)} API exports in {t_export:.1f} s; "
        f"CLI exports in {t_cli:.1f} s.", "",
        "## Targets (API, every persistent motif: min 1 image, 3 instances)", "",
        "| target | measured |", "|---|---|",
        f"| exports written / refused | {len(written)} / {len(refused)} |",
        f"| perfect-lattice cells: formula = reference's | "
        f"{sum(r['formula_ok'] for r in cells)} / {len(cells)} |",
        f"| perfect-lattice cells: max bond deviation from the reference | "
        f"{max((r['bond_dev'] for r in cells), default=float('nan')) * 100:.2f} % |",
        f"| perfect-lattice cells: the image's shortest projected column spacing vs the "
        f"reference's (max deviation) | "
        f"{max((r['proj_dev'] for r in cells if 'proj_dev' in r), default=float('nan')) * 100:.2f}"
        f" % over {sum('proj_dev' in r for r in cells)} motifs |",
        f"| motifs perfect by ground truth exported as the perfect cell | "
        f"{sum(r['delta'] == {} for r in perfect_truth)} / {len(perfect_truth)} |",
        f"| defect motifs (by ground truth): formula change right | "
        f"{sum(r.get('delta') == r['truth'] for r in defect_truth)} / {len(defect_truth)} |",
        f"| … of them, true change within the material's elements | "
        f"{sum(r.get('delta') == r['truth'] for r in own_truth)} / {len(own_truth)} |",
        f"| … of them, true change needs an element the material lacks (Se in MoS2, La in "
        f"SrTiO3; classes merged with a look-alike) | "
        f"{sum(r.get('delta') == r['truth'] for r in alien_truth)} / {len(alien_truth)} |",
        f"| exports with overlapping atoms (0.75 × sum of covalent radii) | "
        f"{sum(r['overlaps'] > 0 for r in written)} |",
        f"| exports with species outside their material | "
        f"{sum(bool(r['foreign']) for r in written)} |",
        f"| registration: max rms / max abs(scale-1) | "
        f"{max((r['rms'] for r in written), default=float('nan')):.3f} Å / "
        f"{max((abs(r['scale'] - 1) for r in written), default=float('nan')) * 100:.2f} % |",
        "",
    ]
    for mat in sorted({r["material"] for r in rows}):
        dt = [r for r in defect_truth if r["material"] == mat]
        lines.append(f"- {mat}: defect motifs right {sum(r.get('delta') == r['truth'] for r in dt)}"
                     f" / {len(dt)}; perfect-lattice cells "
                     f"{sum(r['material'] == mat for r in cells)}.")
    lines += ["", "## Level-1 classes against the true column types", "",
              "| class | material | true types of its columns | exported column content |",
              "|---|---|---|---|"]
    for r in rows:
        if r["level"] == 1:
            sp = ", ".join(f"{k}={v}" for k, v in r.get("species", {}).items()) or r.get("why",
                                                                                      "")
            lines.append(f"| {r['motif']} | {r['material']} | "
                         f"{', '.join(f'{k} {v}' for k, v in r['classes'].most_common())} | "
                         f"{sp} |")
    lines += [
        "", "## CLI: `motifcat export --persistent --material M --format F` (files read back)", "",
        "| material | format | exit | files | read back | report lines (fields ok) | refused "
        "| with overlaps | with foreign species | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cli:
        lines.append(f"| {c['material']} | {c['format']} | {c['exit']} | {c['files']} | "
                     f"{c['read']} | {c['lines']} ({c['lines_ok']}) | {c['refused']} | "
                     f"{c['overlaps']} | {c['foreign']} | {c['s']:.1f} |")
    lines += ["", "## Refused exports", ""]
    for r in refused:
        lines.append(f"- {r['motif']} ({r['material']}): {r['why']}")
    if not refused:
        lines.append("- none")
    lines += ["", "## Notes", "", NOTES]
    lines += [
        "", "## Every export", "",
        "| motif | material | status | model | formula | change | true change (share of "
        "instances) | rms Å | scale |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tr = f"{fmt_delta(r['truth'])} ({r['share'] * 100:.0f} %)"
        if r["status"] == "written":
            lines.append(f"| {r['motif']} | {r['material']} | written | {r['model']} | "
                         f"{r['formula']} | {fmt_delta(r['delta'])} | {tr} | {r['rms']:.3f} | "
                         f"{r['scale']:.3f} |")
        else:
            lines.append(f"| {r['motif']} | {r['material']} | refused | | | | {tr} | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
