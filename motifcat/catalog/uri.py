"""Catalog URIs: which backend a URI selects and where the catalog is.

Pure text handling, no database import, so that every layer (backends, CLI, app) can use it
without an import circle.
"""

from __future__ import annotations

import os
import re

from ..errors import CatalogError

DEFAULT_CATALOG = "./motifcat-catalog"


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
        As for :func:`~motifcat.catalog.opener.open_catalog` (default: :func:`resolve_uri`).

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
        raise CatalogError(f"{redact_uri(text)}: unknown catalog scheme {scheme!r}; {choices}")
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


def redact_uri(uri: str | os.PathLike | None) -> str:
    """``uri`` with any password (the ``user:password@`` of a URI) replaced by ``***``.

    For every display and message: the app's sidebar, the CLI's output, errors.

    Examples
    --------
    >>> redact_uri("bolt://neo4j:s3cret@db.example:7687")
    'bolt://neo4j:***@db.example:7687'
    >>> redact_uri("/data/cat.lbug")
    '/data/cat.lbug'
    """
    text = "" if uri is None else os.fspath(uri)
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/@:]*):[^/@]*@", r"\1:***@", text)


def uri_password(uri: str | os.PathLike | None) -> bool:
    """True when ``uri`` carries a password (which then shows in process lists and logs).

    Examples
    --------
    >>> uri_password("neo4j://u:pw@host"), uri_password("neo4j://host")
    (True, False)
    """
    return redact_uri(uri) != ("" if uri is None else os.fspath(uri))
