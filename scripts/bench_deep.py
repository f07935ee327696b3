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
from blastseg.datasets.splits import select
from blastseg.evaluation.segmentation import evaluate_segmenter
from blastseg.io import write_json
from blastseg.segment import create_segmenter
from blastseg.segment.deep import DeepSegmenter
from blastseg.training.recipe import TrainConfig
from blastseg.training.segmentation import annotated_samples, train

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("nucleus", "cell")


def score(segmenter, samples: list, images: list[np.ndarray], repeats: int) -> tuple[list[dict], dict, float]:
    """Per-image rows and summary of ``evaluate_segmenter``, and the median ms per image of
    ``segment()`` over ``repeats`` passes."""
    evaluation = evaluate_segmenter(samples, segmenter)
    rows, summary = evaluation.rows, evaluation.summary
    times = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            segmenter.segment(image)
            times.append(time.perf_counter() - start)
    return rows, summary, 1000 * statistics.median(times)


def summarise(name: str, summary: dict, ms: float, minutes: float | None) -> dict:
    result: dict = {"method": name, "ms_per_image": ms, "training_minutes": minutes, "groups": {}}
    for group, stats in summary["nucleus"]["groups"].items():
        result["groups"][group] = {f"{target}_{metric}": summary[target]["groups"][group][metric]["mean"] for target in TARGETS for metric in ("dice", "iou")}
        result["groups"][group]["n"] = stats["dice"]["n"]
    return result


def dice_of(rows: list[dict], target: str) -> list[float]:
    return [row["dice"] for row in rows if row["target"] == target]


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
            images = [s.load()[0] for s in samples]
            per_image["kmeans"], summary, ms = score(create_segmenter("kmeans", target="multiclass"), samples, images, args.repeats)
            results.append(summarise("kmeans", summary, ms, None))
        minutes = json.loads((run / "test_metrics.json").read_text())["training_minutes"]
        per_image[name], summary, ms = score(DeepSegmenter.load(run, device="cpu"), samples, images, args.repeats)
        results.append(summarise(name, summary, ms, minutes))
        print(json.dumps(results[-1]), flush=True)

    best, second = sorted(per_image, key=lambda method: np.mean(dice_of(per_image[method], "nucleus")), reverse=True)[:2]
    tests = {}
    for target in TARGETS:
        a, b = dice_of(per_image[best], target), dice_of(per_image[second], target)
        tests[target] = {
            "better": best,
            "other": second,
            "mean_difference": float(np.mean(a) - np.mean(b)),
            "p_value": float(wilcoxon(a, b).pvalue),
            "n": len(a),
        }
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    write_json(
        ROOT / "results" / "bench_deep.json",
        {"date": date.today().isoformat(), "machine": machine, "minutes": args.minutes, "results": results, "paired_tests": tests, "per_image": per_image},
    )

    print(f"\n{date.today()} on {machine}; budget {args.minutes} min of training each; test part of the seed-0 split\n")
    print("| method | dataset | n | nucleus Dice | nucleus IoU | cell Dice | cell IoU | training min | ms / image |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for group, g in r["groups"].items():
            trained = "-" if r["training_minutes"] is None else f"{r['training_minutes']:.1f}"
            print(
                f"| {r['method']} | {group} | {g['n']} | {g['nucleus_dice']:.4f} | {g['nucleus_iou']:.4f} | {g['cell_dice']:.4f} | {g['cell_iou']:.4f} | {trained} | {r['ms_per_image']:.1f} |"
            )
    for target, t in tests.items():
        print(f"\n{target}: {t['better']} - {t['other']} mean Dice difference {t['mean_difference']:+.4f}, Wilcoxon p = {t['p_value']:.3g} (n = {t['n']})")


if __name__ == "__main__":
    main()
