"""Running a segmenter over image files and writing the outputs named in the design notes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from blastseg.analysis import analyze_labels, count_cells
from blastseg.cells import COLUMNS
from blastseg.classify.model import CellClassifier
from blastseg.errors import OutputExistsError
from blastseg.io import read_image, write_csv, write_json, write_png, write_tiff
from blastseg.postprocess import InstanceConfig
from blastseg.preprocess import Pipeline
from blastseg.report import mask_image
from blastseg.segment import Segmentation

CELLS_CSV = "cells.csv"
SUMMARY_JSON = "summary.json"
CLASS_COLUMNS = ("class", "probability")


def output_paths(image: Path, out_dir: Path) -> dict[str, Path]:
    stem = image.stem
    return {
        "mask": out_dir / f"{stem}_mask.png",
        "overlay": out_dir / f"{stem}_overlay.png",
        "instances": out_dir / f"{stem}_instances.tif",
    }


def _segment_chunk(segmenter, images: list[np.ndarray]) -> list[Segmentation]:
    if hasattr(segmenter, "segment_many"):
        return segmenter.segment_many(images)
    return [segmenter.segment(image) for image in images]


def segment_files(
    images: Sequence[str | Path],
    segmenter,
    target: str,
    out_dir: str | Path,
    preprocess: Pipeline | None = None,
    overwrite: bool = False,
    on_done: Callable[[Path, Segmentation], None] | None = None,
    batch_size: int = 1,
    instances: InstanceConfig | None = None,
    classifier: CellClassifier | None = None,
    models: dict | None = None,
) -> list[dict[str, Path]]:
    """Segment each image file and write into ``out_dir``: ``NAME_mask.png``, ``NAME_overlay.png``,
    ``NAME_instances.tif`` (when cells were found), one ``cells.csv`` for all images and
    ``summary.json`` (cell counts per class and image, blast percentage, and ``models``: what
    segmented and classified, with its thresholds).

    Cells come from the label map as ``instances`` says (see :class:`InstanceConfig`), unless
    the segmenter separates objects itself; with a ``classifier`` each row gets a ``class`` and
    its ``probability``, and the overlay boxes and labels every cell in its class colour.
    Segmenters with ``segment_many`` get ``batch_size``
    images at a time. Every input is checked and every output name is checked for clashes
    before anything is written, so a bad file in the middle of a list does not leave half a result.
    """
    out_dir = Path(out_dir)
    images = [Path(p) for p in images]
    _refuse_clashes(images, out_dir, overwrite)
    preprocess = preprocess or Pipeline()
    instances = instances or InstanceConfig()
    written, rows, per_image = [], [], {}
    for first in range(0, len(images), batch_size):
        paths_in = images[first : first + batch_size]
        originals = [read_image(path) for path in paths_in]
        results = _segment_chunk(segmenter, [preprocess(image) for image in originals])
        for path, image, result in zip(paths_in, originals, results):
            paths = output_paths(path, out_dir)
            analysis = analyze_labels(path.name, image, result.labels, result.instances, classifier, instances)
            write_png(paths["mask"], mask_image(result.labels, target))
            write_png(paths["overlay"], analysis.overlay())
            if analysis.instances.max() > 0:
                write_tiff(paths["instances"], analysis.instances.astype(np.uint16))
            else:
                paths.pop("instances")
            rows += analysis.cells
            per_image[path.name] = analysis.summary()
            written.append(paths)
            if on_done:
                on_done(path, result)
    classes = classifier.classes if classifier else None
    write_csv(out_dir / CELLS_CSV, rows, [*COLUMNS, *CLASS_COLUMNS] if classifier else COLUMNS)
    summary = {"images": len(per_image), **count_cells(rows, classes), "per_image": per_image,
               "models": models or {}, "instances": dataclasses.asdict(instances)}
    write_json(out_dir / SUMMARY_JSON, summary)
    return written


def _refuse_clashes(images: Iterable[Path], out_dir: Path, overwrite: bool) -> None:
    stems: dict[str, Path] = {}
    for shared in (CELLS_CSV, SUMMARY_JSON):
        if not overwrite and (out_dir / shared).exists():
            raise OutputExistsError(f"{out_dir / shared} exists; choose another --out or pass --overwrite")
    for path in images:
        if path.stem in stems:
            raise OutputExistsError(f"{path} and {stems[path.stem]} would write the same output names")
        stems[path.stem] = path
        if not overwrite:
            existing = [p for p in output_paths(path, out_dir).values() if p.exists()]
            if existing:
                raise OutputExistsError(f"{existing[0]} exists; choose another --out or pass --overwrite")
