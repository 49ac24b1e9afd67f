"""Doctests of the motifcat package: which files, and the small catalog their examples query.

``make test`` runs ``--doctest-modules`` over ``motifcat/`` and ``tests/``; only modules of the
package are collected as doctests, not its Streamlit page scripts (importing one draws a page;
a test module's docstrings are not examples either), and the folders
``bench/`` and ``tests/cypher/node_modules`` are not collected at all, see ``norecursedirs``).

The examples of the query layer and the exporter run against :func:`small_catalog`: three
synthetic images of two materials, analysed and written for real into an embedded catalog, with
``store`` (the open catalog) and ``image_id`` (its first image) in the doctest namespace.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _pytest.doctest import DoctestItem, DoctestModule

PACKAGE = Path(__file__).resolve().parent / "motifcat"
#: Streamlit page scripts: they draw the page when imported, so they are not doctest modules.
SCRIPTS = (PACKAGE / "app" / "main.py", PACKAGE / "app" / "views")

#: Modules whose examples use the fixture catalog.
CATALOG_EXAMPLES = ("motifcat.query.", "motifcat.export")


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path, parent):
    collected = yield
    path = Path(file_path).resolve()
    if PACKAGE in path.parents and not any(path == s or s in path.parents for s in SCRIPTS):
        return collected
    return [c for c in collected if not isinstance(c, DoctestModule)]


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory):
    """Three synthetic images of two materials, analysed and written for real (read-only use).

    Samples ``mose2-a``, ``mose2-b`` (MoSe2) and ``ws2-a`` (WS2), one 192 × 192 px image each.
    Yields ``(store, reports)``, the open embedded catalog and the three write reports.
    """
    from threadpoolctl import threadpool_limits

    from motifcat.catalog import open_catalog, write_analysis
    from motifcat.datasets import make_tmd
    from motifcat.ingest import analyze

    store = open_catalog(str(tmp_path_factory.mktemp("small-catalog") / "catalog.lbug"))
    reports = []
    with threadpool_limits(1):
        for seed, sample, material, kw in (
            (1, "mose2-a", "MoSe2", {}),
            (2, "mose2-b", "MoSe2", {}),
            (3, "ws2-a", "WS2", {"metal": "W", "chalcogen": "S", "a_A": 3.153}),
        ):
            mg = make_tmd((192, 192), seed=seed, **kw).micrograph()
            reports.append(write_analysis(store, analyze(mg), sample=sample, material=material))
    yield store, reports
    store.close()


@pytest.fixture(autouse=True)
def _doctest_setup(request, doctest_namespace):
    """``store`` and ``image_id`` for the examples of the query layer and the exporter, and
    NumPy scalars shown as plain numbers (``8.0``, not ``np.float64(8.0)`` as NumPy >= 2
    prints them), so that an example reads the same under every supported NumPy."""
    if not isinstance(request.node, DoctestItem):
        yield
        return
    if request.node.name.startswith(CATALOG_EXAMPLES):
        store, reports = request.getfixturevalue("small_catalog")
        doctest_namespace["store"] = store
        doctest_namespace["image_id"] = reports[0].image_id
    with np.printoptions(legacy="1.25"):
        yield
