"""Shared test data: synthetic images and their analyses, each built once per session.

Test modules ask for a recipe instead of building it themselves, so that two modules that use
the same image (and the doctests' catalog, see the root ``conftest.py``) share one build:

* ``synthetic("tmd" | "cairo", shape, **kwargs)`` -> :class:`~motifcat.datasets.SyntheticImage`
  (``make_tmd`` / ``make_cairo`` with those arguments);
* ``analysed(kind, shape, params=None, *, dose=None, dose_seed=0, path=None, **kwargs)`` ->
  :class:`~motifcat.ingest.Analysis` of that image (at relative ``dose`` when given), with
  single-threaded BLAS so that the result does not depend on which test asked first.

Both return frozen dataclasses: treat their arrays as read-only.
"""

from __future__ import annotations

import json

import pytest
from threadpoolctl import threadpool_limits

from motifcat.datasets import make_cairo, make_tmd
from motifcat.ingest import AnalysisParams, analyze

GENERATORS = {"tmd": make_tmd, "cairo": make_cairo}


def _key(*parts) -> str:
    return json.dumps(parts, sort_keys=True, default=repr)


@pytest.fixture(scope="session")
def synthetic():
    """Factory of synthetic images, cached by their arguments (see the module notes)."""
    cache = {}

    def make(kind: str, shape, **kwargs):
        key = _key(kind, list(shape), kwargs)
        if key not in cache:
            cache[key] = GENERATORS[kind](tuple(shape), **kwargs)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def analysed(synthetic):
    """Factory of analyses of synthetic images, cached by their arguments."""
    cache = {}

    def run(kind: str, shape, params: AnalysisParams | None = None, *, dose: float | None = None,
            dose_seed: int = 0, path: str | None = None, **kwargs):
        params = params or AnalysisParams()
        key = _key(kind, list(shape), params.to_json(), dose, dose_seed, path, kwargs)
        if key not in cache:
            syn = synthetic(kind, shape, **kwargs)
            if dose is not None:
                syn = syn.at_dose(dose, seed=dose_seed)
            with threadpool_limits(1):
                cache[key] = analyze(syn.micrograph(path=path), params)
        return cache[key]

    return run
