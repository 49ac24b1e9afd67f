"""motifcat.catalog: the graph catalog of images, instances and the shared motif vocabulary.

Open a catalog with :func:`open_catalog` (embedded Ladybug file by default, Neo4j for a
``neo4j://`` / ``bolt://`` URI), write analyses with :func:`write_analysis` (one image, one
transaction). Whole folders are analysed and written by :func:`motifcat.batch.ingest_files`
(``ingest_files``, ``expand_paths`` and ``IngestSummary`` are still importable from here for one
release).

Examples
--------
>>> import os, tempfile
>>> from motifcat.catalog import open_catalog
>>> with open_catalog(os.path.join(tempfile.mkdtemp(), "cat")) as store:
...     store.read("MATCH (m:Motif) RETURN count(m) AS n")
[{'n': 0}]
"""

from __future__ import annotations

from .delete import DeleteReport, delete_images, resolve_images
from .opener import open_catalog
from .references import store_reference
from .store import BulkNodes, BulkRels, GraphStore, Statement, WriteOp
from .uri import DEFAULT_CATALOG, parse_uri, redact_uri, resolve_uri, uri_password
from .vocabulary import DEFAULT_THRESHOLD, match_level1
from .writer import CatalogState, WritePlan, WriteReport, motif_ids, plan_analysis, write_analysis

__all__ = [
    "DEFAULT_CATALOG",
    "DEFAULT_THRESHOLD",
    "BulkNodes",
    "BulkRels",
    "CatalogState",
    "DeleteReport",
    "GraphStore",
    "Statement",
    "WriteOp",
    "WritePlan",
    "WriteReport",
    "delete_images",
    "match_level1",
    "motif_ids",
    "open_catalog",
    "parse_uri",
    "plan_analysis",
    "redact_uri",
    "resolve_images",
    "resolve_uri",
    "store_reference",
    "uri_password",
    "write_analysis",
]

# Batch ingest moved to motifcat.batch (it runs analyses; the catalog only stores). The old names
# resolve lazily: an eager import would be circular (motifcat.batch imports this package).
_MOVED_TO_BATCH = ("IngestSummary", "expand_paths", "ingest_files")


def __getattr__(name: str):
    if name in _MOVED_TO_BATCH:
        from .. import batch

        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
