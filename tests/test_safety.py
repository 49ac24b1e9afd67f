"""Issue 12: the catalog survives kills; limits on every entry point. Real files, real database,
real subprocesses and signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

from motifcat.catalog import open_catalog, redact_uri, write_analysis
from motifcat.catalog.embedded import CatalogRecoveredWarning
from motifcat.errors import CatalogInUseError, ImageTooLargeError, QueryError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _images(store) -> int:
    return store.read("MATCH (i:Image) RETURN count(i) AS n")[0]["n"]


# A child that commits an image and dies before the checkpoint that follows the commit: its
# WAL then holds exactly that transaction, complete. Cutting the WAL short reproduces what a
# kill in the middle of the commit's log writes leaves (a prefix of the log).
_COMMIT_THEN_DIE = """
import os, sys
sys.path.insert(0, {tests!r})
import ladybug
from test_catalog import fake_analysis
from motifcat.catalog import open_catalog, write_analysis
real = ladybug.Connection.execute
def execute(self, query, *a, **k):
    if query == "CHECKPOINT":
        os._exit(0)
    return real(self, query, *a, **k)
ladybug.Connection.execute = execute
store = open_catalog({path!r})
write_analysis(store, fake_analysis(n_side=60, seed=2), sample="s", material="m",
               path="second-image.npy")
"""


def test_torn_wal_is_set_aside_naming_the_lost_image_and_committed_images_survive(tmp_path):
    from test_catalog import fake_analysis

    path = tmp_path / "cat.lbug"
    with open_catalog(path) as store:
        write_analysis(store, fake_analysis(seed=1), sample="s", material="m")
    code = _COMMIT_THEN_DIE.format(tests=str(HERE), path=str(path))
    subprocess.run([sys.executable, "-c", code], env=_env(), check=True, timeout=300)
    wal = Path(f"{path}.wal")
    assert wal.stat().st_size > 8192 and Path(f"{path}.writing").exists()
    with open(wal, "r+b") as fh:  # torn: the commit's log cut in the middle
        fh.truncate(wal.stat().st_size // 2)
    import ladybug

    with pytest.raises(RuntimeError, match="WAL|past the end"):  # what Ladybug alone does
        ladybug.Database(str(path), read_only=True)
    # a read-only opener (the app, `motifcat query`) recovers it: no writer is alive
    with pytest.warns(CatalogRecoveredWarning) as caught:
        store = open_catalog(path, read_only=True)
    message = str(caught[0].message)
    assert "second-image.npy" in message and "never committed" in message
    assert _images(store) == 1  # the committed image is intact, the torn one wholly absent
    store.close()
    assert list(tmp_path.glob("cat.lbug.wal.torn-*")), "the torn log is kept aside"
    assert not Path(f"{path}.writing").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second open finds nothing to recover
        with open_catalog(path) as store:
            assert _images(store) == 1
            write_analysis(store, fake_analysis(n_side=60, seed=2), sample="s", material="m")
            assert _images(store) == 2


def test_kill_harness_small(tmp_path):
    """The small version of bench/kill.py: one SIGKILL of a real `motifcat ingest` when the
    checkpoint's shadow file appears (the torn-WAL case is the test above, deterministic)."""
    import kill

    trials = kill.run(1, 2, 160, tmp_path, events=("shadow",), log=lambda *_: None)
    counts = kill.summarise(trials)
    assert counts["kills landed (event seen before the ingest ended)"] == 1, counts
    assert counts["unopenable read-only"] == counts["unopenable read-write"] == 0, trials
    assert counts["inconsistent"] == 0 and counts["orphan processes"] == 0, trials
    assert counts["re-ingest identical"] == 1, trials


def _big_tiff(path: Path) -> None:
    import tifffile

    tile = np.zeros((2000, 2000), np.uint8)
    tifffile.imwrite(path, (tile for _ in range(100)), shape=(20000, 20000), dtype=np.uint8,
                     tile=(2000, 2000), compression="zlib")


def test_huge_image_refused_from_its_header_with_little_memory_and_nothing_written(tmp_path):
    from motifcat.batch import ingest_files

    big = tmp_path / "huge.tif"
    _big_tiff(big)
    assert big.stat().st_size < 20e6  # mostly empty: small on disk, 400 Mpx in memory
    code = (
        "import sys\n"
        "from motifcat.ingest.io import load_image\n"
        "try:\n    load_image(sys.argv[1], pixel_size_A=0.1)\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking (pytest)
        # process, VmHWM is this program's own peak.
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(big)], env=_env(), text=True,
                         capture_output=True, timeout=120, check=True).stdout.splitlines()
    assert out[0].startswith("ImageTooLargeError huge.tif: image of 20000 x 20000 px"), out
    assert "--max-megapixels" in out[0] and "400.0 megapixels" in out[0]
    assert int(out[1]) < 500 * 1024  # KB: the pixels were never loaded
    s = ingest_files([big], sample="s", material="m", catalog=tmp_path / "cat", workers=2,
                     pixel_size_A=0.1)
    assert not s.written and "over the limit" in s.failed[0][1]
    assert not (tmp_path / "cat").exists()  # nothing written
    from motifcat.ingest.limits import check_image_size

    check_image_size(big, max_megapixels=500)  # raising the limit lets it through
    with pytest.raises(ImageTooLargeError, match="limit of 100.0 megapixels"):
        check_image_size(big, max_megapixels=100)


def test_second_ingest_fails_before_any_analysis(tmp_path, monkeypatch):
    from test_catalog import fake_analysis

    import motifcat.batch as batch

    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((64, 64)))
    path = tmp_path / "cat"
    calls = []
    monkeypatch.setattr(batch, "_analyse_file", lambda *a, **k: calls.append(a))
    with open_catalog(path) as holder:
        write_analysis(holder, fake_analysis(seed=1), sample="s", material="m")
        with pytest.raises(CatalogInUseError, match="in use"):
            batch.ingest_files([tmp_path / "a.npy"], sample="s", material="m", catalog=path,
                               pixel_size_A=0.1, workers=1)
    assert calls == []
    # another process, too: the real lock, before the (real) analysis
    with open_catalog(path) as holder:
        out = subprocess.run(
            [sys.executable, "-c", "from motifcat.cli import main; main()", "ingest",
             str(tmp_path / "a.npy"), "-s", "s", "-m", "m", "--pixel-size", "0.1",
             "--catalog", str(path)],
            env=_env(), capture_output=True, text=True, timeout=120,
        )
        assert out.returncode != 0 and "in use" in (out.stdout + out.stderr)
        assert _images(holder) == 1


def test_console_query_time_and_row_limits(tmp_path):
    from test_catalog import fake_analysis

    from motifcat.query import run_readonly

    path = tmp_path / "cat"
    with open_catalog(path) as store:
        write_analysis(store, fake_analysis(n_side=40, seed=5), sample="s", material="m")
    with open_catalog(path, read_only=True) as store:
        with pytest.raises(QueryError, match="time limit of 1 s.*--timeout"):
            run_readonly(store, "MATCH p=(a)-[*1..30]->(b) RETURN count(p) AS n", timeout_s=1)
        df = run_readonly(store, "MATCH (i:Instance) RETURN i.id AS id", max_rows=10)
        assert len(df) == 10 and df.attrs["truncated_at"] == 10
        full = run_readonly(store, "MATCH (i:Instance) RETURN i.id AS id", max_rows=0)
        assert len(full) > 1000 and "truncated_at" not in full.attrs
        # the connection is usable again, without the limit
        assert run_readonly(store, "RETURN 1 AS one")["one"].tolist() == [1]


def test_uris_are_redacted_and_passwords_refused_on_the_command_line():
    assert redact_uri("neo4j+s://me:hunter2@db:7687") == "neo4j+s://me:***@db:7687"
    out = subprocess.run(
        [sys.executable, "-c", "from motifcat.cli import main; main()", "query", "samples",
         "--catalog", "bolt://neo4j:hunter2@localhost:7687"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert out.returncode != 0
    assert "hunter2" not in out.stdout + out.stderr and "NEO4J_PASSWORD" in out.stdout + out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outside_address() -> str | None:
    """A non-loopback address of this machine (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_app_serves_localhost_only_and_stops_with_its_wrapper(tmp_path):
    from kill import _alive, descendants
    from test_catalog import fake_analysis

    path = tmp_path / "cat"
    with open_catalog(path) as store:
        write_analysis(store, fake_analysis(seed=1), sample="s", material="m")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from motifcat.cli import main; main()", "app", "--catalog",
         str(path), "--port", str(port)],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as r:
                    assert r.read().strip() == b"ok"
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.5)
        outside = _outside_address()
        if outside is not None:
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=2).close()
        server = descendants(proc.pid)
        assert server
        # the URI (which might carry a password) is not passed on in the server's argv
        for pid in server:
            assert str(path) not in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        proc.send_signal(signal.SIGTERM)  # forwarded to Streamlit
        proc.wait(timeout=60)
        end = time.monotonic() + 20
        while time.monotonic() < end and any(_alive(p) for p in server):
            time.sleep(0.2)
        assert not any(_alive(p) for p in server), "the Streamlit server outlived its wrapper"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in descendants(proc.pid):
            os.kill(p, signal.SIGKILL)


def test_workers_die_with_their_parent():
    """A child armed with die_with_parent exits when its parent is SIGKILLed."""
    from kill import _alive

    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import os, time; "
        "from motifcat.procs import die_with_parent; die_with_parent(os.getppid()); "
        "print(os.getpid(), flush=True); time.sleep(600)'], stdout=subprocess.PIPE, text=True)\n"
        "print(child.stdout.readline().strip(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE,
                              text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=30)
    end = time.monotonic() + 10
    while time.monotonic() < end and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)
