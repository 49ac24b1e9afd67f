"""Column model benchmark (issue 9): motifcat's detection + Gaussian model next to Atomap.

``PYTHONPATH=. .venv/bin/python bench/columns.py [SET ...] [--set SET] [--doses 1 0.01]
[--no-atomap | --no-peers] [--out FILE]``

Per set of ``bench/data`` (default: every one of tmd, coarse*, perovskite that exists) and per
dose: recall per column class, precision, position RMSE against the ideal sites next to the
floor the frozen phonons set (``floor_rmse_px``), and false columns on empty sites -- for
motifcat's ``detect_columns`` with default parameters (period from the FFT) and for Atomap's
tutorial route (``bench/peers/atomap_columns.py``, run in ``.bench-venv`` by
``bench/_peers.py``) on the same images in the same run. Then the refinement speed
(motifcat's ``fit_gaussian_columns`` vs Atomap's 2-D Gaussian refinement, columns/s, same
run) and the peak memory of detection + refinement relative to the float32 image, measured
with ``tracemalloc`` on the full-dose image tiled to a large frame. Writes
``bench/results/columns.md``.

Scoring (``bench._peers.score_positions``): found positions are matched one to one to all
sites within half the shortest site spacing; a match to an empty site is a false column.
Only sites and found columns at least ``margin`` px inside the frame count, margin = the
shortest site spacing (a column centred on the outermost pixels is the flank of one outside).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import _peers  # noqa: E402
from motifcat.errors import AnalysisError  # noqa: E402
from motifcat.ingest.columns import detect_columns  # noqa: E402
from motifcat.ingest.columns.detect import find_peaks, flat_noise, refine_positions  # noqa: E402
from motifcat.ingest.columns.fit import (  # noqa: E402
    estimate_column_width,
    fit_gaussian_columns,
)
from motifcat.ingest.lattice import lattice_period  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGETS = (
    "Targets (issue 9): full dose recall & precision >= 0.995 for every class, RMSE within "
    "10 % of the floor; dose 1/100 recall >= 0.99, precision >= 0.95, no column on an empty "
    "site; coarse recall >= 0.97; refinement >= 10,000 columns/s and >= 100x Atomap; "
    "memory <= 4x the float32 image."
)


def available_sets() -> list[str]:
    data = ROOT / "bench" / "data"
    names = [p.stem for p in sorted(data.glob("*.npz"))]
    order = [n for n in names if n.startswith("tmd")] + [
        n for n in names if n.startswith("coarse")
    ] + [n for n in names if n.startswith("perovskite")]
    return order


def shortest_spacing(d: dict) -> float:
    from scipy.spatial import cKDTree

    xy = d["xy"][d["present"]]
    return float(cKDTree(xy).query(xy, k=2)[0][:, 1].min())


def motifcat_run(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Columns with default parameters: (xy, period px, seconds)."""
    t0 = time.perf_counter()
    period = lattice_period(image)
    cols = detect_columns(image, period)
    return cols.xy, period, time.perf_counter() - t0


def refinement_speed(
    image: np.ndarray, period: float, repeats: int = 3
) -> tuple[float, int, float]:
    """Columns/s of the Gaussian model fit alone, on the candidates of the peak test: (wall
    columns/s, columns, CPU columns/s), each the best of ``repeats`` (CPU time is what a
    shared machine does not distort)."""
    sigma_f = max(0.5, 0.15 * period)
    rc, _, _ = find_peaks(
        image,
        sigma_f,
        background_radius_px=max(2.0, period),
        min_distance_px=max(1.0, 0.3 * period),
        noise=flat_noise(image),
        threshold_sigma=8.0,
        min_relative_prominence=0.1,
    )
    smooth = image.astype(np.float32)
    xy = refine_positions(smooth, rc, radius=max(1, round(0.15 * period)), method="com")
    from scipy.spatial import cKDTree

    spacing = float(np.median(cKDTree(xy).query(xy, k=2)[0][:, 1]))
    sigma = estimate_column_width(image, xy, spacing)
    best = best_cpu = np.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fit_gaussian_columns(image, xy, sigma)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return len(xy) / best, len(xy), len(xy) / best_cpu


def peak_memory(image: np.ndarray, period: float, side: int) -> tuple[float, int]:
    """Peak traced allocation of detect_columns on the image tiled to ``side`` px, relative to
    that float32 image (the input itself not counted)."""
    reps = (int(np.ceil(side / image.shape[0])), int(np.ceil(side / image.shape[1])))
    big = np.ascontiguousarray(np.tile(image, reps)[:side, :side], dtype=np.float32)
    tracemalloc.start()
    tracemalloc.reset_peak()
    detect_columns(big, period)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / big.nbytes, big.size


def fmt_scores(s: dict, floor: float) -> str:
    pc = " ".join(f"{n}:{v:.3f}" for n, v in s["recall_per_class"].items())
    ratio = s["rmse_px"] / floor if floor > 0 else float("nan")
    return (f"{s['recall']:.4f} | {s['precision']:.4f} | {s['rmse_px']:.3f} | {ratio:.2f} | "
            f"{s['on_empty_sites']} | {pc}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sets", nargs="*")
    ap.add_argument("--doses", type=float, nargs="*", default=None)
    ap.add_argument("--set", dest="extra_sets", action="append", default=[],
                    help="A set to run (repeatable; same as the positional SET).")
    ap.add_argument("--no-atomap", "--no-peers", dest="no_atomap", action="store_true",
                    help="Skip Atomap (its figures are in the results file already).")
    ap.add_argument("--memory-side", type=int, default=2048,
                    help="Side of the tiled image; 0 skips the memory measurement.")
    ap.add_argument("--out", default=str(RESULTS / "columns.md"))
    args = ap.parse_args(argv)
    if not _peers.BENCH_PY.exists() and os.environ.get("MOTIFCAT_BENCH_PY"):
        _peers.BENCH_PY = Path(os.environ["MOTIFCAT_BENCH_PY"])
    sets = (args.sets + args.extra_sets) or available_sets()
    lines = ["# Column model benchmark (bench/columns.py)", "", TARGETS, ""]
    speed_rows = []
    for name in sets:
        d = _peers.load_set(name)
        source, name = name, Path(name).stem
        floor = float(d["floor_rmse_px"])
        sep = shortest_spacing(d)
        margin = float(np.ceil(sep))
        doses = list(d["doses"]) if args.doses is None else args.doses
        idx = [int(np.argmin(np.abs(d["doses"] - v))) for v in doses]
        atomap = None
        if not args.no_atomap:
            try:
                run_doses = [float(d["doses"][k]) for k in idx]
                atomap = _peers.run_peer("atomap", source, doses=run_doses)
            except _peers.PeerUnavailable as exc:
                print(f"Atomap unavailable: {str(exc)[:300]}")
        lines += [
            f"## {name}",
            "",
            f"{d['image'].shape[1]}x{d['image'].shape[2]} px, {d['pixel_size_A']:.3f} A/px, "
            f"{int(d['present'].sum())} columns, {int((~d['present']).sum())} empty sites; "
            f"matching radius {0.5 * sep:.2f} px (half the shortest spacing), margin "
            f"{margin:.0f} px; phonon floor {floor:.3f} px.",
            "",
            "| dose | tool | recall | precision | RMSE px | RMSE/floor | on empty | recall per "
            "class | s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        period = None
        for j, k in enumerate(idx):
            try:
                xy, period_k, secs = motifcat_run(d["image"][k])
            except AnalysisError as exc:
                row = f"| {d['doses'][k]:.4g} | motifcat | failed: {exc} | | | | | | |"
                print(name, row, flush=True)
                lines.append(row)
                continue
            period = period if period is not None else period_k
            s = _peers.score_positions(xy, d, margin=margin)
            row = f"| {d['doses'][k]:.4g} | motifcat | {fmt_scores(s, floor)} | {secs:.1f} |"
            print(name, row, flush=True)
            lines.append(row)
            if atomap is not None:
                sa = _peers.score_positions(atomap["xy"][j], d, margin=margin)
                ta = float(atomap["seconds_total"][j])
                row = f"| {d['doses'][k]:.4g} | Atomap | {fmt_scores(sa, floor)} | {ta:.1f} |"
                print(name, row, flush=True)
                lines.append(row)
        full = d["image"][idx[0]]
        if period is None:
            lines.append("")
            continue
        speed, n_cols, speed_cpu = refinement_speed(full, period)
        atomap_speed = atomap["gauss_columns_per_s"] if atomap is not None else float("nan")
        speed_rows.append((name, n_cols, speed, atomap_speed))
        mem, npx = (peak_memory(full, period, args.memory_side) if args.memory_side > 0
                    else (float("nan"), 0))
        lines += [
            "",
            f"Refinement: motifcat Gaussian model {speed:,.0f} columns/s wall, "
            f"{speed_cpu:,.0f} columns/s CPU ({n_cols} columns, best of 3); Atomap 2-D "
            f"Gaussian {atomap_speed:,.0f} columns/s (same run); ratio {speed / atomap_speed:.0f}x "
            "(wall).",
            f"Memory: detection + refinement peak {mem:.2f}x the float32 image "
            f"({npx / 1e6:.1f} Mpx tiled from dose {d['doses'][idx[0]]:.3g}).",
            "",
        ]
        print(lines[-3], "\n", lines[-2], flush=True)
    lines += [
        f"Load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(shared machine: absolute speeds vary; the ratio to Atomap is from the same run).",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
