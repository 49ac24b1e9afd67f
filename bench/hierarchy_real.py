"""Vocabulary of the real Se-implanted MoS2 HAADF image (temul-toolkit's example data,
fetched by ``make bench-real``) through ``analyze`` with default parameters: the issue-11
targets on a real image (10 largest level-2 classes, 30 largest level-3 classes, most common
unit), with the column count and time. Writes bench/results/hierarchy_real.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.hierarchy import pct, vocab_row  # noqa: E402
from motifcat.ingest import AnalysisParams, analyze, load_image  # noqa: E402

IMAGE = ROOT / "bench" / "data" / "real" / "Se_implanted_MoS2.dm3"
OUT = ROOT / "bench" / "results" / "hierarchy_real.md"


def main() -> str:
    if not IMAGE.exists():
        # `make bench` runs every script; the real image comes only with `make bench-real`.
        print(f"skipped: {IMAGE} is missing (run `make bench-real` first)")
        return ""
    mg = load_image(IMAGE)
    t0, c0 = time.perf_counter(), time.process_time()
    a = analyze(mg, AnalysisParams())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    v = vocab_row(a.hierarchy)
    text = (
        "# Hierarchy on a real image (bench/hierarchy_real.py)\n\n"
        f"{IMAGE.name}: {mg.data.shape[1]}x{mg.data.shape[0]} px, {mg.pixel_size_A:.3f} A/px; "
        f"`analyze` with default parameters: {len(a.columns)} columns, {len(a.classes)} "
        f"level-1 classes; {wall:.0f} s wall, {cpu:.0f} s CPU (shared machine).\n\n"
        "Targets (issue 11): 10 largest level-2 classes >= 95 % of the units, 30 largest "
        "level-3 classes >= 90 %, most common unit the hexagon.\n\n"
        f"- level 2: {v['n2']} classes, 10 largest hold {pct(v['top10'])}; most common unit "
        f"`{v['first']}`\n"
        f"- level 3: {v['n3']} classes, 30 largest hold {pct(v['top30'])}\n"
    )
    OUT.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
