"""Does segmentation travel? Every method on data from other labs, without masks of our own.

- BCCD test fields (the dataset's own ``test`` list): white-cell precision and recall against the
  VOC ``WBC`` boxes, the median IoU of each found cell's box with its VOC box (how tight the
  outline is) and the count error, with the default instance rules.
- PBC (every ``--pbc-step``-th image of each class): the share of images where exactly one cell is
  found with its centroid within 20 % of the shorter side from the centre, and per class the
  median area of that cell and its spread (interquartile range over median).

Methods: segmentation checkpoints (``default`` is the shipped model; run folders or cards), and
``kmeans`` (multiclass) and ``otsu`` (its nucleus mask as cells). Writes ``results/bench_travel.json``::

    python3 scripts/bench_travel.py default runs/scaled_model kmeans otsu
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

from blastseg.cells import cell_rows
from blastseg.datasets.layouts import bccd_fields
from blastseg.evaluation.detection import one_centred_cell, score_fields
from blastseg.io import read_image, write_json
from blastseg.postprocess import InstanceRules, cell_instances
from blastseg.segment import Segmenter, create_segmenter, load_segmenter

ROOT = Path(__file__).resolve().parents[1]
CLASSICAL = {"kmeans": {"target": "multiclass"}, "otsu": {"target": "nucleus"}}


def method(name: str) -> Segmenter:
    if name in CLASSICAL:
        return create_segmenter(name, **CLASSICAL[name])
    return load_segmenter(name, device="cpu")


def pbc(root: Path, segmenter: Segmenter, rules: InstanceRules, step: int) -> dict:
    per_class = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        hits, areas = 0, []
        files = sorted(folder.glob("*.jpg"))[::step]
        for path in files:
            image = read_image(path)
            labels = segmenter.segment(image).labels
            cells = cell_rows(path.name, image, labels, cell_instances(labels, rules))
            if one_centred_cell(cells, *image.shape[:2]):
                hits += 1
                areas.append(cells[0]["area"])
        quartiles = np.percentile(areas, [25, 50, 75]) if areas else [np.nan] * 3
        per_class[folder.name] = {
            "images": len(files),
            "one_centred_cell": round(hits / len(files), 4) if files else None,
            "median_area_px": round(float(quartiles[1]), 1),
            "area_iqr_over_median": round(float((quartiles[2] - quartiles[0]) / quartiles[1]), 4) if areas else None,
        }
    images = sum(c["images"] for c in per_class.values())
    hits = sum(round(c["one_centred_cell"] * c["images"]) for c in per_class.values())
    return {"images": images, "one_centred_cell": round(hits / images, 4), "per_class": per_class}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="+", help="checkpoints, 'kmeans' or 'otsu'")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--pbc-step", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_travel.json")
    args = parser.parse_args()
    rules = InstanceRules()
    results = {}
    for name in args.methods:
        segmenter = method(name)
        started = time.perf_counter()
        detection = asdict(score_fields(bccd_fields(args.data / "bccd", "test"), segmenter, rules))
        detection.pop("fields_with_errors")
        results[name] = {"bccd_test": detection, "pbc": pbc(args.data / "pbc", segmenter, rules, args.pbc_step)}
        results[name]["minutes"] = round((time.perf_counter() - started) / 60, 1)
        bccd, cells = results[name]["bccd_test"], results[name]["pbc"]
        print(
            f"{name}: BCCD test precision {bccd['precision']:.4f} recall {bccd['recall']:.4f} median box IoU {bccd['median_box_iou'] or 0:.3f}; "
            f"PBC one centred cell {cells['one_centred_cell']:.4f} of {cells['images']}"
        )
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    write_json(args.out, {"date": date.today().isoformat(), "machine": machine, "pbc_step": args.pbc_step, "methods": results})


if __name__ == "__main__":
    main()
