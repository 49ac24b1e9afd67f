"""The one narrow interface between motifcat and a graph database.

A :class:`GraphStore` runs read queries and applies a list of write operations in one
transaction (all or nothing). Everything above it (writer, queries, console, app) speaks only
this interface, so the embedded Ladybug store and Neo4j are interchangeable.

Write operations are plain data:

* :class:`Statement` — a Cypher text with parameters (user values always travel as parameters);
* :class:`BulkNodes` / :class:`BulkRels` — many rows of one node label / relationship type.
  Each backend writes them its fastest way (Ladybug: ``LOAD FROM`` a DataFrame ``CREATE``;
  Neo4j: ``UNWIND $rows`` batches), inside the same transaction as the statements around them.

Writes to one catalog must be serialised (one writer at a time): the writer reads the
vocabulary and checks for duplicates before its transaction. The embedded store enforces this
with its file lock; on Neo4j the caller (the CLI: one ingest process) must.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .uri import DEFAULT_CATALOG, NEO4J_SCHEMES, parse_uri, resolve_uri

__all__ = [
    "DEFAULT_CATALOG",
    "NEO4J_SCHEMES",
    "BulkNodes",
    "BulkRels",
    "GraphStore",
    "Statement",
    "WriteOp",
    "parse_uri",
    "resolve_uri",
]


@dataclass(frozen=True)
class Statement:
    """One Cypher statement and its parameters."""

    cypher: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class BulkNodes:
    """Create one node per row; columns are the node's properties (schema order not needed)."""

    label: str
    rows: pd.DataFrame


@dataclass(frozen=True, eq=False)
class BulkRels:
    """Create one relationship per row.

    ``rows`` has columns ``src`` and ``dst`` (ids of existing nodes of ``src_label`` /
    ``dst_label``) and one column per relationship property.
    """

    type: str
    src_label: str
    dst_label: str
    rows: pd.DataFrame


WriteOp = Statement | BulkNodes | BulkRels


class GraphStore(ABC):
    """A graph database holding a motifcat catalog."""

    #: ``"ladybug"`` or ``"neo4j"``: lets the few backend-specific queries choose their text.
    backend: str = ""
    #: Where the store lives, for messages (never contains a password).
    location: str = ""

    @abstractmethod
    def read(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query; return one dict per row, keyed by the RETURN names."""

    @abstractmethod
    def write(self, ops: Sequence[WriteOp]) -> None:
        """Apply ``ops`` in order inside one transaction; on any error, roll back and raise."""

    @abstractmethod
    def read_only(
        self,
        cypher: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
    ) -> list[dict]:
        """Run user-supplied Cypher with no possibility of writing (the console's path).

        ``timeout_s`` stops the query (QueryError) after that many seconds; ``max_rows``
        returns at most that many rows plus one (so that the caller can tell it was cut).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the database (file lock / driver)."""

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def __getattr__(name: str):
    # open_catalog moved to motifcat.catalog.opener (it imports the backends, which import this
    # module: keeping it here made an import circle). The old path re-exports it lazily for one
    # release.
    if name == "open_catalog":
        from .opener import open_catalog

        return open_catalog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
