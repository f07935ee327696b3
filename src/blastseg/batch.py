"""The batch runner: image files and folders in, the output files of the design notes out.

For each image ``NAME.ext`` (found in a folder: ``SUB/NAME.ext``, and its outputs go to ``SUB/``
of the output folder): ``NAME_mask.png``, ``NAME_overlay.png``, ``NAME_instances.tif`` (when
cells were found) and, when asked (:class:`BlastReport`), ``NAME.xyc`` with the blast centroids;
for the whole batch one ``cells.csv``, ``images.jsonl`` (a line per finished image: its counts
and scale) and ``summary.json`` (cell counts per class and image, blast percentage and its
interval, the images flagged for blasts, the images that ``failed`` and why, and ``models``: what
segmented and classified, with its thresholds). ``segment_with_recipe`` (classical methods) and
``predict_files`` (trained networks) are what the ``segment`` and ``predict`` commands call;
``segment_files`` runs any segmenter.

A batch keeps what it finished: as each image is done its rows are appended to ``cells.csv`` and
its line to ``images.jsonl``, both flushed to disk; ``summary.json`` is rewritten (atomically)
every few seconds and at the end. An image that fails is listed and the others go on. With
``skip_existing`` a batch carries on after a kill: the images ``images.jsonl`` lists whose
outputs are still there are skipped, and ``cells.csv`` keeps exactly their rows.

``workers`` processes can share the work: each loads the models once, takes a few images at a
time from a bounded queue (memory stays flat however many files there are), and writes their
outputs; rows then arrive in the order images finish.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from blastseg.analysis import Analysis, CellCounts, analyze_labels, total_counts
from blastseg.annotations import xyc_text
from blastseg.artifacts import DEFAULT
from blastseg.cells import COLUMNS
from blastseg.classify.model import CellClassifier
from blastseg.cluster import DaskCluster, run_on_dask
from blastseg.config import StrictModel, load_config, validate
from blastseg.errors import ConfigError, ImageReadError, OutputError, OutputExistsError, describe_error
from blastseg.folders import ImageInput, find_images, prepare_folder, refuse_existing
from blastseg.io import MAX_PIXELS, append_csv, append_text, read_image, write_bytes, write_csv, write_json, write_png, write_tiff
from blastseg.labels import BLAST
from blastseg.postprocess import InstanceRules, InstancesFile
from blastseg.preprocess import Pipeline
from blastseg.render import mask_image
from blastseg.runtime import DeviceName, cpu_count, share_threads
from blastseg.scale import Scale, given_scale
from blastseg.segment import Segmentation, Segmenter, load_segmenter
from blastseg.segment.engines import EngineName
from blastseg.segment.recipe import SegmentConfig

CELLS_CSV = "cells.csv"
SUMMARY_JSON = "summary.json"
JOURNAL = "images.jsonl"
SUMMARY_EVERY_S = 5.0  # summary.json is rewritten at most this often while a batch runs
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


def output_paths(image: ImageInput, out_dir: Path, xyc: bool = False) -> dict[str, Path]:
    """Where an image's outputs go: its name's folders under ``out_dir``, then ``STEM_mask.png`` and so on."""
    base = out_dir / image.stem
    paths = {
        "mask": base.with_name(f"{base.name}_mask.png"),
        "overlay": base.with_name(f"{base.name}_overlay.png"),
        "instances": base.with_name(f"{base.name}_instances.tif"),
    }
    return {**paths, "xyc": base.with_name(f"{base.name}.xyc")} if xyc else paths


@dataclass
class OutputRules:
    """What a batch may do to its output folder: replace blastseg's files of an earlier run
    (``overwrite``), carry on an interrupted one, skipping the images it finished
    (``skip_existing``), or stop at the first failed image (``fail_fast``)."""

    overwrite: bool = False
    skip_existing: bool = False
    fail_fast: bool = False


def check_inputs(images: Sequence[ImageInput]) -> None:
    """Every input is a file, and no two write the same output names; checked before any work."""
    if not images:
        raise ImageReadError("no image files given")
    stems: dict[str, Path] = {}
    for image in images:
        if not image.path.is_file():
            raise ImageReadError(f"{image.path}: no such file" if not image.path.exists() else f"{image.path}: not a file")
        if str(image.stem) in stems:
            raise OutputExistsError(f"{image.path} and {stems[str(image.stem)]} would write the same output names")
        stems[str(image.stem)] = image.path


def write_image_outputs(paths: dict[str, Path], analysis: Analysis, target: str) -> dict[str, Path]:
    """The mask, the overlay, the instance TIFF when there are cells, and the blast centroids when
    ``paths`` names an ``xyc`` file (empty without blasts); returns what was written."""
    paths["mask"].parent.mkdir(parents=True, exist_ok=True)
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


def outputs_present(paths: dict[str, Path]) -> bool:
    """Whether an image's mask and overlay are there (what ``skip_existing`` asks of a finished image)."""
    return paths["mask"].is_file() and paths["overlay"].is_file()


@dataclass
class ImageOutcome:
    """What became of one image: the files written, its ``rows`` for ``cells.csv`` and its
    ``record`` for ``summary.json``, or the one-line ``reason`` it failed."""

    image: ImageInput
    written: dict[str, Path] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


def image_record(counts: CellCounts, scale: Scale, rescale: dict | None = None, blast_alert: bool | None = None) -> dict[str, Any]:
    """What ``summary.json`` keeps of one image: its counts, its scale, how the network rescaled it
    (if it did) and whether its blasts reach the alert (if one was set)."""
    extras = {"network_rescale": rescale, "blast_alert": blast_alert}
    return {**asdict(counts), "scale": scale.as_dict(), **{k: v for k, v in extras.items() if v is not None}}


class BatchLedger:
    """``cells.csv``, ``images.jsonl`` and ``summary.json`` of a batch, kept up to date image by image."""

    def __init__(self, out_dir: Path, columns: Sequence[str], header: dict[str, Any], classes: Sequence[str] | None):
        self.out_dir, self.columns, self.classes = out_dir, list(columns), classes
        self.header = json.loads(json.dumps(header, default=str))  # as summary.json holds it, to compare on resume
        self.per_image: dict[str, dict] = {}
        self.failed: list[dict[str, str]] = []
        self.saved_at = 0.0

    @property
    def cells_csv(self) -> Path:
        return self.out_dir / CELLS_CSV

    @property
    def journal(self) -> Path:
        return self.out_dir / JOURNAL

    def start(self, rules: OutputRules, still_there: Callable[[str], bool] = lambda name: True) -> None:
        """A fresh ledger, or (``skip_existing``) the images the last run finished whose outputs are
        ``still_there``, and exactly their rows."""
        summary_path = self.out_dir / SUMMARY_JSON
        if rules.skip_existing and summary_path.is_file():
            saved = read_summary(summary_path)
            for key in ("models", "instances"):
                if saved.get(key) != self.header[key]:
                    raise OutputExistsError(f"{summary_path}: that batch used other {key}; carry it on with the same ones, or pass --overwrite")
            self.per_image = {name: record for name, record in read_journal(self.journal).items() if still_there(name)}
        kept = [row for row in read_rows(self.cells_csv) if row.get("image") in self.per_image]
        write_csv(self.cells_csv, kept, self.columns)
        write_bytes(self.journal, "".join(journal_line(name, record) for name, record in self.per_image.items()).encode())
        self.save(force=True)

    def done(self, name: str) -> bool:
        return name in self.per_image

    def add(self, name: str, rows: list[dict], record: dict[str, Any]) -> None:
        """Record one finished image: its rows, then its journal line (which marks it done)."""
        append_csv(self.cells_csv, rows, self.columns)
        append_text(self.journal, journal_line(name, record))
        self.per_image[name] = record
        self.save()

    def fail(self, name: str, reason: str) -> None:
        self.failed.append({"image": name, "error": reason})
        self.save()

    def summary(self) -> dict[str, Any]:
        counts = total_counts(self.per_image.values(), self.classes)
        alerts = {"blast_alert_images": [name for name, part in self.per_image.items() if part.get("blast_alert")]} if "blast_alert" in self.header else {}
        return {"images": len(self.per_image), **asdict(counts), **alerts, "per_image": self.per_image, "failed": self.failed, **self.header}

    def save(self, force: bool = False) -> None:
        """Rewrite ``summary.json``: when ``force``d, else at most every ``SUMMARY_EVERY_S`` seconds."""
        if force or time.monotonic() - self.saved_at >= SUMMARY_EVERY_S:
            write_json(self.out_dir / SUMMARY_JSON, self.summary())
            self.saved_at = time.monotonic()


def journal_line(name: str, record: dict[str, Any]) -> str:
    return json.dumps({"image": name, **record}, default=str) + "\n"


def read_journal(path: Path) -> dict[str, dict]:
    """The images ``images.jsonl`` lists as finished, each with its record (a line cut short by a kill is dropped)."""
    if not path.is_file():
        return {}
    finished = {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("image"), str):
            finished[record.pop("image")] = record
    return finished


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
    images: Sequence[ImageInput], segmenter: Segmenter, preprocess: Pipeline, max_pixels: int
) -> list[tuple[ImageInput, np.ndarray | None, Segmentation | Exception]]:
    """Read ``images`` and segment them in one ``segment_many`` call: each with its pixels and
    its segmentation, or with the error that stopped it (the others go on)."""
    pixels: dict[ImageInput, np.ndarray] = {}
    errors: dict[ImageInput, Exception] = {}
    for image in images:
        try:
            pixels[image] = read_image(image.path, max_pixels)
        except Exception as error:
            errors[image] = error
    answers: dict[ImageInput, Segmentation | Exception] = {}
    try:
        answers = dict(zip(pixels, segmenter.segment_many([preprocess(array) for array in pixels.values()]))) if pixels else {}
    except Exception as error:  # the whole chunk failed together (out of memory, say)
        answers = dict.fromkeys(pixels, error)
    return [(image, pixels.get(image), errors.get(image) or answers[image]) for image in images]


@dataclass
class BatchJob:
    """Everything that turns image files into their outputs: what each worker process gets (pickled)."""

    segmenter: Segmenter
    out_dir: Path
    preprocess: Pipeline = field(default_factory=Pipeline)
    rules: InstanceRules = field(default_factory=InstanceRules)
    classifier: CellClassifier | None = None
    scale: Scale | None = None
    report: BlastReport = field(default_factory=BlastReport)
    max_pixels: int = MAX_PIXELS
    fail_fast: bool = False
    kept: Path | None = None
    """Where each finished image's outcome waits (:func:`keeping_outcomes`), so that the same
    images run again (a Dask task whose worker died) are not redone."""

    def run(self, images: Sequence[ImageInput]) -> list[ImageOutcome]:
        """Segment, analyse and write a few images (one ``segment_many`` call), taking those
        already ``kept``; with ``fail_fast``, none is run after the first that fails."""
        outcomes = {image: outcome for image in images if (outcome := self.kept_outcome(image)) is not None}
        todo = [image for image in images if image not in outcomes]
        for image, pixels, answer in segment_chunk(todo, self.segmenter, self.preprocess, self.max_pixels):
            try:
                if isinstance(answer, Exception):
                    raise answer
                scale = self.scale or answer.scale_of(pixels)
                analysis = analyze_labels(image.name, pixels, answer.labels, answer.instances, self.classifier, self.rules, scale)
                written = write_image_outputs(output_paths(image, self.out_dir, self.report.xyc), analysis, self.segmenter.target)
                counts = analysis.summary()
                record = image_record(counts, scale, answer.info.get("rescale"), self.report.flagged(counts))
                outcomes[image] = self.keep(ImageOutcome(image, written, analysis.cells, record))
            except Exception as error:  # this image failed: say why and go on with the others
                outcomes[image] = ImageOutcome(image, reason=describe_error(error))
                if self.fail_fast:
                    break
        return [outcomes[image] for image in images if image in outcomes]

    def kept_path(self, image: ImageInput) -> Path | None:
        """Where ``image``'s outcome is kept (``None`` when the job keeps none)."""
        return None if self.kept is None else self.kept / f"{hashlib.sha256(image.name.encode()).hexdigest()[:32]}.pickle"

    def kept_outcome(self, image: ImageInput) -> ImageOutcome | None:
        """The outcome kept for ``image`` by an earlier run of it, if any."""
        path = self.kept_path(image)
        return pickle.loads(path.read_bytes()) if path is not None and path.is_file() else None

    def keep(self, outcome: ImageOutcome) -> ImageOutcome:
        """Keep a finished image's outcome (atomically) when the job keeps them."""
        path = self.kept_path(outcome.image)
        if path is not None:
            write_bytes(path, pickle.dumps(outcome))
        return outcome


KEPT = ".blastseg-dask"  # in the output folder: finished images' outcomes while a Dask batch runs


@contextmanager
def keeping_outcomes(job: BatchJob) -> Iterator[BatchJob]:
    """``job`` keeping each finished image's outcome in ``OUT/.blastseg-dask/RUN`` (a folder
    every Dask worker can write, as they write the outputs) until the batch ends."""
    kept = job.out_dir / KEPT / os.urandom(8).hex()
    kept.mkdir(parents=True)
    try:
        yield replace(job, kept=kept)
    finally:
        shutil.rmtree(kept, ignore_errors=True)
        if kept.parent.is_dir() and not any(kept.parent.iterdir()):
            kept.parent.rmdir()


_worker_job: BatchJob | None = None  # the job of a worker process, loaded once by start_worker


def exit_when_orphaned(parent: int) -> None:
    """End this worker once the process that started it is gone (killed, say): nothing else would."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def start_worker(parent: int, job: bytes, threads: int) -> None:
    """Set up a worker process: a watch on its ``parent`` (gone already if it was killed while
    this one started), its share of the CPU threads, then its (pickled) job. Ctrl-C is left to
    the main process, which stops handing out images and waits for the ones in progress."""
    global _worker_job
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=exit_when_orphaned, args=(parent,), daemon=True).start()
    share_threads(threads)  # before ONNX Runtime's session is made
    _worker_job = pickle.loads(job)
    share_threads(threads)  # and again for torch, which loading a torch engine may just have imported


def run_in_worker(images: Sequence[ImageInput]) -> list[ImageOutcome]:
    assert _worker_job is not None, "start_worker runs first"
    return _worker_job.run(images)


def run_batch(job: BatchJob, chunks: Sequence[Sequence[ImageInput]], workers: int = 1, cluster: DaskCluster | None = None) -> Iterator[list[ImageOutcome]]:
    """The outcomes of each chunk as it finishes: here, in ``workers`` processes that each load
    the job once and share the CPU threads, with at most two chunks per worker queued, or on the
    workers of a Dask ``cluster`` (:mod:`blastseg.cluster`)."""
    if cluster is not None:
        with keeping_outcomes(job) as keeping:
            yield from run_on_dask(cluster, keeping, chunks)
        return
    if workers <= 1:
        yield from map(job.run, chunks)
        return
    context = multiprocessing.get_context("spawn")  # never fork a process whose thread pools are running
    threads = max(1, cpu_count() // workers)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker, initargs=(os.getpid(), pickle.dumps(job), threads)) as pool:
        queue, pending = iter(chunks), set[Future]()
        try:
            while True:
                while len(pending) < 2 * workers and (chunk := next(queue, None)) is not None:
                    pending.add(pool.submit(run_in_worker, chunk))
                if not pending:
                    return
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        except BrokenProcessPool:  # seen by a result, or by the next submit if a worker died first
            raise OutputError("a worker process died (out of memory?); the images it finished are kept: rerun with --skip-existing") from None
        finally:
            for future in pending:
                future.cancel()


def segment_files(
    images: Sequence[str | Path | ImageInput],
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
    workers: int = 1,
    cluster: DaskCluster | None = None,
) -> BatchResult:
    """Segment each image file (folders: each image in them, see
    :func:`~blastseg.folders.find_images`) and write its outputs into ``out_dir`` (module docstring).

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
    centroid files and the blast alert (:class:`BlastReport`). ``workers`` > 1 shares the images
    among that many processes, each with a copy of the segmenter and classifier; a Dask
    ``cluster`` (a ``dask.distributed.Client``, or what :func:`blastseg.cluster.connect` answers)
    shares them among its workers instead.
    """
    out_dir, output = Path(out_dir), output or OutputRules()
    inputs = find_images(images, exclude=out_dir)
    preprocess, rules, report = preprocess or Pipeline(), rules or InstanceRules(), report or BlastReport()
    check_inputs(inputs)
    report.check(classifier.classes if classifier else None)
    prepare_folder(out_dir)
    if not output.skip_existing:
        shared = [out_dir / CELLS_CSV, out_dir / JOURNAL, out_dir / SUMMARY_JSON]
        refuse_existing([*shared, *(p for image in inputs for p in output_paths(image, out_dir, report.xyc).values())], output.overwrite)
    models = {"segmentation": provenance or {}}
    if classifier is not None:
        models["classifier"] = classifier.provenance()
    columns = [*COLUMNS, *CLASS_COLUMNS] if classifier else COLUMNS
    header = {"models": models, "instances": rules.model_dump(), "scale": scale.as_dict() if scale else "estimated from red cells"}
    if report.alert_percent is not None:
        header["blast_alert"] = {"percent": report.alert_percent}
    ledger = BatchLedger(out_dir, columns, header, classifier.classes if classifier else None)
    by_name = {image.name: image for image in inputs}
    ledger.start(output, lambda name: name in by_name and outputs_present(output_paths(by_name[name], out_dir)))
    result = BatchResult(out_dir)
    todo = [image for image in inputs if not ledger.done(image.name)]
    chunks = [todo[first : first + batch_size] for first in range(0, len(todo), batch_size)]
    job = BatchJob(segmenter, out_dir, preprocess, rules, classifier, scale, report, max_pixels, output.fail_fast)
    with closing(run_batch(job, chunks, workers, cluster)) as finished:
        for outcome in (outcome for outcomes in finished for outcome in outcomes):
            if outcome.reason is None:
                ledger.add(outcome.image.name, outcome.rows, outcome.record)
                result.written.append(outcome.written)
            else:
                ledger.fail(outcome.image.name, outcome.reason)
            if on_done:
                on_done(outcome.image.path, outcome.reason)
            if outcome.reason is not None and output.fail_fast:
                break
    ledger.save(force=True)
    result.summary = ledger.summary()
    return result


def segment_with_recipe(
    images: Sequence[str | Path | ImageInput],
    config: SegmentConfig,
    out_dir: str | Path,
    output: OutputRules | None = None,
    on_done: Callable[[Path, str | None], None] | None = None,
    scale: Scale | None = None,
    workers: int = 1,
    cluster: DaskCluster | None = None,
) -> BatchResult:
    """``blastseg segment``: a classical recipe over image files and folders (``scale``, ``workers`` and ``cluster`` as in :func:`segment_files`)."""
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
        workers=workers,
        cluster=cluster,
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


def predict_files(
    images: Sequence[str | Path | ImageInput],
    out_dir: str | Path,
    options: PredictOptions | None = None,
    output: OutputRules | None = None,
    on_done: Callable[[Path, str | None], None] | None = None,
    workers: int = 1,
    cluster: DaskCluster | None = None,
) -> BatchResult:
    """``blastseg predict``: a trained network (and optionally a cell classifier) over image files
    and folders, in ``workers`` processes or on a Dask ``cluster`` (see :func:`segment_files`)."""
    options, images = options or PredictOptions(), find_images(images, exclude=out_dir)
    check_inputs(images)  # before the models load
    classifier = CellClassifier.load(options.classifier, device=options.device) if options.classifier else None
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
        workers=workers,
        cluster=cluster,
    )
