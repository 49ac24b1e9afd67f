"""The catalog on a Neo4j 5 server, through the official ``neo4j`` Python driver.

The production backend (see DESIGN.md, "Storage decisions"): uniqueness constraints on every
node id, an image written as ``UNWIND $rows`` batches inside one managed write transaction
(``session.execute_write``, so the driver retries the whole transaction on transient errors),
and user Cypher run in READ access mode so that the server itself refuses writes.

Credentials come from ``$NEO4J_USER`` / ``$NEO4J_PASSWORD`` (or the arguments); they are never
part of :attr:`Neo4jStore.location`, ``repr`` or any error message.

The statement builders (:func:`bulk_node_statement`, :func:`bulk_rel_statement`,
:func:`write_plan`) are pure, so the exact text sent to the server can be checked without one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import neo4j
import neo4j.exceptions as nex
import numpy as np
import pandas as pd
from neo4j.graph import Node, Path, Relationship
from neo4j.spatial import Point
from neo4j.time import Duration

from motifcat.catalog.schema import NODE_TABLES, REL_TABLES, neo4j_ddl, primary_key
from motifcat.catalog.store import (
    BulkNodes,
    BulkRels,
    GraphStore,
    Statement,
    WriteOp,
)
from motifcat.catalog.uri import NEO4J_SCHEMES
from motifcat.errors import CatalogError, MotifcatError, QueryError

__all__ = [
    "SCHEMES",
    "Neo4jStore",
    "PlannedQuery",
    "bulk_node_statement",
    "bulk_rel_statement",
    "frame_rows",
    "to_plain",
    "write_plan",
]

#: URI schemes of the Bolt protocol: :data:`motifcat.catalog.uri.NEO4J_SCHEMES` (one definition).
SCHEMES = NEO4J_SCHEMES

#: Rows per ``UNWIND`` batch: large enough to amortise round trips, small enough to keep one
#: Bolt message and the server's per-query memory modest.
DEFAULT_BATCH_SIZE = 10_000


# --------------------------------------------------------------------------------------------
# Pure statement building
# --------------------------------------------------------------------------------------------


def bulk_node_statement(label: str) -> str:
    """Cypher that creates one ``label`` node per row of ``$rows``.

    Parameters
    ----------
    label : str
        A node label of the catalog schema (``schema.NODE_TABLES``).

    Returns
    -------
    str
        ``UNWIND $rows AS r CREATE (n:<label>) SET n = r``; each row is a map of property
        values (null values are simply not stored).

    Examples
    --------
    >>> bulk_node_statement("Motif")
    'UNWIND $rows AS r CREATE (n:Motif) SET n = r'
    """
    if label not in NODE_TABLES:
        raise CatalogError(f"unknown node label {label!r}; the schema has {sorted(NODE_TABLES)}")
    return f"UNWIND $rows AS r CREATE (n:{label}) SET n = r"


def bulk_rel_statement(type: str, src_label: str, dst_label: str, props: Sequence[str] = ()) -> str:
    """Cypher that creates one ``type`` relationship per row of ``$rows``.

    Rows carry ``src`` and ``dst`` (primary keys of existing nodes) and the relationship's
    properties. Endpoints are found with two separate ``MATCH`` clauses (both use the
    uniqueness-constraint index). The statement returns ``created``, the number of
    relationships made, so that a row whose endpoint is missing is noticed rather than
    silently dropped.

    Parameters
    ----------
    type : str
        A relationship type of the schema (``schema.REL_TABLES``).
    src_label, dst_label : str
        Labels of its endpoints; must match the schema.
    props : sequence of str
        Relationship properties to set from the rows (a subset of the schema's).

    Returns
    -------
    str

    Examples
    --------
    >>> print(bulk_rel_statement("NEAR", "Instance", "Instance", ["d_A"]))
    UNWIND $rows AS r MATCH (a:Instance {id: r.src}) MATCH (b:Instance {id: r.dst}) \
CREATE (a)-[e:NEAR]->(b) SET e.d_A = r.d_A RETURN count(e) AS created
    """
    if type not in REL_TABLES:
        raise CatalogError(
            f"unknown relationship type {type!r}; the schema has {sorted(REL_TABLES)}"
        )
    src, dst, allowed = REL_TABLES[type]
    if (src_label, dst_label) != (src, dst):
        raise CatalogError(
            f"relationship {type} goes from {src} to {dst}, not from {src_label} to {dst_label}"
        )
    unknown = sorted(set(props) - {name for name, _ in allowed})
    if unknown:
        raise CatalogError(f"relationship {type} has no properties {unknown}")
    parts = [
        "UNWIND $rows AS r",
        f"MATCH (a:{src} {{{primary_key(src)}: r.src}})",
        f"MATCH (b:{dst} {{{primary_key(dst)}: r.dst}})",
        f"CREATE (a)-[e:{type}]->(b)",
    ]
    if props:
        parts.append("SET " + ", ".join(f"e.{p} = r.{p}" for p in props))
    parts.append("RETURN count(e) AS created")
    return " ".join(parts)


def _param(value: Any) -> Any:
    """A parameter value the driver accepts: NumPy arrays/scalars become Python lists/numbers."""
    if isinstance(value, np.generic):  # first: np.float64 / np.str_ subclass float / str
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _param(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_param(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``frame`` as plain-Python dicts, as the driver's ``$rows`` parameter wants them.

    Numeric columns are converted column-wise; a NaN or missing value becomes None (not
    stored, like a null); object columns holding arrays (descriptors) become lists.

    Parameters
    ----------
    frame : DataFrame

    Returns
    -------
    list of dict

    Examples
    --------
    >>> frame_rows(pd.DataFrame({"id": ["a", "b"], "x_A": [1.5, np.nan]}))
    [{'id': 'a', 'x_A': 1.5}, {'id': 'b', 'x_A': None}]
    """
    names = [str(c) for c in frame.columns]
    columns = []
    for name in frame.columns:
        s = frame[name]
        kind = s.dtype.kind if isinstance(s.dtype, np.dtype) else "O"
        if kind in "iub":
            values = s.to_numpy().tolist()
        elif kind == "f":
            a = s.to_numpy()
            values = a.tolist()
            missing = np.flatnonzero(np.isnan(a))
            for i in missing:  # only the (rare) missing entries, not every row
                values[i] = None
        else:
            values = [
                None if (isinstance(v, float) and math.isnan(v)) or v is pd.NA else _param(v)
                for v in s.tolist()
            ]
        columns.append(values)
    # The driver needs one map per row; building them is the one per-row step left.
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


@dataclass(frozen=True)
class PlannedQuery:
    """One statement to run in the write transaction.

    Attributes
    ----------
    cypher : str
    params : dict
    expect : int or None
        Number the statement must report as ``created`` (bulk relationships), else None.
    what : str
        What the statement writes, for messages (e.g. ``"NEAR"``).
    """

    cypher: str
    params: dict[str, Any]
    expect: int | None = None
    what: str = ""


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def write_plan(ops: Sequence[WriteOp], batch_size: int = DEFAULT_BATCH_SIZE) -> list[PlannedQuery]:
    """Translate write operations into the statements Neo4j runs, in order.

    ``BulkNodes`` and ``BulkRels`` become ``UNWIND $rows`` statements of at most
    ``batch_size`` rows (:func:`bulk_node_statement`, :func:`bulk_rel_statement`);
    a ``Statement`` is passed through with NumPy values turned into Python ones.

    Parameters
    ----------
    ops : sequence of Statement, BulkNodes, BulkRels
    batch_size : int
        Rows per ``UNWIND`` batch (>= 1).

    Returns
    -------
    list of PlannedQuery

    Examples
    --------
    >>> ops = [BulkNodes("Material", pd.DataFrame({"name": ["MoS2", "WSe2", "C"]}))]
    >>> [(q.cypher, len(q.params["rows"])) for q in write_plan(ops, batch_size=2)]
    [('UNWIND $rows AS r CREATE (n:Material) SET n = r', 2), \
('UNWIND $rows AS r CREATE (n:Material) SET n = r', 1)]
    """
    if int(batch_size) < 1:
        raise CatalogError(f"batch_size must be >= 1, got {batch_size}")
    plan: list[PlannedQuery] = []
    for op in ops:
        if isinstance(op, Statement):
            plan.append(PlannedQuery(op.cypher, _param(dict(op.params))))
        elif isinstance(op, BulkNodes):
            cypher = bulk_node_statement(op.label)
            allowed = {name for name, _ in NODE_TABLES[op.label]}
            cols = {str(c) for c in op.rows.columns}
            if cols - allowed:
                raise CatalogError(
                    f"BulkNodes {op.label}: columns {sorted(cols - allowed)} are not properties "
                    f"of {op.label} (schema: {sorted(allowed)})"
                )
            if len(op.rows) and primary_key(op.label) not in cols:
                raise CatalogError(
                    f"BulkNodes {op.label}: the key column {primary_key(op.label)!r} is missing"
                )
            rows = frame_rows(op.rows)
            plan += [
                PlannedQuery(cypher, {"rows": b}, what=op.label) for b in _batches(rows, batch_size)
            ]
        elif isinstance(op, BulkRels):
            cols = [str(c) for c in op.rows.columns]
            if not {"src", "dst"} <= set(cols):
                raise CatalogError(
                    f"BulkRels {op.type}: rows need 'src' and 'dst' columns, got {cols}"
                )
            props = [c for c in cols if c not in ("src", "dst")]
            cypher = bulk_rel_statement(op.type, op.src_label, op.dst_label, props)
            rows = frame_rows(op.rows)
            plan += [
                PlannedQuery(cypher, {"rows": b}, expect=len(b), what=op.type)
                for b in _batches(rows, batch_size)
            ]
        else:
            raise CatalogError(f"cannot write {type(op).__name__}: not a Statement or Bulk op")
    return plan


def to_plain(value: Any) -> Any:
    """A driver value as plain Python: nodes/relationships become property dicts.

    Shaped like the embedded store's answers: a node or relationship maps to its properties
    plus ``_LABEL`` (its label, or type), a path to ``{"_NODES": [...], "_RELS": [...]}``
    (server-internal ids are left out). Temporal values become ``datetime`` objects
    (durations ISO-8601 text), points lists of coordinates.

    Examples
    --------
    >>> to_plain([1, (2.5, "a"), {"k": None}])
    [1, [2.5, 'a'], {'k': None}]
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Node):
        label = min(value.labels) if value.labels else None
        return {"_LABEL": label, **{k: to_plain(v) for k, v in value.items()}}
    if isinstance(value, Relationship):
        return {"_LABEL": value.type, **{k: to_plain(v) for k, v in value.items()}}
    if isinstance(value, Path):
        return {
            "_NODES": [to_plain(n) for n in value.nodes],
            "_RELS": [to_plain(r) for r in value.relationships],
        }
    # Point and Duration are tuple subclasses: test them before plain tuples.
    if isinstance(value, Point):
        return [float(c) for c in value]
    if isinstance(value, Duration):
        return value.iso_format()
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if hasattr(value, "to_native"):
        return value.to_native()
    if isinstance(value, bytearray):
        return bytes(value)
    return value


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


def _split_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(URI without userinfo, user, password) — the driver itself echoes userinfo in errors."""
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        raise CatalogError(
            f"not a Neo4j URI: scheme {parts.scheme!r} (expected one of {', '.join(SCHEMES)})"
        )
    if not parts.hostname:
        raise CatalogError(f"Neo4j URI has no host: {parts.scheme}://{parts.netloc.split('@')[-1]}")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        port = parts.port
    except ValueError:
        raise CatalogError(f"Neo4j URI {parts.scheme}://{host}: the port is not a number") from None
    netloc = host if port is None else f"{host}:{port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return clean, parts.username, parts.password


class Neo4jStore(GraphStore):
    """A motifcat catalog on a Neo4j 5 server.

    Parameters
    ----------
    uri : str
        ``neo4j://``, ``neo4j+s://``, ``bolt://`` ... ``host:port`` of the server.
    user, password : str, optional
        Default ``$NEO4J_USER`` (else ``"neo4j"``) and ``$NEO4J_PASSWORD``. Without a password
        the driver connects without authentication (a server with ``NEO4J_AUTH=none``).
    database : str, optional
        Database name; default ``$NEO4J_DATABASE``, else the server's default database.
    batch_size : int
        Rows per ``UNWIND`` batch.
    read_only : bool
        Refuse :meth:`write` and :meth:`ensure_schema` (the app and query paths); reads are
        always in read transactions anyway.

    Raises
    ------
    CatalogError
        When the URI is not a Neo4j URI, or the server cannot be reached or refuses the
        credentials (the message names the URI, never the credentials).

    Examples
    --------
    >>> store = Neo4jStore("bolt://localhost:7687")  # doctest: +SKIP
    >>> store.ensure_schema()  # doctest: +SKIP
    >>> store.read("MATCH (m:Motif) RETURN count(m) AS n")  # doctest: +SKIP
    [{'n': 0}]
    """

    backend = "neo4j"
    #: Seconds a user (console) query may run before the server stops it.
    read_only_timeout_s: float = 60.0

    def __init__(
        self,
        uri: str,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        read_only: bool = False,
    ) -> None:
        clean, uri_user, uri_password = _split_uri(str(uri))
        user = user or uri_user or os.environ.get("NEO4J_USER") or "neo4j"
        if password is None:
            password = (
                uri_password if uri_password is not None else os.environ.get("NEO4J_PASSWORD")
            )
        self._secret = password or None  # only to scrub messages; never shown
        self.database = database or os.environ.get("NEO4J_DATABASE") or None
        self.uri = clean
        self.location = clean if self.database is None else f"{clean} (database {self.database})"
        self.batch_size = int(batch_size)
        self.read_only_store = bool(read_only)
        self._schema_ready = False
        self._driver = None
        auth = (user, password) if password is not None else None
        with self._errors("connecting"):
            driver = neo4j.GraphDatabase.driver(clean, auth=auth)
            try:
                driver.verify_connectivity()  # fail at open, not at the first query
            except BaseException:
                driver.close()
                raise
            self._driver = driver

    def __repr__(self) -> str:
        return f"Neo4jStore({self.location!r})"

    # -- error translation --------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    @contextmanager
    def _errors(self, action: str, query: bool = False) -> Iterator[None]:
        """Turn driver exceptions into motifcat errors that name the server, not the secret."""
        try:
            yield
        except MotifcatError:
            raise
        except nex.AuthError as e:
            raise CatalogError(
                f"Neo4j at {self.location} refused the credentials while {action} "
                "(set NEO4J_USER / NEO4J_PASSWORD)"
            ) from e
        except (nex.ServiceUnavailable, nex.SessionExpired, OSError) as e:
            raise CatalogError(
                self._scrub(f"cannot reach Neo4j at {self.location} while {action}: {e}")
            ) from e
        except nex.Neo4jError as e:
            code = e.code or "Neo4jError"
            # The server's refusal to write in a READ session (the console's safety net).
            if query and ("AccessMode" in code or isinstance(e, nex.Forbidden)):
                raise QueryError(
                    f"Neo4j at {self.location} refused {action}: the query tries to write in a "
                    f"read-only session ({code})"
                ) from e
            cls = QueryError if query else CatalogError
            raise cls(
                self._scrub(f"Neo4j at {self.location} failed while {action}: {code}: {e.message}")
            ) from e
        except (nex.DriverError, ValueError, TypeError) as e:
            cls = QueryError if query else CatalogError
            raise cls(self._scrub(f"Neo4j at {self.location}, {action}: {e}")) from e

    def _session(self, read: bool = False) -> neo4j.Session:
        if self._driver is None:
            raise CatalogError(f"the Neo4j catalog {self.location} is closed")
        mode = neo4j.READ_ACCESS if read else neo4j.WRITE_ACCESS
        return self._driver.session(database=self.database, default_access_mode=mode)

    def _check_writable(self) -> None:
        if self.read_only_store:
            raise CatalogError(f"the Neo4j catalog {self.location} was opened read-only")

    # -- GraphStore ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the uniqueness constraints and indexes of ``schema.neo4j_ddl()`` if missing.

        Each DDL statement runs in its own transaction (Neo4j does not mix schema and data
        changes in one), then waits for the indexes to come online.
        """
        self._check_writable()
        with self._errors("creating the schema"), self._session() as session:
            for ddl in [*neo4j_ddl(), "CALL db.awaitIndexes(300)"]:
                session.execute_write(_run_consume, ddl, {})
        self._schema_ready = True

    def read(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query in a read transaction; one dict per row, plain Python values."""
        with self._errors("reading", query=True), self._session(read=True) as session:
            return session.execute_read(_fetch, cypher, _param(dict(params or {})))

    def read_only(
        self,
        cypher: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
    ) -> list[dict]:
        """Run user Cypher in a READ access-mode session: the server refuses any write.

        Raises
        ------
        QueryError
            When the server refuses the query (a write, a syntax error) or it exceeds
            :attr:`read_only_timeout_s`.
        """
        timeout = self.read_only_timeout_s if timeout_s is None else timeout_s
        work = neo4j.unit_of_work(timeout=timeout)(_fetch)
        with (
            self._errors("running a read-only query", query=True),
            self._session(read=True) as session,
        ):
            return session.execute_read(work, cypher, _param(dict(params or {})), max_rows)

    def write(self, ops: Sequence[WriteOp]) -> None:
        """Apply ``ops`` in ONE managed write transaction (retried whole on transient errors).

        Bulk operations are sent as ``UNWIND $rows`` batches of :attr:`batch_size` rows. A
        bulk relationship whose endpoint does not exist aborts the transaction.
        """
        self._check_writable()
        plan = write_plan(ops, self.batch_size)  # built once, outside the retried function
        if not plan:
            return
        if not self._schema_ready:
            self.ensure_schema()
        with self._errors("writing"), self._session() as session:
            session.execute_write(_apply, plan)

    def close(self) -> None:
        """Close the driver and its connections (idempotent)."""
        if self._driver is not None:
            self._driver.close()
            self._driver = None


# Transaction functions: module-level so the driver can retry them with the same arguments.


def _run_consume(tx: neo4j.ManagedTransaction, cypher: str, params: dict[str, Any]) -> None:
    tx.run(cypher, params).consume()


def _fetch(
    tx: neo4j.ManagedTransaction,
    cypher: str,
    params: dict[str, Any],
    max_rows: int | None = None,
) -> list[dict]:
    result = tx.run(cypher, params)
    out = []
    for record in result:
        out.append({k: to_plain(v) for k, v in record.items()})
        if max_rows is not None and len(out) > max_rows:
            break  # one past the limit: the caller reports the cut
    return out


def _apply(tx: neo4j.ManagedTransaction, plan: Sequence[PlannedQuery]) -> None:
    for q in plan:
        result = tx.run(q.cypher, q.params)
        if q.expect is None:
            result.consume()
            continue
        record = result.single(strict=True)
        created = record["created"]
        if created != q.expect:
            # Raising inside the transaction function rolls the whole image back.
            raise CatalogError(
                f"only {created} of {q.expect} {q.what} relationships could be created: "
                "some of their end nodes do not exist"
            )
