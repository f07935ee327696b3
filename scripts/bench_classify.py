"""How good is a blast-aware cell classifier, and does it travel? Issue 12's honest evaluation.

Reads a run folder of ``blastseg classify train --config configs/blast_classifier.yaml``
(``--run``; trained there first when it has no classifier) and writes
``results/bench_classify.json``:

- **PBC, out of fold**: accuracy and macro F1 over PBC's white-cell classes and erythroblasts, from
  the run's 5-fold cross-validation (images kept whole; a PBC cell called ``blast`` is wrong);
- **all_blasts, held out**: the fields of ``configs/lists/all_blasts_heldout.txt``, never trained
  on or used to choose anything. Cells are found as the recipe finds them (``magenta``); a field is
  called ALL when at least ``share`` of its cells are called blast, ``share`` chosen on the
  out-of-fold cells of the training fields (the best balanced accuracy), never on these. Accuracy,
  sensitivity and specificity per field; and cell-level 4-class macro F1 (benign and the three
  subtypes, each cell taking its field's class) of a forest with the same features trained on the
  training fields' cells;
- **cross-lab**: the Zheng crops (two other labs, cells from their ground-truth masks, none ever
  trained on): macro F1 over neutrophil, lymphocyte, monocyte and eosinophil, for both and for each
  lab (Dataset1, Dataset2), and the false-blast rate (normal cells called blast); and BCCD's test
  fields (a third lab, normal donors; cells found by the bundled network): the classes called and
  the false-blast rate::

    python3 scripts/bench_classify.py --run runs/classifier_v2
"""

from __future__ import annotations

import argparse
import os
import platform
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from blastseg.batch import read_rows
from blastseg.classify.model import CellClassifier, feature_matrix
from blastseg.config import load_config
from blastseg.datasets.layouts import listed, scan_dataset
from blastseg.evaluation.classification import classification_scores
from blastseg.io import write_json
from blastseg.labels import BLAST
from blastseg.postprocess import InstanceRules
from blastseg.segment import create_segmenter, load_segmenter
from blastseg.training.classifier import train_classifier
from blastseg.training.classifier_recipe import ClassifyConfig
from blastseg.training.forest import fit_forest
from blastseg.training.labelled_cells import collect_cells

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ZHENG_CLASSES = ["eosinophil", "lymphocyte", "monocyte", "neutrophil"]
SUBTYPES = ["benign", "early_pre_b", "pre_b", "pro_b"]
ZHENG_LABS = ("Dataset1", "Dataset2")  # Jiangxi Tecom (rapid stain), CellaVision


def image_calls(image_of: list[str], is_blast: np.ndarray) -> dict[str, float]:
    """Each image's share of cells called blast."""
    shares: dict[str, list[bool]] = {}
    for image, blast in zip(image_of, is_blast):
        shares.setdefault(image, []).append(bool(blast))
    return {image: float(np.mean(calls)) for image, calls in shares.items()}


def best_share(shares: dict[str, float], is_all: dict[str, bool]) -> float:
    """The blast share that best separates ALL from benign images (balanced accuracy), smallest on ties."""

    def balanced(cut: float) -> float:
        sens = np.mean([shares[i] >= cut for i in shares if is_all[i]])
        spec = np.mean([shares[i] < cut for i in shares if not is_all[i]])
        return (sens + spec) / 2

    cuts = sorted(set(shares.values()) | {0.5})
    return max(cuts, key=lambda cut: (balanced(cut), -cut))


def field_scores(shares: dict[str, float], is_all: dict[str, bool], cut: float) -> dict[str, float]:
    called = {i: shares[i] >= cut for i in shares}
    positives = [i for i in shares if is_all[i]]
    negatives = [i for i in shares if not is_all[i]]
    return {
        "images": len(shares),
        "all_images": len(positives),
        "benign_images": len(negatives),
        "accuracy": round(float(np.mean([called[i] == is_all[i] for i in shares])), 4),
        "sensitivity": round(float(np.mean([called[i] for i in positives])), 4),
        "specificity": round(float(np.mean([not called[i] for i in negatives])), 4),
    }


def crops_for(classifier: CellClassifier) -> tuple[int, float | None]:
    """The crop size and scale a CNN classifier reads (a forest reads none)."""
    return (classifier.card.cnn.input_size if classifier.card.cnn else 64), classifier.card.crop_scale


def zheng_samples() -> list:
    """The labelled Zheng crops (two labs; ground-truth masks)."""
    return [s for s in scan_dataset(DATA / "zheng_wbc") if s.label is not None]


def bccd_fields(split: str, step: int) -> list:
    """Every ``step``-th BCCD field of ``split`` (``test``, ``trainval``), labelled as the normal donors' they are."""
    names = set((DATA / "bccd" / "ImageSets" / "Main" / f"{split}.txt").read_text().split()[::step])
    fields = [s for s in scan_dataset(DATA / "bccd") if s.image.stem in names]
    for sample in fields:
        sample.label = "normal donor"
    return fields


def zheng_f1(labels: list[str], called: list[str], average: str | None = "macro"):
    """F1 over the four Zheng classes the classifiers share, on the cells of those classes (its 2 basophils left out)."""
    shared = [i for i, label in enumerate(labels) if label in ZHENG_CLASSES]
    return f1_score([labels[i] for i in shared], [called[i] for i in shared], labels=ZHENG_CLASSES, average=average, zero_division=0)


def of_lab(labels: list[str], called: list[str], groups: list[str], lab: str) -> tuple[list[str], list[str]]:
    """The labels and calls of the cells whose image lies in the Zheng folder ``lab``."""
    mine = [i for i, group in enumerate(groups) if Path(group).parent.name == lab]
    return [labels[i] for i in mine], [called[i] for i in mine]


def subtype_of(image_name: str, folders: dict[str, str]) -> str:
    return folders[Path(image_name).stem]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "blast_classifier.yaml")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "classifier_v2")
    parser.add_argument("--heldout", type=Path, default=ROOT / "configs" / "lists" / "all_blasts_heldout.txt")
    parser.add_argument("--bccd-step", type=int, default=1, help="every this-many-th BCCD test field")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_classify.json")
    args = parser.parse_args()
    config = load_config(args.config, ClassifyConfig)
    if not (args.run / "classifier.json").is_file():
        train_classifier(config, args.run)
    classifier = CellClassifier.load(args.run, device="cpu")
    classes = classifier.classes
    results = {"date": str(date.today()), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "run": str(args.run)}
    results["classes"] = classes

    # PBC and the all_blasts training fields: the run's out-of-fold predictions
    folders = {p.stem: p.parent.name for p in (DATA / "all_blasts").glob("*/*.jpg")}
    pbc_names = {p.name for p in (DATA / "pbc").glob("*/*.jpg")}
    oof = read_rows(args.run / "predictions.csv")
    pbc = [row for row in oof if row["image"] in pbc_names]
    pbc_classes = sorted({row["label"] for row in pbc})
    truth = np.array([classes.index(row["label"]) for row in pbc])
    predicted = np.array([classes.index(row["predicted"]) for row in pbc])
    pbc_ids = [classes.index(name) for name in pbc_classes]
    results["pbc_out_of_fold"] = {
        "cells": len(pbc),
        "classes": pbc_classes,
        "accuracy": round(float(np.mean(truth == predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, labels=pbc_ids, average="macro")), 4),
        "per_class_f1": dict(zip(pbc_classes, np.round(f1_score(truth, predicted, labels=pbc_ids, average=None), 4).tolist())),
        "called_blast": int(np.sum(predicted == classes.index(BLAST))),
    }
    print("PBC out of fold:", results["pbc_out_of_fold"])
    train_rows = [row for row in oof if Path(row["image"]).stem in folders]
    train_shares = image_calls([r["image"] for r in train_rows], np.array([r["predicted"] == BLAST for r in train_rows]))
    train_all = {i: subtype_of(i, folders) != "benign" for i in train_shares}
    cut = best_share(train_shares, train_all)
    results["all_blasts_out_of_fold"] = {"share_rule": cut, **field_scores(train_shares, train_all, cut)}
    print("all_blasts training fields, out of fold:", results["all_blasts_out_of_fold"])

    # all_blasts held out: cells found as the recipe finds them
    source = config.data.also[0]
    heldout = listed(scan_dataset(DATA / "all_blasts"), args.heldout)
    cells = collect_cells(
        heldout, create_segmenter(source.segmenter), source.instances, *crops_for(classifier), every_cell=True, cell_diameter=classifier.card.cell_diameter
    )
    proba = classifier.proba_of(cells.rows, cells.crops)
    is_blast = proba.argmax(axis=1) == classes.index(BLAST)
    shares = image_calls([r["image"] for r in cells.rows], is_blast)
    is_all = {i: subtype_of(i, folders) != "benign" for i in shares}
    results["all_blasts_heldout"] = {
        "share_rule": cut,
        "cells": len(cells.rows),
        "images_without_cells": len(cells.skipped),
        **field_scores(shares, is_all, cut),
        "cells_called_blast_in_all_images": round(float(np.mean([b for b, r in zip(is_blast, cells.rows) if is_all[r["image"]]])), 4),
        "cells_called_blast_in_benign_images": round(float(np.mean([b for b, r in zip(is_blast, cells.rows) if not is_all[r["image"]]])), 4),
    }
    print("all_blasts held out:", results["all_blasts_heldout"])
    train_cells = [row for row in read_rows(args.run / "cells.csv") if Path(row["image"]).stem in folders]
    forest = fit_forest(
        feature_matrix(train_cells, config.features), np.array([SUBTYPES.index(subtype_of(r["image"], folders)) for r in train_cells]), config.random_forest, 0
    )
    subtype_truth = np.array([SUBTYPES.index(subtype_of(r["image"], folders)) for r in cells.rows])
    subtype_called = forest.predict(feature_matrix(cells.rows, config.features))
    scores = classification_scores(subtype_truth, subtype_called, SUBTYPES)
    results["all_blasts_subtypes_heldout"] = {
        "cells": len(subtype_truth),
        "macro_f1": round(scores["macro_f1"], 4),
        "accuracy": round(scores["accuracy"], 4),
        "confusion": scores["confusion"],
    }
    print("all_blasts subtypes, held-out cells:", results["all_blasts_subtypes_heldout"])

    # cross-lab: Zheng crops (ground-truth masks, the centre cell) and BCCD test fields (the network)
    cells = collect_cells(zheng_samples(), None, InstanceRules(), *crops_for(classifier), cell_diameter=classifier.card.cell_diameter)
    called = [classes[i] for i in classifier.proba_of(cells.rows, cells.crops).argmax(axis=1)]
    labels = cells.labels()
    results["zheng_cross_lab"] = {
        "cells": len(labels),
        "counts": dict(Counter(labels)),
        "macro_f1_4_classes": round(float(zheng_f1(labels, called)), 4),
        "per_class_f1": dict(zip(ZHENG_CLASSES, np.round(zheng_f1(labels, called, average=None), 4).tolist())),
        "false_blast_rate": round(float(np.mean([c == BLAST for c in called])), 4),
        "called": {label: dict(Counter(c for c, t in zip(called, labels) if t == label)) for label in sorted(set(labels))},
        "per_lab_macro_f1": {lab: round(float(zheng_f1(*of_lab(labels, called, cells.groups, lab))), 4) for lab in ZHENG_LABS},
    }
    print("Zheng cross-lab:", results["zheng_cross_lab"])
    bccd = bccd_fields("test", args.bccd_step)
    cells = collect_cells(
        bccd,
        load_segmenter("default", device="cpu"),
        InstanceRules(),
        *crops_for(classifier),
        use_masks=False,
        every_cell=True,
        cell_diameter=classifier.card.cell_diameter,
    )
    called = [classes[i] for i in classifier.proba_of(cells.rows, cells.crops).argmax(axis=1)]
    results["bccd_cross_lab"] = {
        "fields": len(bccd),
        "cells": len(called),
        "called": dict(Counter(called)),
        "false_blast_rate": round(float(np.mean([c == BLAST for c in called])), 4),
    }
    print("BCCD cross-lab:", results["bccd_cross_lab"])
    write_json(args.out, results)


if __name__ == "__main__":
    main()
