"""Model selection under noise correlated between neighbouring pixels (real scans)."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from motifcat.datasets import render_columns
from motifcat.ingest.columns import detect as det


def scan_noise(rng, shape, sx=1.5, sy=0.6):
    """White noise smoothed more along x (the fast scan) than along y."""
    return ndimage.gaussian_filter(rng.normal(size=shape), (sy, sx))


def test_noise_correlation_white_and_red():
    rng = np.random.default_rng(3)
    assert abs(det.noise_correlation(rng.normal(size=(512, 512)), 2.0) - 1.0) < 0.1
    # Noise correlated by a Gaussian (sx, sy) inflates a width-s matched filter's variance by
    # 4 pi sx sy s^2 / sqrt((sx^2 + s^2)(sy^2 + s^2)).
    s, sx, sy = 2.0, 1.5, 0.6
    expect = 4 * np.pi * sx * sy * s**2 / np.sqrt((sx**2 + s**2) * (sy**2 + s**2))
    got = det.noise_correlation(scan_noise(rng, (512, 512), sx, sy), s)
    assert got == pytest.approx(expect, rel=0.1)


def _lattice_image(seed, noise_amp):
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(np.arange(8.0, 250, 12), np.arange(8.0, 250, 12)), -1)
    g = g.reshape(-1, 2)
    truth = g[rng.random(len(g)) > 0.15]  # 15 % vacancies: empty sites to fill with noise
    img = render_columns((256, 256), truth, np.full(len(truth), 40.0), 2.0, background=100.0)
    n = scan_noise(rng, img.shape)
    return (img + n * (noise_amp / n.std())).astype(np.float32), truth


def _false_missed(cols, truth):
    d, j = cKDTree(truth).query(cols.xy)
    return int((d >= 2).sum()), len(truth) - len(set(j[d < 2]))


def test_correlated_noise_adds_fewer_false_columns(monkeypatch):
    img, truth = _lattice_image(1, 2.0)
    new_false, new_missed = _false_missed(det.detect_columns(img, 12.0), truth)
    monkeypatch.setattr(det, "noise_correlation", lambda *a, **k: 1.0)  # the old selection
    old_false, old_missed = _false_missed(det.detect_columns(img, 12.0), truth)
    assert old_false >= 20  # independent-pixel gains: noise blobs pass as columns
    assert new_false <= 0.6 * old_false
    assert new_missed == old_missed == 0


def test_column_significance_divides_by_correlation():
    class F:
        significance = np.array([100.0, 30.0, 12.0])
        sigma = np.full(3, 2.0)
        n_pixels = np.full(3, 81)

    chi2, thr = det.column_significance(F, 10_000.0, 2.5)
    assert chi2.tolist() == pytest.approx([40.0, 12.0, 4.8])
    chi2_1, _ = det.column_significance(F, 10_000.0, 0.5)  # never inflated
    assert chi2_1.tolist() == pytest.approx([100.0, 30.0, 12.0])
