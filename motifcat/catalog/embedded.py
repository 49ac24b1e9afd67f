"""The embedded catalog: Ladybug (the maintained fork of Kùzu), in-process and on disk.

One file (plus a ``.wal`` beside it while writes are pending) holds the whole catalog. The
typed schema of :mod:`motifcat.catalog.schema` is created on first open.

Facts measured on Ladybug 0.22 that shaped this module
------------------------------------------------------
* Bulk rows are written with ``LOAD FROM $df CREATE ...`` (a pandas DataFrame scanned by the
  engine) inside the transaction: ~1.1-1.5·10^5 rows/s including the commit, against
  ~4·10^4 rows/s for ``UNWIND $rows CREATE`` (the list parameter is converted row by row).
* ``COPY <table> FROM $df`` is 2-3x faster and does run inside an explicit transaction, but it is
  **not crash-safe**: its rows bypass the write-ahead log, and a ``SIGKILL`` during the
  checkpoint that follows the commit (files ``<db>.wal.checkpoint`` / ``<db>.shadow`` present)
  loses the copied rows while the logged statements of the same transaction survive — a torn
  image (reproduced every time by killing the writer as soon as the checkpoint files appear).
  ``LOAD FROM ... CREATE`` is logged like any ``CREATE`` and survives the same kill whole. It is
  also free of a second COPY bug (``CREATE`` then ``COPY`` into one table in one transaction
  corrupts the primary-key index).
* ``LOAD FROM ... MATCH`` silently skips a row whose endpoint does not exist, so every bulk
  relationship statement returns its count and a shortfall aborts the transaction. Lookups use
  two separate ``MATCH`` clauses (the comma form is orders of magnitude slower).
* Any error inside an explicit transaction makes Ladybug roll the whole transaction back by
  itself; a later ``ROLLBACK`` then reports "No active transaction", which is harmless.
* The Python client caches a prepared statement per DataFrame parameter and keeps it (and its
  data: ~40 MB per 100k rows) for the life of the connection; executing a cached statement a
  second time with the same DataFrame object crashes the process. Each :meth:`write` therefore
  uses a fresh connection, closed at the end, and hands each statement a fresh DataFrame.
* A second read-write ``Database`` on the same file fails at once with "Could not set lock on
  file" in another process, but *opens* in the same process (the lock is per process), so this
  module keeps a registry of its writers. Read-only ``Database`` objects may coexist with one
  writer; one sees the file as it was when opened, so :meth:`read_only` reopens its read-only
  handle after every write of this store.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import CatalogError, CatalogInUseError, QueryError
from . import schema
from .store import BulkNodes, BulkRels, GraphStore, Statement, WriteOp

# Ladybug's file lock is per process (a second read-write Database of the same file in the same
# process opens without error, and two writers would then corrupt it): keep our own registry.
_WRITERS: set[Path] = set()
_WRITERS_LOCK = threading.Lock()

_PANDAS_DTYPES = {"DOUBLE": "float64", "INT64": "int64", "STRING": "object", "BOOLEAN": "bool"}


#: Seconds a read-only opener waits for a live writer to finish a checkpoint (or to release the
#: lock so that the opener can complete a crashed writer's recovery) before giving up.
OPEN_WAIT_S = float(os.environ.get("MOTIFCAT_OPEN_WAIT_S", "30"))

#: Ladybug's buffer pool (which also holds query operators' memory) for read-only handles, in
#: bytes: it bounds a runaway console query. Ladybug's own default is ~80 % of the RAM, which
#: let one console query reach 19.8 GB here. 0 = Ladybug's default.
READ_BUFFER_POOL_BYTES = int(float(os.environ.get("MOTIFCAT_READ_BUFFER_POOL_MB", "2048")) * 2**20)

# Ladybug's messages for a WAL whose tail was torn by a kill in the middle of a commit.
_TORN_WAL = ("checksum verification failed", "reading past the end of the file")
_PENDING_RECOVERY = "checkpoint recovery is pending"


class CatalogRecoveredWarning(UserWarning):
    """The embedded catalog was recovered from a crash; the message says what was lost."""


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _intent_path(path: Path) -> Path:
    """Where a writer notes what it is committing (removed once the commit is checkpointed)."""
    return _sidecar(path, ".writing")


def _lost_write(path: Path) -> str:
    intent = _intent_path(path)
    try:
        what = json.loads(intent.read_text())["what"]
    except (OSError, ValueError, KeyError, TypeError):
        return "the write that was in flight (its description was not recorded)"
    return str(what)


def _ladybug_database(path: Path, read_only: bool, lenient: bool = False):
    import ladybug

    kwargs: dict[str, Any] = {"read_only": read_only}
    if read_only and READ_BUFFER_POOL_BYTES > 0:
        kwargs["buffer_pool_size"] = READ_BUFFER_POOL_BYTES
    if lenient:
        kwargs["throw_on_wal_replay_failure"] = False
    return ladybug.Database(str(path), **kwargs)


def _in_use_error(path: Path, text: str) -> CatalogInUseError:
    holder = re.search(r"held by PID (\d+)", text)
    who = f"process {holder.group(1)}" if holder else "another process"
    return CatalogInUseError(
        f"{path}: catalog is in use by another process ({who} holds it open for "
        "writing); wait for it to finish, or open the catalog read-only"
    )


def _open_database(path: Path, read_only: bool):
    """Open the Ladybug database at ``path``, recovering it from any earlier kill.

    Why no kill can make the catalog unopenable (each case reproduced by killing a writer at
    every file-system call of a write, with ``strace`` signal injection, on Ladybug 0.22):

    * **Torn WAL.** A kill while a commit is writing ``<db>.wal`` leaves a log whose last
      record fails its checksum ("Checksum verification failed") or is short ("Reading past
      the end of the file"); Ladybug then refuses every open. The torn tail is, by
      construction, the one transaction whose ``COMMIT`` never returned: :meth:`LadybugStore.
      write` checkpoints after every commit, so the log only ever holds the transaction in
      flight (and a log written by an older motifcat holds committed transactions *before*
      the torn one). Ladybug's ``throw_on_wal_replay_failure=False`` replays the log up to
      the torn record — every committed transaction, none of the partial one (measured: the
      images committed before survive whole, the interrupted one is wholly absent). The
      torn log is first copied aside to ``<db>.wal.torn-<time>`` and a
      :class:`CatalogRecoveredWarning` names the lost write (from ``<db>.writing``).
      This runs only with the write lock held (a read-write open), so a live writer's
      log, which may look torn to a reader mid-commit, is never touched.
    * **Interrupted checkpoint** (``<db>.wal.checkpoint`` / ``<db>.shadow`` present). A
      read-write open completes it (Ladybug replays the shadow pages, idempotently); a
      read-only open is refused by Ladybug ("checkpoint recovery is pending"). A read-only
      opener therefore tries a read-write open itself: if it gets the lock, no writer is
      alive, it completes the recovery and closes; if the lock is held, the holder is a live
      writer that has recovered the file at its own open or is checkpointing right now, so
      the opener waits and retries (up to ``OPEN_WAIT_S``) and then says so.
    """
    if path.is_dir():
        raise CatalogError(
            f"{path}: is a directory; an embedded catalog is one file (give a file path, "
            f"e.g. {path / 'catalog.lbug'})"
        )
    if read_only and not path.exists():
        raise CatalogError(f"{path}: no catalog there (nothing has been ingested yet)")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _open_read_write(path)
    deadline = time.monotonic() + OPEN_WAIT_S
    recoveries = 0
    while True:
        try:
            return _ladybug_database(path, read_only=True)
        except RuntimeError as exc:
            text = str(exc)
            if _PENDING_RECOVERY not in text.lower() and not _is_torn(text):
                raise CatalogError(f"{path}: cannot open the catalog: {text}") from exc
            first = text
        # A crashed writer's recovery is pending (or a live writer is mid-commit/checkpoint).
        with _WRITERS_LOCK:
            # Ladybug's lock is per process: a writer of this process must be asked, not raced.
            ours = path in _WRITERS
            if not ours:
                _WRITERS.add(path)
        if not ours and recoveries < 3:
            try:
                _open_read_write(path).close()
                recoveries += 1
                continue  # recovered (or found nothing to do): open read-only again
            except CatalogInUseError:
                pass  # a live writer holds the file: it is checkpointing; wait for it
            finally:
                with _WRITERS_LOCK:
                    _WRITERS.discard(path)
        if recoveries >= 3:
            raise CatalogError(f"{path}: cannot open the catalog read-only after recovery: {first}")
        if time.monotonic() > deadline:
            raise CatalogInUseError(
                f"{path}: the catalog is being checkpointed by the process that writes it and "
                f"could not be opened read-only within {OPEN_WAIT_S:.0f} s (Ladybug: {first}); "
                "retry when the ingest has finished (MOTIFCAT_OPEN_WAIT_S sets the wait)"
            )
        time.sleep(0.2)


def _is_torn(text: str) -> bool:
    low = text.lower()
    return any(t in low for t in _TORN_WAL) and ("wal" in low)


def _create_catalog(path: Path) -> None:
    """Create a new catalog file with the whole schema, atomically.

    The schema is many DDL statements, each its own commit; a kill among them left a file
    without some tables, on which every query failed ("Table Image does not exist"). So the
    file is built under a temporary name, closed (which checkpoints it into the one file) and
    only then linked to ``path`` — ``os.link`` fails if another process created ``path``
    meanwhile, so a concurrent creator never replaces a catalog in use.
    """
    import ladybug

    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    for stale in path.parent.glob(f".{path.name}.creating-{os.getpid()}*"):
        stale.unlink()
    db = ladybug.Database(str(tmp))
    try:
        conn = ladybug.Connection(db)
        for ddl in schema.ladybug_ddl():
            conn.execute(ddl)
        conn.close()
    finally:
        db.close()
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first: use theirs
    finally:
        for left in path.parent.glob(f".{path.name}.creating-{os.getpid()}*"):
            left.unlink()


def _open_read_write(path: Path):
    """Read-write open with the torn-WAL recovery of :func:`_open_database`."""
    if not path.exists():
        _create_catalog(path)
    try:
        db = _ladybug_database(path, read_only=False)
    except RuntimeError as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise _in_use_error(path, text) from exc
        if not _is_torn(text):
            raise CatalogError(f"{path}: cannot open the catalog: {text}") from exc
        db = _recover_torn_wal(path, text)
    # Holding the lock with the log replayed: a note of an earlier write is stale now (that
    # write was either committed and is in the file, or torn and was just set aside).
    _intent_path(path).unlink(missing_ok=True)
    return db


def _recover_torn_wal(path: Path, text: str):
    wal = _sidecar(path, ".wal")
    aside = _sidecar(path, time.strftime(".wal.torn-%Y%m%dT%H%M%S"))
    lost = _lost_write(path)
    try:
        shutil.copy2(wal, aside)  # a copy: the log stays in place until Ladybug is done with it
    except OSError:
        aside = None
    try:
        db = _ladybug_database(path, read_only=False, lenient=True)
        db.close()  # closing checkpoints the replayed prefix and removes the log
        db = _ladybug_database(path, read_only=False)
    except RuntimeError as exc:
        if "lock" in str(exc).lower():
            raise _in_use_error(path, str(exc)) from exc
        raise CatalogError(
            f"{path}: cannot open the catalog: its write-ahead log is torn ({text}) and "
            f"recovery failed: {exc}"
        ) from exc
    kept = f"; the torn log is kept as {aside}" if aside else ""
    warnings.warn(
        CatalogRecoveredWarning(
            f"{path}: recovered from a kill during a write: every committed image is intact; "
            f"lost (never committed): {lost}{kept}. Ingest that file again to add it."
        ),
        stacklevel=4,
    )
    return db


def _rows(result: Any) -> list[dict[str, Any]]:
    """One dict per row of a Ladybug query result (the last one for a multi-statement query)."""
    if isinstance(result, list):
        result = result[-1]
    names = result.get_column_names()
    return [dict(zip(names, row, strict=True)) for row in result.get_all()]


def _frame(rows: pd.DataFrame, columns: list[tuple[str, str]], what: str) -> pd.DataFrame:
    """A fresh DataFrame of the given ``columns`` present in ``rows``, in order, typed.

    Columns are renamed ``c0, c1, ...`` so that no property name (``count``...) can clash with a
    Cypher keyword where ``LOAD FROM`` binds them as variables.
    """
    unknown = set(rows.columns) - {name for name, _ in columns}
    if unknown:
        raise CatalogError(f"{what}: unknown column(s) {sorted(unknown)}")
    out = {}
    for name, typ in columns:
        if name not in rows.columns:
            continue
        col = rows[name]
        dtype = _PANDAS_DTYPES.get(typ)
        if dtype == "object":
            col = col.astype(str) if col.notna().all() else col.astype(object)
        elif dtype is not None and col.notna().all():
            col = col.astype(dtype)
        out[name] = col.to_numpy()
    return pd.DataFrame(out)


class LadybugStore(GraphStore):
    """A motifcat catalog in an embedded Ladybug database file.

    Parameters
    ----------
    path : str or path-like
        The database file (created with its parent folders on first read-write open).
    read_only : bool, default False
        Open without the write lock: many read-only stores may coexist with one writer.

    Raises
    ------
    CatalogInUseError
        Another process holds the catalog open for writing (read-write open only).
    CatalogError
        The path is a folder, or (read-only) no catalog exists there, or Ladybug cannot open it.

    Examples
    --------
    >>> import tempfile, os
    >>> from motifcat.catalog.store import Statement
    >>> store = LadybugStore(os.path.join(tempfile.mkdtemp(), "cat"))
    >>> store.write([Statement("CREATE (:Material {name: $n})", {"n": "MoS2"})])
    >>> store.read("MATCH (m:Material) RETURN m.name AS name")
    [{'name': 'MoS2'}]
    >>> store.close()
    """

    backend = "ladybug"

    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        import ladybug

        self.path = Path(os.fspath(path)).expanduser().absolute()
        self.location = f"ladybug:{self.path}"
        self.is_read_only = bool(read_only)
        self._db = None
        if not self.is_read_only:
            with _WRITERS_LOCK:
                if self.path in _WRITERS:
                    raise CatalogInUseError(
                        f"{self.path}: catalog is in use by another store of this process "
                        "(open for writing); close it first, or open this one read-only"
                    )
                _WRITERS.add(self.path)
        self._conn = None
        self._ro_db = None
        self._ro_conn = None
        try:
            self._db = _open_database(self.path, self.is_read_only)
            self._conn = ladybug.Connection(self._db)
            if not self.is_read_only:
                for ddl in schema.ladybug_ddl():
                    self._conn.execute(ddl)
        except BaseException as exc:
            # Close what was opened and unregister the path: a failed open must not leave the
            # catalog marked "in use" for the rest of the process.
            self._abandon()
            if isinstance(exc, RuntimeError):
                raise CatalogError(
                    f"{self.path}: cannot prepare the catalog schema: {exc}"
                ) from exc
            raise

    # -- reads ---------------------------------------------------------------------------
    def read(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query; one dict per row keyed by the RETURN names.

        Raises
        ------
        QueryError
            If Ladybug rejects or fails the query (the message carries Ladybug's reason).
        """
        self._check_open()
        try:
            return _rows(self._conn.execute(cypher, dict(params or {})))
        except RuntimeError as exc:
            raise QueryError(f"{self.location}: query failed: {exc}") from exc

    def read_only(
        self,
        cypher: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
    ) -> list[dict]:
        """Run user-supplied Cypher on a read-only database handle: the engine refuses writes.

        The handle's buffer pool (:data:`READ_BUFFER_POOL_BYTES`) bounds the query's memory;
        ``timeout_s`` makes Ladybug interrupt it (``Connection.set_query_timeout``);
        ``max_rows`` fetches at most that many rows plus one.

        Raises
        ------
        QueryError
            If the query fails, including any attempt to write, runs out of its memory, or
            is stopped at ``timeout_s``.
        """
        self._check_open()
        import ladybug

        if self.is_read_only:
            conn = self._conn
        else:
            if self._ro_conn is None:
                self._ro_db = _open_database(self.path, read_only=True)
                self._ro_conn = ladybug.Connection(self._ro_db)
            conn = self._ro_conn
        # 0 = no limit (Ladybug's own default); set on every call, the connection is shared.
        conn.set_query_timeout(int(round(timeout_s * 1000)) if timeout_s else 0)
        try:
            result = conn.execute(cypher, dict(params or {}))
            if max_rows is None:
                return _rows(result)
            if isinstance(result, list):
                result = result[-1]
            names = result.get_column_names()
            out = []
            while result.has_next() and len(out) <= max_rows:
                out.append(dict(zip(names, result.get_next(), strict=True)))
            return out
        except RuntimeError as exc:
            if timeout_s and str(exc).strip().rstrip(".").lower() == "interrupted":
                raise QueryError(
                    f"{self.location}: the query was stopped at its time limit of "
                    f"{timeout_s:g} s"
                ) from exc
            if "buffer pool is full" in str(exc).lower():
                raise QueryError(
                    f"{self.location}: the query was stopped at its memory limit of "
                    f"{READ_BUFFER_POOL_BYTES / 2**20:.0f} MB (MOTIFCAT_READ_BUFFER_POOL_MB "
                    "sets it); narrow the query, e.g. bound variable-length paths"
                ) from exc
            raise QueryError(f"{self.location}: query failed: {exc}") from exc
        finally:
            conn.set_query_timeout(0)

    # -- writes --------------------------------------------------------------------------
    def write(self, ops: Sequence[WriteOp]) -> None:
        """Apply ``ops`` in order inside one transaction: all of them or none.

        ``BulkNodes`` / ``BulkRels`` go through ``LOAD FROM`` a DataFrame ``CREATE ...``
        (logged like any statement, inside the transaction; see the module notes for why not
        ``COPY FROM``); statements run with their parameters.

        Raises
        ------
        CatalogError
            If any operation fails; the transaction is rolled back and the catalog is exactly
            as it was before the call.
        """
        self._check_open()
        if self.is_read_only:
            raise CatalogError(f"{self.location}: opened read-only; cannot write")
        import ladybug

        # Note what is being committed, for the message should a kill tear this commit (see
        # _open_database). Written before the transaction, removed once it is checkpointed.
        intent = _intent_path(self.path)
        intent.write_text(json.dumps({"what": _describe_batch(ops), "pid": os.getpid()}))
        # A fresh connection per batch: the client's per-connection statement cache would
        # otherwise keep every bulk DataFrame alive (see the module notes).
        conn = ladybug.Connection(self._db)
        try:
            try:
                conn.execute("BEGIN TRANSACTION")
            except RuntimeError as exc:
                raise CatalogError(
                    f"{self.location}: cannot start a write transaction: {exc}"
                ) from exc
            try:
                for i, op in enumerate(ops):
                    try:
                        self._apply(conn, op)
                    except Exception as exc:
                        raise CatalogError(
                            f"{self.location}: write failed at operation {i + 1} of {len(ops)} "
                            f"({_describe(op)}) and was rolled back: {exc}"
                        ) from exc
                try:
                    conn.execute("COMMIT")
                except RuntimeError as exc:
                    raise CatalogError(
                        f"{self.location}: the commit of {len(ops)} operation(s) failed and the "
                        f"write was rolled back: {exc}"
                    ) from exc
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except RuntimeError:
                    pass  # Ladybug already rolled back when the failing statement errored
                raise
            # Checkpoint now, so that the log never holds more than the one transaction in
            # flight: a torn log then loses nothing that was committed (see _open_database).
            # A kill during this checkpoint is completed by the next open.
            try:
                conn.execute("CHECKPOINT")
            except RuntimeError:
                pass  # committed and logged: the next open checkpoints it
        finally:
            conn.close()
            self._invalidate_read_only()
            intent.unlink(missing_ok=True)  # committed and checkpointed, or rolled back

    def _apply(self, conn: Any, op: WriteOp) -> None:
        if isinstance(op, Statement):
            conn.execute(op.cypher, dict(op.params))
        elif isinstance(op, BulkNodes):
            if op.label not in schema.NODE_TABLES:
                raise CatalogError(f"unknown node label {op.label!r}")
            if len(op.rows) == 0:
                return
            df = _frame(op.rows, schema.NODE_TABLES[op.label], f"BulkNodes({op.label})")
            pk = schema.primary_key(op.label)
            if pk not in df.columns or df[pk].isna().any():
                raise CatalogError(f"BulkNodes({op.label}): every row needs its {pk!r}")
            props = ", ".join(f"{name}: c{k}" for k, name in enumerate(df.columns))
            df.columns = [f"c{k}" for k in range(df.shape[1])]
            conn.execute(f"LOAD FROM $df CREATE (:{op.label} {{{props}}})", {"df": df})
        elif isinstance(op, BulkRels):
            if op.type not in schema.REL_TABLES:
                raise CatalogError(f"unknown relationship type {op.type!r}")
            src, dst, props = schema.REL_TABLES[op.type]
            if (op.src_label, op.dst_label) != (src, dst):
                raise CatalogError(
                    f"{op.type} goes from {src} to {dst}, not {op.src_label} to {op.dst_label}"
                )
            if len(op.rows) == 0:
                return
            cols = [("src", "STRING"), ("dst", "STRING"), *props]
            df = _frame(op.rows, cols, f"BulkRels({op.type})")
            if {"src", "dst"} - set(df.columns) or df["src"].isna().any() or df["dst"].isna().any():
                raise CatalogError(f"BulkRels({op.type}): every row needs its src and dst ids")
            names = list(df.columns)
            rel_props = ", ".join(f"{name}: c{k}" for k, name in enumerate(names) if k >= 2)
            rel_props = f" {{{rel_props}}}" if rel_props else ""
            df.columns = [f"c{k}" for k in range(df.shape[1])]
            cypher = (
                f"LOAD FROM $df MATCH (a:{src} {{{schema.primary_key(src)}: c0}}) "
                f"MATCH (b:{dst} {{{schema.primary_key(dst)}: c1}}) "
                f"CREATE (a)-[:{op.type}{rel_props}]->(b) RETURN count(*) AS n"
            )
            made = _rows(conn.execute(cypher, {"df": df}))[0]["n"]
            if made != len(df):
                raise CatalogError(
                    f"BulkRels({op.type}): {len(df) - made} of {len(df)} rows name a {src} or "
                    f"{dst} id that does not exist"
                )
        else:
            raise CatalogError(f"unknown write operation {type(op).__name__}")

    # -- lifecycle -----------------------------------------------------------------------
    def _invalidate_read_only(self) -> None:
        if self._ro_conn is not None:
            self._ro_conn.close()
            self._ro_db.close()
        self._ro_conn = self._ro_db = None

    def _check_open(self) -> None:
        if self._db is None:
            raise CatalogError(f"{self.location}: the store is closed")

    def close(self) -> None:
        """Release the database file (and its write lock). Idempotent."""
        if self._db is None:
            return
        self._abandon()

    def _abandon(self) -> None:
        """Close whatever is open (connections, database), then unregister the path."""
        try:
            self._invalidate_read_only()
            for handle in (self._conn, self._db):
                if handle is not None:
                    try:
                        handle.close()
                    except RuntimeError:
                        pass  # closing a half-opened handle must not hide the first error
        finally:
            self._db = None
            self._conn = None
            self._release()

    def _release(self) -> None:
        if not self.is_read_only:
            with _WRITERS_LOCK:
                _WRITERS.discard(self.path)

    def __del__(self) -> None:
        # A store dropped without close() must not keep the path registered as in use.
        try:
            self.close()
        except Exception:
            pass

    def size_bytes(self) -> int:
        """Bytes on disk of the catalog file and its write-ahead log."""
        return sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + ".wal"))
            if p.exists()
        )

    def __repr__(self) -> str:
        mode = "read-only" if self.is_read_only else "read-write"
        return f"LadybugStore({str(self.path)!r}, {mode})"


def _describe_batch(ops: Sequence[WriteOp]) -> str:
    """What a write batch adds, for a recovery message: the image it creates, if any."""
    for op in ops:
        if isinstance(op, Statement) and "CREATE (:Image" in op.cypher:
            image_id = str(op.params.get("id", ""))
            where = op.params.get("path")
            return f"image {image_id[:16]}" + (f" from {where}" if where else "")
    return f"a write of {len(ops)} operation(s)"


def _describe(op: WriteOp) -> str:
    if isinstance(op, Statement):
        text = " ".join(op.cypher.split())
        return f"statement {text[:80]!r}"
    if isinstance(op, BulkNodes):
        return f"{len(op.rows)} {op.label} nodes"
    return f"{len(op.rows)} {op.type} relationships"
