"""The bundled network's int8 twin against its fp32 twin, in one run; ``--bundle`` also writes the
int8 twin that ships (``src/blastseg/assets/models/default.int8.onnx``).

The int8 twin is :func:`~blastseg.segment.export.export_int8` calibrated on the first
``--calibration`` images of the bundled model's own Zheng training split. Measured for both:
256x256 crops per second (batch 1 and 16, medians of ``--repeats``), Dice on the held-out Zheng
test split per lab, and precision, recall and median box IoU on the 72 BCCD test fields. The
issue's rule: int8 may be the CPU default only if it loses no more than 0.003 Dice. Writes
``results/bench_int8.json``::

    python3 scripts/bench_int8.py --calibration 64 --repeats 5 --bundle
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np

from blastseg.artifacts import bundled
from blastseg.config import load_config
from blastseg.datasets.layouts import bccd_fields, scan_dataset
from blastseg.datasets.splits import select, split_samples
from blastseg.evaluation.detection import score_fields
from blastseg.evaluation.segmentation import evaluate_segmenter
from blastseg.io import write_json
from blastseg.postprocess import InstanceRules
from blastseg.segment.checkpoint import read_checkpoint
from blastseg.segment.deep import DeepSegmenter
from blastseg.segment.engines import OnnxEngine
from blastseg.segment.export import export_int8
from blastseg.training.recipe import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TWIN = bundled("models", "default.onnx")


def crops_per_second(engine: OnnxEngine, repeats: int) -> dict:
    rng, rates = np.random.default_rng(0), {}
    for batch in (1, 16):
        crops = rng.normal(size=(batch, 3, 256, 256)).astype(np.float32)
        engine(crops)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            engine(crops)
            times.append(time.perf_counter() - started)
        rates[f"batch {batch}"] = round(batch / statistics.median(times), 1)
    return rates


def accuracy(segmenter: DeepSegmenter, test, fields) -> dict:
    summary = evaluate_segmenter(test, segmenter).summary
    dice = {target: {lab: round(summary[target]["groups"][lab]["dice"]["mean"], 4) for lab in ("Dataset1", "Dataset2")} for target in ("nucleus", "cell")}
    scores = score_fields(fields, segmenter, InstanceRules())
    return {
        "zheng_test_dice": dice,
        "bccd_test": {"precision": round(scores.precision, 4), "recall": round(scores.recall, 4), "median_box_iou": round(scores.median_box_iou, 4)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bundle", action="store_true", help="write the int8 twin that ships instead of results/default_int8.onnx")
    args = parser.parse_args()

    config = load_config(ROOT / "configs" / "default_model.yaml", TrainConfig)
    samples = scan_dataset(args.data / "zheng_wbc")
    split = split_samples(samples, config.data.split, config.data.seed)
    _, card = read_checkpoint("default")
    model = bundled("models", "default.int8.onnx") if args.bundle else ROOT / "results" / "default_int8.onnx"
    calibration = [sample.load()[0] for sample in select(samples, split["train"])[: args.calibration]]
    started = time.perf_counter()
    export_int8("default", calibration, model, overwrite=True)
    quantise_s = time.perf_counter() - started
    print(f"wrote {model} in {quantise_s:.0f} s", flush=True)

    test, fields = select(samples, split["test"]), bccd_fields(args.data / "bccd", "test")
    engines = {"onnx fp32": OnnxEngine(TWIN), "onnx int8": OnnxEngine(model)}
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "calibration": f"the first {len(calibration)} images of the default model's Zheng training split",
        "export_seconds": round(quantise_s, 1),
        "model_mib": {"onnx fp32": round(TWIN.stat().st_size / 2**20, 1), "onnx int8": round(model.stat().st_size / 2**20, 1)},
        "crops_per_second": {},
        "accuracy": {},
    }
    for name, engine in engines.items():
        result["crops_per_second"][name] = crops_per_second(engine, args.repeats)
        result["accuracy"][name] = accuracy(DeepSegmenter(engine, card), test, fields)
        print(name, result["crops_per_second"][name], result["accuracy"][name], flush=True)
    fp32, int8 = (result["accuracy"][name]["zheng_test_dice"] for name in engines)
    result["largest_dice_loss"] = round(max(fp32[t][lab] - int8[t][lab] for t in fp32 for lab in fp32[t]), 4)
    write_json(ROOT / "results" / "bench_int8.json", result)
    print(f"largest Zheng Dice loss {result['largest_dice_loss']}")


if __name__ == "__main__":
    main()
