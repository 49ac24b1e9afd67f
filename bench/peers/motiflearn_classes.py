"""motif-learn's route (Dan et al. 2022) on patches cut at given column positions (runs in
``.bench-venv``).

``.bench-venv/bin/python bench/peers/motiflearn_classes.py SET [--doses ...] [--positions P.npz]``

As in the paper's notebook: ``KeyPoints(pts, img, size).extract_patches(size)``,
``ZPs(n_max=10, size=size)`` moments, their rotation-invariant form (moduli of the complex
moments: this release has no ``rotinv()``), ``ForceGraph8(n_neighbors=10, init_mode='pca',
num_iterations=100, num_negative_samples=5, force_params1=(0, 2, 1, 1),
force_params2=(2, 5, 5, 1), divide=0.5)`` and ``seg_lbs`` island segmentation of the layout.
The patch is two lattice periods wide (2 x the bright-sublattice spacing + 1 px, odd), as
motifcat's patches, and at least n_max + 1 = 11 px (ZPs' own limit). Positions: the present
true sites (default) or ``--positions`` (npz with ``xy`` (N, 2) px). Columns whose patch crosses
the border get no label (-1), as KeyPoints drops
them. Writes ``bench/results/peers/motiflearn_<set>.npz`` (labels (n_doses, N)) and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, dose_indices, lattice_spacing_px, load_set  # noqa: E402

FORCE_PARAMS = {"n_neighbors": 10, "init_mode": "pca", "num_iterations": 100,
                "num_negative_samples": 5, "force_params1": (0, 2, 1, 1),
                "force_params2": (2, 5, 5, 1), "divide": 0.5}
N_MAX = 10


def classify(image: np.ndarray, xy: np.ndarray, size: int):
    """Labels (N,) (-1 at the border) and seconds (patches + moments + layout + islands)."""
    from mtflearn import ZPs
    from mtflearn.clustering import seg_lbs
    from mtflearn.features._keypoint import KeyPoints
    from mtflearn.manifold import ForceGraph8

    h, w = image.shape
    x, y = xy[:, 0], xy[:, 1]
    keep = ((x > size // 2 + 1) & (x < w - size // 2 - 1) & (y > size // 2 + 1)
            & (y < h - size // 2 - 1))  # KeyPoints' own border rule
    t0 = time.perf_counter()
    kp = KeyPoints(xy[keep], image.astype(np.float64), size)
    ps = kp.extract_patches(size)
    zps = ZPs(n_max=N_MAX, size=size)
    moments = zps.fit_transform(ps)
    x_rot = np.abs(moments.to_complex().data)
    fg = ForceGraph8(X=x_rot, **FORCE_PARAMS)
    layout = fg.fit_transform(x_rot)
    lbs = seg_lbs(layout)
    seconds = time.perf_counter() - t0
    labels = np.full(len(xy), -1, dtype=np.int64)
    labels[keep] = lbs
    return labels, seconds


def _warm_up() -> None:
    """Compile ForceGraph8's numba kernels on a small random input, so timings are warm."""
    from mtflearn.manifold import ForceGraph8

    x = np.random.default_rng(0).random((60, 36))
    ForceGraph8(X=x, **{**FORCE_PARAMS, "num_iterations": 2}).fit_transform(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description="motif-learn peer: labels per column per dose")
    ap.add_argument("set")
    ap.add_argument("--doses", type=float, nargs="*", default=None)
    ap.add_argument("--positions", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    d = load_set(args.set)
    idx = dose_indices(d, args.doses)
    if args.positions:
        with np.load(args.positions) as z:
            xy = np.asarray(z["xy"], dtype=np.float64)
    else:
        xy = d["xy"][d["present"]]
    size = int(round(2 * lattice_spacing_px(d, site=0))) // 2 * 2 + 1
    size = max(size, N_MAX + 1)  # ZPs refuses n_max > size (coarse sets): smallest valid patch
    _warm_up()
    labels, seconds = [], []
    for k in idx:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lab, sec = classify(d["image"][k], xy, size)
        labels.append(lab)
        seconds.append(sec)
        n_cls = len(np.unique(lab[lab >= 0]))
        print(f"motif-learn {d['name']} dose {d['doses'][k]:.4g}: {n_cls} classes, "
              f"{(lab >= 0).sum()}/{len(lab)} labelled, {sec:.1f} s", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"motiflearn_{d['name']}.npz"
    np.savez_compressed(out, labels=np.array(labels), xy=xy, doses=d["doses"][idx],
                        dose_indices=np.array(idx), seconds=np.array(seconds),
                        patch_size=np.int64(size))
    summary = {"tool": "motiflearn", "set": d["name"], "patch_size_px": size, "n_max": N_MAX,
               "force_graph": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in FORCE_PARAMS.items()},
               "doses": d["doses"][idx].tolist(), "seconds": seconds,
               "n_classes": [int(len(np.unique(lab[lab >= 0]))) for lab in labels]}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
