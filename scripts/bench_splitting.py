"""How far can instance rules go on all_blasts? Masks split into cells by each set of rules.

The hand-checked all_blasts fields (``tests/data/handchecked``) are split into cells by
``segment.base.image_cells`` (as ``predict`` does) under a grid of rules: split depth,
opening/closing size, the size split (``size_split``; ``none`` turns it off), the colour split
(``colour_split``: off, on), and the red-cell size at which the pixel sizes hold (``--rules-red-cell-px``; each field's own, estimated from its red cells, scales
them as ``predict`` does; ``none`` keeps them fixed). The masks are either perfect (the
union of the hand-checked cells: whatever merges remain are the rules' own) or a method's
(``--method magenta`` or a model folder; perfect masks carry no nuclei, so the size split is not
limited by them). Fields are scored in two halves, and all together: the
even-numbered ones chose ``size_split``'s settings, the odd-numbered ones are held out. Writes
``results/bench_splitting.json`` (or ``--out``)::

    python3 scripts/bench_splitting.py
    python3 scripts/bench_splitting.py --method magenta --out results/bench_splitting_magenta.json
"""

from __future__ import annotations

import argparse
import itertools
from datetime import date
from pathlib import Path

import numpy as np

from bench_travel import HANDCHECKED, method
from blastseg.evaluation.instances import match_instances, merged_cells
from blastseg.io import read_image, read_mask, write_json
from blastseg.labels import NUCLEUS
from blastseg.postprocess import InstanceRules
from blastseg.segment.base import Segmentation, image_cells

ROOT = Path(__file__).resolve().parents[1]


def scores(images: list[np.ndarray], label_maps: list[np.ndarray], references: list[np.ndarray], scales: list[float | None], rules: InstanceRules) -> dict:
    clean, matches = 0, []
    for image, labels, reference, red_cell_px in zip(images, label_maps, references, scales):
        found = image_cells(image, labels, rules, red_cell_px)
        clean += merged_cells(found, reference) == 0
        matches.append(match_instances(found, reference))
    matched, predicted, truth = (sum(getattr(m, key) for m in matches) for key in ("matched", "predicted", "reference"))
    return {
        "fields_without_merges": round(clean / len(references), 4),
        "recall": round(matched / truth, 4),
        "precision": round(matched / predicted, 4) if predicted else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", help="magenta, kmeans, otsu or a model folder (default: perfect masks)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--depths", type=float, nargs="+", default=[0.3, 0.2, 0.1, 0.05])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 3, 1], help="open_size = close_size")
    parser.add_argument("--size-splits", nargs="+", default=["none", "1.7"], help="size_split values (none: off)")
    parser.add_argument("--colour-splits", nargs="+", default=["off", "on"], choices=["off", "on"], help="colour_split values")
    parser.add_argument("--rules-red-cell-px", nargs="+", default=["none", "86"], help="red-cell sizes at which the pixel sizes hold (none: fixed pixels)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_splitting.json")
    args = parser.parse_args()
    paths = sorted((HANDCHECKED / "all_blasts").rglob("*.png"))
    references = [read_mask(path).astype(np.int32) for path in paths]
    images = [read_image(args.data / "all_blasts" / p.relative_to(HANDCHECKED / "all_blasts").with_suffix(".jpg")) for p in paths]
    if args.method:
        segmenter = method(args.method)
        answers = [segmenter.segment(image) for image in images]
    else:
        answers = [Segmentation(np.where(reference > 0, NUCLEUS, 0).astype(np.uint8)) for reference in references]
    label_maps = [answer.labels for answer in answers]
    scales = [answer.scale_of(image).red_cell_px for answer, image in zip(answers, images)]
    halves = {"even (tuning)": slice(0, None, 2), "odd (held out)": slice(1, None, 2), "all": slice(None)}
    rows = []
    grid = itertools.product(args.depths, args.sizes, args.size_splits, args.colour_splits, args.rules_red_cell_px)
    for depth, size, size_split, colour, at in grid:
        split_size, red_cell_px = (None if value == "none" else float(value) for value in (size_split, at))
        rules = InstanceRules(
            open_size=size,
            close_size=size,
            split_depth=depth,
            size_split=split_size,
            colour_split=colour == "on",
            min_nucleus_fraction=0,
            red_cell_px=red_cell_px,
        )
        row = {"split_depth": depth, "open_close": size, "size_split": split_size, "colour_split": colour == "on", "rules_red_cell_px": red_cell_px}
        for half, chosen in halves.items():
            row[half] = scores(images[chosen], label_maps[chosen], references[chosen], scales[chosen], rules)
        rows.append(row)
        print(row)
    write_json(
        args.out,
        {"date": date.today().isoformat(), "masks": args.method or "perfect", "fields": len(references), "min_area": InstanceRules().min_area, "rows": rows},
    )


if __name__ == "__main__":
    main()
