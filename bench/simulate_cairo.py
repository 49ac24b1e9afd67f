"""Benchmark set (c'), ``coarse_cairo.npz``: the Cairo pentagonal tiling at 1 Å/px.

A Gaussian image model (the issue allows it for the coarse set), drawn by motifcat's own
generator :func:`motifcat.ingest.synth.cairo_image`, so it runs in motifcat's venv:
``PYTHONPATH=$PWD .venv/bin/python bench/simulate_cairo.py``. Vertex columns are 3.8 px apart
and pentagon centres 2.5-3.2 px from their vertices. Written per the data contract: no frozen
phonons (one configuration equal to the ideal sites, floor 0), all sites present.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from motifcat.ingest.synth import cairo_image

DOSES = np.array([1, 1 / 2, 1 / 5, 1 / 10, 1 / 20, 1 / 50, 1 / 100], dtype=np.float64)
OUT = Path(__file__).resolve().parent / "data" / "coarse_cairo.npz"
PARAMS = {"shape": (128, 128), "pixel_size_A": 1.0, "edge_A": 3.8, "fill_fraction": 0.5,
          "probe_fwhm_A": 1.2, "background": 30.0, "dose": 300.0, "rotation_deg": 17.0,
          "noise": False, "seed": 7}


def main() -> None:
    s = cairo_image(**PARAMS)
    clean = s.clean * (100.0 / s.clean.mean())
    rng = np.random.default_rng(8)
    image = np.stack([rng.poisson(clean * d) for d in DOSES]).astype(np.float32)
    nn = cKDTree(s.xy).query(s.xy, k=2)[0][:, 1]
    counts = {n: int((s.column_class == k).sum()) for k, n in enumerate(s.class_names)}
    meta = {
        "set": "coarse_cairo",
        "generator": "motifcat.ingest.synth.cairo_image (Gaussian columns, not multislice)",
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in PARAMS.items()},
        "counts": counts,
        "nn_distance_px": {"min": float(nn.min()), "median": float(np.median(nn)),
                           "max": float(nn.max())},
        "dose": {"dose_1_mean_counts_per_px": 100.0, "relative_doses": DOSES.tolist(),
                 "definition": "image[d] = Poisson(clean * d), clean scaled to a mean of "
                 "100 counts/px (Gaussian model: no e/Å² equivalent)"},
    }
    n = len(s.xy)
    np.savez_compressed(
        OUT,
        image=image,
        doses=DOSES,
        clean=clean.astype(np.float32),
        pixel_size_A=np.float64(s.pixel_size_A),
        xy=s.xy.astype(np.float64),
        cls=s.column_class.astype(np.int64),
        class_names=np.array(s.class_names),
        site=s.site.astype(np.int64),
        site_names=np.array(["vertex", "centre"]),
        present=np.ones(n, bool),
        phonon_xy=s.xy[None].astype(np.float64),
        floor_rmse_px=np.float64(0.0),
        meta_json=np.array(json.dumps(meta, indent=1)),
    )
    print(json.dumps(counts), json.dumps(meta["nn_distance_px"]), f"wrote {OUT}")


if __name__ == "__main__":
    main()
