"""Tiled against whole-image analysis of one large image (issue 15, huge single images).

The image is the MoS2 multislice set ``bench/data/tmd.npz`` (one periodic supercell, 506 x 532
px at 0.12 Å/px): its clean dose-1 image tiled periodically to ``--size`` squared and drawn
afresh as Poisson counts (seeded), so the large image is a real-looking scan with a known
lattice. Each analysis runs in its own process, which reports its wall time and peak RSS
(``ru_maxrss``); the whole-image analysis is skipped for sizes above ``--max-whole``.

Figures: column counts, the fraction of whole-image columns with a tiled column within
0.05 px, the largest position difference, the class agreement (fraction of matched columns
in the same class after the best label permutation, and the adjusted Rand index), time and
peak memory of both. The hierarchy is off (it runs on the driver on the columns and labels,
the same code in both paths). Results go to ``bench/results/tiles.md``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice .venv/bin/python bench/tiles.py --size 2048
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "tmd.npz"
OUT = ROOT / "bench" / "results" / "tiles.md"


def make_image(size: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """The tmd clean image tiled to ``size`` x ``size``, Poisson counts at dose 1 (float32)."""
    d = np.load(DATA)
    clean = d["clean"]
    reps = (-(-size // clean.shape[0]), -(-size // clean.shape[1]))
    rng = np.random.default_rng(seed)
    out = np.empty((size, size), dtype=np.float32)
    tiled = np.tile(clean, (1, reps[1]))[:, :size]
    for r0 in range(0, size, clean.shape[0]):  # row bands: no image-sized int64 draw
        r1 = min(size, r0 + clean.shape[0])
        out[r0:r1] = rng.poisson(tiled[: r1 - r0]).astype(np.float32)
    return out, float(d["pixel_size_A"])


def child(mode: str, size: int, tile_px: int, out: str, workers: int) -> None:
    """One analysis in this process; writes columns, labels, time and peak RSS to ``out``."""
    from motifcat.ingest import AnalysisParams, analyze, analyze_tiled, micrograph_from_array

    image, px = make_image(size)
    mg = micrograph_from_array(image, pixel_size_A=px)
    del image
    params = AnalysisParams(hierarchy=False)
    client = None
    grids = []
    # Count the column model's fits (each refit of settle and of the residual rounds), per
    # model_columns call (-1 marks a call): the whole image takes a refit whenever any of
    # its columns asks for one, a tile only when one of its own does.
    from motifcat.ingest.columns import detect as mdetect
    from motifcat.ingest.columns import fit as mfit

    fits: list[int] = []
    fit_gaussian_columns, model_columns = mfit.fit_gaussian_columns, mdetect.model_columns

    def counting_fit(image, xy, *a, **k):
        fits.append(len(xy))
        return fit_gaussian_columns(image, xy, *a, **k)

    def marking_model(*a, **k):
        fits.append(-1)
        return model_columns(*a, **k)

    mfit.fit_gaussian_columns = counting_fit
    mdetect.model_columns = marking_model
    if mode == "tiled":
        # Record the tile grids analyze_tiled makes (the last one: the column model's, whose
        # cores own the columns), so that the report can place the unmatched columns.
        from motifcat.ingest import tiles as mtiles

        make = mtiles.TileGrid.make

        def recording_make(*a, **k):
            grids.append(make(*a, **k))
            return grids[-1]

        mtiles.TileGrid.make = staticmethod(recording_make)
        mtiles.model_columns = marking_model
    if mode == "tiled" and workers > 0:
        from distributed import Client, LocalCluster

        # In-process workers (processes=False) all measure the one process's RSS against
        # their own share of the memory limit, which the driver's image-sized arrays alone
        # exceed at 16384² (10 GB): every worker pauses and the run stalls for good (seen in
        # the 16384² run). The bench measures peak RSS itself: no Dask memory limit.
        client = Client(LocalCluster(n_workers=workers, threads_per_worker=1,
                                     processes=False, dashboard_address=None,
                                     memory_limit=0))
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if mode == "whole":
        res = analyze(mg, params)
    else:
        res = analyze_tiled(mg, params, tile_px=tile_px, client=client)
    elapsed = time.perf_counter() - t0
    use = resource.getrusage(resource.RUSAGE_SELF)
    edges = {}
    if grids:
        g = grids[-1]
        edges = dict(x_edges=g.x_edges, y_edges=g.y_edges, halo=g.halo, halo_end=g.halo_end)
    np.savez(out, xy=res.columns.xy, labels=res.labels, time=elapsed, **edges,
             fits=np.array(fits, dtype=np.int64),
             rss_mb=use.ru_maxrss / 1024, before_mb=before_mb,
             cpu_s=use.ru_utime + use.ru_stime, n_classes=len(res.classes))


def run(mode: str, size: int, tile_px: int, workers: int, keep: str | None = None) -> dict:
    """One child run; with ``keep`` (a directory) its result is kept there as
    ``{mode}{size}_{tile_px}.npz`` and reused if already present (long runs, one at a time)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(keep or tmp, f"{mode}{size}_{tile_px if mode == 'tiled' else 0}.npz")
        if not (keep and os.path.exists(out)):
            env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
            subprocess.run(
                [sys.executable, __file__, "--child", mode, "--size", str(size),
                 "--tile-px", str(tile_px), "--out", out, "--workers", str(workers)],
                check=True, env=env,
            )
        r = np.load(out)
        return {k: r[k] for k in r.files}


def locate(xy: np.ndarray, tiled: dict, size: int) -> list[dict]:
    """Where columns lie relative to the tiled run's column-model grid: distance (px) to
    the nearest seam (an inner core edge), to the nearest tile corner (a crossing of two
    seams), to the image border, and whether the column is in a halo of a neighbouring
    tile (within ``halo`` before / ``halo_end`` after a seam)."""
    if "x_edges" not in tiled:
        return []
    xe, ye = tiled["x_edges"][1:-1], tiled["y_edges"][1:-1]
    out = []
    for x, y in np.asarray(xy, dtype=np.float64).reshape(-1, 2):
        dx = np.abs(x - xe).min() if len(xe) else np.inf
        dy = np.abs(y - ye).min() if len(ye) else np.inf
        corner = np.hypot(dx, dy) if len(xe) and len(ye) else np.inf
        out.append({
            "x": round(float(x), 2), "y": round(float(y), 2),
            "seam_px": round(float(min(dx, dy)), 1), "corner_px": round(float(corner), 1),
            "border_px": round(float(min(x, y, size - x, size - y)), 1),
        })
    return out


def agreement(whole: dict, tiled: dict, size: int | None = None) -> dict:
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial import cKDTree
    from sklearn.metrics import adjusted_rand_score

    d, j = cKDTree(tiled["xy"]).query(whole["xy"])
    d2, _ = cKDTree(whole["xy"]).query(tiled["xy"])
    same = d <= 0.05
    a, b = whole["labels"][same], tiled["labels"][j[same]]
    conf = np.zeros((a.max() + 1, b.max() + 1), dtype=np.int64)
    np.add.at(conf, (a, b), 1)
    ri, ci = linear_sum_assignment(-conf)
    # The unmatched columns (both ways) and where they are (seams, corners, border).
    size = size or int(np.ceil(max(whole["xy"].max(), tiled["xy"].max())))
    bad_t = np.flatnonzero(d2 > 0.05)
    summary = {}
    if len(bad_t) and "x_edges" in tiled:
        loc = locate(tiled["xy"][bad_t], tiled, size)
        seam = np.array([r["seam_px"] for r in loc])
        corner = np.array([r["corner_px"] for r in loc])
        border = np.array([r["border_px"] for r in loc])
        halo = int(tiled["halo"])
        # The same distances for all tiled columns: the expected share near a seam.
        allloc = locate(tiled["xy"], tiled, size)
        all_seam = np.array([r["seam_px"] for r in allloc])
        summary = {
            "unmatched_seam_px_median": float(np.median(seam)),
            "unmatched_within_halo_of_seam": float((seam < halo).mean()),
            "all_within_halo_of_seam": float((all_seam < halo).mean()),
            "unmatched_within_halo_of_corner": float((corner < halo * np.sqrt(2)).mean()),
            "unmatched_within_halo_of_border": float((border < halo).mean()),
        }
        for r, k in zip(loc, bad_t, strict=True):
            r["dx_px"] = round(float(d2[k]), 3)
        print("unmatched tiled columns (position, distance to seam / corner / border, "
              "distance to the nearest whole-image column):", flush=True)
        for r in sorted(loc, key=lambda r: -r["dx_px"])[:40]:
            print("  " + json.dumps(r), flush=True)
    return {
        **summary,
        "identical": float(same.mean()),
        "tiled_unmatched": int((d2 > 0.05).sum()),
        "max_dx": float(d.max()),
        "p99_dx": float(np.quantile(d, 0.99)),
        "class_agree": float(conf[ri, ci].sum() / max(1, same.sum())),
        "ari": float(adjusted_rand_score(a, b)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs="+", default=[2048])
    ap.add_argument("--tile-px", type=int, default=1024)
    ap.add_argument("--max-whole", type=int, default=8192)
    ap.add_argument("--workers", type=int, default=0, help="Dask LocalCluster workers (0: serial)")
    ap.add_argument("--only", choices=("tiled", "whole"),
                    help="Run one of the two analyses (with --keep: the other one later).")
    ap.add_argument("--keep", metavar="DIR",
                    help="Keep each child's result in DIR and reuse the ones already there.")
    ap.add_argument("--md", default=str(OUT),
                    help="Markdown file the table is written to (default %(default)s; "
                         "it is overwritten: keep earlier tables elsewhere).")
    ap.add_argument("--child")
    ap.add_argument("--out")
    ap.add_argument("--reuse", nargs=2, metavar=("TILED_NPZ", "WHOLE_NPZ"),
                    help="Report on two child results already written (one size).")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.size[0], args.tile_px, args.out, args.workers)
        return
    rows = []
    for size in args.size:
        if args.reuse:
            tiled, whole = ({k: r[k] for k in r.files} for r in map(np.load, args.reuse))
        else:
            tiled = (run("tiled", size, args.tile_px, args.workers, args.keep)
                     if args.only != "whole" else None)
            whole = (run("whole", size, args.tile_px, 0, args.keep)
                     if size <= args.max_whole and args.only != "tiled" else None)
            if tiled is None:
                continue
        row = {"size": size, "tiled": tiled, "whole": whole}
        if whole is not None:
            row.update(agreement(whole, tiled, size))
        rows.append(row)
        print(json.dumps({k: (v if not isinstance(v, dict) else {
            kk: float(vv) for kk, vv in v.items() if kk in ("time", "rss_mb", "n_classes")})
            for k, v in row.items()}), flush=True)
    lines = [
        "# Tiled vs whole-image analysis (bench/tiles.py)",
        "",
        f"Image: `tmd.npz` clean dose-1 image tiled periodically, fresh Poisson counts (seed 0); "
        f"tiles of {args.tile_px} px core, default halo; "
        f"{'serial tiles' if not args.workers else f'Dask LocalCluster, {args.workers} workers'}"
        "; hierarchy off. Machine: 2 shared cores, niced, other jobs running.",
        "",
        "| size | columns whole / tiled | identical (≤ 0.05 px) | tiled unmatched | max Δ px "
        "| p99 Δ px | class agreement | ARI | classes whole / tiled | time whole / tiled s "
        "| CPU whole / tiled s | peak RSS whole / tiled MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        t, w = r["tiled"], r["whole"]
        if w is None:
            lines.append(
                f"| {r['size']}² | – / {len(t['xy'])} | – | – | – | – | – | – | – / "
                f"{int(t['n_classes'])} | – / {float(t['time']):.0f} | – / "
                f"{float(t.get('cpu_s', np.nan)):.0f} | – / {float(t['rss_mb']):.0f} |"
            )
            continue
        lines.append(
            f"| {r['size']}² | {len(w['xy'])} / {len(t['xy'])} | {r['identical']:.4f} | "
            f"{r['tiled_unmatched']} | {r['max_dx']:.3g} | {r['p99_dx']:.3g} | "
            f"{r['class_agree']:.4f} | {r['ari']:.4f} | {int(w['n_classes'])} / "
            f"{int(t['n_classes'])} | {float(w['time']):.0f} / {float(t['time']):.0f} | "
            f"{float(w.get('cpu_s', np.nan)):.0f} / {float(t.get('cpu_s', np.nan)):.0f} | "
            f"{float(w['rss_mb']):.0f} / {float(t['rss_mb']):.0f} |"
        )
    for r in rows:
        w = r["whole"]
        if w is not None and "before_mb" in w:
            per_px = (float(w["rss_mb"]) - float(w["before_mb"])) / r["size"] ** 2
            lines.append(
                f"\nWhole image at {r['size']}²: {per_px * 1e6:.0f} B/px above the loaded "
                f"image; extrapolated peak RSS at 8192² {per_px * 8192**2 / 1024:.1f} GB, "
                f"at 16384² {per_px * 16384**2 / 1024:.1f} GB."
            )
    Path(args.md).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.md}")


if __name__ == "__main__":
    main()
