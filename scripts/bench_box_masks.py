"""How good are cells grown in boxes (``datasets.box_masks``) as training pseudo-masks?

Each hand-checked cell (``tests/data/handchecked``: 329 cells of 30 all_blasts fields, 30 PBC
cells) gets a box as an annotator would draw it: its bounding box, widened by ``--slack`` of its
size on every side. The cell grown in that box is scored against the hand-checked cell (Dice).
On BCCD, which has boxes and no masks, every ``--bccd-step``-th ``trainval`` field's cells are
grown in their own ``WBC`` boxes, and each grown cell's bounding box is compared with its box
(IoU): a cell that stops at its nucleus fills much less of its box than one that reaches the
cell's edge. Writes ``results/bench_box_masks.json``::

    python3 scripts/bench_box_masks.py
"""

from __future__ import annotations

import argparse
import platform
from datetime import date
from pathlib import Path

import numpy as np

from blastseg.annotations import Box
from blastseg.datasets.box_masks import WHITE_CELL_LABEL, cell_from_box
from blastseg.datasets.layouts import bccd_fields
from blastseg.evaluation.detection import box_iou
from blastseg.io import read_image, read_mask, write_json
from blastseg.metrics import dice

ROOT = Path(__file__).resolve().parents[1]
HANDCHECKED = ROOT / "tests" / "data" / "handchecked"


def annotator_box(cell: np.ndarray, slack: float) -> Box:
    rows, cols = np.nonzero(cell)
    pad_y, pad_x = slack * (rows.max() - rows.min() + 1), slack * (cols.max() - cols.min() + 1)
    return Box("WBC", cols.min() - pad_x, rows.min() - pad_y, cols.max() + 1 + pad_x, rows.max() + 1 + pad_y)


def scores(data: Path, subset: str, slack: float) -> list[float]:
    values = []
    for reference_path in sorted((HANDCHECKED / subset).rglob("*.png")):
        reference = read_mask(reference_path).astype(np.int32)
        image = read_image(data / subset / reference_path.relative_to(HANDCHECKED / subset).with_suffix(".jpg"))
        for cell_id in np.unique(reference[reference > 0]):
            cell = reference == cell_id
            values.append(dice(cell_from_box(image, annotator_box(cell, slack)), cell))
    return values


def bccd_box_ious(data: Path, step: int) -> list[float]:
    values = []
    for sample in bccd_fields(data / "bccd", "trainval")[::step]:
        image = read_image(sample.image)
        for box in sample.boxes or []:
            cell = cell_from_box(image, box) if box.label == WHITE_CELL_LABEL else None
            if cell is not None and cell.any():
                rows, cols = np.nonzero(cell)
                values.append(box_iou((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1), box.corners))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--slack", type=float, default=0.05, help="box margin on each side, as a share of the cell's size")
    parser.add_argument("--bccd-step", type=int, default=6, help="grow the cells of every this-many-th BCCD trainval field")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_box_masks.json")
    args = parser.parse_args()
    results = {"date": str(date.today()), "machine": platform.platform(), "slack": args.slack}
    for subset in ("all_blasts", "pbc"):
        values = np.array(scores(args.data, subset, args.slack))
        results[subset] = {
            "cells": len(values),
            "dice_median": round(float(np.median(values)), 4),
            "dice_mean": round(float(values.mean()), 4),
            "dice_p10": round(float(np.percentile(values, 10)), 4),
            "share_over_0.8": round(float((values > 0.8).mean()), 4),
        }
        print(subset, results[subset])
    ious = np.array(bccd_box_ious(args.data, args.bccd_step))
    quartiles = np.percentile(ious, [25, 50, 75]).round(4).tolist()
    results["bccd"] = {"cells": len(ious), "box_iou_quartiles": quartiles}
    print("bccd", results["bccd"])
    write_json(args.out, results)


if __name__ == "__main__":
    main()
