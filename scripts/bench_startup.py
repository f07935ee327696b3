"""Start-up time of the command line and of ``import blastseg``: median of fresh processes.

Baselines in the same run: a bare ``python -c pass``, and a process that imports the torch side
(``blastseg.segment.deep``), which is what every command paid before imports became lazy::

    python3 scripts/bench_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from blastseg.io import write_json

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import blastseg'": [sys.executable, "-c", "import blastseg"],
    "blastseg --help": [sys.executable, "-m", "blastseg", "--help"],
    "python -c 'import blastseg.segment.deep' (torch)": [sys.executable, "-c", "import blastseg.segment.deep"],
}


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for command in PROCESSES.values():  # warm the file cache once
        seconds(command)
    medians = {name: statistics.median(seconds(command) for _ in range(args.repeats)) for name, command in PROCESSES.items()}
    for name, value in medians.items():
        print(f"{name}: median {value:.3f} s over {args.repeats} processes")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    write_json(
        ROOT / "results" / "bench_startup.json", {"date": date.today().isoformat(), "machine": machine, "repeats": args.repeats, "median_seconds": medians}
    )


if __name__ == "__main__":
    main()
