"""Benchmark the classical segmenters on the shared Zheng data and the k-means sweep on a field.

Writes ``results/bench_classical.json`` and prints Markdown tables for BENCHMARKS.md::

    python3 scripts/bench_classical.py --data ../shared/data --repeats 3

Part 1: every method x {Dataset1, Dataset2} x {nucleus, cell} it offers (``magenta`` answers
multiclass only and is left out), default parameters, no ground truth used: mean Dice, IoU, SSIM and the median milliseconds per image.
Part 2: a 2592x1944 field tiled from Dataset2 crops (and their masks); the k-means sweep over
k = 2..6 fitted on a 20,000-pixel sample against k-means fitted on all pixels. The
clustering (fit + assignment of every pixel, all k) is timed ``--repeats`` times for each; the
whole sweep (clustering + choosing clusters by Dice/IoU/SSIM) once, with the Dice it reaches.
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

from blastseg.datasets.layouts import scan_dataset
from blastseg.io import write_json
from blastseg.labels import target_mask
from blastseg.metrics import segmentation_metrics
from blastseg.segment import SEGMENTERS, create_segmenter

FIELD_SHAPE = (1944, 2592)


def bench_methods(zheng: Path) -> list[dict]:
    rows = []
    for group in ("Dataset1", "Dataset2"):
        loaded = [sample.load() for sample in scan_dataset(zheng / group)]
        for method in SEGMENTERS:
            for target in ("nucleus", "cell") if method != "magenta" else ():
                segmenter = create_segmenter(method, target=target)
                scores, times = [], []
                for image, labels in loaded:
                    start = time.perf_counter()
                    result = segmenter.segment(image)
                    times.append(time.perf_counter() - start)
                    scores.append(segmentation_metrics(target_mask(result.labels, target), target_mask(labels, target)))
                row = {"group": group, "method": method, "target": target, "n": len(loaded)}
                row.update({m: float(np.mean([s[m] for s in scores])) for m in ("dice", "iou", "ssim")})
                row["ms_per_image"] = 1000 * statistics.median(times)
                rows.append(row)
                print(
                    f"{group} {method:9s} {target:7s} dice {row['dice']:.4f} iou {row['iou']:.4f} ssim {row['ssim']:.4f} {row['ms_per_image']:.1f} ms",
                    flush=True,
                )
    return rows


def mosaic(arrays: list[np.ndarray], columns: int) -> np.ndarray:
    """Tile equally sized arrays row by row, ``columns`` to a row."""
    rows = [np.concatenate(arrays[start : start + columns], axis=1) for start in range(0, len(arrays), columns)]
    return np.concatenate(rows, axis=0)


def tiled_field(zheng: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 2592x1944 mosaic of Dataset2 crops (300x300) and its nucleus truth."""
    samples = scan_dataset(zheng / "Dataset2")
    rows, columns = -(-FIELD_SHAPE[0] // 300), -(-FIELD_SHAPE[1] // 300)
    images, labels = zip(*(samples[i % len(samples)].load() for i in range(rows * columns)))
    crop = (slice(0, FIELD_SHAPE[0]), slice(0, FIELD_SHAPE[1]))
    return mosaic(list(images), columns)[crop], mosaic(list(labels), columns)[crop] == 2


def bench_sweep(zheng: Path, repeats: int) -> dict:
    image, truth = tiled_field(zheng)
    variants = {"sample_20000": 20000, "all_pixels": image.shape[0] * image.shape[1]}
    out = {}
    for name, sample_size in variants.items():
        segmenter = create_segmenter("kmeans", target="nucleus", sample_size=sample_size)
        lab = segmenter.lab_pixels(image)
        cluster_times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for k in range(segmenter.k_range[0], segmenter.k_range[1] + 1):
                segmenter.cluster(lab, k)
            cluster_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = segmenter.sweep(image, truth)
        sweep_seconds = time.perf_counter() - start
        out[name] = {
            "cluster_seconds_median": statistics.median(cluster_times),
            "cluster_seconds_runs": cluster_times,
            "sweep_seconds": sweep_seconds,
            "best": result.info["best"],
        }
        print(
            f"{name}: clustering {statistics.median(cluster_times):.2f} s (median of {repeats}), whole sweep {sweep_seconds:.2f} s, best {result.info['best']}",
            flush=True,
        )
    fast, full = out["sample_20000"], out["all_pixels"]
    out["cluster_speedup"] = full["cluster_seconds_median"] / fast["cluster_seconds_median"]
    out["sweep_speedup"] = full["sweep_seconds"] / fast["sweep_seconds"]
    out["dice_difference"] = fast["best"]["dice"] - full["best"]["dice"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/bench_classical.json"))
    args = parser.parse_args()
    zheng = args.data / "zheng_wbc"
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "methods": bench_methods(zheng),
        "field_sweep": bench_sweep(zheng, args.repeats),
    }
    write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
