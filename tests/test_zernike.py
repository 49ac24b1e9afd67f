"""Zernike basis, moments, invariants and the two feature transformers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from motifcat.errors import AnalysisError
from motifcat.ingest.zernike import (
    PCAFeatures,
    ZernikeFeatures,
    align_moments,
    invariant_indices,
    reconstruct,
    rotate_moments,
    rotation_invariants,
    zernike_basis,
    zernike_indices,
    zernike_moments,
)


def _index(n_max: int, n: int, m: int) -> int:
    hits = np.flatnonzero((zernike_indices(n_max) == (n, m)).all(axis=1))
    assert len(hits) == 1
    return int(hits[0])


def _analytic_zernike(size: int, n: int, m: int, angle_deg: float = 0.0) -> np.ndarray:
    """Z_n^m sampled at pixel centres, independently of the module (scipy-free closed form).

    ``angle_deg`` rotates the function counter-clockwise (disk y axis up): Z(rho, theta - a).
    """
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    x = (xx - c) / (size / 2)
    y = -(yy - c) / (size / 2)
    rho = np.hypot(x, y)
    theta = np.arctan2(y, x) - np.deg2rad(angle_deg)
    am = abs(m)
    radial = sum(
        (-1) ** k
        * math.factorial(n - k)
        / math.factorial(k)
        / math.factorial((n + am) // 2 - k)
        / math.factorial((n - am) // 2 - k)
        * rho ** (n - 2 * k)
        for k in range((n - am) // 2 + 1)
    )
    norm = math.sqrt((2 * n + 2) / (math.pi * (2 if m == 0 else 1)))
    angular = np.cos(am * theta) if m >= 0 else np.sin(am * theta)
    return np.where(rho <= 1, norm * radial * angular, 0.0)


def _blobs(size: int) -> np.ndarray:
    """Smooth asymmetric test patch: Gaussians well inside the disk (within 0.55 of the radius)."""
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    sigma = size / 14
    f = np.zeros((size, size))
    for fx, fy, amp in [(0, 0, 1.0), (0.25, 0.05, 0.6), (-0.1, 0.3, 0.8), (-0.2, -0.2, 0.5)]:
        f += amp * np.exp(-((xx - c - fx * size) ** 2 + (yy - c - fy * size) ** 2) / (2 * sigma**2))
    return f


# ----------------------------------------------------------------------------- indices, basis


def test_counts_and_order():
    nm = zernike_indices(10)
    assert nm.shape == (66, 2)
    n, m = nm[:, 0], nm[:, 1]
    assert np.all((n - np.abs(m)) % 2 == 0) and np.all(np.abs(m) <= n)
    # OSA/ANSI single index j = (n (n+2) + m) / 2 is the row number.
    np.testing.assert_array_equal((n * (n + 2) + m) // 2, np.arange(66))
    assert nm[:6].tolist() == [[0, 0], [1, -1], [1, 1], [2, -2], [2, 0], [2, 2]]
    inv = invariant_indices(10)
    assert inv.shape == (36, 2) and np.all(inv[:, 1] >= 0)
    patches = np.random.default_rng(0).random((4, 21, 21))
    moments = zernike_moments(patches, 10)
    assert moments.shape == (4, 66) and moments.dtype == np.float64
    assert rotation_invariants(moments, 10).shape == (4, 36)


@pytest.mark.parametrize("size", [21, 33, 65])
def test_discrete_orthonormality(size):
    basis = zernike_basis(size, 10)
    assert basis.shape == (66, size * size)
    # Löwdin orthonormalisation in float64: only rounding is left (~1e-15); 1e-10 is the bar.
    np.testing.assert_allclose(basis @ basis.T, np.eye(66), atol=1e-10)


def test_basis_cached_readonly_and_zero_outside_disk():
    a = zernike_basis(33, 10)
    assert zernike_basis(33, 10) is a
    with pytest.raises(ValueError):
        a[0, 0] = 1.0
    img = a.reshape(66, 33, 33)
    c = 16.0
    yy, xx = np.mgrid[:33, :33]
    # Nearest point of each pixel to the centre; a pixel entirely outside the disk is zero.
    dx = np.maximum(np.abs(xx - c) - 0.5, 0)
    dy = np.maximum(np.abs(yy - c) - 0.5, 0)
    outside = np.hypot(dx, dy) > 16.5
    assert outside.sum() > 100
    assert np.all(img[:, outside] == 0)
    # The piston term stays close to the constant 1/sqrt(pi) * sqrt(dA) inside the disk; the
    # Löwdin correction bends it by ~5 % (measured), mostly near the rim.
    far = np.hypot(np.abs(xx - c) + 0.5, np.abs(yy - c) + 0.5) < 14
    piston = img[0][far]
    assert np.ptp(piston) < 0.08 * piston.mean()
    assert piston.mean() == pytest.approx(1 / np.sqrt(np.pi) * (2 / 33), rel=0.03)


def test_basis_respects_square_symmetry():
    """Löwdin keeps the exact 90° behaviour: rot90 of a sine/cosine row is ± a row of its pair."""
    basis = zernike_basis(21, 6).reshape(-1, 21, 21)
    k = _index(6, 4, 2)  # cos 2θ -> under 90° it becomes -cos 2θ
    np.testing.assert_allclose(np.rot90(basis[k]), -basis[k], atol=1e-12)
    k1, k1s = _index(6, 3, 1), _index(6, 3, -1)  # cos θ -> sin θ under +90°
    np.testing.assert_allclose(np.rot90(basis[k1]), basis[k1s], atol=1e-12)


# ----------------------------------------------------------------------------- invariance


@pytest.mark.parametrize(("size", "tolerance"), [(21, 0.08), (33, 0.03)])
@pytest.mark.parametrize("angle", [17.0, 33.3, 71.0, 90.0, 143.0])
def test_rotation_invariance_arbitrary_angles(size, tolerance, angle):
    f = _blobs(size)
    g = ndimage.rotate(f, angle, reshape=False, order=3, mode="constant")
    a_f, a_g = zernike_moments(np.stack([f, g]), 10)
    v_f, v_g = rotation_invariants(np.stack([a_f, a_g]), 10)
    # Every invariant above 10 % of the largest within a few %: measured worst 7.5 % (size 21,
    # order 10 is at the limit of a 21-pixel grid), 1.8 % (size 33); the whole vector ≤ 1 %.
    big = v_f > 0.1 * v_f.max()
    rel = np.abs(v_g - v_f)[big] / v_f[big]
    assert rel.max() < tolerance
    assert np.linalg.norm(v_g - v_f) < 0.015 * np.linalg.norm(v_f)
    # ... while the raw moments do change.
    assert np.linalg.norm(a_g - a_f) > 0.3 * np.linalg.norm(a_f)


def test_reflection_and_right_angles_exact():
    f = _blobs(33) + 0.3 * np.random.default_rng(3).random((33, 33))
    stack = np.stack([f, np.fliplr(f), np.flipud(f), f.T, np.rot90(f), np.rot90(f, 3)])
    a = zernike_moments(stack, 10)
    v = rotation_invariants(a, 10)
    # The basis has the square's symmetry exactly, so only float32 rounding remains.
    np.testing.assert_allclose(v[1:], np.broadcast_to(v[0], v[1:].shape), rtol=1e-4, atol=1e-5)
    # A mirror image is not a rotation: x -> -x maps θ to π - θ, so the moments change sign
    # as cos(mθ) -> (-1)^m cos(mθ) and sin(mθ) -> -(-1)^m sin(mθ).
    m = zernike_indices(10)[:, 1]
    sign = np.where(m >= 0, 1.0, -1.0) * (-1.0) ** np.abs(m)
    np.testing.assert_allclose(a[1], sign * a[0], atol=1e-4 * np.abs(a[0]).max())
    assert np.abs(a[1] - a[0]).max() > 0.1 * np.abs(a[0]).max()


# ----------------------------------------------------------------------------- analytic cases


def test_basis_row_gives_unit_moment():
    basis = zernike_basis(33, 10).reshape(66, 33, 33)
    a = zernike_moments(basis, 10)
    np.testing.assert_allclose(a, np.eye(66), atol=1e-5)  # float32 product


@pytest.mark.parametrize("n,m", [(2, 0), (3, -1), (4, 2), (5, -3), (6, 4), (8, -2)])
def test_sampled_polynomial_gives_unit_moment(n, m):
    size = 65
    scale = 2.0 / size  # sqrt(pixel area) in disk units: a patch sqrt(dA) Z_n^m has moment ~1
    z = _analytic_zernike(size, n, m) * scale
    a = zernike_moments(z[None], 10)[0]
    k = _index(10, n, m)
    # Point samples vs the pixel-averaged basis: a discretisation difference of a few %.
    assert a[k] == pytest.approx(1.0, abs=0.04)
    assert np.abs(np.delete(a, k)).max() < 0.04
    # The same polynomial without the scale has moment ~ 1/sqrt(dA) = size/2.
    a_raw = zernike_moments((z / scale)[None], 10)[0]
    assert a_raw[k] == pytest.approx(size / 2, rel=0.04)


@pytest.mark.parametrize("n,m", [(2, 2), (3, 1), (4, 4), (6, 2), (5, 3)])
@pytest.mark.parametrize("angle", [17.0, 33.3, 71.0])
def test_rotated_polynomial_mixes_its_pair(n, m, angle):
    size = 65
    rotated = _analytic_zernike(size, n, m, angle) * (2.0 / size)
    a = zernike_moments(rotated[None], 10)[0]
    c, s = a[_index(10, n, m)], a[_index(10, n, -m)]
    a_rad = np.deg2rad(angle)
    # Counter-clockwise rotation by a: cos(mθ - ma) = cos(ma) cos(mθ) + sin(ma) sin(mθ).
    assert c == pytest.approx(np.cos(m * a_rad), abs=0.04)
    assert s == pytest.approx(np.sin(m * a_rad), abs=0.04)
    others = np.delete(a, [_index(10, n, m), _index(10, n, -m)])
    assert np.abs(others).max() < 0.04
    assert rotation_invariants(a, 10)[
        int(np.flatnonzero((invariant_indices(10) == (n, m)).all(axis=1))[0])
    ] == pytest.approx(1.0, abs=0.04)


def test_scipy_rotate_direction_matches_pair_mixing():
    """ndimage.rotate(+a) turns the (cos, sin) pair of a smooth patch by +m·a."""
    size, n, m, angle = 65, 4, 2, 33.3
    yy, xx = np.mgrid[:size, :size]
    envelope = np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / (2 * 12.0**2))
    f = _analytic_zernike(size, n, m) * envelope  # smooth to the rim, so rotation is clean
    g = ndimage.rotate(f, angle, reshape=False, order=3)
    a_f, a_g = zernike_moments(np.stack([f, g]), 10)
    kc, ks = _index(10, n, m), _index(10, n, -m)
    phase_f = np.arctan2(a_f[ks], a_f[kc])
    phase_g = np.arctan2(a_g[ks], a_g[kc])
    assert np.rad2deg(phase_g - phase_f) == pytest.approx(m * angle, abs=0.5)


# ----------------------------------------------------------------------------- reconstruction


def test_reconstruction_error_falls_with_order():
    size = 33
    f = _blobs(size) + 0.2 * _analytic_zernike(size, 12, 6) / 10
    inside = _analytic_zernike(size, 0, 0) > 0
    errors = []
    for n_max in (4, 6, 8, 10, 14):
        r = reconstruct(zernike_moments(f[None], n_max), size, n_max)[0]
        errors.append(np.linalg.norm((r - f)[inside]) / np.linalg.norm(f[inside]))
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.2 * errors[0]
    assert errors[-1] < 0.08  # measured 0.059


def test_reconstruct_is_exact_on_the_span():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 66))
    patches = reconstruct(a, 21, 10)
    assert patches.shape == (3, 21, 21)
    np.testing.assert_allclose(zernike_moments(patches, 10), a, atol=1e-5)
    assert reconstruct(a[0], 21, 10).shape == (21, 21)


# ----------------------------------------------------------------------------- rotate / align


def test_rotate_moments_matches_rotated_and_mirrored_images():
    f = _blobs(33)
    a_f = zernike_moments(f[None], 10)[0]
    for angle in (17.0, 71.0):
        g = ndimage.rotate(f, angle, reshape=False, order=3, mode="constant")
        a_g = zernike_moments(g[None], 10)[0]
        predicted = rotate_moments(a_f, angle, 10)
        assert np.linalg.norm(predicted - a_g) < 0.01 * np.linalg.norm(a_f)
    # Mirror then rotate by 90°: exact on the grid.
    h = np.rot90(np.fliplr(f))
    a_h = zernike_moments(h[None], 10)[0]
    np.testing.assert_allclose(rotate_moments(a_f, 90.0, 10, mirror=True), a_h, atol=1e-4)
    # Per-patch angles, invariants untouched.
    both = rotate_moments(np.stack([a_f, a_f]), np.array([10.0, 200.0]), 10)
    np.testing.assert_allclose(
        rotation_invariants(both, 10), rotation_invariants(a_f, 10)[None].repeat(2, 0)
    )


def test_align_moments_undoes_rotations_before_averaging():
    f = _blobs(33)
    a_f = zernike_moments(f[None], 10)[0]
    angles = np.array([0.0, 25.0, 80.0, 133.0, 250.0, 301.0])
    turned = np.stack(
        [ndimage.rotate(f, t, reshape=False, order=3, mode="constant") for t in angles]
    )
    turned[3] = np.fliplr(turned[3])  # one mirror image among them
    moments = zernike_moments(turned, 10)
    aligned, angle, mirrored = align_moments(moments, a_f, 10)
    assert mirrored.tolist() == [False, False, False, True, False, False]
    # rotate_moments mirrors first, then rotates: R(a) M (M R(t) f) = f for a = -t, mirror or not.
    undo = np.mod(-angles, 360.0)
    err = np.abs((angle - undo + 180.0) % 360.0 - 180.0)
    assert err.max() <= 1.0
    inside = _analytic_zernike(33, 0, 0) > 0
    mean_aligned = reconstruct(aligned.mean(0), 33, 10)
    mean_raw = reconstruct(moments.mean(0), 33, 10)
    truth = reconstruct(a_f, 33, 10)
    err_aligned = np.linalg.norm((mean_aligned - truth)[inside]) / np.linalg.norm(truth[inside])
    err_raw = np.linalg.norm((mean_raw - truth)[inside]) / np.linalg.norm(truth[inside])
    assert err_aligned < 0.02 < 0.2 < err_raw


# ----------------------------------------------------------------------------- transformers


def test_normalize_removes_dose_and_brightness():
    f = _blobs(33)
    stack = np.stack([f, 7.5 * f + 120.0, 0.02 * f - 3.0])
    zf = ZernikeFeatures().fit(stack)
    v = zf.transform(stack)
    # float32 product: an offset 16x the signal costs ~1e-4 of the unit-norm descriptor.
    np.testing.assert_allclose(v[1:], np.broadcast_to(v[0], (2, 36)), atol=1e-3)
    assert np.abs(v[1:] - v[0]).max() > 0  # the inputs really differ
    # Unit norm, and the (0, 0) invariant carries nothing.
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert np.all(v[:, 0] == 0)
    # Without normalisation the scale shows.
    raw = ZernikeFeatures(normalize=False).fit_transform(stack)
    assert raw[1, 1] == pytest.approx(7.5 * raw[0, 1], rel=1e-3)  # (1, 1): no offset leaks in
    # moments() is what transform() takes the invariants of.
    np.testing.assert_allclose(rotation_invariants(zf.moments(stack), 10), v)
    # A flat patch has no structure: an all-zero descriptor, not NaN.
    flat = zf.transform(np.full((1, 33, 33), 42.0))
    assert np.all(flat == 0)


def _labelled_patches(n_per_class=30, size=25, seed=0):
    """Two rotated motifs with noise: a 6-fold ring and a 3-fold ring."""
    rng = np.random.default_rng(seed)
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    patches, labels = [], []
    for label, fold in enumerate((6, 3)):
        for _ in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi)
            f = np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / 4.0)
            for t in phase + np.arange(fold) * 2 * np.pi / fold:
                f += np.exp(-((xx - c - 7 * np.cos(t)) ** 2 + (yy - c - 7 * np.sin(t)) ** 2) / 4.0)
            patches.append(rng.poisson(50 * f + 5))
            labels.append(label)
    return np.asarray(patches, dtype=np.float32), np.asarray(labels)


@pytest.mark.parametrize("make", [ZernikeFeatures, lambda: PCAFeatures(random_state=0)])
def test_transformers_shape_and_pipeline(make):
    X, y = _labelled_patches()
    est = make()
    out = est.fit_transform(X)
    assert out.shape == (60, 36) and out.dtype == np.float64
    # Flattened patches are accepted too.
    np.testing.assert_allclose(est.transform(X.reshape(60, -1)), out, atol=1e-9)
    assert len(est.get_feature_names_out()) == 36
    pipe = make_pipeline(clone(est), StandardScaler(), KMeans(2, n_init=10, random_state=0))
    labels = pipe.fit_predict(X)
    assert labels.shape == (60,)
    if isinstance(est, ZernikeFeatures):
        # Rotation invariance: random orientations do not matter, the two motifs separate.
        assert adjusted_rand_score(y, labels) == 1.0


def test_pca_features_params_and_errors():
    X, _ = _labelled_patches(n_per_class=10)
    p = PCAFeatures(n_components=5, whiten=True, random_state=0).fit(X)
    assert p.transform(X).shape == (20, 5)
    np.testing.assert_allclose(p.transform(X).std(axis=0, ddof=1), 1.0, rtol=1e-6)
    # Normalised: an affine change of intensity gives the same scores.
    np.testing.assert_allclose(p.transform(3 * X + 10), p.transform(X), atol=1e-8)
    assert clone(p).get_params()["n_components"] == 5
    with pytest.raises(NotFittedError):
        PCAFeatures().transform(X)
    with pytest.raises(AnalysisError, match="n_components"):
        PCAFeatures(n_components=50).fit(X)
    with pytest.raises(ValueError, match="expecting 625 features"):
        p.transform(np.zeros((2, 21, 21)))


def test_validation_errors():
    with pytest.raises(AnalysisError, match=r"shape \(P, size, size\)"):
        zernike_moments(np.zeros((3, 21, 19)))
    with pytest.raises(AnalysisError, match="too small"):
        zernike_basis(11, 10)
    with pytest.raises(AnalysisError, match="n_max"):
        zernike_indices(-1)
    bad = np.zeros((4, 21, 21), dtype=np.float32)
    bad[2, 5, 10] = np.nan
    with pytest.raises(AnalysisError, match=r"NaN or Inf \(patch indices \[2\]\)"):
        zernike_moments(bad)
    with pytest.raises(AnalysisError, match=r"\(P, 66\)"):
        rotation_invariants(np.zeros((2, 65)), 10)
    with pytest.raises(AnalysisError, match="square number"):
        ZernikeFeatures().fit(np.zeros((3, 20)))


def test_float32_and_float64_inputs_agree():
    f = np.random.default_rng(2).random((5, 21, 21))
    np.testing.assert_allclose(
        zernike_moments(f, 10), zernike_moments(f.astype(np.float32), 10), atol=1e-5
    )
    assert zernike_moments(f.astype(np.uint16) * 0, 10).shape == (5, 66)
