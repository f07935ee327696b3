"""The bundled network's speed, engine by engine, in one run, with its accuracy beside it.

Engines: **eager** is what a user's notebook does with the same network (the smp model in
``torch.no_grad()``, default memory layout); **torch** is blastseg's PyTorch engine (channels-last,
inference mode); **onnx** is the bundled ONNX twin in ONNX Runtime; **int8** its bundled int8 twin
(``scripts/bench_int8.py --bundle``), the CPU default. Measured here:

- network only, 256x256 crops in batches of 1 and 16: crops per second (warm);
- images through ``DeepSegmenter.segment`` (warm): the 72 BCCD test fields (640x480, seconds per
  field) and the 2592x1944 mosaic ``scripts/bench_predict.py`` makes, with the network
  everywhere or only in the regions around candidate cells (``--regions``, the default);
- whole ``blastseg predict`` processes (cold) on one 640x480 BCCD field and on the mosaic: the path
  before the engines (``--engine torch --no-regions``), the fp32 twin (``--engine onnx``) and the
  default (int8, regions), seconds and peak resident memory;
- whole images in a warm batch (``predict_files`` on copies of the mosaic in one process: the
  seconds from one image's files to the next's, the first image left out), the same three paths;
- accuracy of each path: the bundled model's held-out Zheng test split (nucleus and cell Dice per
  lab) and the 72 BCCD test fields (white-cell precision, recall, median box IoU).

Every time is the median of ``--repeats`` runs. Writes ``results/bench_speed.json``::

    python3 scripts/bench_speed.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch

from bench_predict import FIELD_SHAPE, make_field, run_once  # scripts/ is on the path when run as a script
from blastseg.artifacts import bundled
from blastseg.batch import PredictOptions, predict_files
from blastseg.config import load_config
from blastseg.datasets.layouts import bccd_fields, scan_dataset
from blastseg.datasets.splits import select, split_samples
from blastseg.evaluation.detection import score_fields
from blastseg.evaluation.segmentation import evaluate_segmenter
from blastseg.io import read_image, write_json
from blastseg.postprocess import InstanceRules
from blastseg.segment.checkpoint import load_checkpoint
from blastseg.segment.deep import DeepSegmenter
from blastseg.segment.engines import TorchEngine, twin_engine
from blastseg.training.recipe import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PATHS = {
    "torch, everywhere": ("torch", False),
    "torch, regions": ("torch", True),
    "onnx, everywhere": ("onnx", False),
    "onnx, regions": ("onnx", True),
    "int8, regions": ("int8", True),
}


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: first-call allocations and kernel choices
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def eager(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    return run


def crops_per_second(engines: dict, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    results = {}
    for batch in (1, 16):
        crops = rng.normal(size=(batch, 3, 256, 256)).astype(np.float32)
        per_engine = {name: batch / median_seconds(lambda e=engine, c=crops: e(c), repeats) for name, engine in engines.items()}
        results[f"batch {batch}"] = {name: round(rate, 1) for name, rate in per_engine.items()}
        print(f"256x256 crops, batch {batch}: " + ", ".join(f"{n} {r:.1f}/s" for n, r in per_engine.items()), flush=True)
    return results


def warm_images(sets: dict[str, list[np.ndarray]], repeats: int) -> dict:
    """Seconds per image through ``DeepSegmenter.segment``, each set timed whole."""
    results = {}
    for label, images in sets.items():
        results[label] = {}
        for path, (engine, regions) in PATHS.items():
            segmenter = DeepSegmenter.load("default", engine=engine, device="cpu", regions=regions)
            seconds = median_seconds(lambda s=segmenter, i=images: [s.segment(image) for image in i], repeats)
            results[label][path] = round(seconds / len(images), 3)
        print(f"{label} warm, seconds per image: {results[label]}", flush=True)
    return results


def cold_processes(images: dict[str, Path], repeats: int) -> dict:
    variants = {
        "before (--engine torch --no-regions)": ("--engine", "torch", "--no-regions"),
        "onnx fp32, regions (--engine onnx)": ("--engine", "onnx"),
        "default (int8, regions)": (),
    }
    results = {}
    for label, image in images.items():
        results[label] = {}
        for name, options in variants.items():
            runs = [run_once(image, options) for _ in range(repeats)]
            results[label][name] = {"seconds_median": round(statistics.median(r[0] for r in runs), 2), "peak_mib_max": round(max(r[1] for r in runs))}
        print(f"{label} cold: {results[label]}", flush=True)
    return results


def warm_batch(image: Path, repeats: int) -> dict:
    """Seconds per 2592x1944 image after the first in one ``predict_files`` batch, one image per chunk (analysis and files included)."""
    variants = {
        "before (--engine torch --no-regions)": {"engine": "torch", "regions": False},
        "onnx fp32, regions": {"engine": "onnx"},
        "default (int8, regions)": {},
    }
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        copies = []
        for i in range(repeats + 1):
            copies.append(Path(scratch) / f"field{i}.png")
            copies[-1].symlink_to(image)
        for name, options in variants.items():
            finished = []
            predict_files(
                copies,
                Path(scratch) / name,
                PredictOptions(device="cpu", batch_size=1, **options),
                on_done=lambda path, error, done=finished: done.append(time.perf_counter()),
            )
            results[name] = round(statistics.median(later - earlier for earlier, later in zip(finished, finished[1:])), 2)
    print(f"warm batch, seconds per 2592x1944 image: {results}", flush=True)
    return results


def accuracy(data: Path) -> dict:
    config = load_config(ROOT / "configs" / "default_model.yaml", TrainConfig)
    samples = scan_dataset(data / "zheng_wbc")
    test = select(samples, split_samples(samples, config.data.split, config.data.seed)["test"])
    fields = bccd_fields(data / "bccd", "test")
    results = {}
    for path, (engine, regions) in PATHS.items():
        segmenter = DeepSegmenter.load("default", engine=engine, device="cpu", regions=regions)
        summary = evaluate_segmenter(test, segmenter).summary
        dice = {target: {lab: round(summary[target]["groups"][lab]["dice"]["mean"], 4) for lab in ("Dataset1", "Dataset2")} for target in ("nucleus", "cell")}
        scores = score_fields(fields, segmenter, InstanceRules())
        results[path] = {
            "zheng_test_dice": dice,
            "bccd_test": {"precision": round(scores.precision, 4), "recall": round(scores.recall, 4), "median_box_iou": round(scores.median_box_iou, 4)},
        }
        print(f"{path}: {results[path]}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    model, _ = load_checkpoint("default")  # a second copy for TorchEngine, which turns its model channels-last in place
    weights = bundled("models", "default.safetensors")
    engines = {
        "eager": eager(model),
        "torch": TorchEngine(load_checkpoint("default")[0], "cpu"),
        "onnx": twin_engine(weights),
        "int8": twin_engine(weights, "int8"),
    }
    big = make_field(args.data / "bccd", ROOT / "results" / "field_2592x1944.png")
    small = args.data / "bccd" / "JPEGImages" / "BloodImage_00000.jpg"
    tests = [sample.load()[0] for sample in bccd_fields(args.data / "bccd", "test")]
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "repeats": args.repeats,
        "crops_per_second": crops_per_second(engines, args.repeats),
        "warm_seconds": warm_images({"640x480 (the 72 BCCD test fields)": tests, f"{FIELD_SHAPE[1]}x{FIELD_SHAPE[0]}": [read_image(big)]}, args.repeats),
        "cold_process": cold_processes({"640x480": small, f"{FIELD_SHAPE[1]}x{FIELD_SHAPE[0]}": big}, args.repeats),
        "warm_batch_seconds": warm_batch(big, args.repeats),
        "accuracy": accuracy(args.data),
    }
    write_json(ROOT / "results" / "bench_speed.json", result)


if __name__ == "__main__":
    main()
