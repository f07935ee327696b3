"""Analysis jobs of the web page: uploads in, ``predict``/``segment`` outputs out, run one job at
a time on a worker thread so that requests keep being answered; each job's folder is deleted
``keep_minutes`` after it finished.

A job folder holds ``uploads/`` (the files as saved, ``image_NNN.EXT``), ``results/`` (what
``blastseg predict`` writes, plus ``corrections.json`` and ``cells_corrected.csv`` once the
user corrects the count) and ``page/`` (a JPEG of each image and its cells' outlines as JSON,
what the page draws).
"""

from __future__ import annotations

import io
import shutil
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import tifffile
from pydantic import Field
from scipy import ndimage as ndi

from blastseg.analysis import count_cells
from blastseg.annotations import xyc_text
from blastseg.batch import CELLS_CSV, JOURNAL, PredictOptions, predict_files, read_journal, read_rows, segment_files
from blastseg.classify.card import read_classifier_card
from blastseg.classify.model import bundled_classifier
from blastseg.config import StrictModel
from blastseg.errors import BlastsegError, describe_error
from blastseg.folders import ImageInput
from blastseg.io import read_image, write_bytes, write_csv, write_json
from blastseg.labels import BLAST
from blastseg.postprocess import InstanceRules
from blastseg.render import class_colours

CORRECTION_CLASSES = ("neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil", BLAST, "other")
"""What a user may relabel a cell as, besides the classifier's own classes."""
TARGETS = {"network": "multiclass", "kmeans": "multiclass", "otsu": "cell"}
SHOWN_COLUMNS = ("cell_id", "x", "y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "area", "diameter_um", "class", "probability")


class AnalysisSettings(StrictModel):
    """What the page lets a user choose: the segmentation method, the classifier and the instance rules that matter most."""

    method: Literal["network", "kmeans", "otsu"] = "network"
    classifier: Literal["default", "none"] = "default"
    split: bool = Field(default=True, description="split touching cells where the neck between them is narrow")
    min_area: int = Field(default=100, ge=0, le=10_000_000, description="smallest cell kept, pixels")

    def rules(self) -> InstanceRules:
        return InstanceRules(split=self.split, min_area=self.min_area)


class JobNotFound(BlastsegError):
    """No job with that id (never made, or expired and deleted)."""


@dataclass
class ImageEntry:
    """One uploaded file: ``name`` as the browser sent it (shown, escaped, never a path)."""

    index: int
    name: str
    path: Path | None = None
    status: Literal["queued", "running", "done", "failed"] = "queued"
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return f"image_{self.index:03d}"


@dataclass
class Job:
    id: str
    folder: Path
    settings: AnalysisSettings
    images: list[ImageEntry]
    classes: list[str] | None = None
    finished: float | None = None
    corrections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def results(self) -> Path:
        return self.folder / "results"

    @property
    def status(self) -> str:
        states = {image.status for image in self.images}
        if states & {"queued", "running"}:
            return "running" if states - {"queued"} else "queued"
        return "done"

    def as_dict(self) -> dict[str, Any]:
        """What ``GET /api/jobs/{id}`` answers."""
        return {
            "id": self.id,
            "status": self.status,
            "settings": self.settings.model_dump(),
            "classes": self.classes,
            "correction_classes": correction_classes(self.classes),
            "colours": {name: "#{:02x}{:02x}{:02x}".format(*rgb) for name, rgb in class_colours(correction_classes(self.classes)).items()},
            "images": [{k: v for k, v in asdict(image).items() if k != "path"} for image in self.images],
            "corrections": self.corrections,
        }


def correction_classes(classes: list[str] | None) -> list[str]:
    """The classifier's classes, then the others a haematologist may call a cell."""
    own = list(classes or [])
    return own + [name for name in CORRECTION_CLASSES if name not in own]


def cell_outlines(instances: np.ndarray, nuclei: np.ndarray | None) -> dict[int, dict[str, list]]:
    """Each cell's outline (and its nucleus' outlines) as lists of [x, y] points, for the page to draw."""
    answer: dict[int, dict[str, list]] = {}
    for cell_id, box in enumerate(ndi.find_objects(instances), start=1):
        if box is None:
            continue
        own = (instances[box] == cell_id).astype(np.uint8)
        x0, y0 = box[1].start, box[0].start
        answer[cell_id] = {"outline": polygons(own, x0, y0)[:1], "nucleus": polygons(own & nuclei[box], x0, y0) if nuclei is not None else []}
    return answer


def polygons(mask: np.ndarray, x0: int, y0: int) -> list[list[list[int]]]:
    """The outer contours of ``mask``, largest first, simplified to about a pixel, offset by (x0, y0)."""
    contours, _ = cv2.findContours(np.pad(mask.astype(np.uint8), 1), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = sorted(contours, key=cv2.contourArea, reverse=True)
    return [(cv2.approxPolyDP(c, 0.7, True).reshape(-1, 2) + (x0 - 1, y0 - 1)).tolist() for c in contours if len(c) >= 3]


def rows_by_image(results: Path) -> dict[str, list[dict[str, str]]]:
    """The rows of ``cells.csv`` by image name."""
    by_image: dict[str, list[dict[str, str]]] = {}
    for row in read_rows(results / CELLS_CSV):
        by_image.setdefault(row["image"], []).append(row)
    return by_image


class JobStore:
    """Jobs in folders under ``root``; analyses run one at a time on a worker thread."""

    def __init__(self, root: Path, keep_minutes: float = 60.0):
        self.root, self.keep_seconds = Path(root), keep_minutes * 60
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blastseg-analysis")

    def new_job(self, settings: AnalysisSettings) -> Job:
        self.expire()
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        (folder / "uploads").mkdir(parents=True)
        return Job(job_id, folder, settings, [])

    def discard(self, job: Job) -> None:
        """Delete a job that never started (every upload refused)."""
        shutil.rmtree(job.folder, ignore_errors=True)

    def start(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.id] = job
        self.worker.submit(self.run, job)

    def get(self, job_id: str) -> Job:
        self.expire()
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} (jobs are deleted {self.keep_seconds / 60:g} minutes after they finish)")
        return job

    def expire(self) -> None:
        """Delete the jobs (and their files) finished more than ``keep_minutes`` ago."""
        now = time.time()
        with self.lock:
            old = [job for job in self.jobs.values() if job.finished is not None and now - job.finished > self.keep_seconds]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        self.worker.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def run(self, job: Job) -> None:
        """Analyse a job's images as one batch (on the worker thread); every failure ends up on its image."""
        todo = [image for image in job.images if image.status == "queued"]
        by_name = {image.path.name: image for image in todo}
        waiting = iter(todo)

        def start_next() -> None:
            if (image := next(waiting, None)) is not None:
                image.status = "running"

        def finished(path: Path, error: str | None) -> None:
            image = by_name[Path(path).name]
            try:
                if error is None:
                    image.summary = read_journal(job.results / JOURNAL).get(image.path.name, {})
                    self.write_page_files(job, image)
                image.status, image.error = ("failed", error) if error else ("done", None)
            except Exception as failure:
                image.status, image.error = "failed", describe_error(failure)
            start_next()

        try:
            classifier = None if job.settings.classifier == "none" else "default"
            job.classes = read_classifier_card_classes() if classifier else None
            inputs = [ImageInput(image.path, image.path.name) for image in todo]
            start_next()
            if job.settings.method == "network":
                predict_files(inputs, job.results, PredictOptions(classifier=classifier, instances=job.settings.rules()), on_done=finished)
            else:
                from blastseg.classify.model import CellClassifier
                from blastseg.segment import create_segmenter

                segmenter = create_segmenter(job.settings.method, target=TARGETS[job.settings.method])
                model = CellClassifier.load(classifier) if classifier else None
                segment_files(inputs, segmenter, job.results, on_done=finished, rules=job.settings.rules(), classifier=model)
        except Exception as error:  # the job must end, whatever went wrong
            for image in todo:
                if image.status in ("queued", "running"):
                    image.status, image.error = "failed", describe_error(error)
        job.finished = time.time()

    def write_page_files(self, job: Job, image: ImageEntry) -> None:
        """What the page draws: a JPEG of the image and the cells with their outlines."""
        page = job.folder / "page"
        page.mkdir(exist_ok=True)
        rgb = read_image(image.path)
        write_bytes(page / f"{image.stem}.jpg", cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
        instances_path = job.results / f"{image.stem}_instances.tif"
        instances = tifffile.imread(instances_path) if instances_path.is_file() else np.zeros(rgb.shape[:2], np.uint16)
        nuclei = None
        if TARGETS[job.settings.method] == "multiclass":
            mask = cv2.imread(str(job.results / f"{image.stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
            nuclei = (mask == 255).astype(np.uint8)
        outlines = cell_outlines(instances, nuclei)
        rows = rows_by_image(job.results).get(image.path.name, [])
        cells = [{**{k: row.get(k) for k in SHOWN_COLUMNS if k in row}, **outlines.get(int(row["cell_id"]), {"outline": [], "nucleus": []})} for row in rows]
        write_json(page / f"{image.stem}.json", {"width": rgb.shape[1], "height": rgb.shape[0], "cells": cells})
        write_xyc(job.results / f"{image.stem}.xyc", rows)

    def correct(self, job: Job, changes: list[dict[str, Any]]) -> dict[str, Any]:
        """Record the user's relabelled and dropped cells, replacing earlier corrections, and write
        ``corrections.json`` and ``cells_corrected.csv`` beside ``cells.csv``; returns the corrected counts."""
        allowed = correction_classes(job.classes)
        rows = rows_by_image(job.results)
        known = {(image.index, int(row["cell_id"])) for image in job.images if image.path for row in rows.get(image.path.name, [])}
        for change in changes:
            if (change["image"], change["cell"]) not in known:
                raise BlastsegError(f"image {change['image']} has no cell {change['cell']}")
            if not change.get("drop") and change.get("class") not in allowed:
                raise BlastsegError(f"{change.get('class')!r} is not a class to relabel to (valid: {', '.join(allowed)})")
        job.corrections = changes
        by_cell = {(c["image"], c["cell"]): c for c in changes}
        corrected, counts = [], {}
        for image in job.images:
            if not image.path:
                continue
            kept = []
            for row in rows.get(image.path.name, []):
                change = by_cell.get((image.index, int(row["cell_id"])))
                if change and change.get("drop"):
                    continue
                row = {**row, "class": change["class"] if change else row.get("class", ""), "corrected": "yes" if change else "no"}
                kept.append(row)
            corrected += kept
            write_xyc(job.results / f"{image.stem}_corrected.xyc", kept)
            counts[image.name] = asdict(count_cells(kept, allowed if any(r["class"] for r in kept) else None))
        write_json(job.results / "corrections.json", {"changes": changes, "counts": counts})
        if corrected:
            write_csv(job.results / "cells_corrected.csv", corrected)
        return counts

    def zip_bytes(self, job: Job) -> bytes:
        """Every result file of a job (masks, overlays, instance TIFFs, cells.csv, summary.json, .xyc, corrections) as one ZIP."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(job.results.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    archive.write(path, path.relative_to(job.results).as_posix())
        return buffer.getvalue()


def read_classifier_card_classes() -> list[str]:
    return list(read_classifier_card(bundled_classifier()).classes)


def write_xyc(path: Path, rows: list[dict[str, str]]) -> None:
    """ALL-IDB1's ``.xyc``: the centroids of the rows whose class is blast (an empty file when none is)."""
    blasts = [(float(row["x"]), float(row["y"])) for row in rows if row.get("class") == BLAST]
    write_bytes(path, xyc_text(np.array(blasts)).encode())
