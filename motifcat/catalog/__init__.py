"""motifcat.catalog: the graph catalog of images, instances and the shared motif vocabulary.

Open a catalog with :func:`open_catalog` (embedded Ladybug file by default, Neo4j for a
``neo4j://`` / ``bolt://`` URI), write analyses with :func:`write_analysis` (one image, one
transaction) or whole folders with :func:`ingest_files`.

Examples
--------
>>> import os, tempfile
>>> from motifcat.catalog import open_catalog
>>> with open_catalog(os.path.join(tempfile.mkdtemp(), "cat")) as store:
...     store.read("MATCH (m:Motif) RETURN count(m) AS n")
[{'n': 0}]
"""

from __future__ import annotations

from .ingest import IngestSummary, expand_paths, ingest_files
from .store import (
    DEFAULT_CATALOG,
    BulkNodes,
    BulkRels,
    GraphStore,
    Statement,
    WriteOp,
    open_catalog,
    parse_uri,
    resolve_uri,
)
from .vocabulary import DEFAULT_THRESHOLD, match_level1
from .writer import WriteReport, write_analysis

__all__ = [
    "DEFAULT_CATALOG",
    "DEFAULT_THRESHOLD",
    "BulkNodes",
    "BulkRels",
    "GraphStore",
    "IngestSummary",
    "Statement",
    "WriteOp",
    "WriteReport",
    "expand_paths",
    "ingest_files",
    "match_level1",
    "open_catalog",
    "parse_uri",
    "resolve_uri",
    "write_analysis",
]
