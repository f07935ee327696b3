"""How far can instance rules go on all_blasts? Perfect masks, split into cells by the rules.

The union of the hand-checked cells of each all_blasts field (``tests/data/handchecked``) is
given as the label map, as if a segmenter were perfect, and ``postprocess.cell_instances``
splits it. Whatever merges remain are the instance rules' own, for each split depth and
opening/closing size. Writes ``results/bench_splitting.json``::

    python3 scripts/bench_splitting.py
"""

from __future__ import annotations

import argparse
import itertools
from datetime import date
from pathlib import Path

import numpy as np

from blastseg.evaluation.instances import match_instances, merged_cells
from blastseg.io import read_mask, write_json
from blastseg.labels import NUCLEUS
from blastseg.postprocess import InstanceRules, cell_instances

ROOT = Path(__file__).resolve().parents[1]
HANDCHECKED = ROOT / "tests" / "data" / "handchecked" / "all_blasts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=float, nargs="+", default=[0.3, 0.2, 0.1, 0.05])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 3, 1], help="open_size = close_size")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_splitting.json")
    args = parser.parse_args()
    references = [read_mask(path).astype(np.int32) for path in sorted(HANDCHECKED.rglob("*.png"))]
    rows = []
    for depth, size in itertools.product(args.depths, args.sizes):
        rules = InstanceRules(open_size=size, close_size=size, split_depth=depth, min_nucleus_fraction=0)
        clean, matches = 0, []
        for reference in references:
            found = cell_instances(np.where(reference > 0, NUCLEUS, 0).astype(np.uint8), rules)
            clean += merged_cells(found, reference) == 0
            matches.append(match_instances(found, reference))
        matched, predicted, truth = (sum(getattr(m, key) for m in matches) for key in ("matched", "predicted", "reference"))
        rows.append(
            {
                "split_depth": depth,
                "open_close": size,
                "fields_without_merges": round(clean / len(references), 4),
                "recall": round(matched / truth, 4),
                "precision": round(matched / predicted, 4),
            }
        )
        print(rows[-1])
    write_json(args.out, {"date": date.today().isoformat(), "fields": len(references), "min_area": InstanceRules().min_area, "rows": rows})


if __name__ == "__main__":
    main()
