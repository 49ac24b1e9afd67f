"""Level-1 classes on synthetic images (issue 10): values, not "it ran"."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from motifcat.datasets import make_tmd
from motifcat.ingest.io import micrograph_from_array
from motifcat.ingest.model import AnalysisParams
from motifcat.ingest.names import level1_display_names
from motifcat.ingest.pipeline import analyze

LEVEL1 = AnalysisParams(hierarchy=False)
#: a = 15 px exactly: a 300 x 312 px frame holds 20 x 12 lattice periods (12 x 25.98 px along y,
#: 0.1 px short), so the image tiles without a seam.
PERIODIC_PX = 3.288 / 15


def _truth(syn, result):
    d, j = cKDTree(syn.xy).query(result.columns.xy)
    assert np.all(d < 2.0)
    return syn.column_class[j], syn.site[j]


def test_defect_free_image_gets_one_class_per_sublattice():
    syn = make_tmd((384, 384), defects={}, seed=5)
    r = analyze(syn.micrograph(), LEVEL1)
    cls, site = _truth(syn, r)
    assert len(r.classes) == 2  # no class invented from noise
    # each class is one sublattice: every whole-patch column; border columns (their patch is
    # partly masked) join the other sublattice's class in 2.5 % of the cases here
    inner = r.has_patch
    for k in range(2):
        assert len(np.unique(site[inner & (r.labels == k)])) == 1
    share = sum(np.bincount(site[r.labels == k]).max() for k in range(2)) / len(site)
    assert share >= 0.97


def test_a_rare_chemistry_is_a_class_of_its_own():
    # Single chalcogen vacancies (Se1) on 2 % of the chalcogen sites: ~1 % of the columns.
    syn = make_tmd((512, 512), defects={"chalcogen_single": 0.02}, seed=7)
    r = analyze(syn.micrograph(), LEVEL1)
    cls, site = _truth(syn, r)
    x1 = (cls == 2) & r.has_patch
    assert 0.005 < (cls == 2).mean() < 0.015 and x1.sum() >= 5
    rare = np.bincount(r.labels[x1]).argmax()
    members = r.labels == rare
    assert np.mean(r.labels[x1] == rare) >= 0.9  # the defect columns are together ...
    assert np.mean(cls[members & r.has_patch] == 2) >= 0.9  # ... and alone
    # and the class is named by its brightness and share
    names = level1_display_names(r.classes)
    assert names[rare].startswith("dim") and "%" in names[rare]


def test_every_column_is_labelled_including_the_border():
    syn = make_tmd((384, 384), seed=2)
    r = analyze(syn.micrograph(), LEVEL1)
    assert (~r.has_patch).sum() > 0.1 * len(r.columns)  # many border columns ...
    assert np.all(r.labels >= 0)  # ... all labelled
    cls, site = _truth(syn, r)
    border = ~r.has_patch
    # the border columns' site is right: their class's majority site is theirs
    majority = {k: np.bincount(site[r.labels == k]).argmax() for k in range(len(r.classes))}
    pairs = zip(r.labels[border], site[border], strict=True)
    right = np.array([majority[k] == s for k, s in pairs])
    assert right.mean() >= 0.95


@pytest.mark.parametrize("n", [2, 3])
def test_a_tiled_image_gets_the_same_classes(n):
    syn = make_tmd((312, 300), pixel_size_A=PERIODIC_PX, seed=4,
                   defects={"chalcogen_single": 0.03})
    one = analyze(micrograph_from_array(syn.image, PERIODIC_PX), LEVEL1)
    tiled = analyze(micrograph_from_array(np.tile(syn.image, (n, n)), PERIODIC_PX), LEVEL1)
    assert len(tiled.columns) > (n * n - 0.5) * len(one.columns)
    assert len(tiled.classes) == len(one.classes)
