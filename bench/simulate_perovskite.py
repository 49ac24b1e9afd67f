"""Benchmark sets (b) perovskite and (c) coarse: SrTiO3 along [001], abTEM PRISM, frozen phonons.

Runs in the benchmark venv (``make bench-data``), never in motifcat's venv:
``nice .bench-venv/bin/python bench/simulate_perovskite.py --variant fine|coarse``.

Projected structure (a = 3.905 Å): Sr columns at (0, 0), Ti–O columns at (½, ½), pure O columns at
(½, 0) and (0, ½) (nearly invisible in HAADF; kept in the ground truth with class "O" and
site "O" so that a benchmark can report them apart). Each column holds one atom per unit cell
along the beam. Point defects in Sr columns, placed at random (fixed seed), isolated and away
from the edges: "Sr_vac" (one Sr of the column missing) and "La_Sr" (one Sr replaced by La).

- ``fine`` (set b, ``perovskite.npz``): 12 × 12 cells, 4 cells thick, ~0.12 Å/px.
- ``coarse`` (set c, ``coarse.npz``): 20 × 20 cells, 3 cells thick, simulated at 0.25 Å/px and
  binned 4 × 4 to ~1 Å/px, so that Sr and Ti–O columns are 2.76 px apart (Sr–Sr 3.9 px).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _abtem_sim import (  # noqa: E402
    Microscope,
    Site,
    counts_table,
    displaced_configs,
    dose_meta,
    dose_series,
    microscope_meta,
    pick_isolated,
    simulate,
    write_set,
)

A_LAT = 3.905  # Å
CLASS_NAMES = ["Sr", "TiO", "O", "Sr_vac", "La_Sr"]
SITE_NAMES = ["A", "B", "O"]
SIGMAS_A = {38: 0.088, 22: 0.07, 8: 0.085, 57: 0.08}  # rms per axis (B ~ 0.4-0.6 Å²)
VARIANTS = {
    "fine": {"cells": 12, "thick": 4, "px": 0.12, "bin": 1, "configs": 4,
             "defects": {"Sr_vac": 5, "La_Sr": 5}, "out": "perovskite.npz"},
    "coarse": {"cells": 20, "thick": 3, "px": 0.25, "bin": 4, "configs": 2,
               "defects": {"Sr_vac": 8, "La_Sr": 8}, "out": "coarse.npz"},
}


def build(cells: int, thick: int, defects: dict, seed: int):
    """Sites (Å), classes and the ase.Atoms with the site index of every atom."""
    from ase import Atoms

    a = A_LAT
    frac = {0: [(0.0, 0.0)], 1: [(0.5, 0.5)], 2: [(0.5, 0.0), (0.0, 0.5)]}
    shift = np.array([0.25, 0.25])  # no site on an image edge
    ii, jj = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
    cell_ij = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(float)
    xy, site = [], []
    for s, fr in frac.items():
        for f in fr:
            xy.append(((cell_ij + np.array(f) + shift) % cells) * a)
            site.append(np.full(len(cell_ij), s))
    xy = np.concatenate(xy)
    site = np.concatenate(site)
    cls = site.copy()  # Sr 0, TiO 1, O 2
    box = np.array([cells * a, cells * a])
    rng = np.random.default_rng(seed)
    taken: list = []
    for name, n in defects.items():
        cand = np.flatnonzero(cls == 0)
        chosen, taken = pick_isolated(rng, xy[cand], n, taken, 2.05 * a, box, 2.0 * a)
        cls[cand[chosen]] = CLASS_NAMES.index(name)
    layer = rng.integers(0, thick, size=len(xy))  # which Sr of a defect column changes

    symbols, pos, owner = [], [], []
    for i, (p, c) in enumerate(zip(xy, cls, strict=True)):
        for k in range(thick):
            z = (k + 0.5) * a
            name = CLASS_NAMES[c]
            if name in ("Sr", "Sr_vac", "La_Sr"):
                if name == "Sr_vac" and k == layer[i]:
                    continue
                at = [("La" if name == "La_Sr" and k == layer[i] else "Sr", z)]
            elif name == "TiO":
                at = [("Ti", z + 0.5 * a), ("O", z)]  # O of the SrO plane
            else:
                at = [("O", z + 0.5 * a)]
            for sym, zz in at:
                symbols.append(sym)
                pos.append([p[0], p[1], zz])
                owner.append(i)
    atoms = Atoms(symbols=symbols, positions=pos, cell=[box[0], box[1], (thick + 0.5) * a],
                  pbc=True)
    present = np.ones(len(xy), bool)
    return Site(xy, cls, site, present, CLASS_NAMES, SITE_NAMES), atoms, np.array(owner), box


def column_means(configs_pos, owner, n_sites):
    counts = np.bincount(owner, minlength=n_sites).astype(float)
    out = np.empty((len(configs_pos), n_sites, 2))
    for k, pos in enumerate(configs_pos):
        for ax in range(2):
            out[k, :, ax] = np.bincount(owner, weights=pos[:, ax], minlength=n_sites) / counts
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="fine")
    ap.add_argument("--configs", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=3905)
    args = ap.parse_args(argv)
    v = VARIANTS[args.variant]
    n_cfg = args.configs or v["configs"]
    out = args.out or str(Path(__file__).resolve().parent / "data" / v["out"])

    mic = Microscope(pixel_size_A=v["px"], slice_thickness_A=A_LAT / 2)
    sites, atoms, owner, box = build(v["cells"], v["thick"], v["defects"], args.seed)
    cfg_pos = displaced_configs(atoms.positions, atoms.numbers, SIGMAS_A, n_cfg, args.seed + 1)
    configs = []
    for pos in cfg_pos:
        a = atoms.copy()
        a.positions = pos
        a.wrap()
        configs.append(a)
    b = v["bin"]
    out_gpts = tuple(int(round(L / v["px"] / b)) * b for L in box)
    print(f"{args.variant}: {len(atoms)} atoms, {len(sites.xy_A)} sites, "
          f"simulated {out_gpts[1]}x{out_gpts[0]} px, binned {b}x{b}, {n_cfg} configs")
    t0 = time.perf_counter()
    adf, seconds = simulate(configs, mic, out_gpts)
    t_sim = time.perf_counter() - t0
    if b > 1:  # detector pixels of b x b scan steps: mean of the fine samples
        adf = adf.reshape(adf.shape[0] // b, b, adf.shape[1] // b, b).mean(axis=(1, 3))
    n_y, n_x = adf.shape
    px = np.array([box[0] / n_x, box[1] / n_y])
    # pixel i of the binned image covers fine samples i*b .. i*b+b-1: its centre is offset
    offset_px = (b - 1) / (2 * b)
    clean, image = dose_series(adf, args.seed + 2)
    xy_px = sites.xy_A / px - offset_px
    ph_px = column_means(cfg_pos, owner, len(sites.xy_A)) / px - offset_px

    meta = {
        "set": "perovskite" if args.variant == "fine" else "coarse",
        "material": "SrTiO3 [001]; defects in Sr columns: Sr_vac (one Sr missing), La_Sr",
        "a_A": A_LAT,
        "cells": [v["cells"], v["cells"]],
        "thickness_cells": v["thick"],
        "box_A": box.tolist(),
        "simulated_pixel_size_A": float(box[0] / out_gpts[0]),
        "binning": b,
        "pixel_size_xy_A": px.tolist(),
        "microscope": microscope_meta(mic),
        "frozen_phonons": {"n_configs": n_cfg, "sigma_per_axis_A": SIGMAS_A},
        "defects": v["defects"],
        "defect_rules": "random (seed) among Sr columns, >= 2.05 a apart, >= 2 a from the edges",
        "counts": counts_table(sites),
        "dose": dose_meta(adf, float(px[0])),
        "seed": args.seed,
        "simulation_seconds": t_sim,
        "seconds_per_config": seconds,
        "xy_convention": "x along axis 1, y along axis 0, pixel centre i at i * pixel size",
        "note_O": "O columns (class O, site O) are nearly invisible in HAADF: report them apart",
    }
    floor = write_set(out, clean=clean, image=image, pixel_size_A=float(px[0]), sites=sites,
                      px_xy=xy_px, phonon_xy_px=ph_px, meta=meta)
    print(json.dumps(meta["counts"]))
    print(f"floor_rmse_px {floor:.3f}; simulation {t_sim:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
