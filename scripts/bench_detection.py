"""White-cell detection on the BCCD fields against their VOC ``WBC`` boxes, with the bundled model.

Each field goes through ``DeepSegmenter`` (bundled model unless ``--checkpoint``) and the default
instance post-processing; a detected cell matches a WBC box by IoU >= 0.5 or its centroid inside
the box (one to one). Reports precision, recall, the mean absolute error of the per-field count,
and the fields with misses or false alarms. Writes ``results/bench_detection_SPLIT_ENGINE[_everywhere].json``::

    python3 scripts/bench_detection.py --split trainval   # where the post-processing was chosen
    python3 scripts/bench_detection.py --split test
    python3 scripts/bench_detection.py --split test --engine torch --no-regions   # the network everywhere, in PyTorch
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

from blastseg.datasets.layouts import bccd_fields
from blastseg.evaluation.detection import score_fields
from blastseg.io import write_json
from blastseg.postprocess import InstanceRules
from blastseg.segment.deep import DeepSegmenter

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "bccd")
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--engine", default="auto", help="auto, torch or onnx")
    parser.add_argument("--no-regions", action="store_true", help="run the network on the whole field, not only around candidate cells")
    parser.add_argument("--min-area", type=int, default=InstanceRules().min_area)
    parser.add_argument("--min-nucleus-area", type=int, default=InstanceRules().min_nucleus_area)
    parser.add_argument("--min-nucleus-fraction", type=float, default=InstanceRules().min_nucleus_fraction)
    parser.add_argument("--split-depth", type=float, default=InstanceRules().split_depth)
    parser.add_argument("--no-split", action="store_true", help="keep touching cells as one")
    parser.add_argument("--split", default=None, help="an ImageSets/Main list (train, val, trainval, test); default: every field")
    args = parser.parse_args()

    segmenter = DeepSegmenter.load(args.checkpoint, engine=args.engine, device="cpu", regions=not args.no_regions)
    instances_config = InstanceRules(
        min_area=args.min_area,
        min_nucleus_area=args.min_nucleus_area,
        min_nucleus_fraction=args.min_nucleus_fraction,
        split=not args.no_split,
        split_depth=args.split_depth,
    )
    samples = bccd_fields(args.data, args.split)
    started = time.perf_counter()
    scores = score_fields(samples, segmenter, instances_config)
    seconds = time.perf_counter() - started
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    result = {
        "date": date.today().isoformat(),
        "machine": machine,
        "checkpoint": args.checkpoint,
        "engine": segmenter.engine.name,
        "regions": segmenter.regions,
        "split": args.split or "all",
        "instances": instances_config.model_dump(),
        **asdict(scores),
        "ms_per_field_mean": 1000 * seconds / max(scores.fields, 1),
    }
    variant = f"_{result['engine']}" + ("" if segmenter.regions else "_everywhere")
    write_json(ROOT / "results" / f"bench_detection_{result['split']}{variant}.json", result)
    print(
        f"{scores.fields} fields, {scores.tp + scores.fn} WBC boxes: precision {scores.precision:.4f}, "
        f"recall {scores.recall:.4f} (TP {scores.tp}, FP {scores.fp}, FN {scores.fn}), "
        f"count MAE {result['count_mae']:.3f}, {result['ms_per_field_mean']:.0f} ms per field; "
        f"median area of matched / unmatched cells {result['median_area']['matched']} / {result['median_area']['unmatched']} px"
    )


if __name__ == "__main__":
    main()
