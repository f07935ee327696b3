"""Benchmark U-Net, UNet++ and EfficientNet-U-Net against k-means on one split and one time budget.

Each network trains from its recipe in ``configs/`` with ``optim.max_minutes`` set to
``--minutes`` (the same CPU time for each), on the same seeded split of the shared Zheng data.
All methods are then scored on the same held-out test images: mean nucleus and cell Dice and
IoU per sub-dataset, training minutes, and the median milliseconds per image of inference
(``--repeats`` passes over the test images). The two best methods by nucleus Dice are compared
with a paired Wilcoxon signed-rank test on per-image Dice. Writes ``results/bench_deep.json``
and prints a Markdown table for BENCHMARKS.md::

    python3 scripts/bench_deep.py --minutes 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from blastseg.config import load_config
from blastseg.dataset import select
from blastseg.io import write_json
from blastseg.labels import target_mask
from blastseg.metrics import segmentation_metrics
from blastseg.segment import create_segmenter
from blastseg.segment.deep import DeepSegmenter
from blastseg.train import annotated_samples, train
from blastseg.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("nucleus", "cell")


def score(segmenter, loaded: list[tuple[str, np.ndarray, np.ndarray]], repeats: int) -> tuple[list[dict], float]:
    """Per-image Dice/IoU for both targets, and the median ms per image over ``repeats`` passes."""
    rows, times = [], []
    for repeat in range(repeats):
        for key, image, labels in loaded:
            start = time.perf_counter()
            predicted = segmenter.segment(image).labels
            times.append(time.perf_counter() - start)
            if repeat == 0:
                row = {"image": key, "group": key.split("/")[0]}
                for target in TARGETS:
                    metrics = segmentation_metrics(target_mask(predicted, target), target_mask(labels, target))
                    row[f"{target}_dice"], row[f"{target}_iou"] = metrics["dice"], metrics["iou"]
                rows.append(row)
    return rows, 1000 * statistics.median(times)


def summarise(name: str, rows: list[dict], ms: float, minutes: float | None) -> dict:
    result: dict = {"method": name, "ms_per_image": ms, "training_minutes": minutes, "groups": {}}
    for group in sorted({r["group"] for r in rows}):
        part = [r for r in rows if r["group"] == group]
        result["groups"][group] = {k: float(np.mean([r[k] for r in part])) for k in part[0] if k.endswith(("_dice", "_iou"))}
        result["groups"][group]["n"] = len(part)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["unet", "unetplusplus", "effunet"])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--retrain", action="store_true", help="train again even when runs/bench_NAME is complete")
    args = parser.parse_args()

    per_image: dict[str, list[dict]] = {}
    results = []
    split = None
    for name in args.configs:
        config = load_config(ROOT / "configs" / f"{name}.yaml", TrainConfig)
        config = config.model_copy(update={"optim": config.optim.model_copy(update={"max_minutes": args.minutes})})
        run = ROOT / "runs" / f"bench_{name}"
        if args.retrain or not (run / "test_metrics.json").is_file():
            train(config, run, overwrite=True)
        run_split = json.loads((run / "split.json").read_text())
        if split is not None and run_split != split:
            raise SystemExit(f"{run} was trained on another split than the first config")
        split = run_split
        if not per_image:
            samples = select(annotated_samples(config), split["test"])
            loaded = [(f"{s.group}/{s.name}", *s.load()) for s in samples]
            baseline = create_segmenter("kmeans", target="multiclass")
            per_image["kmeans"], ms = score(baseline, loaded, args.repeats)
            results.append(summarise("kmeans", per_image["kmeans"], ms, None))
        minutes = json.loads((run / "test_metrics.json").read_text())["training_minutes"]
        per_image[name], ms = score(DeepSegmenter.load(run, device="cpu"), loaded, args.repeats)
        results.append(summarise(name, per_image[name], ms, minutes))
        print(json.dumps(results[-1]), flush=True)

    def overall(method: str) -> float:
        return float(np.mean([r["nucleus_dice"] for r in per_image[method]]))

    best, second = sorted(per_image, key=overall, reverse=True)[:2]
    tests = {}
    for target in TARGETS:
        a = [r[f"{target}_dice"] for r in per_image[best]]
        b = [r[f"{target}_dice"] for r in per_image[second]]
        tests[target] = {"better": best, "other": second, "mean_difference": float(np.mean(a) - np.mean(b)), "p_value": float(wilcoxon(a, b).pvalue), "n": len(a)}
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    write_json(ROOT / "results" / "bench_deep.json", {"date": date.today().isoformat(), "machine": machine, "minutes": args.minutes, "results": results, "paired_tests": tests, "per_image": per_image})

    print(f"\n{date.today()} on {machine}; budget {args.minutes} min of training each; test part of the seed-0 split\n")
    print("| method | dataset | n | nucleus Dice | nucleus IoU | cell Dice | cell IoU | training min | ms / image |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for group, g in r["groups"].items():
            trained = "-" if r["training_minutes"] is None else f"{r['training_minutes']:.1f}"
            print(f"| {r['method']} | {group} | {g['n']} | {g['nucleus_dice']:.4f} | {g['nucleus_iou']:.4f} | {g['cell_dice']:.4f} | {g['cell_iou']:.4f} | {trained} | {r['ms_per_image']:.1f} |")
    for target, t in tests.items():
        print(f"\n{target}: {t['better']} - {t['other']} mean Dice difference {t['mean_difference']:+.4f}, Wilcoxon p = {t['p_value']:.3g} (n = {t['n']})")


if __name__ == "__main__":
    main()
