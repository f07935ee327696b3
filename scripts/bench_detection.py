"""White-cell detection on the BCCD fields against their VOC ``WBC`` boxes, with the bundled model.

Each field goes through ``DeepSegmenter`` (bundled model unless ``--checkpoint``) and the default
instance post-processing; a detected cell matches a WBC box by IoU >= 0.5 or its centroid inside
the box (one to one). Reports precision, recall, the mean absolute error of the per-field count,
and the fields with misses or false alarms. Writes ``results/bench_detection_SPLIT.json``::

    python3 scripts/bench_detection.py --split trainval   # where the post-processing was chosen
    python3 scripts/bench_detection.py --split test
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

from blastseg.cells import cell_rows
from blastseg.data import scan_dataset
from blastseg.detection import detection_scores, match_boxes
from blastseg.io import write_json
from blastseg.postprocess import InstanceConfig, cell_instances
from blastseg.segment.deep import DeepSegmenter

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "bccd")
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--min-area", type=int, default=InstanceConfig().min_area)
    parser.add_argument("--min-nucleus-area", type=int, default=InstanceConfig().min_nucleus_area)
    parser.add_argument("--min-nucleus-fraction", type=float, default=InstanceConfig().min_nucleus_fraction)
    parser.add_argument("--split-depth", type=float, default=InstanceConfig().split_depth)
    parser.add_argument("--no-split", action="store_true", help="keep touching cells as one")
    parser.add_argument("--split", default=None, help="an ImageSets/Main list (train, val, trainval, test); default: every field")
    args = parser.parse_args()

    segmenter = DeepSegmenter.load(args.checkpoint, device="cpu")
    instances_config = InstanceConfig(
        min_area=args.min_area, min_nucleus_area=args.min_nucleus_area, min_nucleus_fraction=args.min_nucleus_fraction,
        split=not args.no_split, split_depth=args.split_depth,
    )
    samples = scan_dataset(args.data)
    if args.split:
        names = set((args.data / "ImageSets" / "Main" / f"{args.split}.txt").read_text().split())
        samples = [s for s in samples if s.image.stem in names]
    totals = {"tp": 0, "fp": 0, "fn": 0}
    count_errors, fields, seconds = [], [], []
    areas: dict[str, list[int]] = {"matched": [], "unmatched": []}
    for sample in samples:
        image, _ = sample.load()
        truth = [b for b in sample.boxes or [] if b.label == "WBC"]
        start = time.perf_counter()
        labels = segmenter.segment(image).labels
        cells = cell_rows(sample.image.name, image, labels, cell_instances(labels, instances_config))
        seconds.append(time.perf_counter() - start)
        matches = match_boxes(cells, truth)
        tp, fp, fn = len(matches.pairs), len(matches.unmatched_cells), len(matches.unmatched_truth)
        areas["matched"] += [cells[i]["area"] for i, _ in matches.pairs]
        areas["unmatched"] += [cells[i]["area"] for i in matches.unmatched_cells]
        totals["tp"] += tp
        totals["fp"] += fp
        totals["fn"] += fn
        count_errors.append(abs(len(cells) - len(truth)))
        if fp or fn:
            fields.append({"image": sample.image.name, "truth": len(truth), "found": len(cells), "fp": fp, "fn": fn})
    scores = detection_scores(totals["tp"], totals["fp"], totals["fn"])
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    result = {
        "date": date.today().isoformat(), "machine": machine, "checkpoint": args.checkpoint, "split": args.split or "all",
        "instances": vars(instances_config), "fields": len(count_errors),
        **totals, **scores, "count_mae": float(np.mean(count_errors)), "ms_per_field_median": 1000 * float(np.median(seconds)),
        "median_area": {k: float(np.median(v)) if v else None for k, v in areas.items()},
        "fields_with_errors": fields,
    }
    write_json(ROOT / "results" / f"bench_detection_{result['split']}.json", result)
    print(f"{len(count_errors)} fields, {totals['tp'] + totals['fn']} WBC boxes: precision {scores['precision']:.4f}, "
          f"recall {scores['recall']:.4f} (TP {totals['tp']}, FP {totals['fp']}, FN {totals['fn']}), "
          f"count MAE {result['count_mae']:.3f}, {result['ms_per_field_median']:.0f} ms per field; "
          f"median area of matched / unmatched cells {result['median_area']['matched']} / {result['median_area']['unmatched']} px")


if __name__ == "__main__":
    main()
