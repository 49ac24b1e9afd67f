"""The Gaussian column model: cross-sections, widths, uncertainties, neighbours fitted together."""

from __future__ import annotations

import numpy as np
import pytest

from motifcat.datasets import make_cairo, make_tmd, render_columns
from motifcat.ingest.columns import detect_columns
from motifcat.ingest.columns.fit import colour_groups, estimate_column_width, fit_gaussian_columns
from motifcat.ingest.model import AnalysisParams
from motifcat.ingest.pipeline import analyze
from motifcat.ingest.serialize import load_columns, save_analysis


def honeycomb(shape, d, theta=0.13, margin=3.0):
    """Two sublattices (A, B) of a honeycomb with nearest-neighbour distance d (px)."""
    a = d * np.sqrt(3)
    a1, a2 = np.array([a, 0.0]), np.array([a / 2, a * np.sqrt(3) / 2])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    n = int(max(shape) / a * 2.5)
    i, j = np.meshgrid(np.arange(-n, n), np.arange(-n, n))
    base = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2
    xy = np.vstack([base, base + np.array([a / 2, a / (2 * np.sqrt(3))])]) @ rot.T
    xy += np.array([shape[1] / 2, shape[0] / 2])
    cls = np.r_[np.zeros(len(base), int), np.ones(len(base), int)]
    keep = (
        (xy[:, 0] > margin)
        & (xy[:, 0] < shape[1] - 1 - margin)
        & (xy[:, 1] > margin)
        & (xy[:, 1] < shape[0] - 1 - margin)
    )
    return xy[keep], cls[keep]


def test_colour_groups_never_put_close_columns_together():
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 200, (2000, 2))
    for g in colour_groups(centres, 9):
        c = centres[g]
        d = np.abs(c[:, None, :] - c[None, :, :]).max(axis=2)
        np.fill_diagonal(d, 99)
        assert d.min() >= 9


def test_cross_sections_recover_integrated_intensities_of_touching_columns():
    # Bright and dim (40 %) columns 2.5 px (2.8 sigma) apart: their tails overlap strongly.
    xy, cls = honeycomb((120, 120), 2.5)
    amp = np.where(cls == 0, 100.0, 40.0)
    sigma = 0.9
    img = render_columns((120, 120), xy, amp, sigma, background=15.0)
    start = xy + np.random.default_rng(1).uniform(-0.3, 0.3, xy.shape)
    fit = fit_gaussian_columns(img, start, 0.8)
    inner = (np.abs(xy - 60) < 45).all(axis=1)
    true_cs = 2 * np.pi * amp * sigma**2
    rel = fit.cross_section[inner] / true_cs[inner]
    assert np.median(np.abs(rel - 1)) < 0.02
    assert np.abs(rel - 1).max() < 0.15
    assert np.median(np.abs(fit.xy[inner] - xy[inner])) < 0.01
    assert np.median(np.abs(fit.sigma[inner] - sigma)) < 0.02
    assert np.median(fit.background[inner]) == pytest.approx(15.0, abs=0.5)


def test_uncertainties_match_the_scatter_under_poisson_noise():
    xy, cls = honeycomb((400, 400), 12.0)
    amp = np.where(cls == 0, 100.0, 40.0)
    clean = render_columns((400, 400), xy, amp, 2.5, background=20.0)
    img = np.random.default_rng(3).poisson(clean).astype(np.float32)
    fit = fit_gaussian_columns(img, xy + 0.3, 2.5)
    for k in (0, 1):
        m = cls == k
        scatter = np.sqrt(np.mean((fit.xy[m] - xy[m]) ** 2))
        predicted = np.sqrt(np.mean(fit.xy_err[m] ** 2))
        assert predicted == pytest.approx(scatter, rel=0.2)
        cs = fit.cross_section[m] / (2 * np.pi * amp[m] * 2.5**2)
        assert np.median(cs) == pytest.approx(1.0, abs=0.02)
        cs_pred = np.median(fit.cross_section_err[m] / (2 * np.pi * amp[m] * 2.5**2))
        assert cs_pred == pytest.approx(cs.std(), rel=0.25)


def test_background_gradient_does_not_change_cross_sections():
    xy, cls = honeycomb((256, 256), 10.0)
    amp = np.where(cls == 0, 100.0, 40.0)
    flat = render_columns((256, 256), xy, amp, 2.0, background=20.0)
    yy, xx = np.mgrid[:256, :256]
    tilted = flat + 60.0 * xx / 256 + 30.0 * (yy / 256) ** 2
    a = fit_gaussian_columns(flat, xy + 0.2, 2.0)
    b = fit_gaussian_columns(tilted, xy + 0.2, 2.0)
    # Columns further than 1.5 background scales from the border (the background map is
    # extrapolated as a constant there).
    inner = (np.abs(xy - 128) < 100).all(axis=1)
    rel = np.abs(b.cross_section[inner] / a.cross_section[inner] - 1)
    assert np.median(rel) < 0.002 and rel.max() < 0.01
    assert np.abs(b.xy[inner] - a.xy[inner]).max() < 0.02


def test_width_estimate():
    xy, _ = honeycomb((200, 200), 9.0)
    img = render_columns((200, 200), xy, np.full(len(xy), 50.0), 2.2, background=5.0)
    assert estimate_column_width(img, xy, 9.0) == pytest.approx(2.2, rel=0.02)


def test_model_fields_reach_the_analysis_and_round_trip(tmp_path):
    syn = make_tmd((256, 256), seed=2)
    a = analyze(syn.micrograph(), AnalysisParams(hierarchy=False))
    cols = a.columns
    assert cols.cross_section is not None and cols.xy_err.shape == (len(cols), 2)
    assert np.all(cols.cross_section_err > 0)
    for suffix in (".npz", ".json"):
        back = load_columns(save_analysis(a, tmp_path / f"a{suffix}"))
        for name in ("xy", "intensity", *cols.OPTIONAL):
            # The JSON copy keeps positions to 1e-3 px.
            atol = 1e-3 if (suffix == ".json" and name == "xy") else 0
            np.testing.assert_allclose(
                getattr(back, name), getattr(cols, name), rtol=1e-6, atol=atol
            )


def test_com_stays_available_and_has_no_model_fields():
    syn = make_tmd((256, 256), seed=2)
    cols = detect_columns(syn.image, 10.0, refine="com")
    assert cols.cross_section is None and len(cols) > 50


def match(found, truth, tol):
    from scipy.spatial import cKDTree

    d_truth, _ = cKDTree(found).query(truth)
    d_found, _ = cKDTree(truth).query(found)
    return d_truth < tol, d_found < tol, d_truth


def interior(xy, shape, margin):
    return (xy[:, 0] > margin) & (xy[:, 1] > margin) & (xy[:, 0] < shape[1] - 1 - margin) & (
        xy[:, 1] < shape[0] - 1 - margin
    )


def test_dim_sublattice_next_to_bright_one_on_a_gradient():
    # MoS2-like: S2 columns at 40 % of Mo, 1.8 A apart at 0.12 A/px (15 px), on a background
    # that doubles across the frame; Poisson noise at ~100 counts per column peak.
    shape = (384, 384)
    xy, cls = honeycomb(shape, 15.0)
    amp = np.where(cls == 0, 100.0, 40.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = render_columns(shape, xy, amp, 3.0, background=20.0) + 20.0 * xx / shape[1]
    img = np.random.default_rng(5).poisson(clean).astype(np.float32)
    cols = detect_columns(img, 15.0 * 1.5)
    found, real, d = match(cols.xy, xy, 3.0)
    inner = interior(xy, shape, 4)
    for k in (0, 1):
        assert found[inner & (cls == k)].mean() == 1.0
    assert real.mean() == 1.0
    for k in (0, 1):
        m = inner & (cls == k)
        assert np.sqrt(np.mean(d[m] ** 2)) < 0.3
    # Cross-sections separate the two sublattices and recover their ratio.
    _, idx = __import__("scipy.spatial", fromlist=["cKDTree"]).cKDTree(cols.xy).query(xy)
    cs = cols.cross_section[idx]
    ratio = np.median(cs[inner & (cls == 1)]) / np.median(cs[inner & (cls == 0)])
    assert ratio == pytest.approx(0.4, abs=0.02)


def test_columns_2p5_px_apart_are_all_found():
    shape = (128, 128)
    xy, cls = honeycomb(shape, 2.5, margin=1.5)
    amp = np.where(cls == 0, 300.0, 120.0)
    clean = render_columns(shape, xy, amp, 0.6, background=30.0)
    img = np.random.default_rng(2).poisson(clean).astype(np.float32)
    cols = detect_columns(img, 2.5 * 1.5)
    found, real, d = match(cols.xy, xy, 1.0)
    inner = interior(xy, shape, 2)
    assert found[inner].mean() >= 0.99
    assert real.mean() >= 0.99
    assert np.sqrt(np.mean(d[inner & found] ** 2)) < 0.15


def test_residual_search_adds_a_hidden_column_and_nothing_on_an_empty_site():
    shape = (160, 160)
    xy, cls = honeycomb(shape, 12.0)
    inner = interior(xy, shape, 20)
    rng = np.random.default_rng(4)
    # An empty site: one dim column removed from the interior.
    empty = np.flatnonzero(inner & (cls == 1))[3]
    present = np.ones(len(xy), bool)
    present[empty] = False
    # A hidden column: a dim column 6 px from a bright one (1.8 sigma of the smoothed image,
    # but farther than the minimum distance 0.3 x period = 5.4 px), so that it is a shoulder,
    # not a local maximum of the smoothed image.
    bright = np.flatnonzero(inner & (cls == 0))[5]
    hidden = xy[bright] + np.array([6.0, 0.0])
    pos = np.vstack([xy[present], hidden])
    amp = np.r_[np.where(cls[present] == 0, 200.0, 80.0), 80.0]
    clean = render_columns(shape, pos, amp, 2.0, background=20.0)
    img = rng.poisson(clean).astype(np.float32)
    without = detect_columns(img, 18.0, residual_search=False)
    with_search = detect_columns(img, 18.0)
    d_without = np.hypot(*(without.xy - hidden).T).min()
    d_with = np.hypot(*(with_search.xy - hidden).T).min()
    assert d_without > 1.0 and d_with < 0.5
    # The empty site stays empty, and every real column is found once.
    assert np.hypot(*(with_search.xy - xy[empty]).T).min() > 3.0
    found, real, _ = match(with_search.xy, pos, 1.0)
    assert found[interior(pos, shape, 3)].all() and real.all()


def test_analyze_with_defaults_completes_at_coarse_sampling():
    # Columns 2.5-3 px apart: 2 * period + 1 is a 7 px patch, too small for n_max = 10;
    # the patch is resampled instead of failing.
    from motifcat.ingest.model import Micrograph

    syn = make_cairo((160, 160), pixel_size_A=1.0, seed=3)
    a = analyze(Micrograph(data=syn.image, pixel_size_A=1.0, path="coarse.tif"))
    found, real, _ = match(a.columns.xy, syn.xy, 1.0)
    assert found[interior(syn.xy, (160, 160), 1.5)].mean() >= 0.97
    assert real.mean() >= 0.97
    assert a.has_patch.sum() > 0.5 * len(a.columns)
    assert a.params.patch_size is None and len(a.classes) >= 1


def test_cli_reaches_the_column_parameters(tmp_path):
    import json

    from typer.testing import CliRunner

    from motifcat.cli import app

    syn = make_tmd((256, 256), seed=2)
    path = tmp_path / "tmd.npy"
    np.save(path, syn.image)
    out = tmp_path / "a.json"
    args = ["analyze", str(path), "--pixel-size", "0.2", "--no-hierarchy", "--out", str(out)]
    args += ["--smoothing", "0.12", "--threshold", "6", "--min-distance", "0.25"]
    args += ["--refine", "com", "--no-residual-search"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    params = json.loads(out.read_text())["params"]
    assert params["smoothing"] == 0.12 and params["threshold_sigma"] == 6.0
    assert params["min_distance_factor"] == 0.25 and params["refine"] == "com"
    assert params["residual_search"] is False
    bad = CliRunner().invoke(app, [*args[:4], "--refine", "nope"])
    assert bad.exit_code != 0 and "refine" in bad.output


def test_catalog_stores_the_cross_section_on_level1_instances(tmp_path):
    from motifcat.catalog import open_catalog
    from motifcat.catalog.writer import write_analysis
    from motifcat.query import image_instances

    syn = make_tmd((256, 256), seed=2)
    a = analyze(syn.micrograph(path="tmd.npy"), AnalysisParams())
    with open_catalog(tmp_path / "cat") as store:
        write_analysis(store, a, sample="s1", material="MoSe2")
        cols = image_instances(store, a.micrograph.sha256, 1)
        units = image_instances(store, a.micrograph.sha256, 2)
    stored = np.flatnonzero(a.labels >= 0)
    assert len(cols) == len(stored)
    # Instance ids end in the column index: compare value by value.
    index = cols["instance_id"].str.rsplit("-", n=1).str[-1].astype(int).to_numpy()
    np.testing.assert_allclose(cols["cross_section"], a.columns.cross_section[index], rtol=1e-9)
    assert units["cross_section"].isna().all()


def test_an_older_catalog_gains_the_cross_section_property(tmp_path):
    import ladybug

    from motifcat.catalog import open_catalog

    path = tmp_path / "old"
    db = ladybug.Database(str(path))
    conn = ladybug.Connection(db)
    conn.execute(
        "CREATE NODE TABLE Instance(id STRING, x_A DOUBLE, y_A DOUBLE, level INT64, "
        "PRIMARY KEY (id))"
    )
    conn.execute("CREATE (:Instance {id: 'old-1-0', x_A: 1.0, y_A: 2.0, level: 1})")
    conn.close()
    db.close()
    with open_catalog(path) as store:
        rows = store.read("MATCH (i:Instance) RETURN i.id AS id, i.cross_section AS cs")
    assert rows == [{"id": "old-1-0", "cs": None}]


def test_coarse_multislice_crop_recall():
    # A 40 x 40 px crop of the committed multislice SrTiO3 set at ~1 A/px (bench/data,
    # abTEM; Sr-TiO columns 2.76 px apart, dose 1): every Sr and TiO column is found (the
    # pure O columns are nearly invisible in HAADF and not counted), none where there is no
    # column. Before the pooled width and the false-alarm selection, 6 % were found.
    from pathlib import Path

    from scipy.spatial import cKDTree

    from motifcat.ingest.lattice import lattice_period

    path = Path(__file__).resolve().parents[1] / "bench" / "data" / "coarse.npz"
    with np.load(path) as z:
        img, xy, present = z["image"][0], z["xy"], z["present"]
        visible = present & (z["class_names"][z["cls"]] != "O")
    r0, side = 16, 40
    crop = img[r0 : r0 + side, r0 : r0 + side]
    cols = detect_columns(crop, lattice_period(crop))
    truth = xy - r0
    inside = interior(truth, crop.shape, 3) & visible
    d_truth, _ = cKDTree(cols.xy).query(truth[inside])
    assert (d_truth < 0.97).mean() >= 0.97
    d_found, _ = cKDTree(truth[present]).query(cols.xy[interior(cols.xy, crop.shape, 3)])
    assert (d_found < 0.97).mean() >= 0.99
