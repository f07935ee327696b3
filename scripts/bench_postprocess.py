"""Post-processing whose cost follows the cells, not the pixels: ``split_by_depth`` box by box
against the whole-image formulation it replaced (``tests/reference.py``), measured in one run.

- time: both on the masks of a 2592x1944 BCCD mosaic (the k-means mask and the stain's magenta
  mask, which ``stained_cells`` splits), medians of ``--repeats`` calls, and whole
  ``blastseg segment --method kmeans`` processes on that field with either version;
- sameness: the cell instances of every BCCD test field (bundled network) and of every held-out
  all_blasts field (magenta segmenter, as the classifier recipe finds them) with either version;
- PNG output: the field itself encoded as ``io.write_png`` does (zlib level 1) and at Pillow's
  default level 6, seconds and bytes.

Writes ``results/bench_postprocess.json``::

    python3 scripts/bench_postprocess.py --repeats 5
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

from bench_classify import DATA, bccd_fields  # scripts/ is on the path when run as a script
from bench_predict import make_field
from blastseg import postprocess
from blastseg.datasets.colour_masks import magenta_mask
from blastseg.datasets.layouts import Sample, listed, scan_dataset
from blastseg.io import read_image, write_json
from blastseg.postprocess import InstanceRules
from blastseg.segment import Segmenter, create_segmenter, load_segmenter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.reference import split_by_depth_whole_field  # noqa: E402

BOX_BY_BOX = postprocess.split_by_depth
PATCH_TO_WHOLE_FIELD = "import blastseg.postprocess as p, tests.reference as r; p.split_by_depth = r.split_by_depth_whole_field; "


def median_seconds(split: Callable[[np.ndarray], np.ndarray], mask: np.ndarray, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        split(mask)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def png_encoding(image: np.ndarray, repeats: int) -> dict:
    """Median seconds and bytes of ``image`` as PNG at zlib level 1 (``io.write_png``) and 6 (Pillow's default)."""
    answer = {}
    for level in (6, 1):
        times, size = [], 0
        for _ in range(repeats):
            buffer = io.BytesIO()
            start = time.perf_counter()
            Image.fromarray(image).save(buffer, format="PNG", compress_level=level)
            times.append(time.perf_counter() - start)
            size = buffer.tell()
        answer[f"level_{level}"] = {"seconds": round(statistics.median(times), 3), "bytes": size}
    return answer


def segment_process(field: Path, patch: str, repeats: int) -> float:
    """Median wall seconds of a whole ``blastseg segment --method kmeans`` process."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            code = f"{patch}from blastseg.cli import app; app()"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code, "segment", str(field), "--method", "kmeans", "--out", out], check=True, capture_output=True, cwd=ROOT)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def same_instances(samples: list[Sample], segmenter: Segmenter, rules: InstanceRules) -> dict:
    """How many images get the very same cell instances from either split (and the cells compared)."""
    identical, cells = 0, 0
    for sample in samples:
        image = read_image(sample.image)
        answer = segmenter.segment(image)
        new = answer.cells(image, rules)
        postprocess.split_by_depth = split_by_depth_whole_field
        old = answer.cells(image, rules)
        postprocess.split_by_depth = BOX_BY_BOX
        identical += int(np.array_equal(new, old))
        cells += int(old.max())
    return {"images": len(samples), "identical": identical, "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_postprocess.json")
    args = parser.parse_args()

    field = make_field(DATA / "bccd", ROOT / "results" / "field_2592x1944.png")
    image = read_image(field)
    masks = {"kmeans": create_segmenter("kmeans").segment(image).labels > 0, "magenta": magenta_mask(image)}
    results: dict = {"date": date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "split_seconds": {}}
    for name, mask in masks.items():
        whole = median_seconds(split_by_depth_whole_field, mask, args.repeats)
        boxes = median_seconds(BOX_BY_BOX, mask, args.repeats)
        results["split_seconds"][name] = {"whole_field": round(whole, 3), "box_by_box": round(boxes, 3), "speed_up": round(whole / boxes, 1)}
        print(f"split_by_depth on the field's {name} mask: whole field {whole:.3f} s, box by box {boxes:.3f} s ({whole / boxes:.1f}x)", flush=True)

    results["png_encoding"] = png_encoding(image, args.repeats)
    print("PNG encoding of the field:", results["png_encoding"], flush=True)
    whole = segment_process(field, PATCH_TO_WHOLE_FIELD, args.repeats)
    boxes = segment_process(field, "", args.repeats)
    results["segment_kmeans_process_seconds"] = {"whole_field": round(whole, 2), "box_by_box": round(boxes, 2), "speed_up": round(whole / boxes, 2)}
    print(f"blastseg segment --method kmeans, 2592x1944, whole process: {whole:.2f} s -> {boxes:.2f} s", flush=True)

    results["same_bccd_test_network"] = same_instances(bccd_fields("test", 1), load_segmenter("default", device="cpu"), InstanceRules())
    print("BCCD test fields, bundled network:", results["same_bccd_test_network"], flush=True)
    heldout = listed(scan_dataset(DATA / "all_blasts"), ROOT / "configs" / "lists" / "all_blasts_heldout.txt")
    results["same_all_blasts_heldout_magenta"] = same_instances(heldout, create_segmenter("magenta"), InstanceRules(min_nucleus_fraction=0))
    print("all_blasts held-out fields, magenta:", results["same_all_blasts_heldout_magenta"], flush=True)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
