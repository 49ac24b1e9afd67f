"""The Gaussian column model: cross-sections, widths, uncertainties, neighbours fitted together."""

from __future__ import annotations

import numpy as np
import pytest

from motifcat.ingest.columns import detect_columns
from motifcat.ingest.columns.fit import colour_groups, estimate_column_width, fit_gaussian_columns
from motifcat.ingest.model import AnalysisParams
from motifcat.ingest.pipeline import analyze
from motifcat.ingest.serialize import load_columns, save_analysis
from motifcat.ingest.synth import render_columns, tmd_image


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
    syn = tmd_image((256, 256), seed=2)
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
    syn = tmd_image((256, 256), seed=2)
    cols = detect_columns(syn.image, 10.0, refine="com")
    assert cols.cross_section is None and len(cols) > 50
