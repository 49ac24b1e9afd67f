"""Tiled analysis of one image (issue 15): the same columns and classes as the whole image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

import motifcat
from motifcat.cli import app
from motifcat.errors import AnalysisError
from motifcat.ingest import AnalysisParams, analyze, analyze_tiled, micrograph_from_array
from motifcat.ingest.tiles import TileGrid, merge_seams

DATA = Path(__file__).resolve().parents[1] / "bench" / "data"
PARAMS = AnalysisParams(hierarchy=False)


def _compare(whole, tiled):
    """Position difference of every whole-image column to the nearest tiled one (and back),
    and the confusion matrix of the labels of the matched columns."""
    d, j = cKDTree(tiled.columns.xy).query(whole.columns.xy)
    back, _ = cKDTree(whole.columns.xy).query(tiled.columns.xy)
    same = d <= 0.05
    a, b = whole.labels[same], tiled.labels[j[same]]
    conf = np.zeros((len(whole.classes), len(tiled.classes)), dtype=np.int64)
    np.add.at(conf, (a, b), 1)
    return d, back, conf


def _is_permutation(conf: np.ndarray) -> bool:
    """Every class of one analysis maps onto exactly one class of the other."""
    return conf.shape[0] == conf.shape[1] and ((conf > 0).sum(axis=0) == 1).all() and (
        (conf > 0).sum(axis=1) == 1
    ).all()


def test_grid_partitions_the_image_and_tiles_hold_the_halo():
    g = TileGrid.make((700, 1000), core_px=256, halo_px=50, align=20)
    # 4 x 3 cores of 250 x 233 px, edges moved to multiples of 20 (not rounded down: no
    # thin last core); the halo before a core aligned (60), after it as asked (50).
    assert g.halo == 60 and g.halo_end == 50 and len(g) == 12
    assert g.x_edges.tolist() == [0, 240, 500, 760, 1000]
    assert g.y_edges.tolist() == [0, 240, 460, 700]
    cover = np.zeros((700, 1000), dtype=int)
    for k in range(len(g)):
        rows, cols = g.core(k)
        cover[rows, cols] += 1
        trows, tcols = g.tile(k)
        assert trows.start == max(0, rows.start - 60) and tcols.stop == min(1000, cols.stop + 50)
        assert trows.start % 20 == 0 and tcols.start % 20 == 0  # origins keep the fit's batching
    assert (cover == 1).all()
    yy, xx = np.mgrid[:700:7, :1000:9]
    pts = np.c_[xx.ravel() + 0.5, yy.ravel() + 0.5]
    k = g.owner(pts)
    for t in range(len(g)):
        rows, cols = g.core(t)
        inside = (pts[:, 0] >= cols.start) & (pts[:, 0] < cols.stop) & (
            pts[:, 1] >= rows.start) & (pts[:, 1] < rows.stop)
        assert np.array_equal(k == t, inside)


def test_seam_merge_keeps_every_column_once():
    """Columns on a seam, placed by two tiles a hair apart on either side: none twice, none
    lost, and a column only one tile saw stays with the tile that owns it."""
    g = TileGrid.make((100, 200), core_px=100, halo_px=10)
    rng = np.random.default_rng(0)
    truth = np.c_[rng.uniform(95, 105, 50), np.linspace(2, 98, 50)]
    jitter = rng.normal(0, 0.02, truth.shape)
    a = truth + jitter
    b = truth - jitter  # ties straddle x = 100 both ways
    keep_a, keep_b = merge_seams([a, b], g, same_px=1.0)
    kept = np.r_[a[keep_a], b[keep_b]]
    d, _ = cKDTree(kept).query(truth)
    assert len(kept) == len(truth) and d.max() < 0.1
    # A column that only tile b found, inside a's core, is a's decision: dropped.
    keep_a, keep_b = merge_seams([a[:0], np.array([[99.0, 50.0]])], g, same_px=1.0)
    assert keep_b.tolist() == [False]


def test_tiled_equals_whole_on_a_synthetic_image(synthetic):
    """288 px MoSe2 at 0.3 Å/px in 3 x 3 tiles (cores 120 px): the same columns within
    0.05 px, in the same order, and the same classes."""
    mg = synthetic("tmd", (288, 288), seed=1, pixel_size_A=0.3).micrograph()
    with threadpool_limits(1):
        whole = analyze(mg, PARAMS)
        tiled = analyze_tiled(mg, PARAMS, tile_px=120, halo_px=60)
    d, back, conf = _compare(whole, tiled)
    assert len(whole.columns) == len(tiled.columns) > 1000
    assert d.max() <= 0.05 and back.max() <= 0.05
    _, j = cKDTree(tiled.columns.xy).query(whole.columns.xy)
    assert np.array_equal(j, np.arange(len(j)))  # the whole image's column order
    assert _is_permutation(conf)
    assert sorted(c.count for c in whole.classes) == sorted(c.count for c in tiled.classes)
    # Positions agree to ~0.002 px; the descriptors (cross-section first) to ~0.01.
    np.testing.assert_allclose(tiled.features, whole.features, atol=0.02)
    assert tiled.params.period_px == whole.params.period_px
    assert tiled.params.spacing_px == pytest.approx(whole.params.spacing_px, abs=1e-3)


def _real(name: str, crop: tuple[slice, slice]):
    d = np.load(DATA / f"{name}.npz")
    return micrograph_from_array(
        np.ascontiguousarray(d["image"][0][crop]), pixel_size_A=float(d["pixel_size_A"])
    )


def test_tiled_equals_whole_on_a_real_multislice_image():
    """The MoS2 multislice image (abTEM, dose 1), cropped to 320 px. Its columns are wide
    (the fit's batching cell is 364 px), so one tile holds the crop: this checks the
    global quantities, the peak, per-tile descriptor and ordering steps on real data."""
    mg = _real("tmd", (slice(0, 320), slice(0, 320)))
    with threadpool_limits(1):
        whole = analyze(mg, PARAMS)
        tiled = analyze_tiled(mg, PARAMS, tile_px=128)
    d, back, conf = _compare(whole, tiled)
    assert len(whole.columns) == len(tiled.columns) > 300
    assert d.max() <= 0.05 and back.max() <= 0.05
    assert _is_permutation(conf) and conf.trace() == len(whole.columns)
    _, j = cKDTree(tiled.columns.xy).query(whole.columns.xy)
    np.testing.assert_allclose(tiled.features[j], whole.features, atol=1e-4)


def test_dask_client_gives_the_serial_result(synthetic):
    distributed = pytest.importorskip("distributed")
    mg = synthetic("tmd", (192, 192), seed=2, pixel_size_A=0.3).micrograph()
    with distributed.Client(
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                 dashboard_address=None)
    ) as client:
        on_dask = analyze_tiled(mg, PARAMS, tile_px=96, halo_px=40, client=client)
    serial = analyze_tiled(mg, PARAMS, tile_px=96, halo_px=40)
    assert len(serial.columns) > 300
    assert np.array_equal(on_dask.columns.xy, serial.columns.xy)
    assert np.array_equal(on_dask.labels, serial.labels)


def test_bad_tile_size_is_refused_and_the_api_is_public():
    mg = _real("tmd", (slice(0, 128), slice(0, 128)))
    with pytest.raises(AnalysisError, match="tile_px"):
        analyze_tiled(mg, PARAMS, tile_px=8)
    assert motifcat.analyze_tiled is analyze_tiled
    assert "analyze_tiled" in motifcat.__all__


def test_cli_analyze_tile_px(tmp_path):
    d = np.load(DATA / "coarse_cairo.npz")
    path = tmp_path / "cairo.npy"
    np.save(path, d["image"][0])
    out = tmp_path / "a.npz"
    result = CliRunner().invoke(
        app, ["analyze", str(path), "--pixel-size", "1.0", "--tile-px", "4096",
              "--no-hierarchy", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.exists()
    from motifcat.ingest import load_analysis

    assert len(load_analysis(out).columns) > 1000


def test_column_model_replays_its_own_globals(synthetic):
    """model_columns given the image-wide quantities it measured (``record``) takes the same
    steps again (``fixed``): the same columns, bit for bit, on the same image."""
    from motifcat.ingest.columns.detect import detect_columns
    from motifcat.ingest.columns.detect import model_columns as mc

    mg = synthetic("tmd", (160, 160), seed=3, pixel_size_A=0.3).micrograph()
    img = np.asarray(mg.data, dtype=np.float32)
    start = detect_columns(img, 10.9, refine="com")
    kw = dict(smooth=None, peak_sigma_px=1.6, min_distance_px=3.3, period_px=10.9)
    record = []
    with threadpool_limits(1):
        first = mc(img, start.xy, **kw, record=record)
        again = mc(img, start.xy, **kw, fixed=record[0])
        # The fixed quantities are used, not measured again: an impossible threshold.
        impossible = tuple(dataclasses.replace(f, threshold=1e30) for f in record[0].fits)
        with pytest.raises(AnalysisError, match="survives"):
            mc(img, start.xy, **kw, fixed=dataclasses.replace(record[0], fits=impossible))
    g = record[0]
    assert len(g.widths) >= 2 and g.widths[-1] == g.sigma and g.threshold >= 8.0
    # Every fit is recorded, the first from the candidates, the last at the final width
    # and threshold.
    assert g.fits[0].kind == "start" and len(g.fits) >= len(g.widths)
    assert g.fits[-1].sigma == g.sigma and g.fits[-1].threshold == g.threshold
    assert all(f.n_iter >= 1 for f in g.fits)
    assert np.array_equal(first.xy, again.xy)
    assert np.array_equal(first.cross_section, again.cross_section)


def test_every_tile_takes_the_whole_images_fits(monkeypatch):
    """The column model refits everything whenever *any* column asks for it (a rejected
    column, a width step, a residual round that added one), and the joint step stops when
    *all* columns converged, so both are global decisions. Columns the fit leaves
    unconverged (cut by the image border, the slow tail at low dose) end where the last
    fit left them: when each tile decided for itself, bench/tiles.py at 4096² (tiles 1024)
    showed whole 4 fits, tiles 3 to 6 and 4 columns beyond 0.05 px, and this 768² image
    70 (up to 13 px, all in the bottom band). Every tile now replays the whole image's
    fits (ColumnGlobals.fits): the same number, and the same columns to 0.05 px."""
    from motifcat.ingest import tiles as mtiles
    from motifcat.ingest.columns import detect as mdetect
    from motifcat.ingest.columns import fit as mfit

    fits: list[int] = []
    fit, model = mfit.fit_gaussian_columns, mdetect.model_columns

    def counting_fit(*a, **k):
        fits.append(1)
        return fit(*a, **k)

    def marking_model(*a, **k):
        fits.append(-1)
        return model(*a, **k)

    monkeypatch.setattr(mfit, "fit_gaussian_columns", counting_fit)
    monkeypatch.setattr(mdetect, "model_columns", marking_model)
    monkeypatch.setattr(mtiles, "model_columns", marking_model)
    # The MoS2 multislice image at dose 1 (fresh Poisson counts), tiled to 768² as
    # bench/tiles.py makes it: 2 x 2 tiles of 384 px (the fit's batching cell is 364 px).
    d = np.load(DATA / "tmd.npz")
    clean = np.tile(d["clean"], (3, 2))[:768, :768]
    image = np.random.default_rng(0).poisson(clean).astype(np.float32)
    mg = micrograph_from_array(image, pixel_size_A=float(d["pixel_size_A"]))
    with threadpool_limits(1):
        whole = analyze(mg, PARAMS)
        n_whole = len(fits) - 1
        fits.clear()
        tiled = analyze_tiled(mg, PARAMS, tile_px=384)
    marks = np.flatnonzero(np.array(fits) == -1)
    per_call = np.diff(np.r_[marks, len(fits)]) - 1
    # The first call measures the globals (on the whole image here); then one per tile.
    assert per_call[0] == n_whole
    assert per_call[1:].tolist() == [n_whole] * (len(per_call) - 1)
    d, back, conf = _compare(whole, tiled)
    assert len(whole.columns) == len(tiled.columns) > 1800
    assert d.max() <= 0.05 and back.max() <= 0.05
    assert _is_permutation(conf)
