"""Peers measured side by side from motifcat's venv: Atomap and motif-learn run in the separate
benchmark venv ``.bench-venv`` (``make bench-venv``) by subprocess, never imported here.

>>> from bench._peers import run_peer, score_positions   # doctest: +SKIP
>>> r = run_peer("atomap", "tmd", doses=[1, 0.01])      # doctest: +SKIP
>>> r["xy"][0].shape, r["gauss_columns_per_s"]          # doctest: +SKIP

``python bench/_peers.py [SET ...]`` runs both peers on the sets (default ``tmd``) and prints
Atomap's recall / precision / RMSE per dose and motif-learn's number of classes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BENCH_PY = ROOT / ".bench-venv" / "bin" / "python"
RESULTS = BENCH / "results" / "peers"
RUNNERS = {"atomap": BENCH / "peers" / "atomap_columns.py",
           "motiflearn": BENCH / "peers" / "motiflearn_classes.py"}


class PeerUnavailable(RuntimeError):
    """The benchmark venv is missing or a peer run failed."""


def set_path(set_name: str) -> Path:
    """``bench/data/<set_name>.npz`` (or ``set_name`` itself if it is a path)."""
    p = Path(set_name)
    return p if p.suffix else BENCH / "data" / f"{set_name}.npz"


def load_set(set_name: str) -> dict:
    """A benchmark set as a dict of arrays plus ``meta`` (the parsed ``meta_json``)."""
    with np.load(set_path(set_name)) as z:
        d = {k: z[k] for k in z.files}
    d["meta"] = json.loads(str(d["meta_json"]))
    return d


def run_peer(tool: str, set_name: str, doses=None, positions=None, timeout_s: float = 7200):
    """Run one peer on one set in ``.bench-venv`` and return its results.

    Parameters
    ----------
    tool : {"atomap", "motiflearn"}
    set_name : str
        A set in ``bench/data`` (e.g. ``"tmd"``) or a path to an npz of the data contract.
    doses : sequence of float or None
        Relative doses to run (values of the set's ``doses``); None runs all.
    positions : ndarray (N, 2) or None
        motif-learn only: column positions (x, y) px at which patches are cut; None uses the
        set's present true sites.

    Returns
    -------
    dict
        ``atomap``: ``xy`` (list per dose of (M, 2) px arrays), ``sublattice`` (list),
        ``doses``, ``seconds_gauss``, ``n_gauss``, ``gauss_columns_per_s``, ``seconds_total``.
        ``motiflearn``: ``labels`` (n_doses, N) int (-1: no label), ``xy``, ``doses``,
        ``seconds``, ``n_classes``. Both carry ``summary`` (the runner's json).
    """
    if tool not in RUNNERS:
        raise ValueError(f"unknown peer {tool!r}; expected one of {sorted(RUNNERS)}")
    if not BENCH_PY.exists():
        raise PeerUnavailable(f"{BENCH_PY} not found: run `make bench-venv` first")
    name = set_path(set_name).stem
    out = RESULTS / f"{tool}_{name}.npz"
    RESULTS.mkdir(parents=True, exist_ok=True)
    cmd = [str(BENCH_PY), str(RUNNERS[tool]), str(set_path(set_name)), "--out", str(out)]
    if doses is not None:
        cmd += ["--doses", *[repr(float(v)) for v in doses]]
    with tempfile.TemporaryDirectory() as tmp:
        if positions is not None:
            if tool != "motiflearn":
                raise ValueError("positions are only taken by motiflearn")
            pos_file = Path(tmp) / "positions.npz"
            np.savez(pos_file, xy=np.asarray(positions, dtype=np.float64))
            cmd += ["--positions", str(pos_file)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise PeerUnavailable(f"{tool} on {set_name} failed:\n{proc.stderr[-3000:]}")
    with np.load(out) as z:
        r = {k: z[k] for k in z.files}
    r["summary"] = json.loads(out.with_suffix(".json").read_text())
    if tool == "atomap":
        di = r["dose_index"]
        r["xy"] = [r["xy"][di == k] for k in r["dose_indices"]]
        r["sublattice"] = [r["sublattice"][di == k] for k in r["dose_indices"]]
        r["gauss_columns_per_s"] = r["summary"]["gauss_columns_per_s"]
    else:
        r["n_classes"] = r["summary"]["n_classes"]
    return r


def match_positions(found: np.ndarray, truth: np.ndarray, radius: float):
    """One-to-one matching, closest pairs first: (found index, truth index) arrays."""
    from scipy.spatial import cKDTree

    if len(found) == 0 or len(truth) == 0:
        return np.empty(0, int), np.empty(0, int)
    pairs = cKDTree(found).sparse_distance_matrix(cKDTree(truth), radius, output_type="ndarray")
    order = np.argsort(pairs["v"], kind="stable")
    used_f = np.zeros(len(found), bool)
    used_t = np.zeros(len(truth), bool)
    fi, ti = [], []
    for i, j in zip(pairs["i"][order], pairs["j"][order], strict=True):
        if not used_f[i] and not used_t[j]:
            used_f[i] = used_t[j] = True
            fi.append(i)
            ti.append(j)
    return np.array(fi, int), np.array(ti, int)


def score_positions(found: np.ndarray, d: dict, radius: float | None = None,
                    margin: float = 0.0, exclude_classes=("O",)) -> dict:
    """Recall, precision and RMSE (px) of found positions against a set's ground truth.

    Found positions are matched one to one to all sites (present or empty) within ``radius``
    (default 0.5 x the shortest site spacing). A match to a present site is a hit, a match to
    an empty site or no match is a false column. ``margin`` (px) restricts the score to sites
    (and found positions) at least that far inside the image. Recall is also given per class;
    the overall recall leaves out ``exclude_classes`` (a perovskite's pure O columns, nearly
    invisible in HAADF), whose recall stays in the per-class figures.
    """
    from scipy.spatial import cKDTree

    xy, present, cls = d["xy"], d["present"], d["cls"]
    if radius is None:
        dist = cKDTree(xy[present]).query(xy[present], k=2)[0][:, 1]
        radius = 0.5 * float(dist.min())
    h, w = d["clean"].shape

    def inside(p):
        return ((p[:, 0] >= margin) & (p[:, 0] <= w - 1 - margin) & (p[:, 1] >= margin)
                & (p[:, 1] <= h - 1 - margin))

    fi, ti = match_positions(found, xy, radius)
    site_in = inside(xy)
    hit_site = np.zeros(len(xy), bool)
    ok = present[ti]
    hit_site[ti[ok]] = True
    found_in = inside(found) if len(found) else np.zeros(0, bool)
    matched_present = np.zeros(len(found), bool)
    matched_present[fi[ok]] = True
    on_empty = np.zeros(len(found), bool)
    on_empty[fi[~ok]] = True
    scored = present & site_in & ~np.isin(d["class_names"][cls], list(exclude_classes))
    n_true = int(scored.sum())
    n_found = int(found_in.sum())
    tp = int((hit_site & scored).sum())
    err = np.linalg.norm(found[fi[ok]] - xy[ti[ok]], axis=1) if ok.any() else np.empty(0)
    err_in = err[site_in[ti[ok]]]
    per_class = {}
    for k, name in enumerate(d["class_names"]):
        sel = (cls == k) & present & site_in
        if sel.any():
            per_class[str(name)] = float(hit_site[sel].mean())
    return {
        "radius_px": radius, "margin_px": margin, "n_true": n_true, "n_found": n_found,
        "recall": tp / max(n_true, 1),
        "precision": int((matched_present & found_in).sum()) / max(n_found, 1),
        "rmse_px": float(np.sqrt(np.mean(err_in**2))) if len(err_in) else float("nan"),
        "on_empty_sites": int((on_empty & found_in).sum()),
        "recall_per_class": per_class,
    }


def _table(set_name: str) -> None:
    d = load_set(set_name)
    a = run_peer("atomap", set_name)
    sep = max(a["summary"]["separation_px"])
    print(f"\nAtomap on {set_name} (floor_rmse_px {float(d['floor_rmse_px']):.3f}; interior = "
          f"sites >= {sep} px from the edge, Atomap's peak-search border; "
          f"{a['gauss_columns_per_s']:.0f} columns/s in its 2-D Gaussian refinement)")
    print(f"{'dose':>7} {'recall':>7} {'prec':>6} {'rmse':>6} | {'rec_int':>7} {'prec_int':>8} "
          f"{'rmse_int':>8} {'empty':>5}  recall per class (interior)")
    for k, dose in enumerate(a["doses"]):
        s_all = score_positions(a["xy"][k], d)
        s_in = score_positions(a["xy"][k], d, margin=sep)
        pc = " ".join(f"{n}:{v:.3f}" for n, v in s_in["recall_per_class"].items())
        print(f"{dose:7.4g} {s_all['recall']:7.3f} {s_all['precision']:6.3f} "
              f"{s_all['rmse_px']:6.3f} | {s_in['recall']:7.3f} {s_in['precision']:8.3f} "
              f"{s_in['rmse_px']:8.3f} {s_in['on_empty_sites']:5d}  {pc}")
    m = run_peer("motiflearn", set_name)
    patch = m["summary"]["patch_size_px"]
    print(f"\nmotif-learn on {set_name} at the true sites (patch {patch} px)")
    print(f"{'dose':>7} {'classes':>7} {'labelled':>8} {'seconds':>7}")
    for k, dose in enumerate(m["doses"]):
        lab = m["labels"][k]
        print(f"{dose:7.4g} {m['n_classes'][k]:7d} {(lab >= 0).mean():8.3f} "
              f"{m['seconds'][k]:7.1f}")


if __name__ == "__main__":
    for name in sys.argv[1:] or ["tmd"]:
        _table(name)
