"""Benchmark of the motif hierarchy against synthetic ground truth (issue 3).

* Cairo pentagonal tiling (``motifcat.datasets.make_cairo``) at full and low dose: pentagon recall,
  filled/empty accuracy and the level-3 groups of four pentagons around 4-valent vertices per
  fill pattern, against ``truth``. The real pipeline (``pipeline.analyze``) is run when it
  exists; otherwise the true column positions with one label per column type are used (said
  in the output).
* TMD with defects (``motifcat.datasets.make_tmd``): the defect motifs found at levels 2 and 3.
* Time of ``build_hierarchy`` for ~10,000 columns (true Cairo and TMD positions).

Eligible truth: a pentagon counts when its own columns (and centre) were detected with a
level-1 label (a border column without a patch has none) and its five neighbour pentagons
were detected, i.e. it is not on the outer boundary of the graph, where units are not
counted by design. A group of four counts when its four pentagons and its centre do.

Run: ``python bench/hierarchy.py [--quick]``; writes ``bench/results/hierarchy.md``.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from motifcat.datasets import make_cairo, make_tmd
from motifcat.ingest.hierarchy import build_hierarchy
from motifcat.ingest.model import AnalysisParams

try:
    from motifcat.ingest.pipeline import analyze
except ImportError:  # the pipeline is not there yet: ground-truth positions instead
    analyze = None

PATTERNS = ["0", "1", "2-adjacent", "2-opposite", "3", "4"]
OUT = Path(__file__).parent / "results" / "hierarchy.md"


def pattern_name(filled: np.ndarray) -> str:
    n = int(filled.sum())
    if n == 2:
        return "2-opposite" if filled[0] == filled[2] else "2-adjacent"
    return str(n)


def run(syn, dose: float, seed: int):
    """(xy, labels, hierarchy, source) for one image: the pipeline or the true columns."""
    img = syn.at_dose(dose, seed=seed) if dose != 1.0 else syn
    if analyze is not None:
        a = analyze(img.micrograph(), AnalysisParams())
        return a.columns.xy, a.labels, a.hierarchy, f"pipeline ({len(a.classes)} level-1 classes)"
    h = build_hierarchy(syn.xy, syn.column_class, label_names=syn.class_names,
                        image=img.image)
    return syn.xy, syn.column_class, h, "true positions, one label per column type"


def unit_table(h):
    """ring vertex set -> (unit index, interior columns), and each unit's filled flag."""
    l2 = h.levels[0]
    n_ring = np.array([int(l2.classes[k].key.split("[")[0]) for k in l2.instance_class],
                      dtype=int)
    found = {}
    for i in range(len(l2)):
        m = l2.members(i)
        found[frozenset(m[:n_ring[i]].tolist())] = (i, m[n_ring[i]:])
    return found, np.diff(l2.members_indptr) > n_ring


def cairo_scores(syn, xy, labels, h):
    t = syn.truth
    edge = t["edge_px"]
    dist, near = cKDTree(xy).query(syn.xy)
    matched = dist < 0.3 * edge
    col = np.where(matched, near, -1)  # truth column -> detected column
    ok_col = matched & (labels[np.maximum(col, 0)] >= 0)
    pents = t["pentagons"]
    centre = t["centre_column"]
    filled = t["filled"]
    own_ok = ok_col[pents].all(1) & ((centre < 0) | ok_col[np.maximum(centre, 0)])
    adj = t["pentagon_adjacency"]
    n_adj = np.bincount(adj.ravel(), minlength=len(pents))
    nb_ok = np.ones(len(pents), bool)
    detected = matched[pents].all(1)
    for a, b in adj:
        nb_ok[a] &= detected[b]
        nb_ok[b] &= detected[a]
    elig = own_ok & nb_ok & (n_adj == 5)
    found, unit_filled = unit_table(h)
    hit = np.zeros(len(pents), bool)
    right = np.zeros(len(pents), bool)
    unit_of = np.full(len(pents), -1)
    for p in np.flatnonzero(elig):
        key = frozenset(col[pents[p]].tolist())
        if key in found:
            i, interior = found[key]
            hit[p] = True
            unit_of[p] = i
            want = [col[centre[p]]] if filled[p] else []
            right[p] = interior.tolist() == want
    recall = hit[elig].mean()
    acc = right[hit].mean()
    # Groups of four around 4-valent vertices.
    groups, gv = t["groups_4"], t["group_vertex"]
    g_ok = elig[groups].all(1) & ok_col[gv]
    truth_counts = Counter(t["group_pattern"][g_ok].tolist())
    l3 = h.levels[1]
    star_at = {}
    for i in range(len(l3)):
        key = l3.classes[l3.instance_class[i]].key
        if key.startswith("S<") and len(l3.members(i)) == 4:
            c = int(np.argmin(np.linalg.norm(xy - l3.instance_xy[i], axis=1)))
            star_at[c] = (i, key)
    mine = Counter()
    keys_of = {p: set() for p in PATTERNS}
    agree = 0
    for v, pat in zip(gv[g_ok], t["group_pattern"][g_ok], strict=True):
        star = star_at.get(int(col[v]))
        if star is None:
            continue
        i, key = star
        name = pattern_name(unit_filled[l3.members(i)])
        mine[name] += 1
        keys_of[name].add(key)
        agree += name == pat
    return dict(recall=recall, n_elig=int(elig.sum()), acc=acc, truth=truth_counts, mine=mine,
                keys_of=keys_of, agree=agree, n_groups=int(g_ok.sum()))


def tmd_report(syn, xy, labels, h, top: int = 8):
    """Level-2 classes, the defect composites, and dodecagons against truth."""
    l2, l3 = h.levels
    lines = ["| level | key or composition | count |", "|---|---|---|"]
    for c in l2.classes:
        lines.append(f"| 2 | `{c.key}` | {c.count} |")
    defect3 = [c for c in l3.classes if c.key[0] in "NC"]
    for c in defect3[:top]:
        comp = ", ".join(f"{m}× `{l2.classes[k].key}`" for k, m in sorted(c.composed_of.items()))
        lines.append(f"| 3 | {comp} | {c.count} |")
    if len(defect3) > top:
        rest = sum(c.count for c in defect3[top:])
        lines.append(f"| 3 | ... {len(defect3) - top} more defect classes | {rest} |")
    # Dodecagons (removed columns) that lie where units are counted: all columns labelled.
    tf = syn.truth["faces"]
    dist, near = cKDTree(xy).query(syn.xy)
    ok = (dist < 0.3 * syn.truth["nn_distance_px"]) & (labels[near] >= 0)
    sizes = np.diff(tf["indptr"])
    n_truth = sum(
        1 for k in np.flatnonzero(sizes == 12)
        if ok[tf["indices"][tf["indptr"][k]:tf["indptr"][k + 1]]].all())
    n_found = sum(c.count for c in l2.classes if c.key.startswith("12["))
    lines += ["", f"Dodecagons (a removed column): found {n_found}, truth {n_truth} with all "
              f"columns labelled; {len(defect3)} defect-neighbourhood classes, "
              f"{sum(c.count for c in defect3)} instances."]
    return lines


def timing(n_target: int, repeat: int = 3):
    """Seconds of build_hierarchy for ~n_target columns (true Cairo / TMD positions)."""
    out = {}
    side = int(np.sqrt(n_target / 883.0) * 512)
    cairo = make_cairo((side, side), noise=False, seed=11)
    tmd = make_tmd((int(side * 0.84), int(side * 0.84)), noise=False, seed=11)
    for name, syn in (("Cairo", cairo), ("TMD", tmd)):
        for with_image in (False, True):
            best = np.inf
            cpu = np.inf
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                build_hierarchy(syn.xy, syn.column_class,
                                image=syn.image if with_image else None)
                best = min(best, time.perf_counter() - t0)
                cpu = min(cpu, time.process_time() - c0)
            out[(name, with_image)] = (len(syn.xy), best, cpu)
    return out


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller images, one timing repeat")
    args = ap.parse_args(argv)
    size = 384 if args.quick else 512
    lines = ["# Motif hierarchy benchmark (issue 3)", ""]
    syn = make_cairo((size, size), fill_fraction=0.5, seed=1)
    doses = (1.0, 0.1, 0.02)
    lines += [f"Cairo tiling {size}×{size} px, edge {syn.truth['edge_px']:.1f} px, "
              f"{len(syn.xy)} columns, fill fraction 0.5; doses {doses} (relative).", ""]
    lines += ["| dose | source | eligible pentagons | pentagon recall | filled/empty accuracy "
              "| groups of 4 | pattern agreement |", "|---|---|---|---|---|---|---|"]
    pattern_rows = []
    for dose in doses:
        t0 = time.perf_counter()
        xy, labels, h, source = run(syn, dose, seed=5)
        el = time.perf_counter() - t0
        s = cairo_scores(syn, xy, labels, h)
        lines.append(f"| {dose} | {source} | {s['n_elig']} | {s['recall']:.4f} | "
                     f"{s['acc']:.4f} | {s['n_groups']} | {s['agree']}/{s['n_groups']} |")
        for p in PATTERNS:
            tr, mi = s["truth"].get(p, 0), s["mine"].get(p, 0)
            err = abs(mi - tr) / tr if tr else float(mi > 0)
            pattern_rows.append(f"| {dose} | {p} | {tr} | {mi} | {100 * err:.1f} % | "
                                f"{len(s['keys_of'][p])} |")
        print(f"cairo dose {dose}: {el:.1f} s", flush=True)
    lines += ["", "Level-3 groups of four pentagons around 4-valent vertices, per fill pattern "
              "(pattern of the found star from the fill flags of its units; 'keys' = distinct "
              "level-3 keys of those stars, > 1 when level-1 classes split a column type):", "",
              "| dose | pattern | truth | found | error | keys |", "|---|---|---|---|---|---|"]
    lines += pattern_rows

    tmd = make_tmd((size, size), seed=2)
    lines += ["", f"TMD {size}×{size} px with defects {tmd.truth['defect_counts']}."]
    xy, labels, h, source = run(tmd, 1.0, seed=5)
    lines += ["", f"From {source}:", ""]
    lines += tmd_report(tmd, xy, labels, h)
    h_true = build_hierarchy(tmd.xy, tmd.column_class, label_names=tmd.class_names)
    lines += ["", "From the true positions and column types (names as in the generator):", ""]
    lines += tmd_report(tmd, tmd.xy, tmd.column_class, h_true)
    truth_h = tmd.truth["hierarchy"]["per_defect"]
    lines += ["", "Truth per defect: " + "; ".join(
        f"{k}: {v['level3']}" for k, v in truth_h.items())]

    lines += ["", "Time of `build_hierarchy` (best of repeats; wall and CPU seconds; the "
              "machine is shared, CPU time is the fairer figure):", "",
              "| tiling | columns | mean images | wall s | CPU s |", "|---|---|---|---|---|"]
    for (name, img), (n, wall, cpu) in timing(10_000, 1 if args.quick else 3).items():
        lines.append(f"| {name} | {n} | {'yes' if img else 'no'} | {wall:.2f} | {cpu:.2f} |")
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
