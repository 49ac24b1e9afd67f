"""Benchmark of the embedded catalog (Ladybug): write throughput, re-ingest, size on disk, and
the measurement behind the level-1 vocabulary threshold.

Run ``python bench/catalog.py`` (``--quick`` for a small trial). Prints its tables and writes
``bench/results/catalog.md``.

Write throughput: one synthetic TMD specimen large enough to give >= 100,000 instances over the
three levels, its columns classified by their true type (so no image analysis is timed: the
hierarchy is built by ``build_hierarchy`` on the true positions, exactly as ``analyze`` would),
written with ``write_analysis`` into a fresh catalog; rows = nodes + relationships created.
A second specimen is then written into the now non-empty catalog, and the first one again
(re-ingest: recognised by its id, nothing written).

Threshold: for TMD and Cairo specimens, the distance between the descriptor of one class and the
class of another analysis (other noise draw / lower dose) holding mostly the same columns, against
the distance between two classes of one analysis whose columns are of different true types.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # GMM fits: one BLAS thread is much faster here

import numpy as np  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motifcat.catalog.store import open_catalog  # noqa: E402
from motifcat.catalog.vocabulary import DEFAULT_THRESHOLD, descriptor_distances  # noqa: E402
from motifcat.catalog.writer import write_analysis  # noqa: E402
from motifcat.datasets import make_cairo, make_tmd  # noqa: E402
from motifcat.ingest.hierarchy import build_hierarchy  # noqa: E402
from motifcat.ingest.model import (  # noqa: E402
    Analysis,
    AnalysisParams,
    Columns,
    Lattice,
    MotifClass,
)
from motifcat.ingest.pipeline import analyze  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "catalog.md"
TARGET_ROWS_PER_S = 100_000


def truth_analysis(side: int, seed: int) -> Analysis:
    """An Analysis of a synthetic TMD image whose level-1 classes are the true column types."""
    syn = make_tmd((side, side), seed=seed, pixel_size_A=0.3, noise=False)
    mg = syn.micrograph(path=f"bench-tmd-{side}-{seed}")
    xy = syn.xy
    labels = np.asarray(syn.column_class, dtype=np.int64)
    spacing = 3.288 / np.sqrt(3) / 0.3
    # Columns within a patch radius of the border get label -1, as in analyze.
    r = spacing * 1.8
    inside = (xy[:, 0] > r) & (xy[:, 1] > r) & (xy[:, 0] < side - r) & (xy[:, 1] < side - r)
    labels = np.where(inside, labels, -1)
    n_cls = int(labels.max()) + 1
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(n_cls, 36))
    classes = [
        MotifClass(
            1,
            k,
            f"L1:{k}",
            int((labels == k).sum()),
            descriptor=basis[k],
            mean_image=rng.random((21, 21)),
        )
        for k in range(n_cls)
    ]
    h = build_hierarchy(xy, labels, spacing_px=spacing)
    return Analysis(
        micrograph=mg,
        params=AnalysisParams(pixel_size_A=0.3),
        lattice=Lattice(2 * spacing, spacing),
        columns=Columns(xy, np.ones(len(xy))),
        has_patch=inside,
        features=np.zeros((int(inside.sum()), 36)),
        moments=None,
        labels=labels,
        classes=classes,
        hierarchy=h,
        software="motifcat bench",
    )


def n_instances(a: Analysis) -> int:
    return int((a.labels >= 0).sum()) + sum(len(lev) for lev in a.hierarchy.levels)


def bench_write(side: int) -> list[tuple[str, str]]:
    t = time.perf_counter()
    first, second = truth_analysis(side, 1), truth_analysis(side, 2)
    prep = time.perf_counter() - t
    rows = [
        (
            "image",
            f"{side}x{side} px synthetic MoSe2, true classes, hierarchy built "
            f"({prep:.1f} s for both)",
        )
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_catalog(Path(tmp) / "cat")
        tx_seconds = []
        real_write = store.write

        def timed_write(ops):  # the transaction alone (the rest: vocabulary, relabel, frames)
            t0 = time.perf_counter()
            real_write(ops)
            tx_seconds.append(time.perf_counter() - t0)

        store.write = timed_write
        try:
            r1 = write_analysis(store, first, sample="bench-1", material="MoSe2")
            size1 = store.size_bytes()
            r2 = write_analysis(store, second, sample="bench-2", material="MoSe2")
            r3 = write_analysis(store, first, sample="bench-1", material="MoSe2")
            size2 = store.size_bytes()
        finally:
            store.close()
    for tag, a, r, tx in (
        ("1st image, empty catalog", first, r1, tx_seconds[0]),
        ("2nd image, non-empty catalog", second, r2, tx_seconds[1]),
    ):
        rate = r.rows_per_second
        ok = "meets" if rate >= TARGET_ROWS_PER_S else "BELOW"
        rows += [
            (f"{tag}: instances", f"{n_instances(a):,}"),
            (f"{tag}: rows (nodes + rels)", f"{r.n_nodes:,} + {r.n_rels:,}"),
            (
                f"{tag}: write time",
                f"{r.seconds:.2f} s, of which the transaction {tx:.2f} s "
                f"({(r.n_nodes + r.n_rels) / tx:,.0f} rows/s)",
            ),
            (f"{tag}: throughput", f"{rate:,.0f} rows/s ({ok} target {TARGET_ROWS_PER_S:,})"),
        ]
    rows += [
        ("re-ingest of image 1", f"{r3.seconds * 1000:.1f} ms, written={r3.written}"),
        ("catalog size after image 1", f"{size1 / 1e6:.1f} MB"),
        (
            "catalog size after 2 images",
            f"{size2 / 1e6:.1f} MB "
            f"({size2 / (r1.n_nodes + r1.n_rels + r2.n_nodes + r2.n_rels):.0f} B/row)",
        ),
    ]
    return rows


def _same_pairs(a, b, min_jaccard=0.5):
    j = cKDTree(b.columns.xy).query(a.columns.xy, distance_upper_bound=2.0)[1]
    ok = (j < len(b.columns)) & (a.labels >= 0)
    la, lb = a.labels[ok], b.labels[j[ok]]
    la, lb = la[lb >= 0], lb[lb >= 0]
    both = np.zeros((len(a.classes), len(b.classes)))
    np.add.at(both, (la, lb), 1)
    sa = np.bincount(a.labels[a.labels >= 0], minlength=len(a.classes))[:, None]
    sb = np.bincount(b.labels[b.labels >= 0], minlength=len(b.classes))[None, :]
    return np.argwhere(both / (sa + sb - both) >= min_jaccard)


def bench_threshold(seeds, doses, side) -> list[tuple[str, str]]:
    params = AnalysisParams(hierarchy=False)
    desc = lambda a: np.array([c.descriptor for c in a.classes])  # noqa: E731
    same = {d: [] for d in doses}
    different = []
    for gen in (make_tmd, make_cairo):
        for seed in seeds:
            syn = gen((side, side), seed=seed)
            ref = analyze(syn.micrograph(), params)
            truth = syn.column_class[cKDTree(syn.xy).query(ref.columns.xy)[1]]
            major = np.array(
                [np.bincount(truth[ref.labels == k]).argmax() for k in range(len(ref.classes))]
            )
            dd = descriptor_distances(desc(ref), desc(ref))
            iu = np.triu_indices(len(major), 1)
            different += dd[iu][major[iu[0]] != major[iu[1]]].tolist()
            for k, dose in enumerate(doses):
                b = analyze(syn.at_dose(dose, seed=1000 + k).micrograph(), params)
                p = _same_pairs(ref, b)
                same[dose] += descriptor_distances(desc(ref), desc(b))[p[:, 0], p[:, 1]].tolist()
    fmt = lambda v: (  # noqa: E731
        (
            f"n={len(v)}, median {np.median(v):.3f}, p95 {np.percentile(v, 95):.3f}, "  # noqa: E731
            f"max {np.max(v):.3f}"
        )
        if v
        else "n=0"
    )
    rows = [(f"same class, dose {d:g} (other noise draw)", fmt(same[d])) for d in doses]
    rows.append(
        (
            "different true column types, one image",
            f"n={len(different)}, min {np.min(different):.3f}, "
            f"p5 {np.percentile(different, 5):.3f}, median {np.median(different):.3f}",
        )
    )
    rows.append(("DEFAULT_THRESHOLD", f"{DEFAULT_THRESHOLD}"))
    return rows


def table(title: str, rows) -> str:
    w = max(len(k) for k, _ in rows)
    lines = [f"### {title}", "", f"| {'quantity'.ljust(w)} | value |", f"|{'-' * (w + 2)}|-------|"]
    lines += [f"| {k.ljust(w)} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small trial (not the reported figures)")
    args = ap.parse_args(argv)
    if args.quick:
        side, seeds, doses, tside = 900, (11,), (1.0, 0.1), 256
    else:
        side, seeds, doses, tside = 1500, (11, 12, 13, 14), (1.0, 0.5, 0.2, 0.1, 0.05, 0.02), 384
    import ladybug

    out = [
        "# Catalog benchmark (embedded Ladybug)",
        "",
        f"ladybug {ladybug.__version__}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M')}" + (" — QUICK TRIAL" if args.quick else ""),
        "",
        table("Write throughput", bench_write(side)),
        table(
            f"Level-1 descriptor distances ({tside} px, seeds {list(seeds)})",
            bench_threshold(seeds, doses, tside),
        ),
    ]
    text = "\n".join(out)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
