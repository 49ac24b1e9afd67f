"""The shared level-1 vocabulary: matching rules, and the threshold measured on synthetic images."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree
from threadpoolctl import threadpool_limits

from motifcat.catalog.store import Statement, open_catalog
from motifcat.catalog.vocabulary import (
    DEFAULT_THRESHOLD,
    assign,
    descriptor_distances,
    descriptor_space,
    match_level1,
    normalize_descriptor,
    parse_space,
    scaling_of,
)
from motifcat.catalog.writer import write_analysis
from motifcat.errors import CatalogError
from motifcat.ingest.io import micrograph_from_array
from motifcat.ingest.model import AnalysisParams, MotifClass
from motifcat.ingest.pipeline import analyze

SIZE = (384, 384)
LEVEL1 = AnalysisParams(hierarchy=False)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # Small GMM fits are ~15x slower with several BLAS threads on a shared 2-core machine.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def tmd(synthetic):
    return synthetic("tmd", SIZE, seed=11)


@pytest.fixture(scope="module")
def cairo(synthetic):
    return synthetic("cairo", SIZE, seed=11)


def _analyses(analysed, kind):
    """Full dose, another noise draw at full dose, and 1/10 of the dose, of one specimen."""
    return {
        "full": analysed(kind, SIZE, LEVEL1, seed=11),
        "redraw": analysed(kind, SIZE, LEVEL1, dose=1.0, dose_seed=101, seed=11),
        "tenth": analysed(kind, SIZE, LEVEL1, dose=0.1, dose_seed=102, seed=11),
    }


@pytest.fixture(scope="module")
def tmd_runs(analysed):
    return _analyses(analysed, "tmd")


@pytest.fixture(scope="module")
def cairo_runs(analysed):
    return _analyses(analysed, "cairo")


def _desc(a):
    """Class descriptors in the form the vocabulary compares them."""
    space = descriptor_space(a.params)
    return np.array([normalize_descriptor(c.descriptor, space) for c in a.classes])


def same_class_pairs(a, b, min_jaccard=0.5):
    """Class pairs of two analyses of one specimen that hold mostly the same columns."""
    j = cKDTree(b.columns.xy).query(a.columns.xy, distance_upper_bound=2.0)[1]
    ok = (j < len(b.columns)) & (a.labels >= 0)
    la, lb = a.labels[ok], b.labels[j[ok]]
    ok2 = lb >= 0
    la, lb = la[ok2], lb[ok2]
    na, nb = len(a.classes), len(b.classes)
    both = np.zeros((na, nb))
    np.add.at(both, (la, lb), 1)
    size_a = np.bincount(a.labels[a.labels >= 0], minlength=na)[:, None]
    size_b = np.bincount(b.labels[b.labels >= 0], minlength=nb)[None, :]
    jac = both / (size_a + size_b - both)
    return np.argwhere(jac >= min_jaccard)


def _majority_truth(syn, a):
    """The most common true column type of each class."""
    j = cKDTree(syn.xy).query(a.columns.xy)[1]
    t = syn.column_class[j]
    return np.array([np.bincount(t[a.labels == k]).argmax() for k in range(len(a.classes))])


def test_threshold_separates_same_from_different_classes(tmd, cairo, tmd_runs, cairo_runs):
    """The documented threshold lies between the distance of one class seen twice (another noise
    draw, or 1/10 of the dose) and the distance between two classes of different true column
    types of one material (the measurement behind DEFAULT_THRESHOLD, on one more specimen)."""
    same, different = [], []
    for syn, runs in ((tmd, tmd_runs), (cairo, cairo_runs)):
        ref = runs["full"]
        d_ref = descriptor_distances(_desc(ref), _desc(ref))
        truth = _majority_truth(syn, ref)
        iu = np.triu_indices(len(ref.classes), 1)
        different.extend(d_ref[iu][truth[iu[0]] != truth[iu[1]]].tolist())
        major = np.array([c.count for c in ref.classes]) >= 0.05 * len(ref.columns)
        for other in ("redraw", "tenth"):
            b = runs[other]
            pairs = same_class_pairs(ref, b)
            assert len(pairs) >= 2, "the two analyses should share most classes"
            # A rare class (a few defect columns) re-found at 1/10 dose may drift beyond the
            # threshold and become a new motif (see THRESHOLDS); the match is measured on the
            # classes of >= 5 % of the columns.
            pairs = pairs[major[pairs[:, 0]]]
            d = descriptor_distances(_desc(ref), _desc(b))
            same.extend(d[pairs[:, 0], pairs[:, 1]].tolist())
    assert len(different) >= 3 and len(same) >= 7
    print("same <=", max(same), "different >=", min(different))
    assert max(same) < DEFAULT_THRESHOLD < min(different), (max(same), min(different))
    # and the two materials are far apart
    cross = descriptor_distances(_desc(tmd_runs["full"]), _desc(cairo_runs["full"]))
    assert cross.min() > 1.5 * DEFAULT_THRESHOLD


def test_same_material_twice_maps_to_same_motifs(tmp_path, tmd, tmd_runs, cairo_runs):
    with open_catalog(tmp_path / "cat") as store:
        first = write_analysis(store, tmd_runs["full"], sample="tmd-1", material="MoSe2")
        second = write_analysis(store, tmd_runs["redraw"], sample="tmd-2", material="MoSe2")
        low = write_analysis(store, tmd_runs["tenth"], sample="tmd-3", material="MoSe2")
        other = write_analysis(store, cairo_runs["full"], sample="cairo-1", material="MoVTeNbO")
        l1 = set(first.new_motifs)
        assert l1 and all(m.startswith("L1-") for m in l1)
        # every class of the second image, and every major class (>= 5 % of the columns; see
        # THRESHOLDS for the rare ones) of the low-dose image, is an existing motif of the first
        assert second.new_motifs == [] and set(second.matched_motifs) <= l1
        n_major = sum(c.count >= 0.05 * len(tmd_runs["tenth"].columns)
                      for c in tmd_runs["tenth"].classes)
        assert len(set(low.matched_motifs) & l1) >= n_major
        # the other material creates its own motifs and shares none
        assert other.matched_motifs == [] and len(other.new_motifs) == len(
            cairo_runs["full"].classes
        )
        assert not set(other.new_motifs) & l1

        # the column at one true site gets the same global motif in both images
        rows = store.read(
            "MATCH (i:Instance)-[:IN_IMAGE]->(img:Image) MATCH (i)-[:INSTANCE_OF]->(m:Motif) "
            "WHERE img.id IN $ids RETURN img.id AS img, i.x_A AS x, i.y_A AS y, m.id AS m",
            {"ids": [first.image_id, second.image_id]},
        )
        by_img = {first.image_id: [], second.image_id: []}
        for r in rows:
            by_img[r["img"]].append((r["x"], r["y"], r["m"]))
        a = np.array([(x, y) for x, y, _ in by_img[first.image_id]])
        b = np.array([(x, y) for x, y, _ in by_img[second.image_id]])
        ma = np.array([m for *_, m in by_img[first.image_id]])
        mb = np.array([m for *_, m in by_img[second.image_id]])
        d, j = cKDTree(b).query(a)
        close = d < 0.3  # Å: the same column
        agree = (ma[close] == mb[j[close]]).mean()
        assert close.sum() > 0.9 * len(a) and agree > 0.97


def test_assignment_is_one_to_one():
    e = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    new = np.array([[1.0, 0.01, 0.0], [1.0, 0.02, 0.0], [0.0, 0.0, 1.0]])
    out = assign(new, e, 0.1)
    assert out[0] == 0 and out[1] == -1 and out[2] == -1  # the closer one wins, the other is new
    assert assign(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), e, 0.1).tolist() == [1, 0]
    assert assign(new, np.empty((0, 3)), 0.1).tolist() == [-1, -1, -1]


def test_stored_form_per_space():
    d = np.random.default_rng(0).random(36)
    patch = "zernike-n10-patch"
    # patch-scaled descriptors: only the direction counts
    a, b = normalize_descriptor(d, patch), normalize_descriptor(7.5 * d, patch)
    assert descriptor_distances(a[None], b[None])[0, 0] == pytest.approx(0, abs=1e-7)
    assert np.linalg.norm(normalize_descriptor(3 * d, patch)) == pytest.approx(1)
    assert normalize_descriptor(np.zeros(4), patch).tolist() == [0, 0, 0, 0]
    # image-scaled descriptors are already dose/brightness-free: kept as they are
    assert np.array_equal(normalize_descriptor(3 * d, "zernike-n10-image-w0.5"), 3 * d)
    with pytest.raises(CatalogError, match="NaN"):
        normalize_descriptor([np.nan, 1.0])


def test_brightness_and_dose_do_not_matter_in_the_default_space(tmd):
    """The same specimen imaged brighter (x3 gain, +50 offset) gives the same descriptors."""
    a = analyze(tmd.at_dose(1.0, seed=5).micrograph(), LEVEL1)
    img = tmd.at_dose(1.0, seed=5).image * 3.0 + 50.0
    b = analyze(
        micrograph_from_array(img, pixel_size_A=tmd.pixel_size_A), LEVEL1, columns=a.columns
    )
    assert np.array_equal(a.labels, b.labels)
    assert np.abs(_desc(a) - _desc(b)).max() < 1e-3 * np.abs(_desc(a)).max()


def _cls(k, vec):
    return MotifClass(level=1, label=k, key=f"L1:{k}", count=1, descriptor=np.asarray(vec))


def test_match_level1_numbering_and_spaces(tmp_path):
    with open_catalog(tmp_path / "cat") as store:
        classes = [_cls(0, [1.0, 0.0]), _cls(1, [0.0, 1.0])]
        assert match_level1(store, classes) == ["L1-0001", "L1-0002"]
        store.write(
            [
                Statement(
                    "UNWIND $rows AS r CREATE (:Motif {id: r.id, level: 1, key: r.key, "
                    "descriptor: r.d, n_instances: 1})",
                    {
                        "rows": [
                            {"id": "L1-0001", "key": "L1:zernike-n10-patch", "d": [1.0, 0.0]},
                            {"id": "L1-0002", "key": "L1:pca-abc", "d": [0.0, 1.0]},
                        ]
                    },
                )
            ]
        )
        # a brighter copy of motif 1 matches it; [0, 1] exists only in another space -> new
        patch = "zernike-n10-patch"
        got = match_level1(store, [_cls(0, [0.0, 3.0]), _cls(1, [5.0, 0.01])], space=patch)
        assert got == ["L1-0003", "L1-0001"]
        assert match_level1(store, [_cls(0, [0.0, 1.0])], space="pca-abc") == ["L1-0002"]
        assert match_level1(store, [_cls(0, [1.0, 0.0])], threshold=0.0, space=patch) == ["L1-0001"]
        # the default (image-scaled) space has no motif yet: a new id (nothing is written)
        assert match_level1(store, [_cls(0, [1.0, 0.0])]) == ["L1-0003"]
        with pytest.raises(CatalogError, match="threshold"):
            match_level1(store, classes, threshold=-1)
        assert match_level1(store, []) == []


def test_descriptor_space():
    assert descriptor_space(AnalysisParams(n_max=8)) == "zernike-n8-image-w0.5-r1.5"
    assert descriptor_space(AnalysisParams(window_sigma=None)) == "zernike-n10-image"
    patch = AnalysisParams(intensity_scale="patch")
    assert descriptor_space(patch) == "zernike-n10-patch-w0.5-r1.5"
    assert descriptor_space(AnalysisParams(env_radius=0)) == "zernike-n10-image-w0.5"
    assert descriptor_space(AnalysisParams(features="pca"), "f00") == "pca-f00"


def test_spaces_are_parsed_not_searched():
    for params in (
        AnalysisParams(),
        AnalysisParams(n_max=8, window_sigma=None),
        AnalysisParams(intensity_scale="patch", window_sigma=1.25),
        AnalysisParams(env_radius=0.0),
    ):
        got = parse_space(descriptor_space(params))
        assert got == {
            "features": "zernike",
            "n_max": params.n_max,
            "scaling": params.intensity_scale,
            "window_sigma": params.window_sigma,
            "env_radius": params.env_radius if params.window_sigma else 0.0,
            "image_id": None,
        }
    # a PCA space is per image and stored as computed, whatever its image id spells
    pca = descriptor_space(AnalysisParams(features="pca"), "ab-patch-12")
    assert parse_space(pca)["image_id"] == "ab-patch-12" and scaling_of(pca) == "image"
    d = np.array([3.0, 4.0])
    assert np.array_equal(normalize_descriptor(d, pca), d)
    # the older space without scaling held unit-norm descriptors
    assert scaling_of("zernike-n10") == "patch"
    for bad in ("zernike-n10-image-patch", "zernike-10", "pca-", "L1:zernike-n10", ""):
        with pytest.raises(CatalogError, match="not a descriptor space"):
            scaling_of(bad)
    with pytest.raises(CatalogError, match="image id"):
        descriptor_space(AnalysisParams(features="pca"))
