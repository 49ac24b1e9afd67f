"""Lattice period, column detection, sub-pixel refinement and patches on analytic images."""

from __future__ import annotations

import numpy as np
import pytest

from motifcat.errors import AnalysisError
from motifcat.ingest.columns import detect_columns, estimate_noise, refine_positions
from motifcat.ingest.lattice import lattice_period, nearest_neighbour_spacing
from motifcat.ingest.patches import extract_patches, iter_patch_chunks, patch_fits


def gaussian_columns(shape, xy, sigma=1.8, amp=100.0):
    y, x = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape)
    for cx, cy in xy:
        img += amp * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    return img


def square_lattice(shape, a, offset=(5.3, 6.7), jitter=0.0, seed=0):
    rng = np.random.default_rng(seed)
    xs = np.arange(offset[0], shape[1] - 2, a)
    ys = np.arange(offset[1], shape[0] - 2, a)
    xy = np.array([(x, y) for y in ys for x in xs])
    return xy + rng.uniform(-jitter, jitter, xy.shape)


def match(found, truth, tol):
    from scipy.spatial import cKDTree

    d, i = cKDTree(truth).query(found)
    ok = d < tol
    return ok, d, i


def test_lattice_period_of_a_square_lattice():
    img = gaussian_columns((160, 160), square_lattice((160, 160), 9.7))
    assert lattice_period(img) == pytest.approx(9.7, rel=0.03)


def test_lattice_period_rejects_tiny_image():
    with pytest.raises(AnalysisError):
        lattice_period(np.random.default_rng(0).random((6, 6)))


def test_nearest_neighbour_spacing():
    xy = square_lattice((100, 100), 7.0)
    assert nearest_neighbour_spacing(xy) == pytest.approx(7.0)


def test_detection_recall_precision_and_subpixel_error():
    truth = square_lattice((200, 200), 10.0, jitter=1.0, seed=3)
    rng = np.random.default_rng(1)
    img = rng.poisson(gaussian_columns((200, 200), truth) + 5.0).astype(float)
    cols = detect_columns(img, period_px=10.0)
    ok, d, idx = match(cols.xy, truth, 3.0)
    recall = len(np.unique(idx[ok])) / len(truth)
    precision = ok.mean()
    assert recall >= 0.99 and precision >= 0.99
    rmse = np.sqrt(np.mean(d[ok] ** 2))
    assert rmse < 0.25, rmse


@pytest.mark.parametrize("method", ["com", "gaussian"])
def test_refinement_recovers_subpixel_centre(method):
    truth = np.array([[20.37, 18.81]])
    img = gaussian_columns((40, 40), truth, sigma=2.0)
    xy = refine_positions(img, np.array([[19, 20]]), radius=3, method=method)
    assert np.abs(xy - truth).max() < 0.12


def test_noise_estimate():
    rng = np.random.default_rng(0)
    assert estimate_noise(rng.normal(0, 3.0, (300, 300))) == pytest.approx(3.0, rel=0.05)


def test_no_columns_in_flat_noise_raises_or_finds_few():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 1.0, (128, 128))
    try:
        cols = detect_columns(img, period_px=10.0)
    except AnalysisError:
        return
    # Noise maxima must not pass the noise threshold in bulk.
    assert len(cols) < 5


def test_patches_are_interpolated_at_subpixel_centres():
    img = np.add.outer(np.arange(50.0) * 100, np.arange(50.0))  # value = 100 y + x
    xy = np.array([[20.25, 30.5], [10.0, 10.0]])
    p = extract_patches(img, xy, 5)
    assert p.shape == (2, 5, 5)
    assert p[0, 2, 2] == pytest.approx(100 * 30.5 + 20.25, rel=1e-6)
    assert p[0, 0, 0] == pytest.approx(100 * 28.5 + 18.25, rel=1e-6)
    assert p[1, 4, 0] == pytest.approx(100 * 12 + 8, rel=1e-6)


def test_patch_border_rule_and_chunks():
    fits = patch_fits(np.array([[3.0, 40.0], [40.0, 40.0], [89.5, 40.0]]), (100, 100), 21)
    assert fits.tolist() == [False, True, False]
    with pytest.raises(AnalysisError):
        extract_patches(np.zeros((100, 100)), np.array([[3.0, 40.0]]), 21)
    xy = np.full((7, 2), 50.0)
    chunks = list(iter_patch_chunks(np.zeros((100, 100)), xy, 9, chunk=3))
    assert [c[1].shape[0] for c in chunks] == [3, 3, 1]
