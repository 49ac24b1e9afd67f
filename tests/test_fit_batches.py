"""The Gaussian column model does not depend on how its columns are batched.

The fit keeps per-batch arrays (window validity, background-block indicators, neighbour
profile masks) across its passes; a batch must never be handed another batch's arrays.
"""

from __future__ import annotations

import numpy as np

from motifcat.datasets import make_cairo, make_tmd
from motifcat.ingest.columns.fit import fit_gaussian_columns


def _start(truth, spread):
    rng = np.random.default_rng(1)
    return truth + rng.normal(0, spread, truth.shape)


def _rmse(a, b):
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))


def test_joint_fit_is_the_same_in_one_batch_and_in_many():
    s = make_tmd((300, 300), seed=3)  # neighbours ~5 widths apart: joint steps
    xy = _start(s.xy, 0.6)
    one = fit_gaussian_columns(s.image, xy, 2.5, chunk=100_000)
    many = fit_gaussian_columns(s.image, xy, 2.5, chunk=64)
    assert len(xy) > 4 * 64  # several batches
    np.testing.assert_allclose(many.xy, one.xy, atol=1e-5)
    np.testing.assert_allclose(many.cross_section, one.cross_section, rtol=1e-5)
    np.testing.assert_allclose(many.significance, one.significance, rtol=1e-4)
    assert _rmse(one.xy, s.xy) < 0.1  # and it is the right answer (from 0.85 px off)


def test_sweeps_in_small_batches_find_the_columns():
    # Columns 0.4 px wide, 3.8 px apart: sweeps over colour groups, whose batches (index
    # arrays) are split by ``chunk``; the block Gauss-Seidel path depends slightly on the
    # split (about 0.003 px here), the answer must not.
    s = make_cairo((64, 64), pixel_size_A=1.0, seed=3)
    xy = _start(s.xy, 0.15)
    one = fit_gaussian_columns(s.image, xy, 0.6, chunk=100_000)
    many = fit_gaussian_columns(s.image, xy, 0.6, chunk=64)
    assert len(xy) > 4 * 64
    assert np.abs(many.xy - one.xy).max() < 0.02
    assert _rmse(many.xy, s.xy) < 0.15 and _rmse(one.xy, s.xy) < 0.15
    np.testing.assert_allclose(many.cross_section, one.cross_section, rtol=0.02)
