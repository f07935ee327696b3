"""int8 for the bundled network: static, per-channel quantisation of its ONNX twin, calibrated on
Zheng training crops, against the fp32 twin in the same run.

Calibration records exactly what the network is fed when ``DeepSegmenter`` segments the first
``--calibration`` images of the bundled model's own Zheng training split (normalised, padded),
then ONNX Runtime's ``quantize_static`` writes a QDQ model (weights int8 per channel, activations
uint8, min-max ranges). Measured for both: 256x256 crops per second (batch 1 and 16, medians of
``--repeats``), Dice on the held-out Zheng test split per lab, and precision, recall and median box
IoU on the 72 BCCD test fields. The issue's rule: int8 may become the CPU default only if it loses
no more than 0.003 Dice. Writes ``results/bench_int8.json`` (and the model to ``--model``)::

    python3 scripts/bench_int8.py --calibration 64 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

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
from blastseg.training.recipe import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TWIN = bundled("models", "default.onnx")


class Recorder:
    """An engine that runs ``engine`` and keeps every batch it was given, one image at a time."""

    def __init__(self, engine: OnnxEngine):
        self.engine, self.batches = engine, []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batches += [np.ascontiguousarray(image[None], np.float32) for image in batch]
        return self.engine(batch)


class Batches(CalibrationDataReader):
    def __init__(self, batches: list[np.ndarray], name: str):
        self.feed = iter([{name: batch} for batch in batches])

    def get_next(self) -> dict | None:
        return next(self.feed, None)


def quantise(calibration: list[np.ndarray], out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(TWIN), str(prepared), skip_symbolic_shape=True)
        name = OnnxEngine(TWIN).input
        quantize_static(
            str(prepared),
            str(out),
            Batches(calibration, name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )


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
    parser.add_argument("--model", type=Path, default=ROOT / "results" / "default_int8.onnx")
    args = parser.parse_args()

    config = load_config(ROOT / "configs" / "default_model.yaml", TrainConfig)
    samples = scan_dataset(args.data / "zheng_wbc")
    split = split_samples(samples, config.data.split, config.data.seed)
    _, card = read_checkpoint("default")
    recorder = Recorder(OnnxEngine(TWIN))
    recording = DeepSegmenter(recorder, card)
    for sample in select(samples, split["train"])[: args.calibration]:
        recording.segment(sample.load()[0])
    started = time.perf_counter()
    quantise(recorder.batches, args.model)
    quantise_s = time.perf_counter() - started
    print(f"quantised on {len(recorder.batches)} network inputs in {quantise_s:.0f} s", flush=True)

    test, fields = select(samples, split["test"]), bccd_fields(args.data / "bccd", "test")
    engines = {"onnx fp32": OnnxEngine(TWIN), "onnx int8": OnnxEngine(args.model)}
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "calibration": f"{len(recorder.batches)} network inputs from the first {args.calibration} images of the default model's Zheng training split",
        "quantise_seconds": round(quantise_s, 1),
        "model_mib": {"onnx fp32": round(TWIN.stat().st_size / 2**20, 1), "onnx int8": round(args.model.stat().st_size / 2**20, 1)},
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
