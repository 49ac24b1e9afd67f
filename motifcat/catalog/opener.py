"""Open a catalog on the backend its URI selects.

Above the store interface (:mod:`motifcat.catalog.store`) and the backends that implement it
(:mod:`~motifcat.catalog.embedded`, :mod:`~motifcat.catalog.neo4j`): the one module that
knows them all, so that neither imports the other.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from ..errors import CatalogError
from .store import GraphStore
from .uri import parse_uri


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
