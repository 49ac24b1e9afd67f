"""Batch ingest on Dask (issue 15): a real LocalCluster of worker processes, the real embedded
catalog, real synthetic images.

One cluster of 2 worker processes (started by :func:`motifcat.distributed.get_client`, as
``motifcat ingest`` does) serves the module; the ingests reach it by its address, the way
``--scheduler`` reaches an existing cluster. Faults are injected on the workers: a task that
``os._exit()`` s on its first attempt only (a marker file says it has run), a task that always
does, a bad file, and a library warning raised inside the analysis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from motifcat import batch
from motifcat.distributed import (
    SchedulerError,
    get_client,
    memory_limit_for,
    ordered_results,
)
from motifcat.ingest import AnalysisParams

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "bench"))
from kill import _alive, descendants, snapshot  # noqa: E402

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs os._exit in a worker process")
PX = 0.15  # Å per pixel of the synthetic MoSe2 images
SIZE = 128  # px: tiny images, an analysis takes well under a second
#: Centre-of-mass refinement: these tests are about the engine, not the column model fit.
PARAMS = AnalysisParams(pixel_size_A=PX, refine="com")


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes; yields (client, scheduler address)."""
    with get_client(None, n_workers=2, memory_limit=memory_limit_for(4.0, 2)) as client:
        yield client, client.cluster.scheduler_address


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Four tiny synthetic MoSe2 images as .npy files: a0 (largest, slowest), a1, a2, a3."""
    from motifcat.datasets import make_tmd

    d = tmp_path_factory.mktemp("imgs")
    for k in range(4):
        size = 2 * SIZE if k == 0 else SIZE  # the first one finishes last
        np.save(d / f"a{k}.npy", make_tmd((size, size), seed=40 + k).image)
    return d


def _files(d: Path, n: int = 3) -> list[Path]:
    return [d / f"a{k}.npy" for k in range(n)]


def _consistent(catalog: Path) -> dict:
    snap = snapshot(catalog, read_only=True)
    assert snap["problems"] == [], snap["problems"]
    return snap


# -- tasks injected on the workers (pickled by reference: this module is importable there) ---
class CrashOnce:
    """The analysis task, except that the worker running ``victim`` exits (as if killed)
    after analysing it, before the result leaves the worker, the first time only."""

    def __init__(self, victim: str, marker: Path, always: bool = False) -> None:
        self.victim, self.marker, self.always = victim, str(marker), always

    def __call__(self, path, *args):
        from motifcat import batch as worker_batch  # the worker's own, unpatched module

        out = worker_batch._analyse_task(path, *args)
        if Path(path).name == self.victim and (self.always or not os.path.exists(self.marker)):
            with open(self.marker, "a") as fh:  # one line per death: the dying worker's pid
                fh.write(f"{os.getpid()}\n")
            os._exit(1)
        return out


class WarnTwice:
    """The analysis task, with scikit-learn's ConvergenceWarning raised twice inside it."""

    def __call__(self, path, *args):
        from motifcat import batch as worker_batch

        real = worker_batch._analyse_file

        def analyse(*a, **k):
            from sklearn.exceptions import ConvergenceWarning

            for _ in range(2):  # the same warning twice in one image: reported once
                warnings.warn("did not converge", ConvergenceWarning, stacklevel=1)
            return real(*a, **k)

        worker_batch._analyse_file = analyse
        try:
            return worker_batch._analyse_task(path, *args)
        finally:
            worker_batch._analyse_file = real


# -- tests -----------------------------------------------------------------------------------
def test_get_client_memory_limit_from_the_size_guard_and_ordered_results(cluster):
    client, _ = cluster
    limits = {w["memory_limit"] for w in client.scheduler_info()["workers"].values()}
    # 4 Mpx admitted: 400 MB base + 100 B/px (motifcat.ingest.limits)
    assert limits == {400 * 2**20 + 100 * 4_000_000}
    assert len(client.nthreads()) == 2 and set(client.nthreads().values()) == {1}
    seen = []
    out = list(ordered_results(client, divmod, [(7, 2), (1, 0), (9, 3)], retries=0,
                               on_done=seen.append))
    assert out[0] == (0, True, (3, 1)) and out[2] == (2, True, (3, 0))
    assert out[1][:2] == (1, False) and "ZeroDivisionError" in out[1][2]
    assert sorted(seen) == [0, 1, 2]


def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(SchedulerError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with get_client("tcp://127.0.0.1:9", timeout_s=2) as _:
            pass


def test_ingest_on_the_cluster_writes_in_input_order_like_one_process(cluster, images, tmp_path):
    _, address = cluster
    files = _files(images)
    analysed, written = [], []
    notes = []
    s = batch.ingest_files(
        files, sample="s1", material="MoSe2", catalog=tmp_path / "cat", pixel_size_A=PX,
        params=PARAMS, scheduler=address, analysed=lambda d, t, p: analysed.append(Path(p).name),
        progress=lambda d, t, p: written.append((d, t, Path(p).name)), on_start=notes.append,
    )
    assert s.failed == [] and len(s.written) == 3
    assert [r.path for r in s.written] == [str(f) for f in files]
    assert written == [(k + 1, 3, f"a{k}.npy") for k in range(3)]
    assert sorted(analysed) == [f"a{k}.npy" for k in range(3)]
    assert "Dask cluster at tcp://" in notes[0] and "dashboard:" in notes[0]
    # the same catalog, motif ids included, as the analyses in this process one by one
    s1 = batch.ingest_files(files, sample="s1", material="MoSe2", catalog=tmp_path / "one",
                            pixel_size_A=PX, params=PARAMS, workers=1)
    assert s1.failed == []
    a, b = _consistent(tmp_path / "cat"), _consistent(tmp_path / "one")
    assert a["images"] == b["images"] and a["motifs"] == b["motifs"]
    assert a["contains"] == b["contains"] and a["Instance"] > 0


def test_worker_killed_mid_image_retried_once_and_catalog_consistent(
    cluster, images, tmp_path, monkeypatch
):
    _, address = cluster
    marker = tmp_path / "died"
    monkeypatch.setattr(batch, "_analyse_task", CrashOnce("a2.npy", marker))
    files = _files(images)
    s = batch.ingest_files(files, sample="s1", material="MoSe2", catalog=tmp_path / "cat",
                           pixel_size_A=PX, params=PARAMS, scheduler=address)
    died = [int(x) for x in marker.read_text().split()]
    assert len(died) == 1 and not _alive(died[0])  # a worker really died, once, on a2
    assert s.failed == [] and [r.path for r in s.written] == [str(f) for f in files]
    snap = _consistent(tmp_path / "cat")
    assert [p for _, p in sorted(snap["images"], key=lambda x: x[1])] == [str(f) for f in files]


def test_image_failing_on_every_attempt_is_reported_and_nothing_written(
    cluster, images, tmp_path, monkeypatch
):
    _, address = cluster
    marker = tmp_path / "died"
    monkeypatch.setattr(batch, "_analyse_task", CrashOnce("a1.npy", marker, always=True))
    bad = tmp_path / "broken.npy"
    bad.write_bytes(b"not an array")
    files = [*_files(images, 3), bad]
    s = batch.ingest_files(files, sample="s1", material="MoSe2", catalog=tmp_path / "cat",
                           pixel_size_A=PX, params=PARAMS, scheduler=address)
    assert len(marker.read_text().split()) == 2  # the first attempt and the one retry
    failed = dict(s.failed)
    assert set(failed) == {str(images / "a1.npy"), str(bad)}
    reason = failed[str(images / "a1.npy")]
    assert "a1.npy: the analysis worker died on each of 2 attempts" in reason
    assert "broken.npy" in failed[str(bad)]
    assert [r.path for r in s.written] == [str(images / "a0.npy"), str(images / "a2.npy")]
    snap = _consistent(tmp_path / "cat")
    assert sorted(p for _, p in snap["images"]) == [str(images / "a0.npy"), str(images / "a2.npy")]


def test_library_warnings_on_workers_reach_the_user_once_per_image(
    cluster, images, tmp_path, monkeypatch
):
    from sklearn.exceptions import ConvergenceWarning
    from typer.testing import CliRunner

    from motifcat.cli import app

    _, address = cluster
    monkeypatch.setattr(batch, "_analyse_task", WarnTwice())
    files = _files(images)[1:3]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = batch.ingest_files(files, sample="s1", material="MoSe2", catalog=tmp_path / "cat",
                               pixel_size_A=PX, params=PARAMS, scheduler=address)
    assert s.failed == [] and len(s.written) == 2
    ours = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert ours == ["did not converge"] * 2  # raised twice in each image: once per image
    # the CLI summarises them in one line
    out = CliRunner().invoke(
        app,
        ["ingest", str(images / "a3.npy"), str(images / "a1.npy"), "-s", "s2", "-m", "MoSe2",
         "--pixel-size", str(PX), "--refine", "com", "-c", str(tmp_path / "cli"),
         "--scheduler", address],
        env={"COLUMNS": "200"},
    )
    assert out.exit_code == 0, out.output
    text = out.output
    assert "note: sklearn.ConvergenceWarning (2x) from a library: did not converge" in text
    assert "Dask cluster at tcp://" in text and "dashboard: http://" in text


def test_ctrl_c_stops_the_local_cluster_and_leaves_the_catalog_whole(images, tmp_path):
    """SIGINT to the process group (a terminal's Ctrl-C) of a real `motifcat ingest -j 2`."""
    d = tmp_path / "many"
    d.mkdir()
    base = np.load(images / "a0.npy")
    for k in range(12):  # enough work that the ingest is still running when interrupted
        np.save(d / f"b{k:02d}.npy", base + 1e-3 * k)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    env.pop("MOTIFCAT_SCHEDULER", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from motifcat.cli import main; main()", "ingest", str(d),
         "-s", "s1", "-m", "MoSe2", "--pixel-size", str(PX), "--refine", "com",
         "-c", str(tmp_path / "cat"), "-j", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        start_new_session=True,
    )
    try:
        line = ""
        end = time.monotonic() + 120
        while "local Dask cluster" not in line and time.monotonic() < end:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "ingest ended before its cluster started"
        kids = descendants(proc.pid)
        assert len(kids) >= 2, kids  # the two worker processes
        time.sleep(1.0)  # analyses running
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-2000:]
        assert "interrupted: the analysis cluster was stopped" in err
        end = time.monotonic() + 10
        while time.monotonic() < end and any(_alive(p) for p in kids):
            time.sleep(0.1)
        assert not any(_alive(p) for p in kids), "a worker outlived the interrupted ingest"
        if (tmp_path / "cat").exists():  # whatever was written before Ctrl-C is whole
            _consistent(tmp_path / "cat")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
