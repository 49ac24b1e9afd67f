"""Atomap's tutorial route per dose image (runs in ``.bench-venv``; Atomap is GPL, never imported
by motifcat).

``.bench-venv/bin/python bench/peers/atomap_columns.py SET [--doses 1 0.01] [--out PATH]``

Per image: ``get_atom_positions`` (``pca=True``, Atomap's denoising for noisy images) with a
separation fixed from the known lattice spacing of the bright sublattice (0.75 x its
nearest-neighbour distance: above the distance to the dim neighbours, below that to the bright
ones, which is what ``get_feature_separation`` would be used to choose), then
``refine_atom_positions_using_center_of_mass`` and ``refine_atom_positions_using_2d_gaussian``;
the bright sublattice is then subtracted from the image
(``remove_atoms_from_image_using_2d_gaussian``, as Atomap's two-sublattice tutorial does)
and a second peak search on that image, with 0.75 x the spacing between the bright and the dim
sublattice (sites 0 and 1; pure O columns of a perovskite are not searched), gives the dim
sublattice, refined the same way. Second-search peaks within 0.5 x that spacing of
a first-sublattice column are dropped (they are remains of the subtracted columns).
Writes ``bench/results/peers/atomap_<set>.npz`` (found positions per dose) and ``.json``
(timings: the 2-D Gaussian refinement alone, in columns/s).
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


def find_columns(image: np.ndarray, sep1: int, sep2: int, drop_px: float):
    """Atomap route on one image: (xy (M, 2) px, sublattice (M,), seconds of 2-D Gaussian fits)."""
    import atomap.api as am
    import hyperspy.api as hs
    from atomap.tools import remove_atoms_from_image_using_2d_gaussian
    from scipy.spatial import cKDTree

    s = hs.signals.Signal2D(image.astype(np.float64))
    pos_a = am.get_atom_positions(s, separation=sep1, pca=True)
    sub_a = am.Sublattice(pos_a, image=s.data)
    sub_a.find_nearest_neighbors()
    sub_a.refine_atom_positions_using_center_of_mass(show_progressbar=False)
    t0 = time.perf_counter()
    sub_a.refine_atom_positions_using_2d_gaussian(show_progressbar=False)
    t_gauss = time.perf_counter() - t0
    xy_a = np.column_stack([sub_a.x_position, sub_a.y_position])

    residual = remove_atoms_from_image_using_2d_gaussian(sub_a.image, sub_a,
                                                         show_progressbar=False)
    s_b = hs.signals.Signal2D(residual)
    pos_b = np.asarray(am.get_atom_positions(s_b, separation=sep2, pca=True), dtype=float)
    if len(pos_b) and len(xy_a):
        d, _ = cKDTree(xy_a).query(pos_b)
        pos_b = pos_b[d > drop_px]
    xy_b = np.empty((0, 2))
    if len(pos_b) >= 2:
        sub_b = am.Sublattice(pos_b, image=residual)
        sub_b.find_nearest_neighbors()
        sub_b.refine_atom_positions_using_center_of_mass(show_progressbar=False)
        t0 = time.perf_counter()
        sub_b.refine_atom_positions_using_2d_gaussian(show_progressbar=False)
        t_gauss += time.perf_counter() - t0
        xy_b = np.column_stack([sub_b.x_position, sub_b.y_position])
    xy = np.concatenate([xy_a, xy_b])
    sub = np.concatenate([np.zeros(len(xy_a), int), np.ones(len(xy_b), int)])
    return xy, sub, t_gauss


def main(argv=None):
    ap = argparse.ArgumentParser(description="Atomap peer: columns per dose")
    ap.add_argument("set")
    ap.add_argument("--doses", type=float, nargs="*", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    d = load_set(args.set)
    idx = dose_indices(d, args.doses)
    a_bright = lattice_spacing_px(d, site=0)
    shortest = lattice_spacing_px(d, site=(0, 1))  # the two searched sublattices
    sep1 = max(1, int(0.75 * a_bright))
    sep2 = max(1, int(0.75 * shortest))
    xy_all, sub_all, dose_all, t_g, n_g, t_tot = [], [], [], [], [], []
    for k in idx:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xy, sub, tg = find_columns(d["image"][k], sep1, sep2, 0.5 * shortest)
        t_tot.append(time.perf_counter() - t0)
        xy_all.append(xy)
        sub_all.append(sub)
        dose_all.append(np.full(len(xy), k))
        t_g.append(tg)
        n_g.append(len(xy))
        print(f"atomap {d['name']} dose {d['doses'][k]:.4g}: {len(xy)} columns, 2-D Gaussian "
              f"{tg:.1f} s ({len(xy) / max(tg, 1e-9):.0f} columns/s), total {t_tot[-1]:.1f} s",
              flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"atomap_{d['name']}.npz"
    np.savez_compressed(out, xy=np.concatenate(xy_all), sublattice=np.concatenate(sub_all),
                        dose_index=np.concatenate(dose_all), doses=d["doses"][idx],
                        dose_indices=np.array(idx), seconds_gauss=np.array(t_g),
                        n_gauss=np.array(n_g), seconds_total=np.array(t_tot))
    summary = {
        "tool": "atomap", "set": d["name"], "separation_px": [sep1, sep2],
        "doses": d["doses"][idx].tolist(), "n_found": n_g, "seconds_gauss": t_g,
        "seconds_total": t_tot,
        "gauss_columns_per_s": float(np.sum(n_g) / max(np.sum(t_g), 1e-9)),
        "route": "get_atom_positions -> CoM -> 2-D Gaussian; subtract; second search -> CoM -> "
                 "2-D Gaussian",
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
