"""MotifClusterer (sites, then chemistries, by ICL) and the image-wide descriptor scaling."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import fowlkes_mallows_score

from motifcat.errors import AnalysisError
from motifcat.ingest.cluster import MotifClusterer, class_centroids, make_clusterer
from motifcat.ingest.pipeline import image_intensity_scale, patch_window, prepare_patches


def columns_like(n_sites=(600, 600), chem=None, sd_env=1.0, sd_cs=0.03, seed=0):
    """Descriptors [cross-section, 4 environment dims] of columns on ``len(n_sites)`` sites.

    ``chem`` maps a site to a list of (count, cross-section); by default one chemistry per site.
    """
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    cls = 0
    for s, n in enumerate(n_sites):
        parts = (chem or {}).get(s, [(n, 1.0 + 0.5 * s)])
        for count, cs in parts:
            env = rng.normal(8.0 * s, sd_env, (count, 4))
            rows.append(np.c_[rng.normal(cs, sd_cs * cs, count), env])
            truth += [cls] * count
            cls += 1
    return np.vstack(rows), np.array(truth)


def test_sites_then_chemistry_give_the_true_classes():
    X, y = columns_like()
    c = MotifClusterer().fit(X)
    assert (c.n_sites_, c.n_classes_) == (2, 2)
    assert fowlkes_mallows_score(y, c.labels_) > 0.99


def test_a_rare_chemistry_of_one_percent_is_kept():
    # 12 of 1200 columns (1 %): a single-vacancy chalcogen column, 40 % dimmer than its site.
    X, y = columns_like(chem={1: [(588, 1.5), (12, 0.9)]})
    c = MotifClusterer().fit(X)
    assert c.n_classes_ == 3
    rare = c.labels_[y == 2]
    assert np.all(rare == rare[0]) and np.sum(c.labels_ == rare[0]) == 12


def test_noise_does_not_make_classes():
    # One site, one chemistry, at three noise levels: one class every time.
    for sd in (0.01, 0.03, 0.1):
        X, _ = columns_like(n_sites=(1500,), sd_cs=sd, seed=int(sd * 100))
        assert MotifClusterer().fit(X).n_classes_ == 1


def test_a_small_environment_group_is_not_a_site():
    # 5 % of the columns with a changed environment (next to a defect) but the same chemistry.
    X, _ = columns_like(n_sites=(600, 600))
    X[:60, 1:] += [6.0, -6.0, 6.0, -6.0]  # across the line joining the two sites
    c = MotifClusterer().fit(X)
    assert c.n_sites_ == 2 and c.n_classes_ == 2


def test_classes_are_ordered_by_size_and_predict_matches_labels():
    X, _ = columns_like(n_sites=(500, 250, 100))
    c = MotifClusterer().fit(X)
    counts = np.bincount(c.labels_)
    assert counts.tolist() == [500, 250, 100]
    assert np.array_equal(c.predict(X), c.labels_)
    assert c.class_cross_section_ == pytest.approx([1.0, 1.5, 2.0], rel=0.02)


def test_k_does_not_grow_with_the_number_of_columns():
    # The same structure, 1x and 16x as many columns: the subsample keeps the order the same.
    small, _ = columns_like(chem={1: [(590, 1.5), (10, 0.9)]}, seed=1)
    large = np.vstack([columns_like(chem={1: [(590, 1.5), (10, 0.9)]}, seed=s)[0]
                       for s in range(16)])
    assert MotifClusterer().fit(small).n_classes_ == MotifClusterer().fit(large).n_classes_ == 3


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="minimum of 2"):
        MotifClusterer().fit(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
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


def test_a_partly_seen_environment_lets_the_cross_section_decide():
    # Site 0: cross-section 1.0; site 1: 1.5 (and a rare 0.5). A border column whose
    # environment looks like site 0 but whose cross-section is site 1's own.
    X, _ = columns_like(chem={1: [(590, 1.5), (10, 0.5)]})
    c = MotifClusterer().fit(X)
    row = np.r_[1.5, np.zeros(4)][None, :]  # environment of site 0, chemistry of site 1
    site1 = c.predict(np.r_[1.5, np.full(4, 8.0)][None, :])[0]
    site0 = c.predict(np.r_[1.0, np.zeros(4)][None, :])[0]
    assert c.predict(row, env_weight=np.array([0.0]))[0] == site1
    # fully seen, the environment puts it on site 0 (whose only chemistry is 1.0)
    assert c.predict(row, env_weight=np.array([1.0]))[0] == site0 == c.predict(row)[0]


def test_a_few_columns_far_below_a_broad_class_are_a_class_of_their_own():
    # As Sr_vac in perovskite.npz at 1/50 dose: 5 columns 0.35 below a broad class whose
    # upper tail is long (La_Sr); k-means alone split the broad class instead.
    rng = np.random.default_rng(3)
    cs = np.r_[rng.normal(2.5, 0.15, 190), rng.normal(3.1, 0.3, 5), rng.normal(1.7, 0.08, 5)]
    X = np.c_[cs, np.zeros((len(cs), 0))]
    c = MotifClusterer(min_class_size=3).fit(X)
    low = c.labels_[-5:]
    assert len(set(low)) == 1 and np.sum(c.labels_ == low[0]) == 5
