"""Batch ingest of many files: analyse in parallel on Dask workers, write serially here.

This module orchestrates the two layers below it: :mod:`motifcat.ingest` (pure analysis) and
:mod:`motifcat.catalog` (storage only). It lives above both so that the catalog never runs an
analysis itself. (It was ``motifcat.catalog.ingest``, which still re-exports its names.)

The catalog has one writer (the embedded store's file lock; one transaction per image on Neo4j),
so only the analysis is parallel. Images are written in the order of the input list whatever
order the analyses finish in, so that the numbering of new level-1 motifs (``L1-NNNN``) is the
same on every run. Each file succeeds or fails alone: a file that cannot be read, analysed or
written is reported with its reason and the others are still written. A new embedded catalog
file that receives no image is removed again.

The analyses run on a Dask cluster (:mod:`motifcat.distributed`): a LocalCluster of worker
processes started for the ingest, or an existing cluster (``scheduler="tcp://host:8786"`` or
``$MOTIFCAT_SCHEDULER``). This process is the one writer. A worker that dies mid-image has
written nothing (workers never write); its image is analysed once more, then reported as failed
with the reason. Library warnings raised during an analysis (scikit-learn's
ConvergenceWarning...) are captured with it and raised again here, once per image and kind.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import glob
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .catalog.delete import delete_images
from .catalog.opener import open_catalog
from .catalog.store import GraphStore
from .catalog.uri import parse_uri
from .catalog.writer import WriteReport, _duplicate_report, _image_exists, write_analysis
from .errors import CatalogError, MotifcatError
from .ingest.model import AnalysisParams

#: ``progress(done, total, path)`` after each file (written, skipped or failed).
Progress = Callable[[int, int, str], None]


@dataclass
class IngestSummary:
    """Outcome of :func:`ingest_files`.

    Attributes
    ----------
    written : list of WriteReport
        Images written.
    duplicates : list of str
        Files whose image was already in the catalog (nothing written).
    failed : list of (str, str)
        ``(file, reason)`` of the files that could not be read, analysed or written.
    seconds : float
        Wall time.
    notes : dict of str to str
        For a duplicate, what the catalog holds and which of the given sample, material and
        pixel size differ from it (those were ignored; ``replace=True`` stores them).
    replaced : list of str
        Files whose image was in the catalog and was replaced (``replace=True``).
    """

    written: list[WriteReport] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

    def __str__(self) -> str:
        return (
            f"{len(self.written)} written, {len(self.duplicates)} skipped as duplicates, "
            f"{len(self.failed)} failed in {self.seconds:.1f} s"
        )


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Files named by ``paths``: files as given, folders recursively, glob patterns expanded.

    Folders contribute the files with an extension :func:`~motifcat.ingest.io.load_image`
    reads; a name that matches nothing is kept, so that it is reported as failed. The result
    is sorted within each argument and free of repeats.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("b.npy", "a.tif", "notes.txt"):
    ...     _ = (d / n).write_bytes(b"")
    >>> [pathlib.Path(p).name for p in expand_paths([d])]
    ['a.tif', 'b.npy']
    """
    from .ingest.io import SUPPORTED_EXTENSIONS

    exts = {e.lower().lstrip(".") for e in SUPPORTED_EXTENSIONS}
    out: list[str] = []
    for item in paths:
        text = os.fspath(item)
        p = Path(text).expanduser()
        if p.is_dir():
            found = sorted(
                str(f)
                for f in p.rglob("*")
                # A .zspy image is a zarr folder.
                if (f.is_file() or f.suffix.lower() == ".zspy")
                and f.suffix.lower().lstrip(".") in exts
            )
        elif glob.has_magic(text):
            found = sorted(f for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
            if not found:
                found = [text]
        else:
            found = [str(p)]
        out.extend(found)
    return list(dict.fromkeys(out))


def _analyse_file(
    path: str,
    pixel_size_A: float | None,
    params: AnalysisParams,
    known: frozenset,
    frame: int | None = None,
    max_megapixels: float | None = None,
    signal: str | None = None,
    average: bool = False,
):
    """Worker: load and analyse one file. Returns ("ok", analysis), ("duplicate", sha) or
    ("failed", reason); never raises, so one bad file cannot stop the pool."""
    try:
        from .ingest.io import load_image
        from .ingest.pipeline import analyze

        micrograph = load_image(
            path,
            frame=frame,
            pixel_size_A=pixel_size_A,
            max_megapixels=max_megapixels,
            signal=signal,
            average=average,
        )
        if micrograph.sha256 in known:
            return "duplicate", (micrograph.sha256, micrograph.pixel_size_A)
        if (params.pixel_size_A or micrograph.pixel_size_A) is None:
            return "failed", (
                f"{Path(path).name}: no pixel size in the file; pass pixel_size_A "
                "(--pixel-size, Å per pixel)"
            )
        return "ok", analyze(micrograph, params)
    except MotifcatError as exc:
        return "failed", str(exc)
    except Exception as exc:  # an unexpected bug still fails this file only, with its type
        return "failed", f"{Path(path).name}: {type(exc).__name__}: {exc}"


#: A captured warning: (category module, category name, message, filename, lineno).
WarningRecord = tuple[str, str, str, str, int]


def _pack_warnings(caught: list[warnings.WarningMessage]) -> list[WarningRecord]:
    """The distinct warnings of ``caught`` as plain records (picklable whatever the class)."""
    out: dict[WarningRecord, None] = {}
    for w in caught:
        cat = w.category
        key = (cat.__module__, cat.__qualname__, str(w.message), str(w.filename), int(w.lineno))
        out[key] = None
    return list(out)


def _warning_category(module: str, name: str) -> type[Warning]:
    import importlib

    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return UserWarning
    return obj if isinstance(obj, type) and issubclass(obj, Warning) else UserWarning


def _raise_warnings(records: list[WarningRecord], registry: dict) -> None:
    """Raise the warnings an analysis captured (in a worker) again in this process, where
    the caller's warning filters (the CLI's summary) see them."""
    for module, name, message, filename, lineno in records:
        warnings.warn_explicit(
            message, _warning_category(module, name), filename, lineno, registry=registry
        )


def _analyse_task(*args, **kwargs):
    """Worker task: :func:`_analyse_file` (same arguments) with the library warnings it
    raised captured.

    Returns ``(kind, value, warnings)``; ``warnings`` lists :data:`WarningRecord` s, for the
    caller to raise again (a worker's own warnings would never reach the user)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kind, value = _analyse_file(*args, **kwargs)
    return kind, value, _pack_warnings(caught)


def _init_worker(parent_pid: int | None = None) -> None:
    # A worker must not outlive a killed ingest (it holds hundreds of MB): see motifcat.procs.
    if parent_pid is not None:
        from .procs import die_with_parent

        die_with_parent(parent_pid)
    # Parallelism is across processes: one BLAS thread each, or small linear algebra (GMM)
    # runs an order of magnitude slower from oversubscription.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        pass


def _scheduler_address(scheduler: str | None) -> str | None:
    # As motifcat.distributed.scheduler_address, without importing distributed (~1 s) for
    # an ingest that does not use it.
    value = scheduler if scheduler is not None else os.environ.get("MOTIFCAT_SCHEDULER")
    return (value or "").strip() or None


def _run_on_dask(files, args, address, workers, max_megapixels, analysed, on_start):
    """Yield ``(index, ok, value)`` of the analyses on a Dask cluster, in input order."""
    from .distributed import dashboard_note, get_client, memory_limit_for, ordered_results

    memory = memory_limit_for(max_megapixels, workers) if address is None else None
    with get_client(address, n_workers=workers, memory_limit=memory) as client:
        if on_start is not None:
            if address is None:
                what = (
                    f"local Dask cluster: {workers} workers, {memory / 2**30:.1f} GiB memory "
                    "limit each"
                )
            else:
                what = f"Dask cluster at {address}: {len(client.nthreads())} workers"
            on_start(f"{what}; {dashboard_note(client)}")
        # The known image ids go to the workers once, not with every task: as a task's result
        # (scattered data would be lost with a worker that dies; a result is recomputed).
        known = client.submit(frozenset, sorted(args[0][3]), pure=False) if args else None
        tasks = [(*a[:3], known, *a[4:]) for a in args]
        n_done = 0

        def done(i: int) -> None:
            nonlocal n_done
            n_done += 1
            if analysed is not None:
                analysed(n_done, len(files), files[i])

        yield from ordered_results(
            client, _analyse_task, tasks, retries=1, on_done=done, name="motifcat-analyse"
        )


def _run_in_pool(files, args, workers, analysed):
    """Yield ``(kind, value, warnings)`` of the analyses in a local process pool, in input
    order (the engine before Dask; ``engine="processes"``)."""
    # spawn: never fork a process that holds an open database and its threads.
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        max_workers=min(workers, len(files)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(os.getpid(),),
    ) as pool:
        futures = [pool.submit(_analyse_task, *a) for a in args]
        if analysed is not None:
            n_done = 0
            index = {id(f): k for k, f in enumerate(futures)}

            def tick(fut) -> None:
                nonlocal n_done
                n_done += 1
                analysed(n_done, len(files), files[index[id(fut)]])

            for fut in futures:
                fut.add_done_callback(tick)
        # In submission order: writes (and new motif ids) do not depend on which analysis
        # finishes first; later analyses keep running meanwhile.
        for path, fut in zip(files, futures, strict=True):
            try:
                yield fut.result()
            except Exception as exc:  # a worker died (e.g. out of memory)
                yield "failed", f"{Path(path).name}: analysis process failed: {exc}", []


def ingest_files(
    paths: Iterable[str | os.PathLike],
    *,
    sample: str,
    material: str,
    catalog: str | os.PathLike | GraphStore | None = None,
    pixel_size_A: float | None = None,
    params: AnalysisParams | None = None,
    workers: int = 2,
    progress: Progress | None = None,
    frame: int | None = None,
    max_megapixels: float | None = None,
    signal: str | None = None,
    average: bool = False,
    replace: bool = False,
    scheduler: str | None = None,
    analysed: Progress | None = None,
    on_start: Callable[[str], None] | None = None,
    engine: str = "dask",
) -> IngestSummary:
    """Analyse micrograph files and write them into the catalog, one transaction per image.

    Parameters
    ----------
    paths : iterable of str or path-like
        Files, folders (searched recursively for readable images) and glob patterns.
    sample, material : str
        Sample name and its material (see :func:`~motifcat.catalog.writer.write_analysis`).
    catalog : str, path-like or GraphStore, optional
        Catalog URI (default ``$MOTIFCAT_CATALOG`` or ``./motifcat-catalog``) or an open store
        (left open). It is opened, and so locked for writing, before any analysis starts; a
        new embedded catalog file that receives no image is removed at the end: an ingest in
        which every file fails leaves no file behind.
    pixel_size_A : float, optional
        Å per pixel, overriding the files' calibration; required for files that carry none.
    params : AnalysisParams, optional
        Analysis settings (default ``AnalysisParams()``).
    workers : int, default 2
        Worker processes of the local Dask cluster that analyses the files (one thread
        each); 1 analyses in this process. Ignored with ``scheduler``.
    progress : callable, optional
        ``progress(done, total, path)`` after each file, in the order of the files.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``; default
        ``$MOTIFCAT_SCHEDULER``) whose workers analyse the files, whatever ``workers`` says.
        The workers need motifcat installed and must see the files at the same paths. Without
        it, a LocalCluster of ``workers`` processes is started and stopped again, each
        limited to the memory the size guard admits (see
        :func:`~motifcat.distributed.memory_limit_for`).
    analysed : callable, optional
        ``analysed(done, total, path)`` as each analysis completes, in completion order (the
        writes follow in input order, see ``progress``).
    on_start : callable, optional
        ``on_start(text)`` once a cluster is up, with what it is and its dashboard's address.
    engine : {"dask", "processes"}, default "dask"
        ``"processes"`` analyses in a local process pool instead of Dask (the former engine,
        kept for comparison: ``bench/dask_ingest.py``).
    max_megapixels : float, optional
        Refuse (as failed, from the file header, before loading it) any frame over this many
        10^6 px; default :func:`~motifcat.ingest.limits.default_max_megapixels` of
        ``workers``: the concurrent analyses together fit in this machine's memory.
    frame : int, optional
        Frame (0-based) to take from every file that is a stack of images (see
        :func:`~motifcat.ingest.io.load_image`); None for single images.
    signal : str, optional
        Name of the image to take from files that hold several (Velox EMD: ``"HAADF"``...).
    average : bool, optional
        Average stacks after drift correction instead of taking one ``frame``.
    replace : bool, optional
        An image already in the catalog is deleted (with its instances and counts, see
        :func:`~motifcat.catalog.delete_images`) and written again with this ``sample``,
        ``material`` and pixel size; without it the stored one is kept and the summary says
        what differs.

    Returns
    -------
    IngestSummary
        Written, duplicates and failures with reasons. Images already in the catalog are
        recognised from their pixels before analysis and skipped.

    Raises
    ------
    CatalogError
        If the catalog URI is invalid or the catalog cannot be opened (for example, in use by
        another writer).

    Notes
    -----
    Analyses run in parallel but images are written in the order of the expanded file list,
    so a given set of files always yields the same ``L1-NNNN`` ids in a new catalog. A worker
    that dies mid-image (killed, over its memory limit) is replaced; the image is analysed once
    more, then reported as failed. Ctrl-C (KeyboardInterrupt) stops the cluster, closes the
    catalog with the images written so far, and is raised again.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from motifcat.datasets import make_tmd
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "a.npy"), make_tmd((192, 192), seed=4).image)
    >>> s = ingest_files([d], sample="s1", material="MoSe2", pixel_size_A=0.15,
    ...                  catalog=os.path.join(d, "cat"), workers=1)
    >>> len(s.written), s.failed
    (1, [])
    """
    t0 = time.perf_counter()
    params = params or AnalysisParams()
    if pixel_size_A is not None:
        if not pixel_size_A > 0:
            raise CatalogError(f"pixel_size_A must be > 0 Å, got {pixel_size_A!r}")
        params = dataclasses.replace(params, pixel_size_A=float(pixel_size_A))
    files = expand_paths(paths)
    if max_megapixels is None:
        from .ingest.limits import default_max_megapixels

        # Memory is shared by the analyses that run at once.
        max_megapixels = default_max_megapixels(max(1, min(workers, len(files))))
    limit = max_megapixels
    summary = IngestSummary()
    report = progress or (lambda done, total, path: None)

    own = not isinstance(catalog, GraphStore)
    store: GraphStore | None = None
    created: Path | None = None  # a new embedded catalog file, removed if nothing is written
    if own:
        backend, location = parse_uri(catalog)  # a bad URI fails before any analysis
        if backend == "ladybug" and not Path(location).expanduser().exists():
            created = Path(location).expanduser()
        # Open (and so take the embedded store's write lock) before any analysis: a second
        # concurrent ingest fails at once with "in use" instead of after minutes of work.
        store = open_catalog(catalog)
    else:
        store = catalog
    try:
        known = (
            frozenset(r["id"] for r in store.read("MATCH (i:Image) RETURN i.id AS id"))
            if store is not None and not replace
            else frozenset()
        )

        def handle(path: str, outcome: tuple[str, object]) -> None:
            nonlocal store
            kind, value = outcome
            if kind == "duplicate":
                summary.duplicates.append(path)
                sha, file_px = value
                note = _duplicate_report(
                    store,
                    sha,
                    Path(path).name,
                    path,
                    time.perf_counter(),
                    sample=sample,
                    material=material,
                    pixel_size_A=params.pixel_size_A or file_px,
                ).message
                summary.notes[path] = note
            elif kind == "failed":
                summary.failed.append((path, str(value)))
            else:
                try:
                    if replace and _image_exists(store, value.micrograph.sha256):
                        delete_images(store, [value.micrograph.sha256])
                        summary.replaced.append(path)
                    rep = write_analysis(store, value, sample=sample, material=material, path=path)
                except MotifcatError as exc:
                    summary.failed.append((path, str(exc)))
                else:
                    (summary.written if rep.written else summary.duplicates).append(
                        rep if rep.written else path
                    )

        registry: dict = {}  # each captured warning is raised once per ingest
        done = 0
        address = _scheduler_address(scheduler) if engine == "dask" else None
        args = [(p, pixel_size_A, params, known, frame, limit, signal, average) for p in files]
        if engine not in ("dask", "processes"):
            raise CatalogError(f"engine must be 'dask' or 'processes', got {engine!r}")
        if address is None and (workers <= 1 or len(files) <= 1):
            for path, a in zip(files, args, strict=True):
                kind, value, caught = _analyse_task(*a)
                _raise_warnings(caught, registry)
                handle(path, (kind, value))
                done += 1
                if analysed is not None:
                    analysed(done, len(files), path)
                report(done, len(files), path)
        elif engine == "dask":
            for i, ok, value in _run_on_dask(
                files, args, address, min(workers, len(files)), limit, analysed, on_start
            ):
                path = files[i]
                if ok:
                    kind, result, caught = value
                    _raise_warnings(caught, registry)
                    outcome = (kind, result)
                else:  # the task itself failed: its worker died twice, or it raised
                    outcome = ("failed", f"{Path(path).name}: {value}")
                handle(path, outcome)
                done += 1
                report(done, len(files), path)
        else:
            for i, outcome in enumerate(_run_in_pool(files, args, workers, analysed)):
                path = files[i]
                kind, result, caught = outcome
                _raise_warnings(caught, registry)
                handle(path, (kind, result))
                done += 1
                report(done, len(files), path)
    finally:
        if own and store is not None:
            store.close()
        if created is not None and not summary.written:
            # This ingest created the catalog and wrote nothing into it: leave no file behind.
            for suffix in ("", ".wal", ".shadow", ".wal.checkpoint", ".writing"):
                created.with_name(created.name + suffix).unlink(missing_ok=True)
    summary.seconds = time.perf_counter() - t0
    return summary
