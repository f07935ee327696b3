"""The two installs a user can choose, measured from scratch: ``pip install .`` (light: predict,
segment and evaluate with ONNX Runtime, no torch) and ``pip install ".[train]"``.

Each goes into a fresh ``python -m venv`` (which brings pip and setuptools) from the package
registries this machine is configured with. Measured: the install's wall time, the venv's size
in MiB (every file under it, as ``du -sm`` counts them) and its ten largest packages. Then each venv runs
``blastseg predict`` on the bundled example field with the bundled classifier, and the two
``cells.csv`` and masks must be byte for byte the same. Writes ``results/bench_install.json``::

    python3 scripts/bench_install.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from blastseg.artifacts import example_image_path
from blastseg.io import write_json

ROOT = Path(__file__).resolve().parents[1]
INSTALLS = {"light": ".", "train": ".[train]"}


MIB = 2**20


def size_mib(path: Path) -> float:
    """Disk blocks used by everything under ``path``, in MiB, as ``du -sm`` counts them."""
    return sum(entry.lstat().st_blocks * 512 for entry in path.rglob("*")) / MIB


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python*/site-packages"))


def largest(venv: Path, count: int = 10) -> dict[str, float]:
    parts = {entry.name: size_mib(entry) if entry.is_dir() else entry.lstat().st_blocks * 512 / MIB for entry in site_packages(venv).iterdir()}
    return {name: round(mib, 1) for name, mib in sorted(parts.items(), key=lambda item: -item[1])[:count]}


def install(venv: Path, target: str) -> float:
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools would package modules left there by an older build
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    started = time.perf_counter()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", target], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def predict(venv: Path, out: Path) -> dict[str, bytes]:
    subprocess.run(
        [str(venv / "bin" / "blastseg"), "predict", str(example_image_path()), "--classifier", "default", "--out", str(out)], check=True, capture_output=True
    )
    return {name: (out / name).read_bytes() for name in ("cells.csv", f"{example_image_path().stem}_mask.png")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_install.json")
    args = parser.parse_args()
    result: dict = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version()}
    outputs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, target in INSTALLS.items():
            venv = Path(scratch) / name
            seconds = install(venv, target)
            result[name] = {
                "command": f"pip install {target!r}",
                "install_s": round(seconds, 1),
                "venv_mib": round(size_mib(venv)),
                "largest_mib": largest(venv),
            }
            outputs[name] = predict(venv, Path(scratch) / f"out_{name}")
            print(name, json.dumps(result[name]), flush=True)
    result["same_cells_and_mask"] = outputs["light"] == outputs["train"]
    write_json(args.out, result)
    print(f"same cells.csv and mask from both installs: {result['same_cells_and_mask']}")


if __name__ == "__main__":
    main()
