"""The red-cell ruler (``blastseg.scale.estimate_scale``) on real smears: does it follow a known rescale?

BCCD: every field is estimated at its own size and resized by 0.5x and 2x (area averaging down,
bilinear up); a field follows the factor when ``estimate(k) / k`` is within 10 % of ``estimate(1)``.
The VOC ``RBC`` boxes give an independent size: the median side of the square-ish boxes (aspect
0.85-1.18) clear of the border, per field. The other datasets (PBC, all_blasts, Zheng) have no
ruler of their own: their estimates are reported as a distribution, with the share of images
whose scale stays unknown. Writes ``results/bench_scale.json``::

    python3 scripts/bench_scale.py
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np

from blastseg.datasets.layouts import bccd_fields
from blastseg.io import read_image, write_json
from blastseg.scale import estimate_scale, resized

ROOT = Path(__file__).resolve().parents[1]
FACTORS = (0.5, 1.0, 2.0)
FOLDERS = ("pbc/*/*.jpg", "all_blasts/*/*.jpg", "zheng_wbc/Dataset1/*.bmp", "zheng_wbc/Dataset2/*.bmp")


def box_diameter(boxes, width: int, height: int) -> float | None:
    """The median side of a field's square-ish red-cell boxes clear of the border."""
    sides = [
        (b.xmax - b.xmin + b.ymax - b.ymin) / 2
        for b in boxes
        if b.label == "RBC"
        and b.ymax > b.ymin
        and 0.85 < (b.xmax - b.xmin) / (b.ymax - b.ymin) < 1.18
        and b.xmin > 1
        and b.ymin > 1
        and b.xmax < width - 2
        and b.ymax < height - 2
    ]
    return float(np.median(sides)) if sides else None


def bccd(root: Path) -> dict:
    rows, seconds = [], []
    for sample in bccd_fields(root):
        image = read_image(sample.image)
        row = {"field": sample.name, "box_px": box_diameter(sample.boxes or [], image.shape[1], image.shape[0])}
        for factor in FACTORS:
            started = time.perf_counter()
            scale = estimate_scale(resized(image, factor))
            seconds.append(time.perf_counter() - started)
            row[f"{factor}x"] = None if scale.red_cell_px is None else scale.red_cell_px / factor
            row[f"{factor}x_source"] = scale.source
        rows.append(row)
    summary: dict = {"fields": len(rows), "median_s_per_estimate": round(float(np.median(seconds)), 4)}
    for factor in (0.5, 2.0):
        ratios = np.array([r[f"{factor}x"] / r["1.0x"] if r[f"{factor}x"] and r["1.0x"] else np.nan for r in rows])
        summary[f"{factor}x"] = {
            "fields_within_10pct": round(float(np.mean(np.abs(ratios - 1) <= 0.1)), 4),
            "median_ratio": round(float(np.nanmedian(ratios)), 4),
            "unknown": int(np.isnan(ratios).sum()),
        }
    for factor in FACTORS:
        estimates = [r[f"{factor}x"] for r in rows if r[f"{factor}x"]]
        summary[f"median_px_at_{factor}x"] = round(float(np.median(estimates)) * factor, 2)
        summary[f"sources_at_{factor}x"] = dict(Counter(r[f"{factor}x_source"] for r in rows))
    to_box = [r["1.0x"] / r["box_px"] for r in rows if r["1.0x"] and r["box_px"]]
    summary["estimate_over_box_side"] = {"median": round(float(np.median(to_box)), 4), "iqr": [round(float(q), 4) for q in np.percentile(to_box, [25, 75])]}
    return {"summary": summary, "fields": rows}


def folder(root: Path, pattern: str) -> dict:
    estimates, sources = [], Counter()
    files = sorted(root.glob(pattern))
    for path in files:
        scale = estimate_scale(read_image(path))
        sources[scale.source] += 1
        if scale.known:
            estimates.append(scale.red_cell_px)
    quartiles = np.percentile(estimates, [10, 25, 50, 75, 90]).round(2).tolist() if estimates else []
    return {"images": len(files), "sources": dict(sources), "percentiles_10_25_50_75_90_px": quartiles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_scale.json")
    args = parser.parse_args()
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "bccd": bccd(args.data / "bccd"),
        "folders": {pattern: folder(args.data, pattern) for pattern in FOLDERS},
    }
    write_json(args.out, result)
    print(result["bccd"]["summary"])
    for pattern, stats in result["folders"].items():
        print(pattern, stats)


if __name__ == "__main__":
    main()
