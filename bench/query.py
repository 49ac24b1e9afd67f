"""Query latency on a large embedded catalog: 100 samples, >= 1,000,000 instances.

The catalog is synthetic (rows, not images): the full pipeline would take hours for a million
columns, and what is measured here is the graph, not the analysis. It has the shape of a real
one, written through the same bulk path as the writer (``BulkNodes``/``BulkRels`` through
``store.write``, one transaction per batch of images):

* 5 materials × 20 samples × 2 images = 200 images of 5,000 columns each on a jittered square
  grid (1,000,000 level-1 instances), ``NEAR`` to the right and lower grid neighbour;
* one level-2 unit per other 2 × 2 block of the grid (4 columns ``PART_OF`` it; 250,000 units),
  one level-3 composite per 50 units;
* a vocabulary of 30 level-1 motifs (36-number descriptors), 40 level-2 and 20 level-3 motifs;
  each material uses a subset, with Zipf-like frequencies, so that some motifs recur across
  materials and others do not; ``CONTAINS {count}`` and ``COMPOSED_OF {count}`` as the writer
  keeps them.

Each canned query then runs ``--runs`` times after one warm-up; the table gives the median and
the slowest run (ms). Target (issue 5): ``recurring_motifs`` and ``composition`` under 50 ms.

Run: ``.venv/bin/python bench/query.py [--images-per-sample 2] [--columns 5000] [--runs 7]``;
prints a table and writes bench/results/query.md. ``--quick`` builds a 10x smaller catalog.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from motifcat.catalog.embedded import LadybugStore
from motifcat.catalog.store import BulkNodes, BulkRels
from motifcat.query import (
    composition,
    composition_edges,
    image_instances,
    image_units,
    list_images,
    list_materials,
    list_samples,
    motif_detail,
    persistent_motifs,
    recurring_motifs,
    run_readonly,
    sample_summary,
    similar_motifs,
    spatial_context,
    vocabulary,
)

RESULTS = Path(__file__).parent / "results"
MATERIALS = ["MoSe2", "MoS2", "WS2", "WSe2", "graphene"]
N_L1, N_L2, N_L3 = 30, 40, 20
UNITS_PER_COMPOSITE = 50


def _ids(prefix: str, index: np.ndarray) -> np.ndarray:
    return np.char.add(prefix, index.astype(str)).astype(object)


def _motif_ids(level: int, n: int) -> np.ndarray:
    return np.array([f"L{level}-{k + 1:04d}" for k in range(n)], dtype=object)


def _zipf_choice(rng, options: np.ndarray, size: int) -> np.ndarray:
    p = 1.0 / np.arange(1, len(options) + 1) ** 1.2
    return rng.choice(options, size=size, p=p / p.sum())


def vocabulary_ops(rng) -> tuple[list, dict[str, dict[int, np.ndarray]]]:
    """Material/Sample-independent nodes: motifs and their COMPOSED_OF edges."""
    l1, l2, l3 = _motif_ids(1, N_L1), _motif_ids(2, N_L2), _motif_ids(3, N_L3)
    desc = rng.normal(size=(N_L1, 36))
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    motifs = pd.DataFrame(
        {
            "id": np.concatenate([l1, l2, l3]),
            "level": np.repeat([1, 2, 3], [N_L1, N_L2, N_L3]),
            "key": np.concatenate([np.full(N_L1, "L1:zernike-n10", object),
                                   _ids("unit-", np.arange(N_L2)), _ids("comp-", np.arange(N_L3))]),
            "descriptor": [list(d) for d in desc] + [[] for _ in range(N_L2 + N_L3)],
            "n_instances": 0,
            "prototype": "",
            "mean_image": "",
        }
    )
    comp = []
    for k, m in enumerate(l2):
        parts = rng.choice(l1, size=2, replace=False)
        comp += [(m, parts[0], 2 + k % 3), (m, parts[1], 2)]
    for m in l3:
        for p in rng.choice(l2, size=3, replace=False):
            comp.append((m, p, int(rng.integers(1, 4))))
    composed = pd.DataFrame(comp, columns=["src", "dst", "count"])
    # Which motifs each material uses: overlapping subsets, so some recur and some do not.
    per_material = {}
    for j, mat in enumerate(MATERIALS):
        per_material[mat] = {
            1: np.roll(l1, -4 * j)[:14],
            2: np.roll(l2, -6 * j)[:16],
            3: np.roll(l3, -3 * j)[:8],
        }
    return [BulkNodes("Motif", motifs), BulkRels("COMPOSED_OF", "Motif", "Motif", composed)], \
        per_material


def image_ops(rng, img: str, sample: str, uses: dict[int, np.ndarray], n_cols: int,
              when: str) -> tuple[list, int]:
    """Everything of one synthetic image, as bulk operations; returns them and #instances."""
    side = int(np.ceil(np.sqrt(n_cols)))
    k = np.arange(n_cols)
    gx, gy = k % side, k // side
    xy = np.column_stack([gx, gy]) * 3.3 + rng.normal(0, 0.1, (n_cols, 2))
    cid = _ids(f"{img}-1-", k)
    m1 = _zipf_choice(rng, uses[1], n_cols)
    # NEAR: right and lower grid neighbours
    right = k[(gx < side - 1) & (k + 1 < n_cols)]
    down = k[k + side < n_cols]
    a = np.concatenate([right, down])
    b = np.concatenate([right + 1, down + side])
    near = pd.DataFrame({"src": cid[a], "dst": cid[b],
                         "d_A": np.linalg.norm(xy[a] - xy[b], axis=1)})
    # level 2: every other 2x2 block
    blocks = k[(gx % 4 == 0) & (gy % 2 == 0) & (gx < side - 1) & (k + side + 1 < n_cols)]
    n2 = len(blocks)
    uid = _ids(f"{img}-2-", np.arange(n2))
    m2 = _zipf_choice(rng, uses[2], n2)
    corners = np.stack([blocks, blocks + 1, blocks + side, blocks + side + 1], axis=1)
    part2 = pd.DataFrame({"src": cid[corners.ravel()], "dst": np.repeat(uid, 4)})
    centre2 = xy[corners].mean(axis=1)
    # level 3: groups of consecutive units
    n3 = n2 // UNITS_PER_COMPOSITE
    tid = _ids(f"{img}-3-", np.arange(n3))
    m3 = _zipf_choice(rng, uses[3], n3)
    member = np.arange(n3 * UNITS_PER_COMPOSITE)
    part3 = pd.DataFrame({"src": uid[member], "dst": np.repeat(tid, UNITS_PER_COMPOSITE)})
    centre3 = centre2[member].reshape(n3, UNITS_PER_COMPOSITE, 2).mean(axis=1)

    inst = pd.DataFrame(
        {
            "id": np.concatenate([cid, uid, tid]),
            "x_A": np.concatenate([xy[:, 0], centre2[:, 0], centre3[:, 0]]),
            "y_A": np.concatenate([xy[:, 1], centre2[:, 1], centre3[:, 1]]),
            "level": np.repeat([1, 2, 3], [n_cols, n2, n3]),
        }
    )
    motif_of = np.concatenate([m1, m2, m3])
    ids, counts = np.unique(motif_of, return_counts=True)
    image = pd.DataFrame(
        {"id": [img], "path": [f"/data/{img}.tif"], "pixel_size_A": [0.15], "width": [2048],
         "height": [2048], "n_columns": [n_cols], "params": ["{}"], "metadata": ["{}"],
         "software": ["bench"], "ingested_at": [when]}
    )
    ops = [
        BulkNodes("Image", image),
        BulkNodes("Instance", inst),
        BulkRels("OF_SAMPLE", "Image", "Sample", pd.DataFrame({"src": [img], "dst": [sample]})),
        BulkRels("IN_IMAGE", "Instance", "Image",
                 pd.DataFrame({"src": inst["id"], "dst": img})),
        BulkRels("INSTANCE_OF", "Instance", "Motif",
                 pd.DataFrame({"src": inst["id"], "dst": motif_of})),
        BulkRels("NEAR", "Instance", "Instance", near),
        BulkRels("PART_OF", "Instance", "Instance", pd.concat([part2, part3], ignore_index=True)),
        BulkRels("CONTAINS", "Image", "Motif",
                 pd.DataFrame({"src": img, "dst": ids, "count": counts})),
    ]
    return ops, len(inst), dict(zip(ids, counts, strict=True))


def build(path: Path, n_samples: int, images_per_sample: int, n_cols: int, seed: int = 0
          ) -> tuple[LadybugStore, dict]:
    rng = np.random.default_rng(seed)
    store = LadybugStore(path)
    t0 = time.perf_counter()
    vocab_ops, uses = vocabulary_ops(rng)
    samples = [f"S{k:03d}" for k in range(n_samples)]
    material_of = [MATERIALS[k % len(MATERIALS)] for k in range(n_samples)]
    store.write(
        [
            BulkNodes("Material", pd.DataFrame({"name": MATERIALS})),
            BulkNodes("Sample", pd.DataFrame({"id": samples, "name": samples})),
            BulkRels("OF_MATERIAL", "Sample", "Material",
                     pd.DataFrame({"src": samples, "dst": material_of})),
            *vocab_ops,
        ]
    )
    n_inst = 0
    totals: dict[str, int] = {}
    batch: list = []
    n_img = 0
    for s, mat in zip(samples, material_of, strict=True):
        for j in range(images_per_sample):
            img = f"{s}-img{j}"
            when = f"2025-01-01T00:{n_img // 60:02d}:{n_img % 60:02d}Z"
            ops, n, counts = image_ops(rng, img, s, uses[mat], n_cols, when)
            batch += ops
            n_inst += n
            n_img += 1
            for mid, c in counts.items():
                totals[mid] = totals.get(mid, 0) + int(c)
        if len(batch) >= 8 * 10:  # ~10 images per transaction
            store.write(batch)
            batch = []
    if batch:
        store.write(batch)
    # Motif.n_instances as the writer keeps it
    from motifcat.catalog.store import Statement

    store.write([Statement(
        "UNWIND $rows AS r MATCH (m:Motif {id: r.id}) SET m.n_instances = r.n",
        {"rows": [{"id": k, "n": v} for k, v in totals.items()]},
    )])
    info = {
        "samples": n_samples, "images": n_img, "instances": n_inst,
        "build_s": time.perf_counter() - t0, "size_MB": store.size_bytes() / 1e6,
    }
    return store, info


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm-up (plans, caches)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--images-per-sample", type=int, default=2)
    ap.add_argument("--columns", type=int, default=5000, help="level-1 instances per image")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="10x fewer columns (a trial run)")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results")
    ap.add_argument("--catalog", type=Path, default=None,
                    help="keep the catalog in this file and reuse it if it exists")
    args = ap.parse_args()
    n_cols = args.columns // 10 if args.quick else args.columns

    with tempfile.TemporaryDirectory() as tmp:
        path = args.catalog or Path(tmp) / "bench.lbug"
        if path.exists():
            store = LadybugStore(path, read_only=True)
            n = store.read("MATCH (i:Instance) RETURN count(*) AS n")[0]["n"]
            info = {"samples": len(list_samples(store)), "images": len(list_images(store)),
                    "instances": n, "build_s": float("nan"), "size_MB": store.size_bytes() / 1e6}
        else:
            store, info = build(path, args.samples, args.images_per_sample, n_cols)
        print(f"catalog: {info['samples']} samples, {info['images']} images, "
              f"{info['instances']:,} instances, built in {info['build_s']:.1f} s, "
              f"{info['size_MB']:.0f} MB")
        img = list_images(store)["image_id"].iloc[0]
        common_l1 = "L1-0001"
        rare_l1 = vocabulary(store, level=1).sort_values("n_instances")["motif_id"].iloc[0]
        l2 = recurring_motifs(store, min_materials=1, level=2)["motif_id"].iloc[0]
        l3 = recurring_motifs(store, min_materials=1, level=3)["motif_id"].iloc[0]
        cases: list[tuple[str, Callable[[], object], float | None]] = [
            ("recurring_motifs()", lambda: recurring_motifs(store), 50.0),
            ("recurring_motifs(level=2)", lambda: recurring_motifs(store, level=2), 50.0),
            (f"composition({l2})", lambda: composition(store, l2), 50.0),
            (f"composition({l3})", lambda: composition(store, l3), 50.0),
            ("persistent_motifs()", lambda: persistent_motifs(store), None),
            ("list_materials()", lambda: list_materials(store), None),
            ("list_samples()", lambda: list_samples(store), None),
            ("list_images()", lambda: list_images(store), None),
            ("sample_summary(S000)", lambda: sample_summary(store, "S000"), None),
            ("vocabulary()", lambda: vocabulary(store), None),
            ("composition_edges()", lambda: composition_edges(store), None),
            (f"motif_detail({common_l1})", lambda: motif_detail(store, common_l1), None),
            (f"similar_motifs({common_l1})", lambda: similar_motifs(store, common_l1), None),
            (f"spatial_context({rare_l1}) [rare L1]", lambda: spatial_context(store, rare_l1),
             None),
            (f"spatial_context({l3}) [L3]", lambda: spatial_context(store, l3), None),
            ("image_instances(img)", lambda: image_instances(store, img), None),
            ("image_units(img)", lambda: image_units(store, img), None),
            ("run_readonly(count motifs)",
             lambda: run_readonly(store, "MATCH (m:Motif) RETURN count(*) AS n"), None),
        ]
        if not args.quick:  # the most frequent level-1 motif: ~1/6 of a million instances
            cases.append((f"spatial_context({common_l1}) [common L1]",
                          lambda: spatial_context(store, common_l1), None))
        rows = []
        for name, fn, target in cases:
            med, worst = timed(fn, args.runs if "spatial_context" not in name else 3)
            ok = "" if target is None else ("yes" if med < target else "NO")
            rows.append((name, med, worst, "" if target is None else f"< {target:.0f}", ok))
            print(f"{name:<44} median {med:9.1f} ms   max {worst:9.1f} ms   {ok}")
        store.close()

    lines = [
        "# Query latency (bench/query.py)",
        "",
        f"Embedded Ladybug catalog: {info['samples']} samples, {info['images']} images, "
        f"{info['instances']:,} instances (all levels), {len(MATERIALS)} materials; "
        + (
            f"built through the bulk path in {info['build_s']:.0f} s, "
            if info["build_s"] == info["build_s"]  # NaN when an existing --catalog was reused
            else "reused from --catalog, "
        )
        + f"{info['size_MB']:.0f} MB on disk. "
        f"Median and slowest of {args.runs} runs after a warm-up (3 for spatial_context). "
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}.",
        "",
        "| query | median (ms) | max (ms) | target | met |",
        "| --- | ---: | ---: | --- | --- |",
        *[f"| `{n}` | {m:.1f} | {w:.1f} | {t} | {o} |" for n, m, w, t, o in rows],
        "",
        "Cross-sample questions (recurring, persistent, summaries) read only the `CONTAINS "
        "{count}` edges (images × motifs), so their cost does not grow with the number of "
        "instances. `spatial_context` and the per-image overlays visit the instances of one "
        "motif / one image.",
    ]
    if not args.no_write and not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "query.md").write_text("\n".join(lines) + "\n")
        print(f"wrote {RESULTS / 'query.md'}")


if __name__ == "__main__":
    main()
