"""Deprecated location of batch ingest: use :mod:`motifcat.batch`.

Batch orchestration runs analyses, so it moved out of the catalog (which only stores) to
:mod:`motifcat.batch`. This module re-exports the old names for one release.
"""

from __future__ import annotations

from ..batch import IngestSummary, Progress, _analyse_file, _init_worker, expand_paths, ingest_files

__all__ = ["IngestSummary", "Progress", "expand_paths", "ingest_files"]
# The private names stay importable from here too, for code that patched or called them.
_ = (_analyse_file, _init_worker)
