"""The analysis engine of batch ingest on Dask (``dask.distributed``): client, submit, results.

:mod:`motifcat.batch` orchestrates an ingest and keeps the one writer; this module only runs
functions on a Dask cluster and hands their results back **in input order**:

Importing this module imports ``distributed`` (about a second): :mod:`motifcat.batch` does
so only when it runs on Dask.

* :func:`get_client` connects to an existing scheduler (``tcp://host:8786``, or
  ``$MOTIFCAT_SCHEDULER``) or starts an in-process :class:`~distributed.LocalCluster` of worker
  *processes* (one thread each) and closes what it started on exit, Ctrl-C included;
* :func:`ordered_results` submits one task per item (at most ``window`` ahead of the consumer,
  so that results never pile up in memory), lets each retry once, and yields ``(index, ok,
  value)`` in input order whatever order the tasks finish in, calling ``on_done`` as each one
  completes (the progress bar).

Faults: a worker that dies while running a task (killed, out of memory) is replaced by its
nanny and the task is run once more; a second death reports it as failed with the reason
(the scheduler's ``allowed_failures`` is 1 on the clusters this module starts; an existing
cluster keeps its own ``distributed.scheduler.allowed-failures``). A task that raises is
retried once (``retries=1``). Workers never write to the catalog, so a dead worker leaves
nothing half-written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .errors import MotifcatError

__all__ = [
    "SchedulerError",
    "dashboard_available",
    "dashboard_note",
    "get_client",
    "memory_limit_for",
    "ordered_results",
    "scheduler_address",
]

#: Environment variable naming the scheduler of an existing cluster (``tcp://host:8786``).
SCHEDULER_ENV = "MOTIFCAT_SCHEDULER"
#: How long to wait for an existing scheduler to answer, in s.
CONNECT_TIMEOUT_S = 30


class SchedulerError(MotifcatError):
    """The Dask scheduler cannot be reached or the cluster cannot be started."""


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The scheduler to use: ``scheduler``, else ``$MOTIFCAT_SCHEDULER``, else None (local).

    Examples
    --------
    >>> scheduler_address("tcp://10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    """
    value = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV)
    value = (value or "").strip()
    return value or None


def dashboard_available() -> bool:
    """True when the Dask dashboard can be served (it needs the optional ``bokeh``)."""
    return importlib.util.find_spec("bokeh") is not None


def dashboard_note(client) -> str:
    """One line for the user: the dashboard's address, or why there is none.

    A cluster started here serves the dashboard when ``bokeh`` is installed; an existing
    cluster's scheduler serves it when it has bokeh, which cannot be seen from here.

    Examples
    --------
    >>> class C:  # a client of an existing cluster
    ...     cluster, dashboard_link = None, "http://10.0.0.5:8787/status"
    >>> dashboard_note(C())
    'dashboard: http://10.0.0.5:8787/status (if the scheduler has bokeh)'
    """
    link = getattr(client, "dashboard_link", None)
    if getattr(client, "cluster", None) is None:  # an existing cluster
        return f"dashboard: {link} (if the scheduler has bokeh)" if link else "dashboard: none"
    if not dashboard_available():
        return "dashboard: not available (the Dask dashboard needs bokeh: pip install bokeh)"
    return f"dashboard: {link}"


def memory_limit_for(max_megapixels: float | None, workers: int) -> int:
    """Memory limit of one worker in bytes, from the size guard of :mod:`motifcat.ingest.limits`.

    A worker is allowed the peak that the largest admitted image needs
    (:func:`~motifcat.ingest.limits.estimate_peak_bytes` of ``max_megapixels``); with no size
    limit (``max_megapixels`` 0 or less), its share of the machine's RAM. The default limit,
    :func:`~motifcat.ingest.limits.default_max_megapixels` of ``workers``, gives the share:
    the workers together fit in ``RAM_SHARE`` of the RAM.

    Parameters
    ----------
    max_megapixels : float, optional
        The size guard in 10^6 px; None for its default for ``workers``.
    workers : int
        Worker processes that run at once.

    Examples
    --------
    >>> round(memory_limit_for(4.0, 2) / 2**20)  # MB: 400 MB base + 100 B/px
    781
    """
    from .ingest.limits import (
        RAM_SHARE,
        default_max_megapixels,
        estimate_peak_bytes,
        total_ram_bytes,
    )

    workers = max(1, int(workers))
    mpx = default_max_megapixels(workers) if max_megapixels is None else float(max_megapixels)
    if mpx <= 0:
        return int(RAM_SHARE * total_ram_bytes() / workers)
    return int(estimate_peak_bytes(int(mpx * 1e6)))


class _WorkerSetup(WorkerPlugin):
    """Worker plugin of the clusters :func:`get_client` starts: a worker dies with the ingest
    that started it (see :mod:`motifcat.procs`) and uses one BLAS thread (parallelism is
    across workers; oversubscribed small linear algebra runs an order of magnitude slower)."""

    name = "motifcat-worker-setup"

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid

    def setup(self, worker) -> None:  # runs in the worker process
        if os.getppid() == self.parent_pid:  # a worker process of this machine's ingest
            from .procs import die_with_parent

            die_with_parent(self.parent_pid)
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)



@contextlib.contextmanager
def get_client(
    scheduler: str | None = None,
    n_workers: int = 2,
    memory_limit: str | int | None = None,
    *,
    processes: bool = True,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> Iterator[Any]:
    """A Dask client: of the cluster at ``scheduler``, or of a new in-process LocalCluster.

    The client (and the cluster, when this started it) is closed on exit, also after an
    exception or Ctrl-C.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing scheduler, e.g. ``tcp://host:8786``; default
        ``$MOTIFCAT_SCHEDULER``; when neither is set, a LocalCluster is started.
    n_workers : int, default 2
        Workers of a new LocalCluster, one thread each (ignored for an existing cluster).
    memory_limit : str or int, optional
        Memory limit of each new worker (``"2GiB"`` or bytes); the worker's nanny restarts
        a worker that goes over it. Default: :func:`memory_limit_for` its share.
    processes : bool, default True
        Workers in processes (the analyses run in parallel); False runs them as threads of
        this process (quick to start; for tests and small jobs).
    timeout_s : float, default CONNECT_TIMEOUT_S
        How long to wait for an existing scheduler to answer, in s.

    Yields
    ------
    distributed.Client

    Raises
    ------
    SchedulerError
        If the scheduler does not answer within ``timeout_s`` or the cluster
        cannot start.

    Examples
    --------
    >>> with get_client(None, n_workers=1, processes=False) as client:
    ...     client.submit(sum, [1, 2, 3]).result()
    6
    """
    import dask
    from distributed import Client, LocalCluster

    address = scheduler_address(scheduler)
    cluster = None
    client = None
    try:
        if address is not None:
            try:
                client = Client(address, timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - unreachable, refused, a bad address...
                raise SchedulerError(
                    f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: "
                    f"{exc}); start one (dask scheduler; dask worker {address}) or leave out "
                    f"--scheduler / ${SCHEDULER_ENV} for a local cluster"
                ) from None
        else:
            n_workers = max(1, int(n_workers))
            limit = memory_limit if memory_limit is not None else memory_limit_for(None, n_workers)
            try:
                with dask.config.set(_QUIET):
                    cluster = _local_cluster(LocalCluster, n_workers, processes, limit)
            except Exception as exc:
                raise SchedulerError(
                    f"cannot start a local Dask cluster of {n_workers} workers: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            client = Client(cluster)
            if processes:
                client.register_plugin(_WorkerSetup(os.getpid()), name=_WorkerSetup.name)
        yield client
    finally:
        # Ctrl-C lands here too: stop the workers before the interpreter goes.
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()


#: Config of the clusters :func:`get_client` starts: fewer periodic chores. Each process of a
#: cluster wakes up for them (the workers' profiler every 10 ms, the event-loop health tick
#: every 20 ms, the memory monitor every 100 ms, the psutil system monitor every 500 ms) and
#: that CPU goes missing from the analyses on a small, busy machine (bench/dask_ingest.py
#: measured ~0.1 core for 2 workers with the defaults). Nannies hand it to every worker they
#: (re)start.
_QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    # One image per worker thread at a time, the rest queued on the scheduler: a worker that
    # dies then takes only its own image with it. With the default (1.1, i.e. two tasks on a
    # one-thread worker) an innocent image queued behind a crashing one was counted as having
    # killed the worker too, and reported failed after the crasher's retry.
    "distributed.scheduler.worker-saturation": 1.0,
}


def _local_cluster(LocalCluster, n_workers: int, processes: bool, limit):
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=processes,
        memory_limit=limit,
        # Any free port: ingests side by side do not collide on 8787.
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        # A task whose worker died is run once more, then reported (KilledWorker).
        scheduler_kwargs={"allowed_failures": 1},
    )


def _n_threads(client) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - a scheduler that does not say: assume 2
        return 2


def _reason(exc: BaseException) -> str:
    """Why a task failed, in words: a worker that died on every attempt, or the error."""
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        n = getattr(exc, "allowed_failures", 1) + 1
        return (
            f"the analysis worker died on each of {n} attempts (killed, or over its memory "
            "limit: try fewer --workers, a lower --max-megapixels, or crop the image)"
        )
    return f"{type(exc).__name__}: {exc}"


def ordered_results(
    client,
    fn: Callable[..., Any],
    arg_tuples: Sequence[tuple],
    *,
    window: int | None = None,
    retries: int = 1,
    on_done: Callable[[int], None] | None = None,
    name: str = "motifcat",
) -> Iterator[tuple[int, bool, Any]]:
    """Run ``fn(*args)`` for each of ``arg_tuples`` on the cluster; yield results in input order.

    Parameters
    ----------
    client : distributed.Client
        From :func:`get_client`.
    fn : callable
        A function importable on the workers (a module-level function of ``motifcat``).
    arg_tuples : sequence of tuple
        The arguments of each call.
    window : int, optional
        Tasks submitted but not yet consumed, at most (default 2 per worker thread, at least
        4): a slow first task does not let every other result pile up in memory.
    retries : int, default 1
        Runs more of a task that raised.
    on_done : callable, optional
        ``on_done(index)`` as each task completes, in completion order.
    name : str
        Prefix of the task keys (shown on the dashboard).

    Yields
    ------
    (int, bool, object)
        ``(index, True, result)`` or ``(index, False, reason)`` in the order of ``arg_tuples``.

    Examples
    --------
    >>> with get_client(None, n_workers=2, processes=False) as client:
    ...     list(ordered_results(client, divmod, [(7, 2), (1, 0), (9, 3)], retries=0))
    [(0, True, (3, 1)), (1, False, 'ZeroDivisionError: integer division or modulo by zero'), \
(2, True, (3, 0))]
    """
    from distributed import as_completed

    n = len(arg_tuples)
    if window is None:
        window = max(4, 2 * _n_threads(client))
    window = max(1, int(window))
    run = uuid.uuid4().hex[:8]
    futures: dict[int, Any] = {}
    index_of: dict[str, int] = {}
    finished: dict[int, tuple[bool, Any]] = {}
    pending = as_completed()
    submitted = 0
    consumed = 0

    def top_up() -> None:
        nonlocal submitted
        while submitted < n and submitted - consumed < window:
            i = submitted
            fut = client.submit(
                fn,
                *arg_tuples[i],
                key=f"{name}-{i}-{run}",
                retries=retries,
                pure=False,
                priority=n - i,  # the earliest first: the writer waits for it
            )
            futures[i] = fut
            index_of[fut.key] = i
            pending.add(fut)
            submitted += 1

    try:
        top_up()
        for fut in pending:
            i = index_of.pop(fut.key)
            try:
                finished[i] = (True, fut.result())
            except Exception as exc:  # noqa: BLE001 - the task's failure is this item's only
                finished[i] = (False, _reason(exc))
            futures.pop(i, None)
            fut.release()
            if on_done is not None:
                on_done(i)
            while consumed in finished:
                ok, value = finished.pop(consumed)
                consumed += 1
                yield consumed - 1, ok, value
            top_up()
    finally:
        # An early exit (error, Ctrl-C, generator closed): cancel what still runs.
        left = list(futures.values())
        if left:
            with contextlib.suppress(Exception):
                client.cancel(left)
