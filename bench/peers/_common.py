"""Shared by the peer runners (run inside ``.bench-venv``): set loading and per-set parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1]
RESULTS = BENCH / "results" / "peers"


def load_set(name_or_path: str) -> dict:
    """A benchmark set by name (``bench/data/<name>.npz``) or path, as a plain dict."""
    p = Path(name_or_path)
    if not p.suffix:
        p = BENCH / "data" / f"{name_or_path}.npz"
    with np.load(p) as z:
        d = {k: z[k] for k in z.files}
    d["meta"] = json.loads(str(d["meta_json"]))
    d["name"] = p.stem
    return d


def bright_site(d: dict) -> int:
    """The site index of the bright sublattice searched first (metal, A site, Cairo vertex)."""
    return 0


def lattice_spacing_px(d: dict, site=None) -> float:
    """Median nearest-neighbour distance (px) among present sites of a sublattice or a tuple of
    sublattices (all: None).

    Taken from the ground truth: the peers get the known lattice spacing, as a user who knows
    the material would type it.
    """
    from scipy.spatial import cKDTree

    sel = d["present"].copy()
    if site is not None:
        sel &= np.isin(d["site"], np.atleast_1d(site))
    xy = d["xy"][sel]
    dist = cKDTree(xy).query(xy, k=2)[0][:, 1]
    return float(np.median(dist))


def dose_indices(d: dict, doses) -> list[int]:
    """Indices into ``d['doses']`` of the requested relative doses (None: all)."""
    if doses is None:
        return list(range(len(d["doses"])))
    out = []
    for v in doses:
        k = int(np.argmin(np.abs(d["doses"] - float(v))))
        if not np.isclose(d["doses"][k], float(v), rtol=1e-6):
            raise SystemExit(f"dose {v} not in {d['name']}: {d['doses'].tolist()}")
        out.append(k)
    return out
