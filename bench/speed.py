"""Speed and memory of ``analyze``, and of the Zernike moments against a bare matmul.

* ``analyze`` throughput (columns/s) on synthetic MoSe2-like images of 512², 1024², 2048² and
  4096² px, each size in a fresh subprocess so that its peak resident memory (ru_maxrss) is its
  own. Target: >= 20,000 columns/s on 2048² on this 2-core machine; memory linear in the image.
* Zernike moments for P patches against a NumPy matmul of the same shape. Target: within 2x.
* Column detection accuracy at full dose: recall and precision against the generator's
  columns (target >= 0.99) and the position RMSE in pixels.

Run: ``.venv/bin/python bench/speed.py [--sizes 512 1024 2048 4096]``; prints a table, writes
bench/results/speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def one_size(size: int, hierarchy: bool) -> dict:
    """Runs inside a fresh process: synthesize, analyze, measure."""
    from scipy.spatial import cKDTree

    from motifcat.datasets import make_tmd
    from motifcat.ingest.model import AnalysisParams
    from motifcat.ingest.pipeline import analyze

    syn = make_tmd((size, size), seed=size)
    mg = syn.micrograph()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stages: dict[str, float] = {}
    last = [time.perf_counter(), "lattice"]

    def progress(stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if stage != last[1]:
            stages[last[1]] = stages.get(last[1], 0.0) + now - last[0]
            last[0], last[1] = now, stage

    t0 = time.perf_counter()
    res = analyze(mg, AnalysisParams(hierarchy=hierarchy), progress=progress)
    first = time.perf_counter() - t0
    # The steady state of an ingest: the Zernike basis cache and the thread pools are warm.
    stages.clear()
    last[:] = [time.perf_counter(), "lattice"]
    t0 = time.perf_counter()
    res = analyze(mg, AnalysisParams(hierarchy=hierarchy), progress=progress)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nn = float(syn.truth["nn_distance_px"])
    d, idx = cKDTree(syn.xy).query(res.columns.xy)
    ok = d < nn / 3

    def inside(xy: np.ndarray, margin: float = 2.0) -> np.ndarray:
        # Columns centred on the outermost pixels cannot be told from the flank of a column
        # just outside the frame; both sides are scored >= 2 px inside.
        return np.all((xy >= margin) & (xy <= np.array(syn.shape[::-1]) - 1 - margin), axis=1)

    recall = float(np.isin(np.flatnonzero(inside(syn.xy)), idx[ok]).mean())
    precision = float(ok[inside(res.columns.xy)].mean())
    rmse = float(np.sqrt(np.mean(d[ok] ** 2)))
    return {
        "size": size,
        "hierarchy": hierarchy,
        "columns": len(res.columns),
        "seconds": dt,
        "first_seconds": first,
        "columns_per_s": len(res.columns) / dt,
        "peak_rss_MB": peak / 1024,
        "analysis_rss_MB": (peak - base) / 1024,
        "image_MB": mg.data.nbytes / 2**20,
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "recall": recall,
        "precision": precision,
        "rmse_px": rmse,
        "classes": len(res.classes),
    }


def zernike_vs_matmul(n_patches: int = 20000, size: int = 39, repeats: int = 5) -> dict:
    from motifcat.ingest.zernike import zernike_basis, zernike_moments

    rng = np.random.default_rng(0)
    patches = rng.random((n_patches, size, size), dtype=np.float32)
    basis = np.asarray(zernike_basis(size, 10), dtype=np.float32)
    flat = patches.reshape(n_patches, -1)
    zernike_moments(patches[:10], n_max=10)  # warm the basis cache

    def best(fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    t_z = best(lambda: zernike_moments(patches, n_max=10))
    t_m = best(lambda: flat @ basis.T)
    return {
        "patches": n_patches,
        "size": size,
        "zernike_s": t_z,
        "matmul_s": t_m,
        "ratio": t_z / t_m,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--hierarchy", action="store_true", help="include levels 2/3 in analyze")
    ap.add_argument("--level1-only", action="store_true",
                    help="only the runs without levels 2/3 (the column stage's throughput)")
    ap.add_argument("--no-zernike", action="store_true", help="skip the Zernike comparison")
    ap.add_argument("--out", default=str(RESULTS / "speed.md"))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.hierarchy)))
        return
    rows = []
    for size in args.sizes:
        for hierarchy in (False,) if args.level1_only else (False, True):
            cmd = [sys.executable, __file__, "--one", str(size)]
            if hierarchy:
                cmd.append("--hierarchy")
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{size}² px hierarchy={hierarchy}: {row['columns']} columns in "
                f"{row['seconds']:.2f} s = {row['columns_per_s']:.0f} columns/s, peak RSS "
                f"{row['peak_rss_MB']:.0f} MB; stages {row['stages']}",
                flush=True,
            )
    z = [] if args.no_zernike else [zernike_vs_matmul(20000, s) for s in (33, 65)]
    lines = [
        "| image | hierarchy | columns | first run (s) | warm run (s) | columns/s (warm) |"
        " peak RSS (MB) | recall | precision | RMSE (px) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']}² | {'yes' if r['hierarchy'] else 'no'} | {r['columns']} | "
            f"{r['first_seconds']:.2f} | {r['seconds']:.2f} | {r['columns_per_s']:.0f} | "
            f"{r['peak_rss_MB']:.0f} | "
            f"{r['recall']:.4f} | {r['precision']:.4f} | {r['rmse_px']:.3f} |"
        )
    lines += [
        "",
        "| Zernike moments | patches | patch size | Zernike (s) | matmul (s) | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in z:
        lines.append(
            f"| n_max=10 | {r['patches']} | {r['size']} | {r['zernike_s']:.4f} | "
            f"{r['matmul_s']:.4f} | {r['ratio']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    stage_lines = "\n".join(
        f"- {r['size']}² hierarchy={r['hierarchy']}: {r['stages']}" for r in rows
    )
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        "# Speed and memory (bench/speed.py)\n\nSynthetic MoSe2-like images (full dose), "
        "each size in a fresh process; peak RSS includes the interpreter and the libraries "
        f"(~{rows[0]['peak_rss_MB'] - rows[0]['image_MB']:.0f} MB at the smallest size).\n\n"
        f"{table}\n\nSeconds per stage:\n{stage_lines}\n"
        f"\nLoad average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(shared machine: other jobs were running).\n"
    )


if __name__ == "__main__":
    main()
