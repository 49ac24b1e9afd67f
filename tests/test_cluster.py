"""MotifClusterer (modes of a BIC-selected mixture) and the image-wide descriptor scaling."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import fowlkes_mallows_score

from motifcat.errors import AnalysisError
from motifcat.ingest.cluster import MotifClusterer, class_centroids, make_clusterer
from motifcat.ingest.pipeline import image_intensity_scale, patch_window, prepare_patches


def blobs(centres, sizes, sd, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(c, sd, (n, dim)) for c, n in zip(centres, sizes, strict=True)])
    y = np.repeat(np.arange(len(sizes)), sizes)
    return X, y


def test_well_separated_blobs_give_the_right_number_and_partition():
    X, y = blobs([0.0, 6.0, 12.0], [400, 250, 120], 1.0)
    c = MotifClusterer(max_classes=8).fit(X)
    assert c.n_classes_ == 3
    assert fowlkes_mallows_score(y, c.labels_) > 0.99


def test_one_skewed_class_is_one_class():
    # Rician magnitudes (what rotation invariants of noisy moments are): skewed, one mode.
    rng = np.random.default_rng(1)
    X = np.hypot(rng.normal(1.5, 1.0, (3000, 3)), rng.normal(0.0, 1.0, (3000, 3)))
    c = MotifClusterer(max_classes=8).fit(X)
    assert c.n_components_ > 1  # the density estimate did need several components ...
    assert c.n_classes_ == 1  # ... but they form one mode


def test_classes_are_ordered_by_size_and_predict_matches_labels():
    X, y = blobs([0.0, 8.0, -8.0], [100, 500, 250], 1.0, seed=2)
    c = MotifClusterer().fit(X)
    counts = np.bincount(c.labels_)
    assert list(counts) == sorted(counts, reverse=True)
    assert counts.tolist() == [500, 250, 100]
    assert np.array_equal(c.predict(X), c.labels_)


def test_noise_robustness_number_of_classes_stays_put():
    # The same two classes at growing noise: never more than two classes; two while separable.
    ks = []
    for sd in (0.3, 1.0, 2.0):
        X, y = blobs([0.0, 10.0], [800, 600], sd, dim=8, seed=3)
        c = MotifClusterer().fit(X)
        ks.append(c.n_classes_)
        assert fowlkes_mallows_score(y, c.labels_) > 0.99
    assert ks == [2, 2, 2]


def test_subsample_fit_labels_every_sample():
    X, y = blobs([0.0, 7.0], [3000, 1000], 1.0, dim=4, seed=4)
    c = MotifClusterer(max_fit_samples=500).fit(X)
    assert c.labels_.shape == (4000,)
    assert fowlkes_mallows_score(y, c.labels_) > 0.99


def test_tiny_modes_are_absorbed():
    X, _ = blobs([0.0, 9.0], [1000, 3], 1.0, dim=3, seed=5)  # 3 outliers, min size 5
    c = MotifClusterer().fit(X)
    assert c.n_classes_ == 1


def test_bad_input_is_refused():
    with pytest.raises(AnalysisError, match="two descriptors"):
        MotifClusterer().fit(np.zeros((1, 3)))
    with pytest.raises(AnalysisError, match="NaN"):
        MotifClusterer().fit(np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(AnalysisError, match="unknown clusterer"):
        make_clusterer("kmeans", max_classes=3, random_state=0)


def test_class_centroids():
    c = class_centroids(np.array([[0.0, 1.0], [2.0, 3.0], [10.0, 0.0]]), np.array([1, 1, 0]), 2)
    assert c.tolist() == [[10.0, 0.0], [1.0, 2.0]]


def test_image_scale_is_dose_and_brightness_independent_and_keeps_contrast(synthetic):
    from motifcat.datasets import poisson_dose

    syn = synthetic("tmd", (256, 256), seed=3)
    b1, s1 = image_intensity_scale(syn.clean, syn.xy, 1.6)
    # Brightness and gain: a*f + b moves background and scale the same way.
    b2, s2 = image_intensity_scale(3.0 * syn.clean + 50.0, syn.xy, 1.6)
    assert s2 == pytest.approx(3.0 * s1, rel=1e-4)
    assert b2 == pytest.approx(3.0 * b1 + 50.0, rel=1e-4)
    # Dose: a Poisson draw at 1/50 gives the same scale per unit dose within a few per cent.
    low = poisson_dose(syn.clean, 0.02, np.random.default_rng(0))
    b3, s3 = image_intensity_scale(low, syn.xy, 1.6)
    assert s3 / 0.02 == pytest.approx(s1, rel=0.02)
    assert b3 / 0.02 == pytest.approx(b1, rel=0.02)
    # Z-contrast is kept: in scaled units, X2 (Se2) columns are brighter than M (Mo) ones.
    idx = np.round(syn.xy).astype(int)
    scaled = (syn.clean[idx[:, 1], idx[:, 0]] - b1) / s1
    names = list(syn.class_names)
    m = scaled[syn.column_class == names.index("M")].mean()
    x2 = scaled[syn.column_class == names.index("X2")].mean()
    assert x2 > 1.2 * m


def test_window_and_prepare():
    w = patch_window(11, 2.0)
    assert w[5, 5] == 1.0 and w[5, 7] == pytest.approx(np.exp(-0.5))
    assert np.array_equal(patch_window(5, None), np.ones((5, 5), dtype=np.float32))
    with pytest.raises(AnalysisError, match="window_sigma"):
        patch_window(5, 0.0)
    p = prepare_patches(np.full((2, 11, 11), 7.0, dtype=np.float32), 2.0, 5.0, w)
    assert p.dtype == np.float32
    assert p[0, 5, 5] == pytest.approx(1.0) and p[1, 5, 7] == pytest.approx(np.exp(-0.5))
    with pytest.raises(AnalysisError, match="brighter"):
        image_intensity_scale(np.ones((32, 32)), np.array([[16.0, 16.0]]), 1.0)


def test_tmd_columns_by_type_at_full_and_low_dose(synthetic, analysed):
    """Level-1 classes follow the column types (M, X2, X1) on a synthetic MoSe2 image."""
    from scipy.spatial import cKDTree

    from motifcat.ingest.model import AnalysisParams
    from motifcat.ingest.pipeline import analyze

    syn = synthetic("tmd", (512, 512), seed=11)
    full = analysed("tmd", (512, 512), AnalysisParams(hierarchy=False), seed=11)
    d, idx = cKDTree(syn.xy).query(full.columns.xy)
    ok = (full.labels >= 0) & (d < 3)
    truth = syn.column_class[idx[ok]]
    assert fowlkes_mallows_score(truth, full.labels[ok]) > 0.95
    low = analyze(
        syn.at_dose(0.02).micrograph(), AnalysisParams(hierarchy=False), columns=full.columns
    )
    assert fowlkes_mallows_score(truth, low.labels[ok]) > 0.9
    # The two big classes are the two sublattices. (Antisite columns, a Mo atom on a chalcogen
    # site, look like Mo columns under the taper and join the metal class.)
    site = syn.site[idx[ok]]
    lab = full.labels[ok]
    assert {np.bincount(site[lab == k]).argmax() for k in (0, 1)} == {0, 1}
    for k in (0, 1):
        assert np.bincount(site[lab == k]).max() / (lab == k).sum() > 0.99
