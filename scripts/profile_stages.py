"""Where one warm 2592x1944 field's time goes, stage by stage, for the k-means segmenter and the
bundled network (default engine): each stage timed alone with ``time.perf_counter`` on the
mosaic of BCCD fields that ``scripts/bench_predict.py`` makes, medians of ``--repeats``. The
cells' instances are split into the network's (or k-means') cells and the colour split's stained
objects, which ``segment.base.image_cells`` adds when a cell is not convex. Writes
``results/profile_stages.json``::

    python3 scripts/profile_stages.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bench_classify import DATA  # scripts/ is on the path when run as a script
from bench_predict import make_field
from blastseg.analysis import analyze_labels
from blastseg.batch import output_paths, write_image_outputs
from blastseg.folders import ImageInput
from blastseg.io import read_image, write_json
from blastseg.postprocess import InstanceRules, cell_instances
from blastseg.segment import create_segmenter, load_segmenter
from blastseg.segment.base import image_cells, stained_cells

ROOT = Path(__file__).resolve().parents[1]


def timed(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls, and the last call's answer."""
    times, answer = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = run()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3), answer


def stages(field: Path, segmenter, repeats: int) -> dict[str, float]:
    seconds: dict[str, float] = {}
    seconds["read"], image = timed(lambda: read_image(field), repeats)
    segmenter.segment(image)  # warm
    seconds["segment"], answer = timed(lambda: segmenter.segment(image), repeats)
    seconds["scale"], scale = timed(lambda: answer.scale_of(image), repeats)
    rules = InstanceRules()
    seconds["cell instances"], cells = timed(lambda: cell_instances(answer.labels, rules, scale.red_cell_px), repeats)
    seconds["stained objects (colour split)"], _ = timed(lambda: stained_cells(image, cells > 0, rules, scale.red_cell_px), repeats)
    seconds["instances with the colour split, in all"], instances = timed(lambda: image_cells(image, answer.labels, rules, scale.red_cell_px), repeats)
    seconds["cells table"], analysis = timed(lambda: analyze_labels(field.name, image, answer.labels, instances, scale=scale), repeats)
    with tempfile.TemporaryDirectory() as out:
        paths = output_paths(ImageInput(field, field.name), Path(out))
        seconds["mask, overlay and instance files"], _ = timed(lambda: write_image_outputs(paths, analysis, segmenter.target), repeats)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "profile_stages.json")
    args = parser.parse_args()
    field = make_field(DATA / "bccd", ROOT / "results" / "field_2592x1944.png")
    results: dict = {"date": date.today().isoformat(), "repeats": args.repeats}
    for name, segmenter in {"kmeans": create_segmenter("kmeans"), "bundled network": load_segmenter("default", device="cpu")}.items():
        results[name] = stages(field, segmenter, args.repeats)
        print(name, results[name], flush=True)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
