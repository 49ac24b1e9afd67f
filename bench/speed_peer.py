"""``analyze`` against motif-learn's route on one 2048² image, in one run (issues 10 and 11).

The image is ``make_tmd`` at 2048² (the synthetic MoS2-like set of ``bench/hierarchy.py``),
written in the benchmark data contract so that the peer runner reads the same pixels.
motif-learn's route (patches, Zernike moments, ForceGraph8 layout, seg_lbs; given the true
sites, so it does no column finding) runs in ``.bench-venv`` (``make bench-venv``); its CPU
is that of its whole process (imports and numba warm-up included: an upper bound).

Targets: ``analyze`` without the hierarchy >= 10x faster than motif-learn's route (issue 10);
with the hierarchy >= 3x faster, and <= 2x the time without it (issue 11). CPU seconds are
the figures (wall times on a shared 2-core machine are not reliable).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python bench/speed_peer.py
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hierarchy import synthetic_2k_set, timed_analyze  # noqa: E402
from motifcat.ingest.model import AnalysisParams  # noqa: E402


def main() -> None:
    size = 2048
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tmd2k.npz"
        mg = synthetic_2k_set(size, path).micrograph()
        timed_analyze(mg, AnalysisParams(hierarchy=False))  # warm-up (imports, caches)
        a0, w0, c0, st0 = timed_analyze(mg, AnalysisParams(hierarchy=False))
        a1, w1, c1, st1 = timed_analyze(mg, AnalysisParams())
        from bench import _peers

        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = _peers.run_peer("motiflearn", str(path), doses=[1.0])
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        peer_wall = float(r["seconds"][0])
        peer_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    print(f"image {size}², {len(a1.columns)} columns; load average {os.getloadavg()[0]:.1f}")
    print("| run | wall s | CPU s |\n|---|---|---|")
    print(f"| analyze, hierarchy off | {w0:.2f} | {c0:.2f} |")
    print(f"| analyze, hierarchy on | {w1:.2f} | {c1:.2f} |")
    print(f"| motif-learn route (true sites; whole process CPU) | {peer_wall:.2f} | "
          f"{peer_cpu:.2f} |")
    print(f"stages (wall s) off: { {k: round(v, 2) for k, v in st0.items()} }")
    print(f"stages (wall s) on: { {k: round(v, 2) for k, v in st1.items()} }")
    print(f"motif-learn / analyze without hierarchy: {peer_cpu / c0:.2f}x CPU (target >= 10)")
    print(f"motif-learn / analyze with hierarchy: {peer_cpu / c1:.2f}x CPU (target >= 3)")
    print(f"analyze with / without hierarchy: {c1 / c0:.2f}x CPU (target <= 2)")


if __name__ == "__main__":
    main()
