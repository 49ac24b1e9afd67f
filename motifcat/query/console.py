"""The read-only Cypher console: user queries that cannot write, on either backend.

Two layers, so that one mistake in either is not enough to write anything:

1. :func:`check_readonly` refuses, before anything runs, every statement that could write to the
   catalog or touch the file system. The text is tokenised the way a Cypher lexer does it
   (``//`` and ``/* */`` comments, ``'…'`` / ``"…"`` strings with backslash escapes,
   ```…``` identifiers with doubled back-quotes) and only the keyword tokens *outside* strings,
   identifiers-in-back-quotes and comments are looked at, so a harmless ``WHERE m.key =
   'CREATE'`` passes while ``RETURN 1 /* x */ CREATE (n)`` is refused. Because a lexer that
   disagreed with the engine about where a string ends would let a keyword through, the text is
   tokenised under every plausible escaping convention (backslash escapes on/off in strings and
   in back-quotes) and must be safe under all of them.
2. The statement then runs on the store's read-only path (:meth:`GraphStore.read_only`): a
   READ access-mode transaction on Neo4j, a read-only database connection on Ladybug. The engine
   refuses writes there, but Ladybug's read-only mode still lets ``COPY … TO`` and
   ``EXPORT DATABASE`` write files, which is why layer 1 is not optional.

What is refused: write and administration keywords (``CREATE``, ``MERGE``, ``SET``, ``DELETE``,
``DETACH``, ``REMOVE``, ``DROP``, ``ALTER``, ``COPY``, ``LOAD``, ``INSTALL``, ``ATTACH``,
``EXPORT``, ``IMPORT``, ``USE``, ``CHECKPOINT``, ``BEGIN``/``COMMIT``/``ROLLBACK``, ``FOREACH``,
``INSERT`` …) wherever they stand outside strings (even as an alias or property name: the
console prefers refusing a harmless query to guessing); ``CALL`` of anything but the read-only
functions in :data:`ALLOWED_PROCEDURES`; several statements (a ``;`` that is not the last
token); any non-ASCII or control character outside strings, comments and back-quoted names
(full-width letters, zero-width and Unicode line-separator characters would otherwise let a
keyword hide from this check while the engine still reads it); and a text whose first keyword
does not begin a read query.
"""

from __future__ import annotations

import inspect
import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..catalog.store import GraphStore
from ..errors import QueryError

#: Keywords that write, change the schema or settings, manage transactions, or reach the file
#: system / network (union of Ladybug's and Neo4j 5's). Also the Ladybug table functions that
#: read files, in case they are reachable outside ``CALL``.
FORBIDDEN_KEYWORDS: frozenset[str] = frozenset(
    """
    CREATE MERGE SET DELETE DETACH NODETACH REMOVE DROP ALTER RENAME COPY LOAD INSTALL UNINSTALL
    ATTACH EXPORT IMPORT USE CHECKPOINT FORCE BEGIN COMMIT ROLLBACK TRANSACTION TRANSACTIONS
    FOREACH INSERT UPDATE UPSERT TRUNCATE ANALYZE COMMENT GRANT REVOKE DENY START STOP
    TERMINATE ENABLE DISABLE SUSPEND MACRO PERIODIC
    READ_CSV READ_CSV_PARALLEL READ_CSV_SERIAL READ_PARQUET READ_NPY READ_PANDAS READ_JSON
    FILE_INFO COPY_CSV COPY_PARQUET PROJECT_GRAPH PROJECT_GRAPH_CYPHER DROP_PROJECTED_GRAPH
    CLEAR_WARNINGS
    """.split()
)

#: Functions / procedures that ``CALL`` may name (compared case-insensitively): Ladybug's
#: catalog and settings readers and Neo4j's schema readers. Everything else is refused,
#: including ``CALL { … }`` subqueries and Ladybug's ``CALL setting = value``.
ALLOWED_PROCEDURES: frozenset[str] = frozenset(
    name.lower()
    for name in """
    show_tables table_info show_connection db_version show_functions current_setting
    show_indexes show_sequences show_macros show_graphs show_projected_graphs show_warnings
    show_attached_databases show_loaded_extensions show_official_extensions catalog_version
    storage_version stats_info storage_info
    db.labels db.relationshipTypes db.propertyKeys db.schema.visualization
    db.schema.nodeTypeProperties db.schema.relTypeProperties dbms.components db.ping db.info
    """.split()
)

#: A read query must begin with one of these (Cypher's reading clauses and plan explainers).
READ_STARTERS: frozenset[str] = frozenset(
    {"MATCH", "OPTIONAL", "RETURN", "UNWIND", "WITH", "CALL", "EXPLAIN", "PROFILE", "SHOW"}
)

# Characters allowed outside strings, comments and back-quoted names: printable ASCII and the
# ASCII white space. Everything else (control characters, any non-ASCII) is refused.
_SAFE_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) | frozenset("\t\n\r\f\v")
# A `//` comment ends at any line break a lexer could recognise (the earliest one is the
# conservative choice: text after it is checked, never skipped).
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"[ \t\n\r\f\v]+")


@dataclass(frozen=True)
class Token:
    """One lexical token of a Cypher text outside strings and comments.

    Attributes
    ----------
    kind : {"word", "punct", "string", "name"}
        ``word``: an unquoted identifier or keyword; ``punct``: any other single character;
        ``string``: a string literal; ``name``: a back-quoted identifier.
    text : str
        The token as written (upper-cased for words).
    pos : int
        Offset of the token in the text (characters).
    """

    kind: str
    text: str
    pos: int


def tokenize(
    cypher: str, *, string_escapes: bool = True, name_escapes: bool = False
) -> list[Token]:
    """Split Cypher text into tokens, dropping comments and white space.

    Parameters
    ----------
    cypher : str
        The query text.
    string_escapes : bool
        Whether a backslash escapes the next character inside ``'…'`` / ``"…"`` strings
        (Cypher's rule; the other setting is checked too by :func:`check_readonly`).
    name_escapes : bool
        Whether a backslash escapes the next character inside back-quoted names (Cypher
        doubles the back-quote instead; both are checked).

    Returns
    -------
    list of Token

    Raises
    ------
    QueryError
        On an unterminated string, name or comment, or a character that is not printable ASCII
        outside them.

    Examples
    --------
    >>> [t.text for t in tokenize("match (m) // all\\nWHERE m.key = 'CREATE' RETURN m")]
    ['MATCH', '(', 'M', ')', 'WHERE', 'M', '.', 'KEY', '=', "'CREATE'", 'RETURN', 'M']
    """
    tokens: list[Token] = []
    i, n = 0, len(cypher)
    while i < n:
        ch = cypher[i]
        if m := _SPACE.match(cypher, i):
            i = m.end()
        elif cypher.startswith("//", i):
            ends = [j for j in (cypher.find(b, i) for b in _LINE_BREAKS) if j >= 0]
            i = min(ends) if ends else n
        elif cypher.startswith("/*", i):
            j = cypher.find("*/", i + 2)
            if j < 0:
                raise QueryError(f"cypher: unterminated /* comment at offset {i}")
            i = j + 2
        elif ch in "'\"":
            j = _end_of_quoted(cypher, i, ch, backslash=string_escapes, doubled=False)
            tokens.append(Token("string", cypher[i:j], i))
            i = j
        elif ch == "`":
            j = _end_of_quoted(cypher, i, ch, backslash=name_escapes, doubled=True)
            tokens.append(Token("name", cypher[i:j], i))
            i = j
        elif m := _WORD.match(cypher, i):
            tokens.append(Token("word", m.group().upper(), i))
            i = m.end()
        elif ch in _SAFE_CHARS:
            tokens.append(Token("punct", ch, i))
            i += 1
        else:
            raise QueryError(
                f"cypher: character {ch!r} (U+{ord(ch):04X}) at offset {i} is not allowed outside "
                "strings and comments (only printable ASCII is)"
            )
    return tokens


def _end_of_quoted(text: str, start: int, quote: str, *, backslash: bool, doubled: bool) -> int:
    """Offset just past the quoted token opened at ``start``."""
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if doubled and text.startswith(quote, i + 1):
                i += 2
                continue
            return i + 1
        i += 1
    what = "back-quoted name" if quote == "`" else "string"
    raise QueryError(f"cypher: unterminated {what} starting at offset {start}")


def check_readonly(cypher: str) -> None:
    """Refuse a Cypher text that could write or touch the file system; return if it is safe.

    Parameters
    ----------
    cypher : str
        One read query (a single trailing ``;`` is allowed).

    Raises
    ------
    QueryError
        Naming the refused keyword, procedure or character.

    Examples
    --------
    >>> check_readonly("MATCH (m:Motif) WHERE m.key = 'DROP' RETURN m.id")
    >>> check_readonly("MATCH (m) /* */ DETACH DELETE m")
    Traceback (most recent call last):
    ...
    motifcat.errors.QueryError: cypher: DETACH is not allowed in the read-only console (offset 16)
    """
    if not isinstance(cypher, str):
        raise QueryError(f"cypher: expected a string, got {type(cypher).__name__}")
    if not cypher.strip():
        raise QueryError("cypher: the query is empty")
    # Cypher's own convention (Ladybug and Neo4j agree, measured): backslash escapes in strings,
    # doubled back-quotes in names. Its lexing errors are the user's; a lexing error under
    # another convention only shows that the engine cannot be using that one.
    _check_tokens(tokenize(cypher, string_escapes=True, name_escapes=False))
    seen: set[tuple[str, ...]] = set()
    for s_esc, n_esc in itertools.product((True, False), repeat=2):
        try:
            tokens = tokenize(cypher, string_escapes=s_esc, name_escapes=n_esc)
        except QueryError:
            continue
        key = tuple(t.kind + t.text for t in tokens)
        if key not in seen:  # identical lexings need not be checked twice
            seen.add(key)
            _check_tokens(tokens)


def _check_tokens(tokens: list[Token]) -> None:
    words = [t for t in tokens if t.kind != "string"]
    if not words:
        raise QueryError("cypher: the query has no statement")
    for k, t in enumerate(tokens):
        if t.kind == "punct" and t.text == ";" and k != len(tokens) - 1:
            raise QueryError(
                f"cypher: ';' at offset {t.pos}: only one statement may be run at a time"
            )
        if t.kind != "word":
            continue
        if t.text in FORBIDDEN_KEYWORDS:
            raise QueryError(
                f"cypher: {t.text} is not allowed in the read-only console (offset {t.pos})"
            )
        if t.text == "CALL":
            _check_call(tokens, k)
    first = tokens[0]
    if first.kind != "word" or first.text not in READ_STARTERS:
        raise QueryError(
            f"cypher: a read query starts with one of {', '.join(sorted(READ_STARTERS))}; "
            f"got {first.text!r}"
        )


def _check_call(tokens: list[Token], k: int) -> None:
    """``CALL`` must name an allowed procedure: ``CALL a.b.c(`` with plain words."""
    parts: list[str] = []
    j = k + 1
    while j < len(tokens) and tokens[j].kind == "word":
        parts.append(tokens[j].text.lower())
        if j + 1 < len(tokens) and tokens[j + 1].text == ".":
            j += 2
            continue
        j += 1
        break
    name = ".".join(parts)
    follows = tokens[j].text if j < len(tokens) else ""
    if not parts or name not in ALLOWED_PROCEDURES or follows != "(":
        shown = name or (follows or "nothing")
        raise QueryError(
            f"cypher: CALL {shown} is not allowed in the read-only console (offset "
            f"{tokens[k].pos}); allowed: {', '.join(sorted(ALLOWED_PROCEDURES))}"
        )


def _takes_limits(store: GraphStore) -> bool:
    try:
        names = inspect.signature(store.read_only).parameters
    except (TypeError, ValueError):
        return False
    return "timeout_s" in names and "max_rows" in names


#: Default time limit of a console query, in s (``$MOTIFCAT_QUERY_TIMEOUT_S``; 0 = none).
DEFAULT_TIMEOUT_S = float(os.environ.get("MOTIFCAT_QUERY_TIMEOUT_S", "30"))
#: Default row limit of a console query (``$MOTIFCAT_QUERY_MAX_ROWS``; 0 = none).
DEFAULT_MAX_ROWS = int(os.environ.get("MOTIFCAT_QUERY_MAX_ROWS", "100000"))


def run_readonly(
    store: GraphStore,
    cypher: str,
    params: Mapping[str, Any] | None = None,
    *,
    timeout_s: float | None = None,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Run user Cypher that cannot write, and return its rows.

    The text is first checked by :func:`check_readonly` (nothing runs if it is refused), then
    executed on the store's read-only path (READ access mode on Neo4j, a read-only connection
    on Ladybug). The same rules apply on both backends.

    Parameters
    ----------
    store : GraphStore
        An open catalog.
    cypher : str
        One read query. Put user values in ``params`` and refer to them as ``$name``.
    params : mapping of str to value, optional
        Query parameters.
    timeout_s : float, optional
        Stop the query after this many seconds (default :data:`DEFAULT_TIMEOUT_S`, 30;
        0 = no limit). Its memory is bounded by the store (Ladybug: the read-only buffer pool).
    max_rows : int, optional
        Keep at most this many rows (default :data:`DEFAULT_MAX_ROWS`; 0 = all); a cut result
        has ``attrs["truncated_at"] = max_rows``.

    Returns
    -------
    pandas.DataFrame
        One row per result row, columns named as in ``RETURN`` (empty frame for no rows).

    Raises
    ------
    QueryError
        If the query is refused, fails, or is stopped at its time limit (the message says how
        to raise it).

    Examples
    --------
    >>> import os, tempfile
    >>> from motifcat.catalog.embedded import LadybugStore
    >>> store = LadybugStore(os.path.join(tempfile.mkdtemp(), "catalog.lbug"))
    >>> run_readonly(store, "MATCH (m:Motif) WHERE m.level = $l RETURN count(*) AS n", {"l": 2})
       n
    0  0
    >>> run_readonly(store, "MATCH (m:Motif) DELETE m")
    Traceback (most recent call last):
    ...
    motifcat.errors.QueryError: cypher: DELETE is not allowed in the read-only console (offset 16)
    >>> store.close()
    """
    check_readonly(cypher)
    if params is None:
        params = {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise QueryError("cypher params: expected a mapping of parameter names to values")
    timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else float(timeout_s)
    max_rows = DEFAULT_MAX_ROWS if max_rows is None else int(max_rows)
    try:
        if _takes_limits(store):
            rows = store.read_only(
                cypher, dict(params), timeout_s=timeout_s or None, max_rows=max_rows or None
            )
        else:  # a GraphStore written before the limits existed
            rows = store.read_only(cypher, dict(params))
    except QueryError as exc:
        if "time limit" in str(exc):
            raise QueryError(
                f"{exc}; narrow the query (e.g. bound variable-length paths) or raise the limit "
                "(--timeout S, or MOTIFCAT_QUERY_TIMEOUT_S)"
            ) from exc
        raise
    except Exception as exc:  # engine errors (syntax, unknown label...) reach the user as such
        raise QueryError(f"cypher: the query failed: {exc}") from exc
    truncated = bool(max_rows) and len(rows) > max_rows
    frame = pd.DataFrame(rows[:max_rows] if truncated else rows)
    if truncated:
        frame.attrs["truncated_at"] = max_rows
    return frame


__all__ = [
    "ALLOWED_PROCEDURES",
    "FORBIDDEN_KEYWORDS",
    "READ_STARTERS",
    "Token",
    "check_readonly",
    "run_readonly",
    "tokenize",
]
