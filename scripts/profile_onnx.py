"""Where an ONNX twin's time goes: ONNX Runtime's own profiler, per operator type, for 256x256
crops at batch 1 (milliseconds per crop, medians over the runs profiled), and crops per second.

With ``--against OTHER`` (for example the twin of an earlier commit, ``git show
COMMIT:src/blastseg/assets/models/default.int8.onnx > /tmp/before.onnx``) both are profiled and
timed in the same run, and their logits compared on inputs of four shapes::

    python3 scripts/profile_onnx.py src/blastseg/assets/models/default.int8.onnx --against /tmp/before.onnx
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnx

from blastseg.segment.engines import cpu_session
from blastseg.segment.export import largest_logit_difference

SHAPES = ((1, 3, 256, 256), (4, 3, 64, 96), (2, 3, 512, 512), (1, 3, 160, 352))  # sides as blastseg pads them: multiples of 32


def operator_milliseconds(path: Path, crop: np.ndarray, runs: int) -> dict[str, float]:
    """Milliseconds per run spent in each operator type, from ONNX Runtime's profile of ``runs`` runs."""
    profiled = cpu_session(str(path), profile=True)
    for _ in range(runs):
        profiled.run(None, {profiled.get_inputs()[0].name: crop})
    trace = Path(profiled.end_profiling())
    totals: collections.Counter = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    return {name: round(microseconds / runs / 1000, 2) for name, microseconds in totals.most_common()}


def crops_per_second(path: Path, crop: np.ndarray, runs: int, repeats: int) -> float:
    timed = cpu_session(str(path))
    name = timed.get_inputs()[0].name
    timed.run(None, {name: crop})
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(runs):
            timed.run(None, {name: crop})
        rates.append(runs / (time.perf_counter() - started))
    return round(statistics.median(rates), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--against", type=Path, help="another twin of the same network, profiled in the same run")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    crop = np.random.default_rng(0).normal(size=SHAPES[0]).astype(np.float32)
    for path in [args.model, *([args.against] if args.against else [])]:
        operators = operator_milliseconds(path, crop, args.runs)
        print(f"{path}: {sum(operators.values()):.2f} ms per crop in operators, {crops_per_second(path, crop, args.runs, args.repeats)} crops/s")
        for name, milliseconds in operators.items():
            print(f"  {name:24s} {milliseconds:6.2f} ms")
    if args.against:
        print(f"largest logit difference over {len(SHAPES)} input shapes: {largest_logit_difference(onnx.load(args.model), onnx.load(args.against), SHAPES)}")


if __name__ == "__main__":
    main()
