"""Render times of the catalog browser's pages (issue 11: Hierarchy page, level-3 gallery).

Run ``python bench/app.py [--folder DIR] [--images N] [--side PX]``. It builds (once; reused
when DIR already holds it) a catalog of ``N`` synthetic TMD images of ``PX``² px with point
defects, analysed by ``analyze`` with the default parameters, then runs each page with
Streamlit's ``AppTest`` (the app script and page as the server runs them, no browser) and prints
the wall time of a first run (cold caches) and of a rerun (warm caches). Writes
``bench/results/app.md``.

The times include Streamlit's script run and the catalog queries; they exclude the browser's
drawing (the Plotly figure is built, serialised and checked, not painted).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from motifcat.app import MAIN_SCRIPT  # noqa: E402
from motifcat.catalog import open_catalog, write_analysis  # noqa: E402
from motifcat.datasets import make_tmd  # noqa: E402
from motifcat.ingest import analyze, load_image  # noqa: E402
from motifcat.query import vocabulary  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "app.md"


def build(folder: Path, n_images: int, side: int) -> tuple[str, float]:
    """The bench catalog in ``folder`` (built unless there); returns its URI and build time (s)."""
    folder.mkdir(parents=True, exist_ok=True)
    uri = str(folder / "catalog.lbug")
    done = folder / f"built-{n_images}x{side}"
    if done.exists():
        return uri, float(done.read_text())
    t0 = time.perf_counter()
    with threadpool_limits(1), open_catalog(uri) as store:
        for k in range(n_images):
            syn = make_tmd((side, side), seed=100 + k)
            path = folder / f"tmd-{side}-{k}.npy"
            np.save(path, syn.image)
            analysis = analyze(load_image(path, pixel_size_A=syn.pixel_size_A))
            write_analysis(store, analysis, sample=f"S{k % 2}", material="MoSe2")
            print(f"  image {k + 1}/{n_images} written ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    elapsed = time.perf_counter() - t0
    done.write_text(f"{elapsed:.1f}")
    return uri, elapsed


def timed(uri: str, page: str, setup=None) -> tuple[float, float]:
    """(first run, rerun) wall times in s of ``page``; ``setup(at)`` runs before the timed run."""
    os.environ["MOTIFCAT_CATALOG"] = uri
    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=300).run()
    if page != "overview":
        at.switch_page(f"views/{page}.py")
    if setup is not None:
        setup(at)
    # Clear Streamlit's caches so that the first run is a cold one, as after a catalog change.
    import streamlit as st

    st.cache_data.clear()
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    if at.exception or at.error:
        raise SystemExit(f"{page}: {[e.value for e in at.exception]} {[e.value for e in at.error]}")
    t0 = time.perf_counter()
    at.run()
    again = time.perf_counter() - t0
    return first, again


def browser_times(uri: str, pages: list[str], port: int = 8799) -> list[tuple[str, float, float]]:
    """(page, first load, second load) in s in headless Chromium (``make browser-deps``) on a
    real server: from the request until the script has run and Plotly has drawn its figure.
    The Overview (one small bar chart) is the reference: what any page costs in the browser."""
    import shutil
    import signal
    import subprocess
    import urllib.request

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from motifcat.app import launch_command

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download anything
    env = {**os.environ, "MOTIFCAT_CATALOG": uri}
    proc = subprocess.Popen(launch_command(uri, port), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    out = []
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.5)
        opts = Options()
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"):
            opts.add_argument(flag)
        chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)

        def load(path: str) -> float:
            t0 = time.perf_counter()
            driver.get(f"{base}/{'' if path == 'overview' else path}")
            time.sleep(0.5)  # let the script start
            while time.perf_counter() - t0 < 300:
                running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
                drawn = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")
                if not running and drawn:
                    break
                time.sleep(0.1)
            return time.perf_counter() - t0

        try:
            load("")  # the server's first script run: imports, opening the catalog
            for path in pages:
                out.append((path, load(path), load(path)))
        finally:
            driver.quit()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return out


def main() -> None:
    # Not ``--catalog``: the app script reads that option from this process's command line.
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "motifcat-bench-app"))
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--out", default=str(RESULTS), help="results file (default %(default)s)")
    ap.add_argument("--label", default="", help="what was measured, e.g. 'before' (a section "
                    "with this label is appended to an existing results file)")
    ap.add_argument("--browser", action="store_true",
                    help="also time the Hierarchy and Image pages in headless Chromium")
    args = ap.parse_args()
    uri, build_s = build(Path(args.folder), args.images, args.side)
    with open_catalog(uri, read_only=True) as store:
        per_level = vocabulary(store).groupby("level").size().to_dict()

    def level3(at):
        at.query_params["motif"] = "L3-"

    rows = []
    for label, page, setup in [
        ("Overview", "overview", None),
        ("Image", "image", None),
        ("Motifs, level 1", "motifs", None),
        ("Motifs, level-3 gallery", "motifs", level3),
        ("Hierarchy", "hierarchy", None),
    ]:
        first, again = timed(uri, page, setup)
        rows.append((label, first, again))
        print(f"{label:28s} first run {first:6.2f} s   rerun {again:6.2f} s", flush=True)

    import motifcat.app

    shown = []
    if args.browser:
        shown = browser_times(uri, ["overview", "hierarchy", "image"])
        for path, first, again in shown:
            print(f"browser {path:20s} first load {first:6.2f} s   again {again:6.2f} s",
                  flush=True)

    section = [
        f"## {args.label or 'this branch'}: {args.images} images of {args.side}² px",
        "",
        f"App code: `{Path(motifcat.app.__file__).parent}`. Catalog: {args.images} synthetic "
        f"MoSe2 images of {args.side}² px with point defects (`make_tmd`, seeds 100..), "
        f"analysed with the default parameters (built in {build_s:.0f} s); motifs per level: "
        + ", ".join(f"L{k}: {v}" for k, v in sorted(per_level.items())) + ".",
        "",
        "| page | first run (s) | rerun (s) |",
        "|---|---|---|",
        *[f"| {label} | {first:.2f} | {again:.2f} |" for label, first, again in rows],
        *[f"| {path.capitalize()} in Chromium (until Plotly has drawn) | {first:.2f} | "
          f"{again:.2f} |" for path, first, again in shown],
        "",
        f"Command: `python bench/app.py --images {args.images} --side {args.side}"
        + (" --browser" if args.browser else "")
        + (f" --label '{args.label}'" if args.label else "") + "`",
        "",
    ]
    out = Path(args.out)
    head = [
        "# App page render times (issue 11)",
        "",
        "Streamlit `AppTest` (script run + catalog queries + figures built; no browser "
        "painting), on the shared 2-core machine; a first run with cold caches, then a rerun.",
        "",
    ]
    old = out.read_text().splitlines() if args.label and out.exists() else head
    out.write_text("\n".join([*old, *section]) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
