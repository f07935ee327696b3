"""Does measuring every cell at one resolution (``cell_diameter``) stop a forest from telling labs
apart by how many pixels their cells span?

The cells of every ``--step``-th image of the ``configs/blast_classifier.yaml`` sources (PBC
centre cells found by the bundled network; all_blasts training fields, every cell by ``magenta``)
are found once and measured natively and resampled to each ``--diameters`` value. A random forest
(the recipe's features) learns from 4 of every 5 images and is scored on the fifth (PBC macro F1;
all_blasts cells' blast/lymphocyte accuracy); then on cells of labs it never saw: every other BCCD
``trainval`` field (normal donors, cells by the bundled network: the share called blast and the
classes called) and the Zheng crops (ground-truth masks: macro F1 over eosinophil, lymphocyte,
monocyte, neutrophil; share called blast). Also the median equivalent diameter of each source's
cells in pixels. Writes ``results/bench_cell_diameter.json``::

    python3 scripts/bench_cell_diameter.py --step 4 --diameters 20 40
"""

from __future__ import annotations

import argparse
import platform
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from bench_classify import bccd_fields, zheng_f1, zheng_samples  # scripts/ is on the path when run as a script
from blastseg.cells import cell_rows, with_resampled_features
from blastseg.classify.model import feature_matrix
from blastseg.config import load_config
from blastseg.io import read_image, write_json
from blastseg.labels import BLAST
from blastseg.postprocess import InstanceRules
from blastseg.segment import load_segmenter
from blastseg.segment.base import Segmentation
from blastseg.training.classifier import labelled_samples, source_segmenter
from blastseg.training.classifier_recipe import ClassifyConfig
from blastseg.training.forest import fit_forest
from blastseg.training.labelled_cells import nearest_to_centre

ROOT = Path(__file__).resolve().parents[1]


def measure(samples, segmenter, every_cell: bool, source: str, diameters: list[int], tables: dict, rules: InstanceRules | None = None) -> None:
    """Append each sample's labelled rows (cells made by ``rules``, the source's), native and at every diameter, to ``tables``."""
    for sample in samples:
        if segmenter is None:
            image, labels = sample.load()
            answer = Segmentation(labels)
        else:
            image = read_image(sample.image)
            answer = segmenter.segment(image)
        cells = answer.cells(image, rules)
        rows = cell_rows(sample.image.name, image, answer.labels, cells)
        if not rows:
            continue
        rows = [{**row, "label": sample.label, "source": source} for row in (rows if every_cell else [nearest_to_centre(rows, image.shape)])]
        tables["native"] += rows
        for diameter in diameters:
            tables[diameter] += with_resampled_features(rows, image, answer.labels, cells, diameter)


def score(rows: list[dict], features: list[str], config: ClassifyConfig) -> dict:
    training = [r for r in rows if r["source"] in ("pbc", "all_blasts")]
    images = sorted({r["image"] for r in training})
    test_images = set(images[::5])
    fit = [r for r in training if r["image"] not in test_images]
    forest = fit_forest(feature_matrix(fit, features), np.array([r["label"] for r in fit]), config.random_forest, config.seed)
    classes = forest.classes_

    def called(part):
        return [str(classes[i]) for i in forest.predict_proba(feature_matrix(part, features)).argmax(axis=1)]

    pbc = [r for r in training if r["image"] in test_images and r["source"] == "pbc"]
    blasts = [r for r in training if r["image"] in test_images and r["source"] == "all_blasts"]
    bccd, zheng = [r for r in rows if r["source"] == "bccd"], [r for r in rows if r["source"] == "zheng"]
    bccd_called, zheng_called = called(bccd), called(zheng)
    return {
        "pbc_macro_f1": round(float(f1_score([r["label"] for r in pbc], called(pbc), average="macro")), 4),
        "all_blasts_cell_accuracy": round(float(np.mean([c == r["label"] for c, r in zip(called(blasts), blasts)])), 4),
        "bccd_blast_share": round(float(np.mean([c == BLAST for c in bccd_called])), 4),
        "bccd_called": dict(Counter(bccd_called).most_common()),
        "zheng_macro_f1": round(float(zheng_f1([r["label"] for r in zheng], zheng_called)), 4),
        "zheng_blast_share": round(float(np.mean([c == BLAST for c in zheng_called])), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "blast_classifier.yaml")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--diameters", type=int, nargs="+", default=[20, 40])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_cell_diameter.json")
    args = parser.parse_args()
    config = load_config(args.config, ClassifyConfig)
    tables: dict = {"native": [], **{d: [] for d in args.diameters}}
    crops, fields = config.data.sources
    measure(labelled_samples(crops)[:: args.step], source_segmenter(crops, "cpu"), False, "pbc", args.diameters, tables, crops.instances)
    measure(labelled_samples(fields)[:: args.step], source_segmenter(fields, "cpu"), True, "all_blasts", args.diameters, tables, fields.instances)
    measure(zheng_samples(), None, False, "zheng", args.diameters, tables)
    measure(bccd_fields("trainval", 2), load_segmenter("default", device="cpu"), True, "bccd", args.diameters, tables)
    results = {"date": str(date.today()), "machine": platform.platform(), "step": args.step, "cells": len(tables["native"])}
    results["median_cell_diameter_px"] = {
        source: round(float(np.median([2 * np.sqrt(r["area"] / np.pi) for r in tables["native"] if r["source"] == source])), 1)
        for source in ("pbc", "all_blasts", "bccd", "zheng")
    }
    print("median cell diameter (px):", results["median_cell_diameter_px"])
    for key, rows in tables.items():
        results[str(key)] = score(rows, list(config.features), config)
        print(key, results[str(key)])
    write_json(args.out, results)


if __name__ == "__main__":
    main()
