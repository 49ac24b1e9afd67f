"""Kill-anywhere harness: SIGKILL ``motifcat ingest`` at every file-system event of the store.

A real ``motifcat ingest`` subprocess (2 worker processes) writes a folder of synthetic images
into a fresh embedded catalog. A watcher polls the catalog's files and kills the ingest's main
process (SIGKILL, its workers are *not* signalled) at a chosen event:

* ``wal``         — ``<db>.wal`` appears (a commit starts writing its log);
* ``wal-grows``   — ``<db>.wal`` has grown past its first write (mid-commit);
* ``checkpoint``  — ``<db>.wal.checkpoint`` appears (the checkpoint after a commit);
* ``shadow``      — ``<db>.shadow`` appears (shadow pages being written / applied);
* ``random``      — a random moment of an uninterrupted run's duration.

After each kill it asserts (and counts failures of):

1. no orphan: every descendant of the killed process is gone within a few seconds;
2. the catalog opens **read-only** first (so a pending recovery must not block readers), then
   read-write, and is consistent (motif counts in step with instances, every relationship's
   count matching its image);
3. re-running the same ingest (in this process) gives a catalog identical to an uninterrupted
   ``motifcat ingest``.

Usage: ``python bench/kill.py [--kills 60] [--images 3] [--size 320]``; prints its counts and
writes ``bench/results/kill.md``. ``tests/test_kill.py`` runs a small version.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EVENTS = ("wal", "wal-grows", "checkpoint", "shadow", "random")


def make_inputs(folder: Path, n_images: int, size: int) -> Path:
    """``n_images`` synthetic MoSe2 images of ``size``² px as .npy files in ``folder``."""
    import numpy as np

    from motifcat.ingest.synth import tmd_image

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_images):
        f = folder / f"img{k}.npy"
        if not f.exists():
            np.save(f, tmd_image((size, size), seed=10 + k).image)
    return folder


def ingest_command(inputs: Path, catalog: Path, workers: int = 2) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from motifcat.cli import main; main()",
        "ingest",
        str(inputs),
        "--sample",
        "s1",
        "--material",
        "MoSe2",
        "--pixel-size",
        "0.15",
        "--catalog",
        str(catalog),
        "--workers",
        str(workers),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def ingest_here(inputs: Path, catalog: Path) -> float:
    """The same ingest, uninterrupted, in this process (the re-ingest after a kill: no
    interpreter start-up, which dominates on a loaded machine); its wall time in s."""
    from motifcat.batch import ingest_files

    t0 = time.monotonic()
    s = ingest_files([inputs], sample="s1", material="MoSe2", catalog=catalog,
                     pixel_size_A=0.15, workers=1)
    if s.failed:
        raise RuntimeError(f"re-ingest failed: {s.failed}")
    return time.monotonic() - t0


def run_ingest(inputs: Path, catalog: Path, workers: int = 2) -> float:
    """Run one uninterrupted ``motifcat ingest`` subprocess; its wall time in s."""
    t0 = time.monotonic()
    out = subprocess.run(
        ingest_command(inputs, catalog, workers),
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"ingest failed ({out.returncode}): {out.stdout[-2000:]}{out.stderr}")
    return time.monotonic() - t0


def descendants(pid: int) -> set[int]:
    """Pids of every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - out
        out |= frontier
    return out


#: Seconds the children of a killed ingest get to notice and exit before they count as orphans.
ORPHAN_GRACE_S = 30.0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def snapshot(catalog: Path, read_only: bool) -> dict:
    """Everything that must be identical between runs (not timestamps), and consistency."""
    from motifcat.catalog import open_catalog, schema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a recovery note is expected after a kill
        store = open_catalog(catalog, read_only=read_only)
    try:
        one = lambda q: store.read(q)[0]["n"]  # noqa: E731
        snap: dict = {label: one(f"MATCH (n:{label}) RETURN count(n) AS n") for label in
                      schema.NODE_TABLES}
        snap.update({rel: one(f"MATCH ()-[r:{rel}]->() RETURN count(r) AS n")
                     for rel in schema.REL_TABLES})
        snap["images"] = sorted(
            (r["id"], r["path"]) for r in store.read("MATCH (i:Image) RETURN i.id AS id, "
                                                     "i.path AS path")
        )
        snap["motifs"] = sorted(
            (r["id"], r["k"], r["n"])
            for r in store.read("MATCH (m:Motif) RETURN m.id AS id, m.key AS k, "
                                "m.n_instances AS n")
        )
        snap["contains"] = sorted(
            (r["i"], r["m"], r["c"])
            for r in store.read("MATCH (i:Image)-[c:CONTAINS]->(m:Motif) "
                                "RETURN i.id AS i, m.id AS m, c.count AS c")
        )
        # consistency: each instance in one image and one motif; counts kept in step
        problems = []
        n_inst = snap["Instance"]
        if snap["IN_IMAGE"] != n_inst or snap["INSTANCE_OF"] != n_inst:
            problems.append(f"instances {n_inst}, IN_IMAGE {snap['IN_IMAGE']}, "
                            f"INSTANCE_OF {snap['INSTANCE_OF']}")
        if sum(n for *_, n in snap["motifs"]) != n_inst:
            problems.append("sum of Motif.n_instances != instances")
        if sum(c for *_, c in snap["contains"]) != n_inst:
            problems.append("sum of CONTAINS counts != instances")
        per_image = {
            r["i"]: r["n"]
            for r in store.read("MATCH (x:Instance)-[:IN_IMAGE]->(i:Image) "
                                "RETURN i.id AS i, count(x) AS n")
        }
        if any(per_image.get(i, 0) == 0 for i, _ in snap["images"]):
            problems.append("an image without instances (torn image)")
        snap["problems"] = problems
        return snap
    finally:
        store.close()


@dataclass
class Trial:
    event: str
    killed_at: float = float("nan")
    hit: bool = False
    orphans: int = 0
    ro_error: str = ""
    rw_error: str = ""
    inconsistent: list[str] = field(default_factory=list)
    identical: bool = False
    images_before_reingest: int = 0
    files_at_kill: list[str] = field(default_factory=list)
    exit_s: float = 0.0
    orphan_names: list[str] = field(default_factory=list)


def kill_once(inputs: Path, catalog: Path, event: str, reference: dict, t_ref: float,
              rng: random.Random, nth: int = 1) -> Trial:
    """One ingest killed at the ``nth`` occurrence of ``event``; checks as in the module notes."""
    trial = Trial(event)
    names = {
        "wal": Path(f"{catalog}.wal"),
        "checkpoint": Path(f"{catalog}.wal.checkpoint"),
        "shadow": Path(f"{catalog}.shadow"),
    }
    wal = names["wal"]
    proc = subprocess.Popen(ingest_command(inputs, catalog), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT)
    t0 = time.monotonic()
    deadline = t0 + (rng.uniform(0.05, 1.0) * t_ref if event == "random" else 10 * t_ref + 30)
    seen, was_there, first_size = 0, False, -1
    kids: set[int] = set()
    while proc.poll() is None:
        now = time.monotonic()
        if now - t0 > 0.3 and not kids:
            kids = descendants(proc.pid)
        fire = False
        if event == "random":
            fire = now >= deadline
        elif event == "wal-grows":
            try:
                size = wal.stat().st_size
            except FileNotFoundError:  # (removed between two looks: the checkpoint's end)
                size = -1
            if size > 0 and first_size < 0:
                first_size = size
            elif size < 0:
                first_size = -1
            if first_size > 0 and size > first_size:
                seen += 1
                first_size = size  # the next growth counts again
                fire = seen >= nth
        else:
            there = names[event].exists()
            if there and not was_there:
                seen += 1
                fire = seen >= nth
            was_there = there
        if fire:
            kids |= descendants(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            trial.hit = True
            trial.killed_at = now - t0
            break
        if now > deadline + 5:
            break
    proc.wait(timeout=60)
    trial.files_at_kill = sorted(p.name[len(catalog.name):] for p in catalog.parent.iterdir()
                                 if p.name.startswith(catalog.name))
    # 1. orphans: the workers must die with their parent. A worker still starting up (importing
    # NumPy & co. under load) arms itself only once its initializer runs, then exits at once:
    # allow ORPHAN_GRACE_S and record how long the last one took.
    t_kill = time.monotonic()
    names = {k: _cmdline(k) for k in kids}
    while time.monotonic() < t_kill + ORPHAN_GRACE_S and any(_alive(k) for k in kids):
        time.sleep(0.05)
    trial.exit_s = time.monotonic() - t_kill if kids else 0.0
    trial.orphans = sum(_alive(k) for k in kids)
    trial.orphan_names = [names[k] for k in kids if _alive(k)]
    for k in kids:  # clean up after a failure, so that one bad trial does not poison the rest
        if _alive(k):
            os.kill(k, signal.SIGKILL)
    # 2. opens read-only, then read-write, consistent
    if catalog.exists():
        try:
            ro = snapshot(catalog, read_only=True)
            trial.inconsistent += ro["problems"]
        except Exception as exc:  # noqa: BLE001 - counted and reported
            trial.ro_error = f"{type(exc).__name__}: {exc}"
        try:
            rw = snapshot(catalog, read_only=False)
            trial.inconsistent += rw["problems"]
            trial.images_before_reingest = len(rw["images"])
        except Exception as exc:  # noqa: BLE001
            trial.rw_error = f"{type(exc).__name__}: {exc}"
    # 3. re-ingest: identical to the uninterrupted run
    if not (trial.ro_error or trial.rw_error):
        try:
            ingest_here(inputs, catalog)
            after = snapshot(catalog, read_only=True)
            trial.identical = {k: v for k, v in after.items() if k != "problems"} == reference
            trial.inconsistent += after["problems"]
        except Exception as exc:  # noqa: BLE001
            trial.rw_error = trial.rw_error or f"re-ingest: {exc}"
    return trial


def run(kills: int, n_images: int, size: int, work: Path, seed: int = 0,
        events: tuple[str, ...] = EVENTS, log=print) -> list[Trial]:
    rng = random.Random(seed)
    inputs = make_inputs(work / "inputs", n_images, size)
    ref_cat = work / "reference.lbug"
    t_ref = run_ingest(inputs, ref_cat)
    reference = {k: v for k, v in snapshot(ref_cat, read_only=True).items() if k != "problems"}
    assert reference["Image"] == n_images, reference["Image"]
    log(f"uninterrupted ingest of {n_images} images of {size}² px: {t_ref:.1f} s, "
        f"{reference['Instance']} instances")
    trials = []
    for k in range(kills):
        event = events[k % len(events)]
        nth = 1 + (k // len(events)) % n_images  # the event of the 1st, 2nd, ... image
        cat = work / f"kill{k}" / "cat.lbug"
        cat.parent.mkdir(parents=True, exist_ok=True)
        t = kill_once(inputs, cat, event, reference, t_ref, rng, nth=nth)
        trials.append(t)
        status = "ok" if t.identical and not (t.ro_error or t.rw_error or t.inconsistent
                                               or t.orphans) else "FAIL"
        log(f"{k:3d} {event:10s} #{nth} hit={t.hit!s:5} at {t.killed_at:5.2f}s "
            f"files={','.join(t.files_at_kill) or '-'} images={t.images_before_reingest} "
            f"children gone in {t.exit_s:.1f}s orphans={t.orphans} {status} "
            f"{t.orphan_names or ''} {t.ro_error or t.rw_error} {t.inconsistent or ''}")
    return trials


def summarise(trials: list[Trial]) -> dict[str, int]:
    return {
        "kills": len(trials),
        "kills landed (event seen before the ingest ended)": sum(t.hit for t in trials),
        "unopenable read-only": sum(bool(t.ro_error) for t in trials),
        "unopenable read-write": sum(bool(t.rw_error) for t in trials),
        "inconsistent": sum(bool(t.inconsistent) for t in trials),
        "re-ingest identical": sum(t.identical for t in trials),
        "orphan processes": sum(t.orphans for t in trials),
        "slowest child exit after the kill (s)": round(max((t.exit_s for t in trials),
                                                           default=0.0), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=60)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="motifcat-kill-") as tmp:
        trials = run(args.kills, args.images, args.size, Path(tmp), args.seed)
    counts = summarise(trials)
    by_event = {e: sum(t.hit for t in trials if t.event == e) for e in EVENTS}
    lines = [f"- {k}: {v}" for k, v in counts.items()]
    lines.append("- landed kills by event: " + ", ".join(f"{e} {n}" for e, n in by_event.items()))
    lines.append(f"- wall time: {time.monotonic() - t0:.0f} s")
    print("\n".join(lines))
    if not args.no_write:
        out = ROOT / "bench" / "results" / "kill.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            "# Kill-anywhere harness (`python bench/kill.py`)\n\n"
            f"{args.kills} SIGKILLs of `motifcat ingest` (2 workers) writing {args.images} "
            f"synthetic images of {args.size}² px into a fresh embedded catalog.\n\n"
            + "\n".join(lines) + "\n"
        )
    bad = counts["unopenable read-only"] + counts["unopenable read-write"] + counts[
        "inconsistent"] + counts["orphan processes"] + (counts["kills"] - counts[
            "re-ingest identical"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
