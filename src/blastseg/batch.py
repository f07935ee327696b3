"""The batch runner: image files in, the output files of the design notes out.

For each ``NAME.ext``: ``NAME_mask.png``, ``NAME_overlay.png``, ``NAME_instances.tif`` (when cells
were found) and, when asked (:class:`BlastReport`), ``NAME.xyc`` with the blast centroids; for the
whole batch one ``cells.csv`` and ``summary.json`` (cell counts per class and image, blast
percentage and its interval, the images flagged for blasts, the images that ``failed`` and why,
and ``models``: what segmented and classified, with its thresholds). ``segment_with_recipe``
(classical methods) and ``predict_files`` (trained networks) are what the ``segment`` and
``predict`` commands call; ``segment_files`` runs any segmenter.

A batch keeps what it finished: each image's rows are appended to ``cells.csv`` and
``summary.json`` is rewritten (atomically) as soon as the image is done, an image that fails is
listed and the others go on, and ``resume`` carries on after a kill: images that
``summary.json`` lists as done are skipped and ``cells.csv`` keeps exactly their rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from blastseg.analysis import Analysis, CellCounts, analyze_labels, total_counts
from blastseg.annotations import xyc_text
from blastseg.artifacts import DEFAULT
from blastseg.cells import COLUMNS
from blastseg.config import StrictModel, load_config, validate
from blastseg.errors import ConfigError, ImageReadError, OutputExistsError, describe_error
from blastseg.folders import prepare_folder, refuse_existing
from blastseg.io import MAX_PIXELS, append_csv, read_image, write_bytes, write_csv, write_json, write_png, write_tiff
from blastseg.labels import BLAST
from blastseg.postprocess import InstanceRules, InstancesFile
from blastseg.preprocess import Pipeline
from blastseg.render import mask_image
from blastseg.runtime import DeviceName
from blastseg.scale import Scale, given_scale
from blastseg.segment import Segmentation, Segmenter, load_segmenter
from blastseg.segment.engines import EngineName
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

    @property
    def failed(self) -> list[dict[str, str]]:
        """The images that failed, each with its one-line reason."""
        return self.summary.get("failed", [])


@dataclass
class BlastReport:
    """What a batch adds when its classifier knows blasts: ``NAME.xyc`` files of the blast
    centroids in ALL-IDB1's format (``xyc``), and a flag on each image whose blast percentage
    reaches ``alert_percent``."""

    xyc: bool = False
    alert_percent: float | None = None

    def check(self, classes: Sequence[str] | None) -> None:
        """Refuse the report when no classifier says which cells are blasts."""
        asked = [flag for flag, on in (("--xyc", self.xyc), ("--blast-alert", self.alert_percent is not None)) if on]
        if asked and BLAST not in (classes or []):
            have = f"its classes are {', '.join(classes)}" if classes else "none was given"
            raise ConfigError(f"{' and '.join(asked)} {'needs' if len(asked) == 1 else 'need'} a classifier with a '{BLAST}' class; {have}")

    def flagged(self, counts: CellCounts) -> bool | None:
        """Whether an image's blasts reach the alert (``None`` without an alert or a percentage)."""
        if self.alert_percent is None or counts.blast_percent is None:
            return None
        return counts.blast_percent >= self.alert_percent


def output_paths(image: Path, out_dir: Path, xyc: bool = False) -> dict[str, Path]:
    stem = image.stem
    paths = {
        "mask": out_dir / f"{stem}_mask.png",
        "overlay": out_dir / f"{stem}_overlay.png",
        "instances": out_dir / f"{stem}_instances.tif",
    }
    return {**paths, "xyc": out_dir / f"{stem}.xyc"} if xyc else paths


@dataclass
class OutputRules:
    """What a batch may do to its output folder: replace blastseg's files of an earlier run
    (``overwrite``), carry on an interrupted one (``resume``), or stop at the first failed image
    (``fail_fast``)."""

    overwrite: bool = False
    resume: bool = False
    fail_fast: bool = False


def check_inputs(images: Sequence[Path], out_dir: Path) -> None:
    """Every input is a file, and no two write the same output names; checked before any work."""
    if not images:
        raise ImageReadError("no image files given")
    stems: dict[str, Path] = {}
    for path in images:
        if not path.is_file():
            raise ImageReadError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
        if path.stem in stems:
            raise OutputExistsError(f"{path} and {stems[path.stem]} would write the same output names")
        stems[path.stem] = path


def write_image_outputs(paths: dict[str, Path], analysis: Analysis, target: str) -> dict[str, Path]:
    """The mask, the overlay, the instance TIFF when there are cells, and the blast centroids when
    ``paths`` names an ``xyc`` file (empty without blasts); returns what was written."""
    write_png(paths["mask"], mask_image(analysis.labels, target))
    write_png(paths["overlay"], analysis.overlay())
    if "xyc" in paths:
        blasts = [(cell["x"], cell["y"]) for cell in analysis.cells if cell.get("class") == BLAST]
        write_bytes(paths["xyc"], xyc_text(np.array(blasts)).encode())
    if analysis.instances.max() == 0:
        paths["instances"].unlink(missing_ok=True)  # an earlier run's, for an image that now has no cell
        return {k: v for k, v in paths.items() if k != "instances"}
    write_tiff(paths["instances"], analysis.instances.astype(np.uint16))
    return paths


class BatchLedger:
    """``cells.csv`` and ``summary.json`` of a batch, kept up to date image by image."""

    def __init__(self, out_dir: Path, columns: Sequence[str], header: dict[str, Any], classes: Sequence[str] | None):
        self.out_dir, self.columns, self.classes = out_dir, list(columns), classes
        self.header = json.loads(json.dumps(header, default=str))  # as summary.json holds it, to compare on resume
        self.per_image: dict[str, dict] = {}
        self.failed: list[dict[str, str]] = []

    @property
    def cells_csv(self) -> Path:
        return self.out_dir / CELLS_CSV

    def start(self, rules: OutputRules) -> None:
        """A fresh ledger, or (``resume``) the finished images of the last run and exactly their rows."""
        summary_path = self.out_dir / SUMMARY_JSON
        if rules.resume and summary_path.is_file():
            saved = read_summary(summary_path)
            for key in ("models", "instances"):
                if saved.get(key) != self.header[key]:
                    raise OutputExistsError(f"{summary_path}: that batch used other {key}; resume it with the same ones, or pass --overwrite")
            self.per_image = saved["per_image"]
            kept = [row for row in read_rows(self.cells_csv) if row.get("image") in self.per_image]
            write_csv(self.cells_csv, kept, self.columns)
        else:
            write_csv(self.cells_csv, [], self.columns)
        self.save()

    def done(self, name: str) -> bool:
        return name in self.per_image

    def add(self, name: str, rows: list[dict], counts: CellCounts, scale: Scale, rescale: dict | None = None, blast_alert: bool | None = None) -> None:
        """Record one finished image: its rows, counts, scale, how the network rescaled it (if it
        did) and whether its blasts reach the alert (if one was set)."""
        append_csv(self.cells_csv, rows, self.columns)
        extras = {"network_rescale": rescale, "blast_alert": blast_alert}
        self.per_image[name] = {**asdict(counts), "scale": scale.as_dict(), **{k: v for k, v in extras.items() if v is not None}}
        self.save()

    def fail(self, name: str, reason: str) -> None:
        self.failed.append({"image": name, "error": reason})
        self.save()

    def summary(self) -> dict[str, Any]:
        counts = total_counts(self.per_image.values(), self.classes)
        alerts = {"blast_alert_images": [name for name, part in self.per_image.items() if part.get("blast_alert")]} if "blast_alert" in self.header else {}
        return {"images": len(self.per_image), **asdict(counts), **alerts, "per_image": self.per_image, "failed": self.failed, **self.header}

    def save(self) -> None:
        write_json(self.out_dir / SUMMARY_JSON, self.summary())


def read_summary(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise OutputExistsError(f"{path}: not a readable summary ({type(error).__name__}); pass --overwrite to start the batch again") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("per_image"), dict):
        raise OutputExistsError(f"{path}: not a blastseg batch summary; pass --overwrite to start the batch again")
    return summary


def read_rows(path: Path) -> list[dict]:
    """The complete rows of a cells table (a line cut short by a kill has too few fields and is dropped)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return [row for row in reader if None not in row.values() and None not in row]


def segment_chunk(
    paths: Sequence[Path], segmenter: Segmenter, preprocess: Pipeline, max_pixels: int
) -> list[tuple[Path, np.ndarray | None, Segmentation | Exception]]:
    """Read ``paths`` and segment them in one ``segment_many`` call: each path with its image and
    its segmentation, or with the error that stopped it (the others go on)."""
    images: dict[Path, np.ndarray] = {}
    errors: dict[Path, Exception] = {}
    for path in paths:
        try:
            images[path] = read_image(path, max_pixels)
        except Exception as error:
            errors[path] = error
    answers: dict[Path, Segmentation | Exception] = {}
    try:
        answers = dict(zip(images, segmenter.segment_many([preprocess(image) for image in images.values()]))) if images else {}
    except Exception as error:  # the whole chunk failed together (out of memory, say)
        answers = dict.fromkeys(images, error)
    return [(path, images.get(path), errors.get(path) or answers[path]) for path in paths]


def segment_files(
    images: Sequence[str | Path],
    segmenter: Segmenter,
    out_dir: str | Path,
    preprocess: Pipeline | None = None,
    output: OutputRules | None = None,
    on_done: Callable[[Path, str | None], None] | None = None,
    batch_size: int = 1,
    rules: InstanceRules | None = None,
    classifier: CellClassifier | None = None,
    provenance: dict[str, Any] | None = None,
    max_pixels: int = MAX_PIXELS,
    scale: Scale | None = None,
    report: BlastReport | None = None,
) -> BatchResult:
    """Segment each image file and write its outputs into ``out_dir`` (module docstring).

    Cells come from the label map as ``rules`` say (see :class:`InstanceRules`), unless the
    segmenter separates objects itself; with a ``classifier`` (a
    :class:`~blastseg.classify.model.CellClassifier`) each row gets a ``class`` and its
    ``probability``, and the overlay boxes and labels every cell in its class colour.
    ``segment_many`` gets ``batch_size`` images at a time. Inputs, output names and the folder
    are checked before anything is written; ``output`` says what may happen to earlier files.
    ``on_done(path, error)`` is called per image, ``error`` the one-line reason it failed or ``None``.
    ``provenance`` describes the segmenter in ``summary.json``. Each image's scale (red-cell
    diameter in pixels, pixel size in micrometres, and its source) is ``scale`` when given, else
    estimated from its red cells (:mod:`blastseg.scale`); ``summary.json`` records it per image and
    ``cells.csv`` gives sizes in micrometres wherever it is known. ``report`` asks for the blast
    centroid files and the blast alert (:class:`BlastReport`).
    """
    out_dir, images, output = Path(out_dir), [Path(p) for p in images], output or OutputRules()
    preprocess, rules, report = preprocess or Pipeline(), rules or InstanceRules(), report or BlastReport()
    check_inputs(images, out_dir)
    report.check(classifier.classes if classifier else None)
    prepare_folder(out_dir)
    if not output.resume:
        shared = [out_dir / CELLS_CSV, out_dir / SUMMARY_JSON]
        refuse_existing([*shared, *(p for image in images for p in output_paths(image, out_dir, report.xyc).values())], output.overwrite)
    models = {"segmentation": provenance or {}}
    if classifier is not None:
        models["classifier"] = classifier.provenance()
    columns = [*COLUMNS, *CLASS_COLUMNS] if classifier else COLUMNS
    header = {"models": models, "instances": rules.model_dump(), "scale": scale.as_dict() if scale else "estimated from red cells"}
    if report.alert_percent is not None:
        header["blast_alert"] = {"percent": report.alert_percent}
    ledger = BatchLedger(out_dir, columns, header, classifier.classes if classifier else None)
    ledger.start(output)
    result = BatchResult(out_dir)
    todo = [path for path in images if not ledger.done(path.name)]
    for first in range(0, len(todo), batch_size):
        for path, image, answer in segment_chunk(todo[first : first + batch_size], segmenter, preprocess, max_pixels):
            reason = describe_error(answer) if isinstance(answer, Exception) else None
            if reason is None:
                try:
                    image_scale = scale or answer.scale_of(image)
                    analysis = analyze_labels(path.name, image, answer.labels, answer.instances, classifier, rules, image_scale)
                    paths = write_image_outputs(output_paths(path, out_dir, report.xyc), analysis, segmenter.target)
                    counts = analysis.summary()
                    ledger.add(path.name, analysis.cells, counts, image_scale, answer.info.get("rescale"), report.flagged(counts))
                    result.written.append(paths)
                except Exception as error:  # this image failed: say why and go on with the others
                    reason = describe_error(error)
            if reason is not None:
                ledger.fail(path.name, reason)
            if on_done:
                on_done(path, reason)
            if reason is not None and output.fail_fast:
                result.summary = ledger.summary()
                return result
    result.summary = ledger.summary()
    return result


def segment_with_recipe(
    images: Sequence[str | Path],
    config: SegmentConfig,
    out_dir: str | Path,
    output: OutputRules | None = None,
    on_done: Callable[[Path, str | None], None] | None = None,
    scale: Scale | None = None,
) -> BatchResult:
    """``blastseg segment``: a classical recipe over image files (``scale`` as in :func:`segment_files`)."""
    return segment_files(
        images,
        config.segmenter(),
        out_dir,
        Pipeline.from_config(config.preprocess),
        output,
        on_done,
        rules=config.instances,
        provenance=config.provenance(),
        max_pixels=config.max_pixels,
        scale=scale,
    )


class ScaleOptions(StrictModel):
    """The image scale a user may state instead of having it estimated (``--cell-diameter``, ``--pixel-size``)."""

    cell_diameter: float | None = Field(default=None, gt=0, le=100_000, description="red-cell diameter in pixels (default: estimated per image)")
    pixel_size: float | None = Field(default=None, gt=0, le=1000, description="micrometres per pixel (default: from the red cells)")

    @model_validator(mode="after")
    def _one_scale(self) -> ScaleOptions:
        self.scale()  # both at once are refused
        return self

    def scale(self) -> Scale | None:
        """The scale the user gave, if any."""
        return given_scale(self.cell_diameter, self.pixel_size)


class PredictOptions(ScaleOptions):
    """How ``blastseg predict`` segments and classifies (every field has a command-line flag)."""

    checkpoint: str = DEFAULT
    classifier: str | None = Field(default=None, description="a classifier file or run folder, 'default' (the bundled one), or none (also 'none')")
    threshold: float | None = Field(default=None, gt=0, lt=1)
    tta: bool = False
    device: DeviceName = "auto"
    engine: EngineName = "auto"
    regions: bool = Field(default=True, description="full resolution only around the cells a half-resolution pass finds")
    tile_size: int = Field(default=512, ge=32, le=8192)
    batch_size: int = Field(default=4, ge=1, le=256)
    instances: InstanceRules = Field(default_factory=InstanceRules)
    max_pixels: int = Field(default=MAX_PIXELS, ge=1, description="larger images are refused before they are decoded")
    xyc: bool = Field(default=False, description="write NAME.xyc with the blast centroids (ALL-IDB1's format)")
    blast_alert: float | None = Field(default=None, ge=0, le=100, description="flag each image whose blast percentage reaches this")

    @field_validator("classifier")
    @classmethod
    def _none_is_no_classifier(cls, value: str | None) -> str | None:
        return None if value is None or value.strip().lower() == "none" else value

    def report(self) -> BlastReport:
        return BlastReport(self.xyc, self.blast_alert)


def instance_rules(path: str | Path | None = None, **overrides: Any) -> InstanceRules:
    """The rules of an ``instances:`` YAML file (defaults without one), with the non-``None`` overrides."""
    rules = load_config(path, InstancesFile).instances if path else InstanceRules()
    given = {k: v for k, v in overrides.items() if v is not None}
    return validate(InstanceRules, {**rules.model_dump(), **given}, "instance rules")


def load_classifier(name: str, device: str) -> CellClassifier:
    """The cell classifier ``name`` names (imported here: it loads torch, which a run without one never needs)."""
    from blastseg.classify.model import CellClassifier

    return CellClassifier.load(name, device=device)


def predict_files(
    images: Sequence[str | Path],
    out_dir: str | Path,
    options: PredictOptions | None = None,
    output: OutputRules | None = None,
    on_done: Callable[[Path, str | None], None] | None = None,
) -> BatchResult:
    """``blastseg predict``: a trained network (and optionally a cell classifier) over image files."""
    options, images = options or PredictOptions(), [Path(p) for p in images]
    check_inputs(images, Path(out_dir))  # before the models load
    classifier = load_classifier(options.classifier, options.device) if options.classifier else None
    options.report().check(classifier.classes if classifier else None)  # before the output folder is made
    prepare_folder(out_dir)
    segmenter = load_segmenter(
        options.checkpoint,
        engine=options.engine,
        regions=options.regions,
        device=options.device,
        tile_size=options.tile_size,
        batch_size=options.batch_size,
        tta=options.tta,
        threshold=options.threshold,
        scale=options.scale(),
    )
    return segment_files(
        images,
        segmenter,
        out_dir,
        output=output,
        on_done=on_done,
        batch_size=options.batch_size,
        rules=options.instances,
        classifier=classifier,
        provenance=segmenter.provenance(),
        max_pixels=options.max_pixels,
        scale=options.scale(),
        report=options.report(),
    )
