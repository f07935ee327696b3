"""Does segmentation travel? Every method on data from other labs, without masks of our own.

- BCCD test fields (the dataset's own ``test`` list): white-cell precision and recall against the
  VOC ``WBC`` boxes, the median IoU of each found cell's box with its VOC box (how tight the
  outline is) and the count error, with the default instance rules.
- PBC (every ``--pbc-step``-th image of each class): the share of images where exactly one found
  cell has its centroid within 20 % of the shorter side from the centre (neighbours elsewhere in
  the crop do not count), and per class the median area of that cell and its spread
  (interquartile range over median).
- The hand-checked masks in ``tests/data/handchecked`` (see its NOTICE.md): on the 30 all_blasts
  fields, the cell Dice of the whole field, the share of fields where no found cell merges two
  reference cells, and cell recall and precision at IoU 0.5; on the 30 PBC cells, the Dice of the
  found cell that overlaps the reference most.

Methods: segmentation checkpoints (``default`` is the shipped model; run folders or cards), and
``kmeans`` (multiclass), ``otsu`` (its nucleus mask as cells) and ``magenta`` (Otsu's threshold of
CIE a*, bright side, as cells). Writes ``results/bench_travel.json``::

    python3 scripts/bench_travel.py default runs/scaled_model kmeans otsu
    python3 scripts/bench_travel.py default kmeans --sets handchecked --overlays results/overlays
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import cv2
import numpy as np

from blastseg.batch import instance_rules
from blastseg.cells import cell_rows
from blastseg.datasets.layouts import bccd_fields
from blastseg.evaluation.detection import centred_cell, score_fields
from blastseg.evaluation.instances import best_cell_dice, match_instances, merged_cells
from blastseg.io import read_image, read_mask, write_json, write_png
from blastseg.labels import NUCLEUS
from blastseg.metrics import dice
from blastseg.postprocess import InstanceRules
from blastseg.segment import Segmenter, create_segmenter, load_segmenter

ROOT = Path(__file__).resolve().parents[1]
HANDCHECKED = ROOT / "tests" / "data" / "handchecked"
SETS = ("bccd", "pbc", "handchecked")
CLASSICAL = {
    "kmeans": {"target": "multiclass"},
    "otsu": {"target": "nucleus"},
    "magenta": {"name": "otsu", "channel": "a", "foreground": "bright", "target": "cell"},  # the colour rule of datasets.colour_masks
    "magenta_segmenter": {"name": "magenta"},  # segment.classical's: the same rule, faint objects left out, each cell with its nucleus
}


def method(name: str) -> Segmenter:
    if name in CLASSICAL:
        params = dict(CLASSICAL[name])
        return create_segmenter(params.pop("name", name), **params)
    return load_segmenter(name, device="cpu")


def pbc(root: Path, segmenter: Segmenter, rules: InstanceRules, step: int) -> dict:
    per_class = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        hits, areas = 0, []
        files = sorted(folder.glob("*.jpg"))[::step]
        for path in files:
            image = read_image(path)
            answer = segmenter.segment(image)
            cells = cell_rows(path.name, image, answer.labels, answer.cells(image, rules))
            cell = centred_cell(cells, *image.shape[:2])
            if cell is not None:
                hits += 1
                areas.append(cell["area"])
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


def outlined(image: np.ndarray, reference: np.ndarray, found: np.ndarray, labels: np.ndarray, zoom: int = 2) -> np.ndarray:
    """The image enlarged ``zoom`` times with the reference cells (yellow), the found cells (green)
    and the found nuclei (magenta) outlined."""
    canvas = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    for ids, colour in ((reference, (255, 210, 0)), (found, (0, 170, 0)), ((labels == NUCLEUS).astype(np.int32), (230, 0, 230))):
        for i in np.unique(ids)[1:]:
            piece = cv2.resize((ids == i).astype(np.uint8), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(piece, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(canvas, contours, -1, colour, 1)
    return canvas


def montage(tiles: list[np.ndarray], columns: int = 5) -> np.ndarray:
    blank = np.full_like(tiles[0], 255)
    tiles = tiles + [blank] * (-len(tiles) % columns)
    return np.vstack([np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)])


def handchecked(data: Path, segmenter: Segmenter, rules: InstanceRules, overlay: Path | None = None) -> dict:
    fields, cells, tiles = [], [], []
    for reference_path in sorted((HANDCHECKED / "all_blasts").rglob("*.png")):
        reference = read_mask(reference_path).astype(np.int32)
        image = read_image(data / "all_blasts" / reference_path.relative_to(HANDCHECKED / "all_blasts").with_suffix(".jpg"))
        answer = segmenter.segment(image)
        labels, found = answer.labels, answer.cells(image, rules)
        matches = match_instances(found, reference)
        fields.append((dice(labels > 0, reference > 0), merged_cells(found, reference) == 0, matches))
        if overlay is not None:
            tiles.append(outlined(image, reference, found, labels))
    if tiles:
        write_png(overlay, montage(tiles))
    for reference_path in sorted((HANDCHECKED / "pbc").rglob("*.png")):
        reference = read_mask(reference_path) > 0
        image = read_image(data / "pbc" / reference_path.relative_to(HANDCHECKED / "pbc").with_suffix(".jpg"))
        cells.append(best_cell_dice(segmenter.segment(image).cells(image, rules), reference))
    matched, predicted, truth = (sum(getattr(m, key) for *_, m in fields) for key in ("matched", "predicted", "reference"))
    return {
        "all_blasts": {
            "fields": len(fields),
            "cell_dice_mean": round(float(np.mean([d for d, *_ in fields])), 4),
            "fields_without_merges": round(float(np.mean([clean for _, clean, _ in fields])), 4),
            "cell_recall": round(matched / truth, 4),
            "cell_precision": round(matched / predicted, 4) if predicted else None,
        },
        "pbc": {"cells": len(cells), "cell_dice_mean": round(float(np.mean(cells)), 4), "cell_dice_min": round(float(np.min(cells)), 4)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "methods", nargs="+", help="model folders, 'default' (the bundled model), 'kmeans', 'otsu', 'magenta' (Otsu of a*) or 'magenta_segmenter'"
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--pbc-step", type=int, default=4)
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_travel.json")
    parser.add_argument("--overlays", type=Path, help="folder for one PNG per method: the hand-checked fields with reference and found outlines")
    parser.add_argument("--instances", type=Path, help="instance rules file, as for blastseg predict --instances (default: the defaults)")
    args = parser.parse_args()
    rules = instance_rules(args.instances)
    results = {}
    for name in args.methods:
        segmenter = method(name)
        started = time.perf_counter()
        results[name] = {}
        if "bccd" in args.sets:
            detection = asdict(score_fields(bccd_fields(args.data / "bccd", "test"), segmenter, rules))
            results[name]["bccd_test"] = detection
            print(
                f"{name}: BCCD test precision {detection['precision']:.4f} recall {detection['recall']:.4f} median box IoU {detection['median_box_iou'] or 0:.3f}"
                f" (false alarms cut by the edge {detection['fp_at_border']}, precision of cells inside the field {detection['precision_inside']:.4f})"
            )
        if "pbc" in args.sets:
            results[name]["pbc"] = pbc(args.data / "pbc", segmenter, rules, args.pbc_step)
            print(f"{name}: PBC one centred cell {results[name]['pbc']['one_centred_cell']:.4f} of {results[name]['pbc']['images']}")
        if "handchecked" in args.sets:
            overlay = args.overlays / f"{Path(name).name}_all_blasts.png" if args.overlays else None
            results[name]["handchecked"] = checked = handchecked(args.data, segmenter, rules, overlay)
            print(f"{name}: hand-checked {checked}")
        results[name]["minutes"] = round((time.perf_counter() - started) / 60, 1)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    write_json(args.out, {"date": date.today().isoformat(), "machine": machine, "pbc_step": args.pbc_step, "sets": args.sets, "methods": results})


if __name__ == "__main__":
    main()
