"""``blastseg predict DIR --dask local:2`` against a plain run, as issue 15's bar asks: a Dask
LocalCluster with 2 worker processes over ``--images`` BCCD fields gives the outputs of a
single-process run, and with one worker killed halfway every image is still listed once.

Three whole ``blastseg predict`` processes over the same folder (links to the BCCD JPEGs, as
``scripts/bench_batch.py`` makes it), bundled model, default settings:

1. plain (one process), timed;
2. ``--dask local:2``, timed; every mask, overlay and instance TIFF must be byte for byte the
   plain run's, and ``cells.csv`` the same rows;
3. ``--workers 2`` (blastseg's own worker processes), timed, for comparison;
4. ``--dask local:2`` again into a fresh folder, with one Dask worker process killed (SIGKILL) once
   half the images are in ``images.jsonl``; the run must finish with every image listed once in
   ``summary.json`` and its rows in ``cells.csv`` exactly as in the plain run, and no mask written
   before the kill may be written again (outputs are replaced atomically, so a rewritten file is a
   new inode).

Writes ``results/bench_dask.json``::

    python3 scripts/bench_dask.py --images 200
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

from bench_batch import finished, make_folder  # scripts/ is on the path when run as a script
from blastseg.io import write_json

ROOT = Path(__file__).resolve().parents[1]


def predict(folder: Path, out: Path, *extra: str, kill_at: int | None = None, before_kill: dict[str, int] | None = None) -> tuple[float, bool]:
    """Wall seconds of one ``blastseg predict`` process, and whether a Dask worker was killed in it
    (``before_kill`` then gets the inode of each mask there was just before)."""
    command = [sys.executable, "-m", "blastseg", "predict", str(folder), "--out", str(out), *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = threading.Event()
    if kill_at is not None:
        threading.Thread(target=kill_a_worker, args=(process, out, kill_at, killed, before_kill), daemon=True).start()
    _, errors = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {errors.strip()}")
    return time.perf_counter() - started, killed.is_set()


def kill_a_worker(process: subprocess.Popen, out: Path, kill_at: int, killed: threading.Event, before_kill: dict[str, int] | None) -> None:
    """SIGKILL one Dask worker process (spawned by its nanny inside ``process``) once ``kill_at`` images are done."""
    while process.poll() is None and finished(out / "images.jsonl") < kill_at:
        time.sleep(0.1)
    workers = [pid for pid in descendants(process.pid) if "spawn_main" in command_line(pid)]
    if workers and process.poll() is None:
        if before_kill is not None:
            before_kill.update(mask_inodes(out))
        os.kill(workers[0], signal.SIGKILL)
        killed.set()


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def mask_inodes(out: Path) -> dict[str, int]:
    return {str(path.relative_to(out)): path.stat().st_ino for path in out.rglob("*_mask.png")}


def cluster_overhead(repeats: int = 3) -> float:
    """Median seconds to start a 2-worker LocalCluster, load nothing, and stop it."""
    from blastseg.cluster import connect

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        connect("local:2").close()
        times.append(time.perf_counter() - started)
    return round(sorted(times)[len(times) // 2], 2)


def rows(out: Path) -> list[tuple]:
    with (out / "cells.csv").open(newline="") as handle:
        return sorted(tuple(row.items()) for row in csv.DictReader(handle))


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.suffix in (".png", ".tif")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_dask.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "fields"
        names = make_folder(folder, args.images)
        plain_s, _ = predict(folder, Path(scratch) / "plain")
        dask_s, _ = predict(folder, Path(scratch) / "dask", "--dask", "local:2")
        workers_s, _ = predict(folder, Path(scratch) / "workers", "--workers", "2")
        before_kill: dict[str, int] = {}
        killed_s, killed = predict(folder, Path(scratch) / "killed", "--dask", "local:2", kill_at=args.images // 2, before_kill=before_kill)
        after = mask_inodes(Path(scratch) / "killed")
        summaries = {name: json.loads((Path(scratch) / name / "summary.json").read_text()) for name in ("plain", "dask", "killed")}
        listed = Counter(row[0][1] for row in rows(Path(scratch) / "killed"))
        result = {
            "date": date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "images": args.images,
            "seconds": {
                "plain": round(plain_s, 1),
                "--workers 2": round(workers_s, 1),
                "dask local:2": round(dask_s, 1),
                "dask local:2, one worker killed": round(killed_s, 1),
            },
            "images_per_second": {
                "plain": round(args.images / plain_s, 2),
                "--workers 2": round(args.images / workers_s, 2),
                "dask local:2": round(args.images / dask_s, 2),
            },
            "local_cluster_start_and_stop_seconds": cluster_overhead(),
            "dask_same_files": files(Path(scratch) / "dask") == files(Path(scratch) / "plain"),
            "dask_same_rows": rows(Path(scratch) / "dask") == rows(Path(scratch) / "plain"),
            "killed_a_worker": killed,
            "killed_run_images_listed": summaries["killed"]["images"],
            "killed_run_failed": len(summaries["killed"]["failed"]),
            "killed_run_same_rows": rows(Path(scratch) / "killed") == rows(Path(scratch) / "plain"),
            "killed_run_images_with_rows_twice": sum(1 for name in names if listed.get(name, 0) > summaries["plain"]["per_image"][name]["cells"]),
            "killed_run_masks_before_the_kill": len(before_kill),
            "killed_run_masks_written_again": sum(1 for name, inode in before_kill.items() if after.get(name) != inode),
        }
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
