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

import inspect
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import CatalogError

DEFAULT_CATALOG = "./motifcat-catalog"


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
    def read_only(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        """Run user-supplied Cypher with no possibility of writing (the console's path)."""

    @abstractmethod
    def close(self) -> None:
        """Release the database (file lock / driver)."""

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_uri(uri: str | os.PathLike | None = None) -> str:
    """The catalog URI to use: ``uri``, else ``$MOTIFCAT_CATALOG``, else ``./motifcat-catalog``."""
    if uri is None or str(uri) == "":
        uri = os.environ.get("MOTIFCAT_CATALOG") or DEFAULT_CATALOG
    return str(uri)


#: URI schemes served by the Neo4j backend (the driver's own schemes: ``neo4j*`` route through a
#: cluster, ``bolt*`` are direct). The one definition; :mod:`motifcat.catalog.neo4j` imports it.
NEO4J_SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")

# "word:" at the start of a URI: a scheme prefix. Two characters at least, so that a Windows
# drive letter ("C:") still reads as a path.
_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")


def parse_uri(uri: str | os.PathLike | None = None) -> tuple[str, str]:
    """The backend a catalog URI selects and where the catalog is.

    Parameters
    ----------
    uri : str or path-like, optional
        As for :func:`open_catalog` (default: :func:`resolve_uri`).

    Returns
    -------
    (backend, location) : (str, str)
        ``("neo4j", uri)`` for a ``neo4j://``/``bolt://``... URI, ``("ladybug", path)`` for a
        plain path or ``ladybug:PATH``.

    Raises
    ------
    CatalogError
        An unknown ``scheme://`` or ``word:`` prefix (``neo4j:/host`` is not silently taken for
        a file name), or ``ladybug:`` without a path.

    Examples
    --------
    >>> parse_uri("bolt://db:7687")
    ('neo4j', 'bolt://db:7687')
    >>> parse_uri("ladybug:/data/cat")
    ('ladybug', '/data/cat')
    >>> try:
    ...     parse_uri("neo4j:/localhost:7687")
    ... except CatalogError as exc:
    ...     print(str(exc)[:55])
    neo4j:/localhost:7687: unknown catalog scheme 'neo4j:';
    """
    text = resolve_uri(uri)
    choices = (
        f"use a file path, ladybug:PATH, or one of {', '.join(s + '://' for s in NEO4J_SCHEMES)}"
    )
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme in NEO4J_SCHEMES:
            return "neo4j", text
        raise CatalogError(f"{text}: unknown catalog scheme {scheme!r}; {choices}")
    prefix = _PREFIX.match(text)
    if prefix:
        if prefix.group(1).lower() != "ladybug":
            raise CatalogError(
                f"{text}: unknown catalog scheme {prefix.group(1) + ':'!r}; {choices} "
                "(write ./NAME for a file whose name contains ':')"
            )
        text = text[len("ladybug:") :]
        if not text:
            raise CatalogError("ladybug: catalog URI has no path")
    return "ladybug", text


def open_catalog(uri: str | os.PathLike | None = None, *, read_only: bool = False) -> GraphStore:
    """Open the catalog named by ``uri`` on the backend its form selects.

    Parameters
    ----------
    uri : str or path-like, optional
        * a path, or ``ladybug:PATH`` — the embedded Ladybug catalog file (created on first
          read-write open);
        * ``neo4j://``, ``neo4j+s://``, ``bolt://``, ``bolt+s://`` (and ``+ssc``) — a Neo4j
          server; user and password come from ``$NEO4J_USER`` / ``$NEO4J_PASSWORD`` and never
          from the URI, the code or a message.

        Default: ``$MOTIFCAT_CATALOG``, else ``./motifcat-catalog`` (see :func:`resolve_uri`).
    read_only : bool, default False
        Embedded: open without the write lock, so that it may coexist with one writer (the app,
        queries). Neo4j: passed on when the backend supports it.

    Returns
    -------
    GraphStore
        Close it (or use it as a context manager) to release the file lock / driver.

    Raises
    ------
    CatalogInUseError
        The embedded catalog is held open for writing by another process.
    CatalogError
        Unknown URI scheme, missing Neo4j backend, or the catalog cannot be opened.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "cat")
    >>> with open_catalog(path) as store:
    ...     store.backend
    'ladybug'
    >>> with open_catalog("ladybug:" + path, read_only=True) as store:
    ...     store.read("MATCH (i:Image) RETURN count(i) AS n")
    [{'n': 0}]
    """
    backend, text = parse_uri(uri)
    if backend == "neo4j":
        try:
            from .neo4j import Neo4jStore
        except ImportError as exc:
            raise CatalogError(f"{text}: the Neo4j backend is not available: {exc}") from exc
        kwargs: dict[str, Any] = {}
        if read_only and "read_only" in inspect.signature(Neo4jStore).parameters:
            kwargs["read_only"] = True
        return Neo4jStore(
            text,
            user=os.environ.get("NEO4J_USER"),
            password=os.environ.get("NEO4J_PASSWORD"),
            **kwargs,
        )
    from .embedded import LadybugStore

    return LadybugStore(text, read_only=read_only)
