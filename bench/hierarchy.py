"""Benchmark of the motif hierarchy through ``analyze`` with default parameters (issue 11).

Everything runs ``motifcat.ingest.pipeline.analyze(Micrograph, AnalysisParams())`` (defaults:
detected columns, not true positions) on the committed sets ``bench/data/tmd.npz`` (multislice
MoS2 with point defects), ``perovskite.npz`` (multislice SrTiO3 [001]) and
``coarse_cairo.npz`` (Cairo pentagonal tiling at ~1 Å/px):

* **Units = rings of the true structure.** True rings from the sites of each set: the
  hexagons of the honeycomb (a removed column merges its three into a dodecagon), the squares
  Sr-TiO-Sr-TiO of the visible perovskite columns (O columns are not detected: reported
  apart), the pentagons of the Cairo tiling (with their centre column when filled, from the
  generator's truth). A true ring is *eligible* when its sites and those of every ring sharing
  an edge with it were detected with a level-1 label (units on the outer boundary of the graph
  are not counted by design). Recall = eligible true rings found as a unit with exactly their
  columns; precision = found units that are true rings; fill accuracy (Cairo) = found
  pentagons whose interior is exactly the true centre column or empty.
* **Vocabulary.** Level-2 / level-3 class counts, the share of units in the 10 largest level-2
  classes and of composites in the 30 largest level-3 classes, families and the support report
  (``Hierarchy.support``), per dose.
* **Cairo level 3.** Groups of four pentagons around 4-valent vertices per fill pattern against
  the generator's truth (eligible groups: four eligible pentagons and a detected centre).
* **Time.** ``analyze`` with and without the hierarchy and the mean images' share, on the sets
  and on a synthetic 2048² MoS2-like image (``motifcat.datasets.make_tmd``), against
  motif-learn's route on the same image (``bench/_peers.py``); scaling of ``build_hierarchy``
  (true positions and classes, image given) at 2k², 4k², 8k² (16k² with ``--huge``), each
  size in a fresh process.

Run: ``python bench/hierarchy.py [--quick] [--no-peer] [--huge]``; writes
``bench/results/hierarchy.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from motifcat.ingest.hierarchy import build_hierarchy  # noqa: E402
from motifcat.ingest.model import AnalysisParams, Micrograph  # noqa: E402
from motifcat.ingest.pipeline import analyze  # noqa: E402

DATA = ROOT / "bench" / "data"
OUT = ROOT / "bench" / "results" / "hierarchy.md"
PATTERNS = ["0", "1", "2-adjacent", "2-opposite", "3", "4"]


# --------------------------------------------------------------------------- data and truth


def load_set(name: str) -> dict:
    with np.load(DATA / f"{name}.npz") as z:
        d = {k: z[k] for k in z.files}
    d["meta"] = json.loads(str(d["meta_json"]))
    d["name"] = name
    return d


def _ordered(xy: np.ndarray, ring: np.ndarray) -> np.ndarray:
    c = xy[ring].mean(axis=0)
    ang = np.arctan2(xy[ring, 1] - c[1], xy[ring, 0] - c[0])
    return ring[np.argsort(ang)]


def _nn(xy: np.ndarray) -> float:
    return float(np.median(cKDTree(xy).query(xy, k=2)[0][:, 1]))


def tmd_rings(d: dict) -> list[tuple[np.ndarray, int]]:
    """Hexagons with all six sites present; dodecagons around each removed column."""
    xy, site, present = d["xy"], d["site"], d["present"].astype(bool)
    nn = _nn(xy)
    tree = cKDTree(xy)
    metal = np.flatnonzero(site == 0)
    centres = []
    for m in metal:
        nb = [j for j in tree.query_ball_point(xy[m], 1.2 * nn) if site[j] == 1]
        for a in range(len(nb)):
            for b in range(a + 1, len(nb)):
                centres.append(xy[nb[a]] + xy[nb[b]] - xy[m])
    centres = np.array(centres)
    keep = np.ones(len(centres), bool)
    ct = cKDTree(centres)
    for i, j in sorted(ct.query_pairs(0.3 * nn)):
        keep[max(i, j)] = False
    hexes = []
    for c in centres[keep]:
        ring = np.array(tree.query_ball_point(c, 1.2 * nn))
        if len(ring) == 6:
            hexes.append(_ordered(xy, ring))
    rings = [(h, -1) for h in hexes if present[h].all()]
    for v in np.flatnonzero(~present):
        around = [h for h in hexes if v in h]
        if len(around) == 3:
            cols = np.unique(np.concatenate(around))
            cols = cols[cols != v]
            if len(cols) == 12 and present[cols].all():
                rings.append((_ordered(xy, cols), -1))
    return rings


def perovskite_rings(d: dict) -> list[tuple[np.ndarray, int]]:
    """Squares Sr-TiO-Sr-TiO (side a/sqrt 2) of the visible columns (A and B sites)."""
    xy, site = d["xy"], d["site"]
    vis = np.flatnonzero(site < 2)
    nn = _nn(xy[vis])  # Sr-TiO
    tree = cKDTree(xy[vis])
    a_sites = vis[site[vis] == 0]
    at = cKDTree(xy[a_sites])
    rings = []
    for i, j in sorted(at.query_pairs(1.5 * nn)):
        dist = np.linalg.norm(xy[a_sites[i]] - xy[a_sites[j]])
        if abs(dist - np.sqrt(2) * nn) > 0.2 * nn:
            continue
        c = 0.5 * (xy[a_sites[i]] + xy[a_sites[j]])
        ring = vis[np.array(tree.query_ball_point(c, 0.8 * nn))]
        if len(ring) == 4 and (site[ring] == 1).sum() == 2:
            rings.append((_ordered(xy, ring), -1))
    return rings


def cairo_truth(d: dict):
    from motifcat.datasets import make_cairo

    p = dict(d["meta"]["params"])
    p["shape"] = tuple(p["shape"])
    syn = make_cairo(**p)
    if not np.allclose(syn.xy, d["xy"]):
        raise RuntimeError("coarse_cairo.npz does not match make_cairo with its own params")
    t = syn.truth
    rings = [(np.asarray(r), int(c)) for r, c in zip(t["pentagons"], t["centre_column"],
                                                     strict=True)]
    return rings, t


def match_columns(d: dict, xy_found: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Detected column of every true site (-1: none within 0.3 nn, or no level-1 label)."""
    xy = d["xy"]
    nn = _nn(xy[d["present"].astype(bool)])
    dist, near = cKDTree(xy_found).query(xy)
    col = np.where((dist < 0.3 * nn) & d["present"].astype(bool), near, -1)
    col[col >= 0] = np.where(labels[col[col >= 0]] >= 0, col[col >= 0], -1)
    return col


def unit_table(h):
    """ring vertex set -> (unit index, interior columns)."""
    l2 = h.levels[0]
    found = {}
    for i in range(len(l2)):
        m = l2.members(i)
        n = int(l2.classes[l2.instance_class[i]].key.split("[")[0])
        found[frozenset(m[:n].tolist())] = (i, m[n:])
    return found


def ring_scores(rings, col, h) -> dict:
    """Recall, precision and fill accuracy of the units against the true rings."""
    edge_rings: dict[tuple[int, int], list[int]] = {}
    for k, (r, _) in enumerate(rings):
        for a, b in zip(r, np.roll(r, -1), strict=True):
            edge_rings.setdefault((min(a, b), max(a, b)), []).append(k)
    own_ok = np.array([(col[r] >= 0).all() and (c < 0 or col[c] >= 0) for r, c in rings])
    elig = np.zeros(len(rings), bool)
    for k, (r, _) in enumerate(rings):
        if not own_ok[k]:
            continue
        ok = True
        for a, b in zip(r, np.roll(r, -1), strict=True):
            nbs = [j for j in edge_rings[(min(a, b), max(a, b))] if j != k]
            ok &= len(nbs) == 1 and own_ok[nbs[0]]
        elig[k] = ok
    found = unit_table(h)
    hit = np.zeros(len(rings), bool)
    right = np.zeros(len(rings), bool)
    true_sets = set()
    for k, (r, c) in enumerate(rings):
        if not own_ok[k]:
            continue
        key = frozenset(col[r].tolist())
        true_sets.add(key)
        if elig[k] and key in found:
            hit[k] = True
            interior = found[key][1].tolist()
            right[k] = interior == ([int(col[c])] if c >= 0 else [])
    n_found = len(found)
    good = sum(1 for s in found if s in true_sets)
    return dict(eligible=int(elig.sum()), truth=len(rings), recall=hit[elig].mean(),
                precision=good / max(n_found, 1), fill_acc=right[hit].mean(), found=n_found)


def pattern_name(filled: np.ndarray) -> str:
    n = int(filled.sum())
    if n == 2:
        return "2-opposite" if filled[0] == filled[2] else "2-adjacent"
    return str(n)


def cairo_groups(t: dict, col: np.ndarray, rings, h) -> dict:
    """Level-3 stars of four pentagons per fill pattern against the truth."""
    own_ok = np.array([(col[r] >= 0).all() and (c < 0 or col[c] >= 0) for r, c in rings])
    adj = t["pentagon_adjacency"]
    n_adj = np.bincount(adj.ravel(), minlength=len(rings))
    nb_ok = own_ok.copy()
    for a, b in adj:
        nb_ok[a] &= own_ok[b]
        nb_ok[b] &= own_ok[a]
    elig = nb_ok & (n_adj == 5)
    groups, gv = t["groups_4"], t["group_vertex"]
    g_ok = elig[groups].all(1) & (col[gv] >= 0)
    truth = Counter(t["group_pattern"][g_ok].tolist())
    l2, l3 = h.levels
    n_ring = np.array([int(l2.classes[k].key.split("[")[0]) for k in l2.instance_class])
    unit_filled = np.diff(l2.members_indptr) > n_ring
    star_at = {}
    for i in range(len(l3)):
        c = l3.classes[l3.instance_class[i]]
        if c.key.startswith("S<") and len(l3.members(i)) == 4:
            star_at[int(cKDTree(h.structure.xy).query(l3.instance_xy[i])[1])] = (i, c)
    mine, keys, fams, agree = Counter(), {p: set() for p in PATTERNS}, {p: set() for p in
                                                                        PATTERNS}, 0
    for v, pat in zip(gv[g_ok], t["group_pattern"][g_ok], strict=True):
        star = star_at.get(int(col[v]))
        if star is None:
            continue
        i, c = star
        name = pattern_name(unit_filled[l3.members(i)])
        mine[name] += 1
        keys[name].add(c.key)
        fams[name].add(c.family)
        agree += name == pat
    return dict(truth=truth, mine=mine, keys=keys, families=fams, agree=agree,
                n_groups=int(g_ok.sum()))


# --------------------------------------------------------------------------- runs


def timed_analyze(mg: Micrograph, params: AnalysisParams):
    stages: dict[str, float] = {}
    last = [time.perf_counter(), "lattice"]

    def progress(stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if stage != last[1]:
            stages[last[1]] = stages.get(last[1], 0.0) + now - last[0]
            last[:] = [now, stage]

    c0, t0 = time.process_time(), time.perf_counter()
    a = analyze(mg, params, progress=progress)
    return a, time.perf_counter() - t0, time.process_time() - c0, stages


def mean_image_seconds(a) -> tuple[float, float]:
    """CPU seconds of build_hierarchy on the analysis' columns without and with the image."""
    out = []
    for img in (None, a.micrograph.data):
        c0 = time.process_time()
        build_hierarchy(a.columns.xy, a.labels, spacing_px=a.lattice.spacing_px, image=img)
        out.append(time.process_time() - c0)
    return out[0], out[1]


def vocab_row(h) -> dict:
    l2, l3 = h.levels
    c2 = np.array([c.count for c in l2.classes])
    c3 = np.array([c.count for c in l3.classes])
    return dict(n2=len(c2), top10=c2[:10].sum() / max(c2.sum(), 1), n3=len(c3),
                top30=c3[:30].sum() / max(c3.sum(), 1), first=l2.classes[0].key if len(c2)
                else "", sup=h.support)


def synthetic_2k_set(size: int, path: Path):
    """make_tmd at ``size``² in the benchmark data contract (dose 1 only), for the peer."""
    from motifcat.datasets import make_tmd

    syn = make_tmd((size, size), seed=3)
    present = syn.column_class >= 0
    np.savez(path, image=syn.image[None].astype(np.float32), doses=np.array([1.0]),
             clean=syn.clean.astype(np.float32), xy=syn.xy,
             cls=np.where(present, syn.column_class, 0), class_names=np.array(syn.class_names),
             site=syn.site, site_names=np.array(["metal", "chalcogen"]), present=present,
             pixel_size_A=np.float64(syn.truth.get("pixel_size_A", 0.15)),
             meta_json=np.array(json.dumps({"source": "motifcat.datasets.make_tmd",
                                            "size": size, "seed": 3})))
    return syn


def scaling_one(size: int) -> dict:
    """In a fresh process: build_hierarchy on make_tmd's true columns at size² (with image)."""
    from motifcat.datasets import make_tmd

    syn = make_tmd((size, size), seed=size, noise=False)
    keep = syn.column_class >= 0
    xy, lab = syn.xy[keep], syn.column_class[keep]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"size": size, "columns": int(len(xy))}
    for img in (False, True):
        c0, t0 = time.process_time(), time.perf_counter()
        h = build_hierarchy(xy, lab, image=syn.image if img else None)
        out["cpu_img" if img else "cpu"] = time.process_time() - c0
        out["wall_img" if img else "wall"] = time.perf_counter() - t0
    out["units"] = len(h.levels[0])
    out["composites"] = len(h.levels[1])
    out["classes"] = [len(lv.classes) for lv in h.levels]
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["base_rss_mb"] = base / 1024
    return out


def run_sub(args: list[str]) -> dict:
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                       cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="dose 1 only, scaling 2k and 4k")
    ap.add_argument("--no-peer", action="store_true", help="skip motif-learn")
    ap.add_argument("--huge", action="store_true", help="also scale to 16k²")
    ap.add_argument("--scaling-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--analyze-one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.scaling_one:
        print(json.dumps(scaling_one(args.scaling_one)))
        return ""
    params = AnalysisParams()
    lines = ["# Motif hierarchy benchmark (issue 11)", "",
             "Everything through `analyze(Micrograph, AnalysisParams())` with defaults "
             f"(min_support {params.min_support}, defect_majority {params.defect_majority}): "
             "detected columns, not true positions. `python bench/hierarchy.py` "
             "(machine: 2 cores shared by 8 jobs; CPU seconds are the fairer figure).", ""]
    doses_idx = [0] if args.quick else [0, 2, 4]

    # ---- units and vocabulary on the three sets
    ring_rows, vocab_rows, time_rows, fam_lines = [], [], [], []
    cairo_rows = []
    for name in ("tmd", "perovskite", "coarse_cairo"):
        d = load_set(name)
        t = None
        if name == "tmd":
            rings = tmd_rings(d)
        elif name == "perovskite":
            rings = perovskite_rings(d)
        else:
            rings, t = cairo_truth(d)
        for di in doses_idx:
            dose = float(d["doses"][di])
            mg = Micrograph(d["image"][di].astype(np.float32), float(d["pixel_size_A"]))
            a, wall, cpu, stages = timed_analyze(mg, params)
            h = a.hierarchy
            col = match_columns(d, a.columns.xy, a.labels)
            s = ring_scores(rings, col, h)
            ring_rows.append(
                f"| {name} | {dose:g} | {len(a.columns)} / {int(d['present'].sum())} | "
                f"{s['truth']} | {s['eligible']} | {s['found']} | {s['recall']:.4f} | "
                f"{s['precision']:.4f} | {s['fill_acc']:.4f} |")
            v = vocab_row(h)
            sp = v["sup"]
            vocab_rows.append(
                f"| {name} | {dose:g} | {len(a.classes)} | {v['n2']} | {pct(v['top10'])} | "
                f"{v['n3']} | {pct(v['top30'])} | `{v['first']}` | "
                f"{sp['level2']['frequent']} / {sp['level2']['families']} | "
                f"{sp['level3']['frequent']} / {sp['level3']['families']} | "
                f"{sp['dominant_fraction']:.2f} |")
            if di == 0:
                mi0, mi1 = mean_image_seconds(a)
                a0, wall0, cpu0, _ = timed_analyze(mg, AnalysisParams(hierarchy=False))
                time_rows.append(
                    f"| {name} | {len(a.columns)} | {cpu0:.2f} | {cpu:.2f} | "
                    f"{cpu / cpu0:.2f} | {stages.get('hierarchy', 0):.2f} | "
                    f"{max(mi1 - mi0, 0):.2f} ({pct(max(mi1 - mi0, 0) / cpu)}) |")
                fams = Counter()
                for c in h.levels[1].classes:
                    fams[c.family] += c.count
                fam_lines.append(f"**{name}**, dose 1: level-3 families by instances "
                                 f"(of {sp['level3']['families']}): " + "; ".join(
                                     f"`{f[:90]}` {n}" for f, n in fams.most_common(6)))
            if t is not None:
                g = cairo_groups(t, col, rings, h)
                for p in PATTERNS:
                    tr, mi = g["truth"].get(p, 0), g["mine"].get(p, 0)
                    err = abs(mi - tr) / tr if tr else float(mi > 0)
                    cairo_rows.append(f"| {dose:g} | {p} | {tr} | {mi} | {pct(err)} | "
                                      f"{len(g['keys'][p])} | {len(g['families'][p])} |")
            print(f"{name} dose {dose:g}: {wall:.1f} s wall", flush=True)

    lines += ["## Units against the rings of the true structure", "",
              "| set | dose | columns found / true | true rings | eligible | units found | "
              "recall | precision | fill accuracy |", "|---|---|---|---|---|---|---|---|---|"]
    lines += ring_rows
    lines += ["", "Rings: tmd hexagons (+ dodecagons at removed columns); perovskite squares "
              "Sr-TiO-Sr-TiO (the O columns, 'nearly invisible', are not detected and not "
              "counted); coarse_cairo pentagons with fill from the generator's truth.", ""]
    lines += ["## Vocabulary (support report of `Hierarchy.support`)", "",
              "| set | dose | L1 classes | L2 classes | 10 largest L2 | L3 classes | 30 largest "
              "L3 | most common unit | L2 frequent / families | L3 frequent / families | "
              "dominant unit share |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += vocab_rows
    lines += [""] + [f"- {x}" for x in fam_lines] + [""]
    lines += ["## Cairo (coarse_cairo): level-3 groups of four pentagons per fill pattern", "",
              "Pattern of a found star from the fill flags of its units; 'keys' / 'families' = "
              "distinct level-3 keys / families of those stars.", "",
              "| dose | pattern | truth | found | error | keys | families |",
              "|---|---|---|---|---|---|---|"]
    lines += cairo_rows
    lines += ["", "## Time on the sets (CPU s, dose 1)", "",
              "| set | columns | analyze without hierarchy | with | ratio | hierarchy stage "
              "(wall) | mean images (share of analyze) |", "|---|---|---|---|---|---|---|"]
    lines += time_rows

    # ---- 2k² synthetic: analyze with/without, motif-learn
    size = 2048
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tmd2k.npz"
        syn = synthetic_2k_set(size, path)
        mg = syn.micrograph()
        _, w0, c0, st0 = timed_analyze(mg, AnalysisParams(hierarchy=False))
        a1, w1, c1, st1 = timed_analyze(mg, AnalysisParams())
        mi0, mi1 = mean_image_seconds(a1)
        peer, peer_cpu = None, float("nan")
        if not args.no_peer:
            try:
                from bench import _peers

                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                r = _peers.run_peer("motiflearn", str(path), doses=[1.0])
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                peer = float(r["seconds"][0])
                # CPU of the whole peer process (imports, numba warm-up and loading included:
                # an upper bound of its route's CPU).
                peer_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                peer = f"not run: {str(exc)[:200]}"
    lines += ["", f"## Time on a synthetic {size}² MoS2-like image (make_tmd, "
              f"{len(a1.columns)} columns)", "",
              "| run | wall s | CPU s |", "|---|---|---|",
              f"| analyze, hierarchy off | {w0:.2f} | {c0:.2f} |",
              f"| analyze, hierarchy on | {w1:.2f} | {c1:.2f} |",
              f"| of which hierarchy stage | {st1.get('hierarchy', 0):.2f} | |",
              f"| build_hierarchy mean images alone | | {max(mi1 - mi0, 0):.2f} |"]
    if isinstance(peer, float):
        lines.append(f"| motif-learn route (patches, ZPs, ForceGraph8, seg_lbs; true sites; "
                     f"CPU = its whole process) | {peer:.2f} | {peer_cpu:.2f} |")
    v = vocab_row(a1.hierarchy)
    lines += ["", f"- analyze with / without hierarchy: {c1 / c0:.2f}× (CPU), "
              f"{w1 / w0:.2f}× (wall)",
              f"- mean images: {pct(max(mi1 - mi0, 0) / c1)} of analyze (CPU)",
              f"- vocabulary: {len(a1.classes)} level-1, {v['n2']} level-2 classes (10 largest "
              f"{pct(v['top10'])}), {v['n3']} level-3 classes (30 largest {pct(v['top30'])}), "
              f"most common unit `{v['first']}`; level-3 families "
              f"{v['sup']['level3']['families']}"]
    if isinstance(peer, float):
        lines.append(f"- motif-learn / analyze with hierarchy: {peer_cpu / c1:.2f}× (CPU), "
                     f"{peer / w1:.2f}× (wall; the shared machine makes wall times "
                     "unreliable)")
    elif peer is not None:
        lines.append(f"- motif-learn {peer}")
    print("2k done", flush=True)

    # ---- scaling of build_hierarchy
    sizes = [2048, 4096] if args.quick else [2048, 4096, 8192]
    if args.huge:
        sizes.append(16384)
    rows = []
    for sz in sizes:
        try:
            r = run_sub(["--scaling-one", str(sz)])
        except Exception as exc:  # noqa: BLE001
            rows.append(f"| {sz}² | failed: {str(exc)[-150:]} | | | | | |")
            continue
        rows.append(f"| {sz}² | {r['columns']} | {r['units']} / {r['composites']} | "
                    f"{r['classes'][0]} / {r['classes'][1]} | {r['cpu']:.2f} | "
                    f"{r['cpu_img']:.2f} | {1e6 * r['cpu_img'] / r['columns']:.1f} | "
                    f"{r['rss_mb']:.0f} |")
        print(f"scaling {sz}: {r}", flush=True)
    lines += ["", "## Scaling of `build_hierarchy` (true columns of make_tmd, fresh process per "
              "size)", "",
              "| image | columns | units / composites | L2 / L3 classes | CPU s, no image | "
              "CPU s, with mean images | µs per column | peak RSS MB (incl. synthesis) |",
              "|---|---|---|---|---|---|---|---|"]
    lines += rows
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
