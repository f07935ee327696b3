"""Do the scale-free nucleus and cytoplasm features help a random forest? One gathering of
labelled cells, two feature sets, the same folds.

The cells of every ``--step``-th image of each class of a class-folder dataset (PBC by default:
eight classes labelled by pathologists) are found by the bundled network and measured once; a
random forest is then cross-validated (5 folds, images kept whole) on the cells-table features
without the columns of :mod:`blastseg.features` ("before") and with them ("with features"). Writes
macro F1, accuracy and the ten most important features (permutation importance) of each to
``results/bench_features.json``::

    python3 scripts/bench_features.py --step 4
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

from blastseg.cells import FEATURES
from blastseg.evaluation.classification import classification_scores
from blastseg.features import FEATURE_COLUMNS
from blastseg.io import write_json
from blastseg.training.classifier import Learner, cross_validated_proba, gather, labelled_samples, split_rare_classes, without_classes
from blastseg.training.classifier_recipe import ClassifyConfig

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "pbc")
    parser.add_argument("--step", type=int, default=4, help="every this-many-th image of each class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_features.json")
    args = parser.parse_args()
    config = ClassifyConfig.model_validate({"data": {"path": str(args.data), "segmentation": "model"}, "seed": args.seed})
    samples = labelled_samples(config.data)
    chosen = [s for label in sorted({s.label for s in samples}) for s in [s for s in samples if s.label == label][:: args.step]]
    start = time.perf_counter()
    cells = gather(config, [chosen])
    gather_minutes = (time.perf_counter() - start) / 60
    classes, rare = split_rare_classes(cells.labels(), config.folds)
    cells = without_classes(cells, rare)
    targets = np.array([classes.index(label) for label in cells.labels()])
    groups = cells.groups
    results = {"date": str(date.today()), "machine": platform.platform(), "data": str(args.data), "step": args.step, "images": len(chosen)}
    results |= {"cells": len(targets), "classes": classes, "left_out": rare, "gather_minutes": round(gather_minutes, 1)}
    before = [name for name in FEATURES if name not in FEATURE_COLUMNS]
    for name, features in (("before", before), ("with features", list(FEATURES))):
        recipe = config.model_copy(update={"features": features})
        out_of_fold = cross_validated_proba(Learner(recipe, cells, classes), targets, groups, recipe.folds, recipe.seed)
        scores = classification_scores(targets, out_of_fold.proba.argmax(axis=1), classes)
        importance = out_of_fold.feature_importance(features) or {}
        results[name] = {
            "features": len(features),
            "macro_f1": round(scores["macro_f1"], 4),
            "accuracy": round(scores["accuracy"], 4),
            "per_class_f1": {c: round(v["f1"], 4) for c, v in scores["per_class"].items()},
            "top_features": dict(list(importance.items())[:10]),
        }
        print(name, len(features), "features: macro F1", results[name]["macro_f1"], "accuracy", results[name]["accuracy"])
        print("  most important:", ", ".join(f"{k} {v['mean']:.3f}" for k, v in list(importance.items())[:10]))
    write_json(args.out, results)


if __name__ == "__main__":
    main()
