"""Level-1 classes benchmark (issue 10): chemistry, rare defects, dose, tiling, peers, speed.

On every benchmark set (``bench/data/<set>.npz``, the data contract of COMMON.md; default:
the sets present among ``tmd``, ``perovskite``, ``coarse``; ``--synthetic`` adds the project's
synthetic MoSe2 generator) and at each of its doses (1, 1/2, 1/5, 1/10, 1/20, 1/50, 1/100):

* the columns are the *present true sites*, refined at that dose by the column model
  (``ingest.columns.model_columns``: position, width, cross-section), so that the classes are
  measured on their own (the paper's Fig. 1 protocol: the same columns, the image of that dose);
* ``analyze(..., hierarchy=False)`` labels them with the Zernike descriptor and with the PCA
  baseline (same pipeline, same clusterer);
* printed per dose: site purity (strict: share of columns in classes that hold one site only;
  share: usual cluster purity by site), defect isolation (DESIGN.md: share of defect columns in
  classes whose majority is not a perfect-lattice class) next to its Poisson limit, FMI / AMI
  against the true classes, stability (FMI of the labels at dose d against full dose), number of
  classes against the true number, labelled fraction.

The **Poisson limit** of isolation is what an ideal classifier reaches on the *true* cross-
sections: it knows every column's true position and site, integrates the image of that dose over
a disk of 0.45 nearest-neighbour spacings around it, and assigns the column to the class (among
the classes of its site) of highest Gaussian likelihood, with each class's mean and variance of
that integral measured from the truth at that dose (an oracle: no classifier that sees only the
image can do better on cross-sections alone).

Then: the **clusterer comparison** on the same descriptors (two-stage site -> cross-section
mixture with ICL, HDBSCAN, a Dirichlet-process BayesianGaussianMixture, a kNN-graph spectral
embedding + HDBSCAN); the **tiling** test (one full-dose image tiled 1x1 ... 16x16, columns
detected, k each time); **motif-learn's route** (ForceGraph8 + seg_lbs, the paper's parameters,
in ``.bench-venv`` via ``bench/_peers.py``) with the same metrics; and **speed**: ``analyze``
without the hierarchy on a 2048² image against motif-learn's route per column.

Run: ``PYTHONPATH=. .venv/bin/python bench/classes.py [--sets tmd perovskite] [--synthetic]
[--no-peers] [--max-tile 16]``; writes ``bench/results/classes.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA
from sklearn.manifold import SpectralEmbedding
from sklearn.metrics import adjusted_mutual_info_score, fowlkes_mallows_score
from sklearn.mixture import BayesianGaussianMixture
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motifcat.ingest.cluster import MotifClusterer  # noqa: E402
from motifcat.ingest.columns.fit import (  # noqa: E402
    estimate_column_width,
    fit_gaussian_columns,
)
from motifcat.ingest.io import micrograph_from_array  # noqa: E402
from motifcat.ingest.model import AnalysisParams, Columns  # noqa: E402
from motifcat.ingest.pipeline import analyze  # noqa: E402

BENCH = Path(__file__).resolve().parent
DATA = BENCH / "data"
RESULTS = BENCH / "results"
DOSES = [1.0, 1 / 2, 1 / 5, 1 / 10, 1 / 20, 1 / 50, 1 / 100]
#: Names of perfect-lattice classes in the sets (everything else is a defect class).
PERFECT = {"M", "X2", "Mo", "S2", "Se2", "Sr", "TiO", "Ti-O", "O", "A", "B", "vertex", "centre"}


# --------------------------------------------------------------------------- metrics


def site_purity(labels, site):
    """(strict, share): columns in single-site classes; columns of their class's majority site."""
    strict = share = 0
    for k in np.unique(labels):
        s = site[labels == k]
        counts = np.bincount(s)
        strict += len(s) if (counts > 0).sum() == 1 else 0
        share += counts.max()
    return strict / len(labels), share / len(labels)


def defect_isolation(labels, truth, perfect_ids):
    """Share of defect columns whose class's majority (true class) is not a perfect class."""
    defect = ~np.isin(truth, perfect_ids)
    if not defect.any():
        return float("nan")
    majority = {k: np.bincount(truth[labels == k]).argmax() for k in np.unique(labels)}
    maj = np.array([majority[k] for k in labels[defect]])
    return float(np.mean(~np.isin(maj, perfect_ids)))


def disk_integrals(image, xy, radius):
    """Sum of the image over a disk of ``radius`` px around each (x, y) (nearest pixels)."""
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    inside = dx**2 + dy**2 <= radius**2
    dy, dx = dy[inside], dx[inside]
    h, w = image.shape
    yy = np.clip(np.rint(xy[:, 1])[:, None].astype(int) + dy[None], 0, h - 1)
    xx = np.clip(np.rint(xy[:, 0])[:, None].astype(int) + dx[None], 0, w - 1)
    return image[yy, xx].sum(axis=1).astype(np.float64)


def poisson_limit_isolation(image, xy, truth, site, perfect_ids, radius):
    """Isolation of the ideal cross-section classifier (see the module docstring)."""
    cs = disk_integrals(image, xy, radius)
    pred = np.empty_like(truth)
    for s in np.unique(site):
        m = site == s
        classes = np.unique(truth[m])
        mu = np.array([cs[m][truth[m] == c].mean() for c in classes])
        var = np.array([max(cs[m][truth[m] == c].var(), cs[m].mean() * 1e-6) for c in classes])
        loglik = -0.5 * (cs[m, None] - mu) ** 2 / var - 0.5 * np.log(var)
        pred[m] = classes[loglik.argmax(axis=1)]
    defect = ~np.isin(truth, perfect_ids)
    return float(np.mean(~np.isin(pred[defect], perfect_ids))) if defect.any() else float("nan")


def pairwise_limit(image, xy, truth, site, names, radius):
    """Accuracy of the ideal cross-section classifier between each pair of classes of one site
    (equal priors): how well the true cross-sections could tell two chemistries apart."""
    cs = disk_integrals(image, xy, radius)
    out = {}
    for s in np.unique(site):
        classes = [c for c in np.unique(truth[site == s]) if (truth == c).sum() >= 2]
        for i, a in enumerate(classes):
            for b in classes[i + 1 :]:
                xa, xb = cs[truth == a], cs[truth == b]
                ma, mb, va, vb = xa.mean(), xb.mean(), xa.var(), xb.var()

                def loglik(x, m, v):
                    return -0.5 * (x - m) ** 2 / v - 0.5 * np.log(v)

                acc_a = np.mean(loglik(xa, ma, va) > loglik(xa, mb, vb))
                acc_b = np.mean(loglik(xb, mb, vb) > loglik(xb, ma, va))
                out[f"{names[a]}/{names[b]}"] = 0.5 * (acc_a + acc_b)
    return out


def scores(labels, truth, site, perfect_ids, reference=None):
    ok = labels >= 0
    lab, tru, sit = labels[ok], truth[ok], site[ok]
    strict, share = site_purity(lab, sit)
    out = {
        "k": int(len(np.unique(lab))),
        "fmi": fowlkes_mallows_score(tru, lab),
        "ami": adjusted_mutual_info_score(tru, lab),
        "purity": strict,
        "purity_share": share,
        "isolation": defect_isolation(lab, tru, perfect_ids),
        "labelled": float(ok.mean()),
    }
    if reference is not None:
        both = ok & (reference >= 0)
        out["stability"] = fowlkes_mallows_score(reference[both], labels[both])
    return out


# --------------------------------------------------------------------------- data


def synthetic_set(size=512, seed=11):
    """The project's synthetic MoSe2 (motifcat.datasets) in the benchmark data contract."""
    from motifcat.datasets import make_tmd, poisson_dose

    syn = make_tmd((size, size), seed=seed, noise=False)
    clean = syn.clean.astype(np.float32)
    clean *= 100.0 / clean.mean()  # dose 1 = a mean of 100 counts/px, as the contract says
    rng = np.random.default_rng(seed)
    image = np.stack([poisson_dose(clean, d, rng=rng) for d in DOSES]).astype(np.float32)
    present = syn.column_class >= 0
    return {
        "image": image, "clean": clean, "doses": np.array(DOSES), "xy": syn.xy,
        "cls": np.where(present, syn.column_class, 0), "class_names": np.array(syn.class_names),
        "site": syn.site, "present": present, "pixel_size_A": syn.truth.get("pixel_size_A", 0.15),
        "name": "synthetic_MoSe2",
        "meta_json": json.dumps(
            {"source": "motifcat.datasets.make_tmd", "seed": seed, "size": size}
        ),
    }


def load_set(name):
    with np.load(DATA / f"{name}.npz") as z:
        d = {k: z[k] for k in z.files}
    d["name"] = name
    return d


# --------------------------------------------------------------------------- runs


def columns_at(img, xy, spacing):
    """The Gaussian column model fitted at fixed (true) positions: the paper's protocol of
    columns fixed while the dose changes, with motifcat's own cross-sections."""
    fit = fit_gaussian_columns(img, xy, estimate_column_width(img, xy, spacing))
    smooth = ndimage.gaussian_filter(img, 1.0)
    return Columns(
        xy=fit.xy,
        intensity=ndimage.map_coordinates(smooth, [fit.xy[:, 1], fit.xy[:, 0]], order=1),
        sigma=fit.sigma,
        height=fit.height,
        background=fit.background,
        cross_section=fit.cross_section,
        cross_section_err=fit.cross_section_err,
        xy_err=fit.xy_err,
    )


def renoised_k(d, i, cols, n_draws=3, seed=0):
    """Number of classes for ``n_draws`` fresh Poisson draws of the clean image at dose i
    (same columns): k must not depend on the noise realisation."""
    rng = np.random.default_rng(seed)
    ks = []
    for _ in range(n_draws):
        img = rng.poisson(np.clip(d["clean"], 0, None) * float(d["doses"][i])).astype(np.float32)
        mg = micrograph_from_array(img, pixel_size_A=float(d["pixel_size_A"]))
        ks.append(len(analyze(mg, AnalysisParams(hierarchy=False), columns=cols).classes))
    return ks


def run_set(d, features=("zernike", "pca"), renoise=0):
    """Per dose and descriptor: scores, plus the descriptors and labels for later stages."""
    present = d["present"].astype(bool)
    xy = d["xy"][present]
    truth = d["cls"][present].astype(int)
    site = d["site"][present].astype(int)
    names = [str(n) for n in d["class_names"]]
    perfect_ids = [i for i, n in enumerate(names) if n in PERFECT]
    nn = float(np.median(np.sort(np.linalg.norm(xy[:200, None] - xy[None], axis=2), 1)[:, 1]))
    rows, keep = [], {}
    reference = {}
    for i, dose in enumerate(d["doses"]):
        img = d["image"][i].astype(np.float32)
        cols = columns_at(img, xy, nn)
        limit = poisson_limit_isolation(img, xy, truth, site, perfect_ids, 0.45 * nn)
        pairs = pairwise_limit(img, xy, truth, site, names, 0.45 * nn)
        ks = renoised_k(d, i, cols, renoise) if renoise else []
        for feat in features:
            mg = micrograph_from_array(img, pixel_size_A=float(d["pixel_size_A"]))
            t = time.perf_counter()
            res = analyze(mg, AnalysisParams(hierarchy=False, features=feat), columns=cols)
            sec = time.perf_counter() - t
            ref = reference.get(feat)
            sc = scores(res.labels, truth, site, perfect_ids, ref)
            if ref is None:
                reference[feat] = res.labels
                sc["stability"] = 1.0
            # The same on the columns whose whole patch is inside the image (the model's
            # cross-sections of columns at the very edge are biased low, see the report).
            inner = scores(res.labels[res.has_patch], truth[res.has_patch],
                           site[res.has_patch], perfect_ids)
            sc.update(dose=float(dose), features=feat, limit=limit, seconds=sec,
                      isolation_inner=inner["isolation"], purity_inner=inner["purity_share"],
                      pairs=pairs)
            if feat == "zernike":
                sc["renoised_k"] = " ".join(str(k) for k in ks) if ks else ""
                tab = np.zeros((len(names), res.labels.max() + 1), int)
                np.add.at(tab, (truth, res.labels), 1)
                sc["confusion"] = "; ".join(
                    f"{names[c]}: " + " ".join(str(v) for v in tab[c])
                    for c in np.unique(truth)
                )
            rows.append(sc)
            keep[(feat, float(dose))] = (res.features, res.has_patch)
    true_k = len(np.unique(truth))
    return rows, keep, (truth, site, perfect_ids, true_k)


def compare_clusterers(keep, truth, site, perfect_ids, doses):
    """Candidate clusterers on the same (Zernike) descriptors, fitted on whole-patch columns."""
    rows = []
    for dose in doses:
        X, inner = keep[("zernike", float(dose))]
        Xi = X[inner]
        env = PCA(4, random_state=0).fit_transform(Xi[:, 1:])
        # Joint space for the one-stage candidates: cross-section and environment, standardised.
        Z = StandardScaler().fit_transform(np.c_[Xi[:, :1], env])
        cands = {
            "two-stage ICL (motifcat)": lambda Xi, Z: MotifClusterer().fit(Xi).labels_,
            "HDBSCAN": lambda Xi, Z: HDBSCAN(min_cluster_size=5).fit(Z).labels_,
            "BayesianGMM (DP, 10)": lambda Xi, Z: BayesianGaussianMixture(
                n_components=10, weight_concentration_prior=1e-3, random_state=0, max_iter=300
            ).fit(Z).predict(Z),
            "kNN spectral + HDBSCAN": lambda Xi, Z: HDBSCAN(min_cluster_size=5).fit(
                SpectralEmbedding(4, affinity="nearest_neighbors", n_neighbors=10,
                                  random_state=0).fit_transform(Z)
            ).labels_,
        }
        for name, fn in cands.items():
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lab = np.asarray(fn(Xi, Z))
            sec = time.perf_counter() - t
            # HDBSCAN's noise (-1) counts as unlabelled.
            sc = scores(lab, truth[inner], site[inner], perfect_ids)
            sc.update(dose=float(dose), clusterer=name, seconds=sec)
            rows.append(sc)
    return rows


def tiling(img, pixel_size_A, max_tile, max_pixels=26e6):
    """k for one full-dose image tiled n x n, n = 1, 2, 4, ... (columns detected by analyze)."""
    img = np.asarray(img, dtype=np.float32)
    out = []
    n = 1
    while n <= max_tile:
        tiled = np.tile(img, (n, n))
        if tiled.size > max_pixels:
            break
        mg = micrograph_from_array(tiled, pixel_size_A=float(pixel_size_A))
        t = time.perf_counter()
        res = analyze(mg, AnalysisParams(hierarchy=False, refine="model"))
        out.append({"tile": n, "shape": tiled.shape, "columns": len(res.columns),
                    "k": len(res.classes), "labelled": float((res.labels >= 0).mean()),
                    "seconds": time.perf_counter() - t})
        print(f"  tile {n}: k={out[-1]['k']} ({out[-1]['seconds']:.0f} s)", flush=True)
        del tiled, mg, res
        n *= 2
    return out


def periodic_synthetic():
    """The synthetic MoSe2 of tests/test_classes.py whose frame holds whole lattice periods
    (a = 15 px: 300 x 312 px = 20 x 12 periods), so that its tilings have no seam."""
    from motifcat.datasets import make_tmd

    px = 3.288 / 15
    syn = make_tmd((312, 300), pixel_size_A=px, seed=4, defects={"chalcogen_single": 0.03})
    return syn.image, px


def peers(d, truth, site, perfect_ids):
    """motif-learn's route via bench/_peers.py (None when the benchmark venv is missing)."""
    from bench import _peers

    venv = Path(os.environ.get("BENCH_PY", "/work/wt/bench/.bench-venv/bin/python"))
    if not _peers.BENCH_PY.exists() and venv.exists():
        _peers.BENCH_PY = venv
    path = DATA / f"{d['name']}.npz"
    tmp = None
    if not path.exists():  # the synthetic set: write it in the contract for the runner
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / f"{d['name']}.npz"
        np.savez(path, **{k: v for k, v in d.items() if k != "name"})
    try:
        r = _peers.run_peer("motiflearn", str(path))
    except Exception as exc:  # noqa: BLE001 - a peer failure is reported, not fatal
        return None, f"motif-learn not run: {exc}"
    present = d["present"].astype(bool)
    rows = []
    labels = np.asarray(r["labels"])
    if labels.shape[1] == len(present):  # one label per site: keep the present ones
        labels = labels[:, present]
    ref = labels[0]
    for i, dose in enumerate(r["doses"]):
        lab = labels[i]
        sc = scores(lab, truth, site, perfect_ids, ref)
        sc.update(dose=float(dose), seconds=float(r["seconds"][i]))
        rows.append(sc)
    return rows, None


def speed(motiflearn_s_per_column):
    """analyze without the hierarchy on a 2048² synthetic MoSe2 image (warm run)."""
    from motifcat.datasets import make_tmd

    syn = make_tmd((2048, 2048), seed=3)
    mg = syn.micrograph()
    analyze(mg, AnalysisParams(hierarchy=False))  # warm the caches (basis, FFT plans)
    out = {}
    for refine in ("com", "model"):
        t = time.perf_counter()
        res = analyze(mg, AnalysisParams(hierarchy=False, refine=refine))
        sec = time.perf_counter() - t
        out[refine] = {"seconds": sec, "columns": len(res.columns),
                       "per_column": sec / len(res.columns)}
        if motiflearn_s_per_column:
            out[refine]["speedup"] = motiflearn_s_per_column / out[refine]["per_column"]
    return out


# --------------------------------------------------------------------------- report


def fmt(v, nd=3):
    if isinstance(v, float):
        return "nan" if np.isnan(v) else f"{v:.{nd}f}"
    return str(v)


def table(rows, cols, head):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="*", default=["tmd", "perovskite", "coarse"])
    ap.add_argument("--synthetic", action="store_true", help="also the synthetic MoSe2 set")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--max-tile", type=int, default=16)
    ap.add_argument("--max-pixels", type=float, default=26e6,
                    help="largest tiled image (pixels) analysed")
    ap.add_argument("--renoise", type=int, default=3,
                    help="fresh Poisson draws per dose for the stability of k (0: none)")
    ap.add_argument("--no-clusterers", action="store_true")
    ap.add_argument("--periodic-max-tile", type=int, default=16,
                    help="tilings of the seamless synthetic MoSe2 up to this n (0: none)")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args(argv)

    sets = [load_set(s) for s in args.sets if (DATA / f"{s}.npz").exists()]
    if args.synthetic or not sets:
        sets.append(synthetic_set())
    md = ["# Level-1 classes (bench/classes.py)", "",
          "Columns: present true sites refined by the column model at each dose. Isolation:",
          "share of defect columns in classes whose majority is not a perfect-lattice class;",
          "limit = the ideal cross-section classifier (module docstring). Targets: purity >=",
          "0.99, isolation >= 0.95 down to 1/10, FMI >= 0.95 at dose 1, Zernike >= PCA,",
          "same k for all tilings, labelled >= 0.99.", ""]
    ml_per_col = None
    for d in sets:
        t0 = time.perf_counter()
        try:
            rows, keep, (truth, site, perfect_ids, true_k) = run_set(d, renoise=args.renoise)
        except Exception as exc:  # noqa: BLE001 - one set failing is a result, not a crash
            md += [f"## {d['name']}", "", f"analysis failed: {type(exc).__name__}: {exc}", ""]
            print(f"== {d['name']}: analysis failed: {exc}")
            continue
        names = [str(n) for n in d["class_names"]]
        counts = np.bincount(truth, minlength=len(names))
        md += [f"## {d['name']}", "",
               f"{len(truth)} columns; true classes: "
               + ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True) if c)
               + f" (k = {true_k}); perfect: {[names[i] for i in perfect_ids]}", ""]
        cols = ["dose", "features", "k", "renoised_k", "fmi", "ami", "purity", "purity_share",
                "isolation", "limit", "stability", "labelled", "isolation_inner",
                "purity_inner", "seconds"]
        md += [table(rows, cols, ["dose", "features", "k", "k (re-noised)", "FMI", "AMI",
                                  "purity (strict)", "purity (share)", "isolation",
                                  "Poisson limit", "stability", "labelled",
                                  "isolation (whole patch)", "purity share (whole patch)",
                                  "s"]), ""]
        zr = [r for r in rows if r["features"] == "zernike"]
        pr = {r["dose"]: r for r in rows if r["features"] == "pca"}
        wins = all(r["fmi"] >= pr[r["dose"]]["fmi"] - 1e-9 for r in zr)
        md += [f"Zernike FMI >= PCA FMI at every dose: {'yes' if wins else 'NO'}.", "",
               "Zernike classes per true class (columns of each true class in classes 0, 1, "
               "...), and the ideal cross-section classifier's accuracy between two classes "
               "of one site (equal priors; 0.5 = indistinguishable):", ""]
        for r in zr:
            md.append(f"- dose {r['dose']:.3f}: {r['confusion']}; limit "
                      + ", ".join(f"{k} {v:.2f}" for k, v in r["pairs"].items()))
        md.append("")
        print(f"== {d['name']} ({time.perf_counter() - t0:.0f} s)")
        for r in rows:
            print("  " + "  ".join(f"{c}={fmt(r.get(c, ''))}" for c in cols), flush=True)
        if args.no_clusterers:
            comp = []
        else:
            comp = compare_clusterers(keep, truth, site, perfect_ids, d["doses"])
        md += [] if not comp else [
               "### Clusterers on the same Zernike descriptors (whole-patch columns)", "",
               table(comp, ["dose", "clusterer", "k", "fmi", "purity", "isolation", "labelled",
                            "seconds"],
                     ["dose", "clusterer", "k", "FMI", "purity", "isolation", "labelled", "s"]),
               ""]
        for r in comp:
            print(f"  {r['dose']:.3f} {r['clusterer']:<26} k={r['k']} fmi={fmt(r['fmi'])} "
                  f"purity={fmt(r['purity'])} iso={fmt(r['isolation'])}")
        tiles = tiling(d["image"][0], d["pixel_size_A"], args.max_tile, args.max_pixels)
        md += ["### Tiling (full-dose image tiled n x n, columns detected)", "",
               table(tiles, ["tile", "shape", "columns", "k", "labelled", "seconds"],
                     ["n", "shape", "columns", "k", "labelled", "s"]), ""]
        print("  tiling:", [(t["tile"], t["k"]) for t in tiles])
        if not args.no_peers:
            prow, err = peers(d, truth, site, perfect_ids)
            md += ["### motif-learn (ForceGraph8 + seg_lbs, paper parameters)", ""]
            if prow is None:
                md += [err, ""]
                print(" ", err)
            else:
                md += [table(prow, ["dose", "k", "fmi", "ami", "purity", "isolation",
                                    "stability", "labelled", "seconds"],
                             ["dose", "k", "FMI", "AMI", "purity", "isolation", "stability",
                              "labelled", "s"]), ""]
                for r in prow:
                    print(f"  motif-learn {r['dose']:.3f} k={r['k']} fmi={fmt(r['fmi'])} "
                          f"iso={fmt(r['isolation'])} s={r['seconds']:.1f}")
                ml_per_col = float(np.mean([r["seconds"] for r in prow])) / len(truth)
    if args.periodic_max_tile:
        img, px = periodic_synthetic()
        print("== periodic synthetic MoSe2 tilings")
        tiles = tiling(img, px, args.periodic_max_tile, args.max_pixels)
        ks = {t["k"] for t in tiles}
        md += ["## Tiling of a seamless periodic image (synthetic MoSe2, 300 x 312 px, "
               "a = 15 px, 3 % single chalcogen vacancies; tests/test_classes.py)", "",
               table(tiles, ["tile", "shape", "columns", "k", "labelled", "seconds"],
                     ["n", "shape", "columns", "k", "labelled", "s"]), "",
               f"Same k for every tiling: {'yes' if len(ks) == 1 else 'NO'} ({sorted(ks)}).",
               ""]
    if not args.no_speed:
        sp = speed(ml_per_col)
        md += ["## Speed: analyze without the hierarchy, synthetic MoSe2 2048² px (warm)", ""]
        for k, v in sp.items():
            line = (f"- refine={k}: {v['seconds']:.2f} s for {v['columns']} columns "
                    f"({v['per_column'] * 1e6:.0f} µs/column)")
            if "speedup" in v:
                line += f"; motif-learn's route {ml_per_col * 1e6:.0f} µs/column -> " \
                        f"{v['speedup']:.1f}x"
            md.append(line)
            print(line)
        md.append("")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "classes.md").write_text("\n".join(md) + "\n")
    print(f"wrote {RESULTS / 'classes.md'}")


if __name__ == "__main__":
    main()
