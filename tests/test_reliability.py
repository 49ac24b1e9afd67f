"""Crash safety and exclusive writing of the embedded catalog, with real processes.

A child process writes a big image and is killed with SIGKILL at several moments of the write;
reopening must show that image wholly present or wholly absent. A second process opening the
catalog for writing gets CatalogInUseError and changes nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from motifcat.catalog.store import open_catalog
from motifcat.catalog.writer import write_analysis
from motifcat.errors import CatalogInUseError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
N_SIDE = 260  # 260² columns, 259² stored level-1 instances (~67k) and 2 edges each

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")


def _child(mode: str, path: str) -> None:
    """Entry point of the child processes (run through ``python -c``)."""
    sys.path.insert(0, str(HERE))
    from test_catalog import fake_analysis

    if mode == "write":
        a = fake_analysis(n_side=N_SIDE, seed=99)
        store = open_catalog(path)
        print("writing", flush=True)
        write_analysis(store, a, sample="big", material="MoSe2")
        print("done", flush=True)
        store.close()
    elif mode == "open":
        try:
            open_catalog(path)
        except CatalogInUseError as exc:
            print("IN_USE", exc, flush=True)
        else:
            print("OPENED", flush=True)


def _spawn(mode: str, path: Path) -> subprocess.Popen:
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_reliability as t; "
        f"t._child({mode!r}, {str(path)!r})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def _counts(path: Path) -> tuple[int, int, int, int]:
    with open_catalog(path) as s:  # read-write: replays the WAL like any later user would
        one = lambda q: s.read(q)[0]["n"]  # noqa: E731
        return (
            one("MATCH (i:Image) RETURN count(i) AS n"),
            one("MATCH (i:Instance) RETURN count(i) AS n"),
            one("MATCH ()-[r:INSTANCE_OF]->() RETURN count(r) AS n"),
            one("MATCH (m:Motif) RETURN coalesce(sum(m.n_instances), 0) AS n"),
        )


def test_sigkill_during_write_leaves_image_whole_or_absent(tmp_path):
    sys.path.insert(0, str(HERE))
    from test_catalog import fake_analysis

    # a small image written first must survive every crash untouched
    base = fake_analysis(n_side=10, seed=1)
    n_base = int((base.labels >= 0).sum())
    full = (N_SIDE - 1) ** 2
    outcomes = []
    for k, delay in enumerate([0.0, 0.15, 0.35, 0.7, 1.5]):
        path = tmp_path / f"cat{k}"
        with open_catalog(path) as s:
            write_analysis(s, base, sample="small", material="MoSe2")
        child = _spawn("write", path)
        line = child.stdout.readline()
        assert line.strip() == "writing", child.stderr.read()
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        finished = "done" in child.stdout.read()
        images, inst, inst_of, n_sum = _counts(path)
        assert inst in (n_base, n_base + full), (delay, inst)
        assert inst_of == inst and n_sum == inst  # motif counts in step with instances
        assert images == (2 if inst > n_base else 1)
        if finished:
            assert inst == n_base + full
        outcomes.append(inst > n_base)
    # the delays straddle the write: at least one kill landed before the commit
    assert not all(outcomes), outcomes


def test_sigkill_during_checkpoint_keeps_image_whole(tmp_path):
    """Kill the writer the moment Ladybug starts the checkpoint that follows the commit (its
    checkpoint files appear): with ``COPY FROM`` this lost the bulk rows but kept the statements
    of the same transaction (a torn image); the store's ``LOAD FROM ... CREATE`` must not."""
    sys.path.insert(0, str(HERE))
    full = (N_SIDE - 1) ** 2
    hits = 0
    for k in range(2):
        path = tmp_path / f"cp{k}"
        child = _spawn("write", path)
        assert child.stdout.readline().strip() == "writing", child.stderr.read()
        marks = [Path(f"{path}.wal.checkpoint"), Path(f"{path}.shadow")]
        t0 = time.monotonic()
        while child.poll() is None and time.monotonic() - t0 < 120:
            if any(m.exists() for m in marks):
                os.kill(child.pid, signal.SIGKILL)
                hits += 1
                break
            time.sleep(0.0005)
        child.wait(timeout=30)
        images, inst, inst_of, n_sum = _counts(path)
        assert (images, inst, inst_of, n_sum) in ((0, 0, 0, 0), (1, full, full, full))
    assert hits >= 1, "the kill never landed in a checkpoint"


def test_second_writer_process_is_refused_and_nothing_changes(tmp_path):
    sys.path.insert(0, str(HERE))
    from test_catalog import fake_analysis, snapshot

    path = tmp_path / "cat"
    store = open_catalog(path)
    try:
        write_analysis(store, fake_analysis(seed=3), sample="s", material="m")
        before = snapshot(store)
        child = _spawn("open", path)
        out, err = child.communicate(timeout=120)
        assert out.startswith("IN_USE"), (out, err)
        assert f"{path}: catalog is in use by another process" in out
        assert snapshot(store) == before
        # readers in other processes may coexist with the writer
        ro = subprocess.run(
            [
                sys.executable,
                "-c",
                "from motifcat.catalog.store import open_catalog; import sys; "
                "s = open_catalog(sys.argv[1], read_only=True); "
                "print(s.read('MATCH (i:Image) RETURN count(i) AS n')[0]['n'])",
                str(path),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
        assert ro.stdout.strip() == "1", ro.stderr
    finally:
        store.close()
    # once the first writer is gone, another process may write
    child = _spawn("open", path)
    out, _ = child.communicate(timeout=120)
    assert out.strip() == "OPENED"
