"""Rebuild the bundled white-cell type classifier from configs/default_classifier.yaml.

Cross-validates and fits it into runs/default_classifier, then copies the classifier into the
package as ``assets/models/classifier.{safetensors,json}`` and prints the scores. Run from the
repository root with ../shared/data beside it::

    python3 scripts/train_default_classifier.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

from blastseg.classify.model import CellClassifier, bundled_classifier
from blastseg.config import load_config
from blastseg.training.classifier import train_classifier
from blastseg.training.classifier_recipe import ClassifyConfig

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default_classifier.yaml")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "default_classifier")
    args = parser.parse_args()

    scores = train_classifier(load_config(args.config, ClassifyConfig), args.run, overwrite=True)
    classifier = CellClassifier.load(args.run)
    classifier.card = classifier.card.model_copy(
        update={
            "trained_on": "Zheng et al. WBC Dataset1 + Dataset2 labels.csv (weak labels), ground-truth masks, configs/default_classifier.yaml",
        }
    )
    classifier.save(bundled_classifier().with_suffix(""))
    print(
        f"{scores.model}, {scores.folds}-fold CV on {scores.cells} cells: macro F1 {scores.macro_f1:.4f} "
        f"(majority-class baseline {scores.majority_baseline['macro_f1']:.4f}), accuracy {scores.accuracy:.4f}"
    )
    for name, stats in scores.per_class.items():
        print(f"  {name:12s} n {stats['support']:4d}  precision {stats['precision']:.3f}  recall {stats['recall']:.3f}  F1 {stats['f1']:.3f}")
    print(f"left out: {scores.left_out_classes}")


if __name__ == "__main__":
    main()
