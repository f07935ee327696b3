"""The batch runner: image files in, the output files of the design notes out.

For each ``NAME.ext``: ``NAME_mask.png``, ``NAME_overlay.png``, ``NAME_instances.tif`` (when cells
were found); for the whole batch one ``cells.csv`` and ``summary.json`` (cell counts per class and
image, blast percentage, and ``models``: what segmented and classified, with its thresholds).
``segment_with_recipe`` (classical methods) and ``predict_files`` (trained networks) are what the
``segment`` and ``predict`` commands call; ``segment_files`` runs any segmenter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from blastseg.analysis import analyze_labels, count_cells
from blastseg.artifacts import DEFAULT
from blastseg.cells import COLUMNS
from blastseg.config import StrictModel, load_config, validate
from blastseg.errors import OutputExistsError
from blastseg.folders import refuse_existing
from blastseg.io import read_image, write_csv, write_json, write_png, write_tiff
from blastseg.postprocess import InstanceRules, InstancesFile
from blastseg.preprocess import Pipeline
from blastseg.render import mask_image
from blastseg.runtime import DeviceName
from blastseg.segment import Segmentation, Segmenter, load_segmenter
from blastseg.segment.recipe import SegmentConfig

if TYPE_CHECKING:
    from blastseg.classify.model import CellClassifier

CELLS_CSV = "cells.csv"
SUMMARY_JSON = "summary.json"
CLASS_COLUMNS = ("class", "probability")


@dataclass
class BatchResult:
    """The files written per image (``mask``, ``overlay``, ``instances``) and what ``summary.json`` holds."""

    out_dir: Path
    written: list[dict[str, Path]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return sum(len(paths) for paths in self.written)


def output_paths(image: Path, out_dir: Path) -> dict[str, Path]:
    stem = image.stem
    return {
        "mask": out_dir / f"{stem}_mask.png",
        "overlay": out_dir / f"{stem}_overlay.png",
        "instances": out_dir / f"{stem}_instances.tif",
    }


def refuse_clashes(images: Sequence[Path], out_dir: Path, overwrite: bool) -> None:
    """Two inputs that would write the same names, or outputs already there, are refused up front."""
    stems: dict[str, Path] = {}
    for path in images:
        if path.stem in stems:
            raise OutputExistsError(f"{path} and {stems[path.stem]} would write the same output names")
        stems[path.stem] = path
    shared = [out_dir / CELLS_CSV, out_dir / SUMMARY_JSON]
    refuse_existing([*shared, *(p for image in images for p in output_paths(image, out_dir).values())], overwrite)


def write_image_outputs(paths: dict[str, Path], labels: np.ndarray, target: str, overlay: np.ndarray, instances: np.ndarray) -> dict[str, Path]:
    """The mask, the overlay, and the instance TIFF when there are cells; returns what was written."""
    write_png(paths["mask"], mask_image(labels, target))
    write_png(paths["overlay"], overlay)
    if instances.max() == 0:
        return {k: v for k, v in paths.items() if k != "instances"}
    write_tiff(paths["instances"], instances.astype(np.uint16))
    return paths


def segment_files(
    images: Sequence[str | Path],
    segmenter: Segmenter,
    out_dir: str | Path,
    preprocess: Pipeline | None = None,
    overwrite: bool = False,
    on_done: Callable[[Path, Segmentation], None] | None = None,
    batch_size: int = 1,
    rules: InstanceRules | None = None,
    classifier: CellClassifier | None = None,
    provenance: dict[str, Any] | None = None,
) -> BatchResult:
    """Segment each image file and write its outputs into ``out_dir`` (module docstring).

    Cells come from the label map as ``rules`` say (see :class:`InstanceRules`), unless the
    segmenter separates objects itself; with a ``classifier`` (a
    :class:`~blastseg.classify.model.CellClassifier`) each row gets a ``class`` and its
    ``probability``, and the overlay boxes and labels every cell in its class colour.
    ``segment_many`` gets ``batch_size`` images at a time. Every output name is checked for
    clashes before anything is written. ``provenance`` describes the segmenter in ``summary.json``.
    """
    out_dir, images = Path(out_dir), [Path(p) for p in images]
    refuse_clashes(images, out_dir, overwrite)
    preprocess, rules = preprocess or Pipeline(), rules or InstanceRules()
    result, rows, per_image = BatchResult(out_dir), [], {}
    for first in range(0, len(images), batch_size):
        paths_in = images[first : first + batch_size]
        originals = [read_image(path) for path in paths_in]
        for path, image, answer in zip(paths_in, originals, segmenter.segment_many([preprocess(im) for im in originals])):
            analysis = analyze_labels(path.name, image, answer.labels, answer.instances, classifier, rules)
            paths = output_paths(path, out_dir)
            result.written.append(write_image_outputs(paths, answer.labels, segmenter.target, analysis.overlay(), analysis.instances))
            rows += analysis.cells
            per_image[path.name] = asdict(analysis.summary())
            if on_done:
                on_done(path, answer)
    models = {"segmentation": provenance or {}}
    if classifier is not None:
        models["classifier"] = classifier.provenance()
    write_csv(out_dir / CELLS_CSV, rows, [*COLUMNS, *CLASS_COLUMNS] if classifier else COLUMNS)
    counts = count_cells(rows, classifier.classes if classifier else None)
    result.summary = {"images": len(per_image), **asdict(counts), "per_image": per_image, "models": models, "instances": rules.model_dump()}
    write_json(out_dir / SUMMARY_JSON, result.summary)
    return result


def segment_with_recipe(
    images: Sequence[str | Path],
    config: SegmentConfig,
    out_dir: str | Path,
    overwrite: bool = False,
    on_done: Callable[[Path, Segmentation], None] | None = None,
) -> BatchResult:
    """``blastseg segment``: a classical recipe over image files."""
    return segment_files(
        images,
        config.segmenter(),
        out_dir,
        Pipeline.from_config(config.preprocess),
        overwrite,
        on_done,
        rules=config.instances,
        provenance=config.provenance(),
    )


class PredictOptions(StrictModel):
    """How ``blastseg predict`` segments and classifies (every field has a command-line flag)."""

    checkpoint: str = DEFAULT
    classifier: str | None = None
    threshold: float | None = Field(default=None, gt=0, lt=1)
    tta: bool = False
    device: DeviceName = "auto"
    tile_size: int = Field(default=512, ge=32)
    batch_size: int = Field(default=4, ge=1)
    instances: InstanceRules = Field(default_factory=InstanceRules)


def instance_rules(path: str | Path | None = None, **overrides: Any) -> InstanceRules:
    """The rules of an ``instances:`` YAML file (defaults without one), with the non-``None`` overrides."""
    rules = load_config(path, InstancesFile).instances if path else InstanceRules()
    given = {k: v for k, v in overrides.items() if v is not None}
    return validate(InstanceRules, {**rules.model_dump(), **given}, "instance rules")


def predict_files(
    images: Sequence[str | Path],
    out_dir: str | Path,
    options: PredictOptions | None = None,
    overwrite: bool = False,
    on_done: Callable[[Path, Segmentation], None] | None = None,
) -> BatchResult:
    """``blastseg predict``: a trained network (and optionally a cell classifier) over image files."""
    from blastseg.classify.model import CellClassifier

    options = options or PredictOptions()
    classifier = CellClassifier.load(options.classifier, device=options.device) if options.classifier else None
    segmenter = load_segmenter(
        options.checkpoint,
        device=options.device,
        tile_size=options.tile_size,
        batch_size=options.batch_size,
        tta=options.tta,
        threshold=options.threshold,
    )
    return segment_files(
        images,
        segmenter,
        out_dir,
        overwrite=overwrite,
        on_done=on_done,
        batch_size=options.batch_size,
        rules=options.instances,
        classifier=classifier,
        provenance=segmenter.provenance(),
    )
