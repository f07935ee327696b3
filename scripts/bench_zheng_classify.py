"""Cross-validated white-cell type classification on the shared Zheng labels (weak labels).

Runs each recipe (``configs/rf.yaml``, ``configs/default_classifier.yaml``, ``configs/cnn.yaml``)
with several seeds (fold assignment and model seed together) through ``train_classifier`` into
``runs/bench_zheng_classify/``, and writes the median over seeds of macro F1, accuracy and per-class F1,
with the majority-class baseline of the same folds, to ``results/bench_zheng_classify.json``::

    python3 scripts/bench_zheng_classify.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np

from blastseg.config import load_config
from blastseg.io import write_json
from blastseg.training.classifier import train_classifier
from blastseg.training.classifier_recipe import ClassifyConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("rf", "default_classifier", "cnn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()

    results = {}
    for recipe in args.recipes:
        config = load_config(ROOT / "configs" / f"{recipe}.yaml", ClassifyConfig)
        runs = []
        for seed in args.seeds:
            started = time.perf_counter()
            scores = train_classifier(config.model_copy(update={"seed": seed}), ROOT / "runs" / "bench_zheng_classify" / f"{recipe}_seed{seed}", overwrite=True)
            runs.append({"seed": seed, "seconds": time.perf_counter() - started, **asdict(scores)})
        classes = list(runs[0]["per_class"])
        results[recipe] = {
            "model": config.model,
            "folds": config.folds,
            "cells": runs[0]["cells"],
            "counts": runs[0]["counts"],
            "left_out_classes": runs[0]["left_out_classes"],
            "seeds": args.seeds,
            "macro_f1": [r["macro_f1"] for r in runs],
            "median_macro_f1": float(np.median([r["macro_f1"] for r in runs])),
            "median_accuracy": float(np.median([r["accuracy"] for r in runs])),
            "median_f1_per_class": {c: float(np.median([r["per_class"][c]["f1"] for r in runs])) for c in classes},
            "median_baseline_macro_f1": float(np.median([r["majority_baseline"]["macro_f1"] for r in runs])),
            "median_seconds": float(np.median([r["seconds"] for r in runs])),
        }
        r = results[recipe]
        print(
            f"{recipe}: macro F1 median {r['median_macro_f1']:.4f} over seeds {args.seeds} ({', '.join(f'{v:.4f}' for v in r['macro_f1'])}); "
            f"baseline {r['median_baseline_macro_f1']:.4f}; accuracy {r['median_accuracy']:.4f}; {r['median_seconds']:.0f} s per run; "
            + ", ".join(f"{c} {v:.3f}" for c, v in r["median_f1_per_class"].items())
        )
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    write_json(ROOT / "results" / "bench_zheng_classify.json", {"date": date.today().isoformat(), "machine": machine, "recipes": results})


if __name__ == "__main__":
    main()
