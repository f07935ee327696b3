"""A long batch as a lab runs one: ``blastseg predict DIR --workers N`` over thousands of
BCCD-sized fields, killed halfway with SIGKILL and carried on with ``--skip-existing``.

The folder holds ``--images`` links to the BCCD JPEGs, reused in turn (each under its own name, in
subfolders of 500). The first run is killed once ``--kill-at`` images are listed in
``images.jsonl``; the rerun finishes the batch. Measured while they run (every 0.25 s): the
resident memory of the whole process tree (the command and its workers) against the number of
images finished, so the peak up to image 200 can be set against the peak up to the last image.
Afterwards every image must have a readable mask and overlay, and its rows exactly once in
``cells.csv`` (as many as ``summary.json`` counts for it). Before that, the first ``--speed-images``
of the folder go through uninterrupted runs with one process and with ``--workers``, for the
images per second of each. Writes ``results/bench_batch.json``::

    python3 scripts/bench_batch.py --images 2000 --workers 2 --kill-at 1000 --speed-images 300
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from blastseg.io import read_image, write_json

ROOT = Path(__file__).resolve().parents[1]
BCCD = ROOT.parent / "shared" / "data" / "bccd" / "JPEGImages"
PAGE = os.sysconf("SC_PAGE_SIZE")


def make_folder(folder: Path, count: int) -> list[str]:
    """``count`` links to the BCCD fields in subfolders of 500; returns their names relative to ``folder``."""
    sources = sorted(BCCD.glob("*.jpg"))
    names = []
    for i in range(count):
        name = f"part{i // 500}/field{i:05d}.jpg"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(sources[i % len(sources)])
        names.append(name)
    return names


def tree_rss_mib(root: int) -> float:
    """Resident memory of ``root`` and every process below it."""
    parents: dict[int, int] = {}
    resident: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            parents[pid], resident[pid] = int(fields[1]), int((stat.parent / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return sum(resident.get(pid, 0) for pid in tree) * PAGE / 2**20


def finished(journal: Path) -> int:
    return journal.read_bytes().count(b"\n") if journal.is_file() else 0


def watch(command: list[str], journal: Path, kill_at: int | None) -> tuple[float, list[tuple[int, float]], bool]:
    """Run ``command``, sampling (images finished, tree RSS) until it ends or ``kill_at`` images are done (then SIGKILL)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples, killed = [], False
    while process.poll() is None:
        done = finished(journal)
        samples.append((done, tree_rss_mib(process.pid)))
        if kill_at is not None and done >= kill_at:
            process.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.25)
    process.wait()
    if not killed and process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - started, samples, killed


def peak_up_to(samples: list[tuple[int, float]], images: int) -> float:
    return max(rss for done, rss in samples if done <= images)


def check_outputs(out: Path, names: list[str]) -> dict:
    """Every image's mask and overlay readable, its rows in cells.csv exactly as many as summary.json counts."""
    summary = json.loads((out / "summary.json").read_text())
    with (out / "cells.csv").open(newline="") as handle:
        rows = Counter(row["image"] for row in csv.DictReader(handle))
    unreadable = [name for name in names for suffix in ("_mask.png", "_overlay.png") if read_image(out / name.replace(".jpg", suffix)).size == 0]
    wrong_rows = [name for name in names if rows.get(name, 0) != summary["per_image"][name]["cells"]]
    return {
        "images_listed": summary["images"],
        "failed": len(summary["failed"]),
        "unreadable_outputs": len(unreadable),
        "images_with_wrong_row_count": len(wrong_rows),
        "rows": sum(rows.values()),
        "cells_in_summary": summary["cells"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-at", type=int, default=1000)
    parser.add_argument("--speed-images", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_batch.json")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        names = make_folder(scratch / "in", args.images)
        speed = {}
        make_folder(scratch / "few", args.speed_images)
        for workers in sorted({1, args.workers}):
            few = [sys.executable, "-m", "blastseg", "predict", str(scratch / "few"), "--out", str(scratch / f"few{workers}"), "--workers", str(workers)]
            seconds, _, _ = watch(few, scratch / f"few{workers}" / "images.jsonl", None)
            speed[f"images_per_s_{workers}_worker{'s' if workers > 1 else ''}"] = round(args.speed_images / seconds, 2)
        out = scratch / "out"
        command = [sys.executable, "-m", "blastseg", "predict", str(scratch / "in"), "--out", str(out), "--workers", str(args.workers), "--skip-existing"]
        first_s, first, killed = watch(command, out / "images.jsonl", args.kill_at)
        at_kill = finished(out / "images.jsonl")
        second_s, second, _ = watch(command, out / "images.jsonl", None)
        checks = check_outputs(out, names)
    finally:
        shutil.rmtree(scratch)
    samples = first + second
    early, late = peak_up_to(first, 200), max(rss for _, rss in samples)
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": f"blastseg predict DIR --out OUT --workers {args.workers} --skip-existing",
        "speed_images": args.speed_images,
        **speed,
        "images": args.images,
        "workers": args.workers,
        "killed_after_images": at_kill if killed else None,
        "first_run_s": round(first_s, 1),
        "rerun_s": round(second_s, 1),
        "images_per_s": round(args.images / (first_s + second_s), 2),
        "peak_rss_mib_up_to_image_200": round(early, 1),
        "peak_rss_mib_up_to_last_image": round(late, 1),
        "peak_rss_growth": round(late / early - 1, 4),
        **checks,
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
