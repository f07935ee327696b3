"""Time and peak memory of ``blastseg predict`` with the bundled model on a 2592x1944 field.

The field is a mosaic of BCCD smear fields cropped to 2592x1944 (a common camera size), written to
``results/``. Each run is a fresh ``blastseg predict`` process; its peak resident memory comes
from ``getrusage`` of the child. Reports the median wall time over ``--repeats`` runs, with a
640x480 field (one tile, no tiling) and a process that only imports blastseg as baselines in the
same run::

    python3 scripts/bench_predict.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench_classical import mosaic  # scripts/ is on the path when run as a script
from blastseg.datasets.layouts import scan_dataset
from blastseg.io import write_json, write_png

ROOT = Path(__file__).resolve().parents[1]
FIELD_SHAPE = (1944, 2592)


def make_field(bccd: Path, out: Path) -> Path:
    images = [s.load()[0] for s in scan_dataset(bccd)[:25]]
    return write_png(out, mosaic(images, 5)[: FIELD_SHAPE[0], : FIELD_SHAPE[1]])


def run_once(image: Path | None, options: tuple[str, ...] = ()) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one ``blastseg predict`` process with ``options``
    (``None``: a process that only imports blastseg, the floor under every run)."""
    with tempfile.TemporaryDirectory() as out:
        job = ["-m", "blastseg", "predict", str(image), "--out", out, "--device", "cpu", *options] if image else ["-c", "import blastseg"]
        command = [
            sys.executable,
            "-c",
            "import sys, resource, subprocess;"
            "r = subprocess.run(sys.argv[1:]);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
            "sys.exit(r.returncode)",
            sys.executable,
            *job,
        ]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
    return seconds, int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    big = make_field(args.data / "bccd", ROOT / "results" / "field_2592x1944.png")
    small = args.data / "bccd" / "JPEGImages" / "BloodImage_00000.jpg"
    results = {}
    for name, image in (("import only", None), ("640x480", small), ("2592x1944", big)):
        runs = [run_once(image) for _ in range(args.repeats)]
        results[name] = {"seconds_median": statistics.median(r[0] for r in runs), "peak_mib_max": max(r[1] for r in runs), "runs": runs}
        print(f"{name}: median {results[name]['seconds_median']:.2f} s per process, peak {results[name]['peak_mib_max']:.0f} MiB", flush=True)
    ratio = results["2592x1944"]["seconds_median"] / results["640x480"]["seconds_median"]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    write_json(ROOT / "results" / "bench_predict.json", {"date": date.today().isoformat(), "machine": machine, "results": results, "ratio": ratio})
    print(f"2592x1944 / 640x480 time ratio {ratio:.2f} (16.4x the pixels)")


if __name__ == "__main__":
    main()
