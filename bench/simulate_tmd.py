"""Benchmark set (a): MoS2 monolayer with point defects, abTEM PRISM with frozen phonons.

Runs in the benchmark venv (``make bench-data``), never in motifcat's venv:
``nice .bench-venv/bin/python bench/simulate_tmd.py [--configs 8] [--out bench/data/tmd.npz]``.

Structure: 2H-MoS2, a = 3.19 Å, S-S vertical distance 3.13 Å, orthogonal cell (a, a·√3) repeated
20 × 11 (63.8 × 60.8 Å, 880 projected sites: 440 Mo, 440 S2). Defects are placed at random
(fixed seed), never within 3.4 Å of each other (beyond the second neighbour shell) and at least
3.5 Å from the image edge: S single vacancy (S1), Se on one S of a pair (SeS), S double vacancy
(empty chalcogen site, V_S2), Mo vacancy (V_Mo) and the antisite Mo on an S2 site (Mo_S, the Mo
in the metal plane). Sites: 0 metal, 1 chalcogen.
"""

from __future__ import annotations

import argparse
import json
import math
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

A_LAT = 3.19  # Å
S_HALF_GAP = 1.565  # Å, S above/below the Mo plane
N_CELLS = (20, 11)
CLASS_NAMES = ["Mo", "S2", "S1", "SeS", "Mo_S", "V_S2", "V_Mo"]
SITE_NAMES = ["metal", "chalcogen"]
N_DEFECTS = {"S1": 14, "SeS": 8, "V_S2": 6, "V_Mo": 6, "Mo_S": 6}
SIGMAS_A = {42: 0.06, 16: 0.08, 34: 0.07}  # rms displacement per axis (room temperature-like)
Z = {"Mo": 42, "S": 16, "Se": 34}


def build_sites():
    """Projected sites (Å) of the orthogonal supercell; shifted so no site lies on an edge."""
    a, b = A_LAT, A_LAT * math.sqrt(3)
    metal = np.array([[0.0, 0.0], [0.5, 0.5]])
    chalc = np.array([[0.5, 1 / 6], [0.0, 2 / 3]])
    # edge in the middle of the widest gap between site rows (y) and between columns (x)
    shift = np.array([0.25, -1 / 3])
    nx, ny = N_CELLS
    ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    cells = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(float)
    out_xy, out_site = [], []
    for s, frac in ((0, metal), (1, chalc)):
        f = (cells[:, None, :] + frac[None] + shift) % np.array([nx, ny])
        out_xy.append((f * np.array([a, b])).reshape(-1, 2))
        out_site.append(np.full(len(cells) * len(frac), s))
    xy = np.concatenate(out_xy)
    site = np.concatenate(out_site)
    box = np.array([nx * a, ny * b])
    return xy, site, box


def place_defects(xy, site, box, seed):
    """Class per site; the rest are perfect Mo / S2. Returns cls and which S is changed."""
    rng = np.random.default_rng(seed)
    cls = np.where(site == 0, CLASS_NAMES.index("Mo"), CLASS_NAMES.index("S2"))
    taken: list = []
    for name, n in N_DEFECTS.items():
        sub = 0 if name == "V_Mo" else 1
        cand = np.flatnonzero((site == sub) & (cls == (0 if sub == 0 else 1)))
        chosen, taken = pick_isolated(rng, xy[cand], n, taken, 3.4, box, 3.5)
        cls[cand[chosen]] = CLASS_NAMES.index(name)
    which = rng.integers(0, 2, size=len(xy))  # 0 top S, 1 bottom S (S1, SeS)
    return cls, which


def build_atoms(xy, cls, which, box, vacuum=0.5):
    """ase.Atoms of the defective monolayer and the site index of every atom."""
    from ase import Atoms

    z0 = vacuum + S_HALF_GAP
    symbols, pos, owner = [], [], []
    for i, (p, c) in enumerate(zip(xy, cls, strict=True)):
        name = CLASS_NAMES[c]
        if name == "Mo":
            atoms = [("Mo", 0.0)]
        elif name == "S2":
            atoms = [("S", S_HALF_GAP), ("S", -S_HALF_GAP)]
        elif name == "S1":
            atoms = [("S", S_HALF_GAP if which[i] == 0 else -S_HALF_GAP)]
        elif name == "SeS":
            up = which[i] == 0
            atoms = [("Se", S_HALF_GAP if up else -S_HALF_GAP),
                     ("S", -S_HALF_GAP if up else S_HALF_GAP)]
        elif name == "Mo_S":
            atoms = [("Mo", 0.0)]
        else:  # V_S2, V_Mo
            atoms = []
        for sym, dz in atoms:
            symbols.append(sym)
            pos.append([p[0], p[1], z0 + dz])
            owner.append(i)
    cell = [box[0], box[1], 2 * z0]
    return Atoms(symbols=symbols, positions=pos, cell=cell, pbc=True), np.array(owner)


def column_means(configs_pos, owner, n_sites):
    """(n_cfg, N, 2) mean projected position of each site's atoms (NaN where empty), Å."""
    counts = np.bincount(owner, minlength=n_sites).astype(float)
    out = np.full((len(configs_pos), n_sites, 2), np.nan)
    for k, pos in enumerate(configs_pos):
        for ax in range(2):
            s = np.bincount(owner, weights=pos[:, ax], minlength=n_sites)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[k, :, ax] = s / counts
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=4)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "data" / "tmd.npz"))
    ap.add_argument("--seed", type=int, default=20260)
    args = ap.parse_args(argv)

    # three slices: bottom S, Mo, top S (the monolayer needs no more; each slice costs a pass)
    mic = Microscope(slice_thickness_A=(2 * (0.5 + S_HALF_GAP)) / 3)
    xy_A, site, box = build_sites()
    cls, which = place_defects(xy_A, site, box, args.seed)
    atoms, owner = build_atoms(xy_A, cls, which, box)
    present = np.bincount(owner, minlength=len(xy_A)) > 0
    sites = Site(xy_A, cls, site, present, CLASS_NAMES, SITE_NAMES)

    cfg_pos = displaced_configs(atoms.positions, atoms.numbers, SIGMAS_A, args.configs,
                                args.seed + 1)
    configs = []
    for pos in cfg_pos:
        a = atoms.copy()
        a.positions = pos
        a.wrap()
        configs.append(a)

    out_gpts = tuple(int(round(L / mic.pixel_size_A)) for L in box)
    px_x, px_y = box[0] / out_gpts[0], box[1] / out_gpts[1]
    print(f"TMD: {len(atoms)} atoms, {len(xy_A)} sites, image {out_gpts[1]}x{out_gpts[0]} px, "
          f"{args.configs} configs")
    t0 = time.perf_counter()
    adf, seconds = simulate(configs, mic, out_gpts)
    t_sim = time.perf_counter() - t0
    clean, image = dose_series(adf, args.seed + 2)

    to_px = np.array([px_x, px_y])
    xy_px = xy_A / to_px
    ph = column_means(cfg_pos, owner, len(xy_A))
    ph_px = ph / to_px  # unwrapped positions: no site is near an edge, so means are fine

    meta = {
        "set": "tmd",
        "material": "MoS2 monolayer (2H), defects S1, SeS, V_S2, V_Mo, Mo_S",
        "a_A": A_LAT,
        "s_half_gap_A": S_HALF_GAP,
        "cells": N_CELLS,
        "box_A": box.tolist(),
        "pixel_size_xy_A": [px_x, px_y],
        "microscope": microscope_meta(mic),
        "frozen_phonons": {"n_configs": args.configs, "sigma_per_axis_A": SIGMAS_A},
        "defects": N_DEFECTS,
        "defect_rules": "random (seed), >= 3.4 Å apart, >= 3.5 Å from the edges",
        "counts": counts_table(sites),
        "dose": dose_meta(adf, px_x),
        "seed": args.seed,
        "simulation_seconds": t_sim,
        "seconds_per_config": seconds,
        "xy_convention": "x along axis 1, y along axis 0, pixel centre i at i * pixel size",
    }
    floor = write_set(args.out, clean=clean, image=image, pixel_size_A=px_x, sites=sites,
                      px_xy=xy_px, phonon_xy_px=ph_px, meta=meta)
    print(json.dumps(meta["counts"]))
    print(f"floor_rmse_px {floor:.3f}; simulation {t_sim:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
