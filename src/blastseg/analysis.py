"""From a label map to the answer a haematologist wants: each cell found, measured, classified,
and counted, with the blast percentage.

>>> result = blastseg.analyze("smear.jpg", classifier="default")  # doctest: +SKIP
>>> result.summary()["counts"], result.cells[0]["class"]  # doctest: +SKIP
({'lymphocyte': 1, 'neutrophil': 2}, 'neutrophil')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blastseg.cells import cell_rows
from blastseg.classify.model import CellClassifier
from blastseg.data import BLAST
from blastseg.io import read_image
from blastseg.postprocess import InstanceConfig, cell_instances
from blastseg.report import class_colours, classified_overlay, overlay
from blastseg.segment.deep import DeepSegmenter


@dataclass
class Analysis:
    """One image's cells: ``cells`` holds cells-table rows, with ``class`` and ``probability``
    when a classifier was given (its classes in ``classes``)."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    cells: list[dict]
    classes: list[str] | None = None

    def summary(self) -> dict:
        """Cell count, counts per class and blast percentage (see :func:`count_cells`)."""
        return count_cells(self.cells, self.classes)

    def overlay(self) -> np.ndarray:
        """The image with every cell outlined; classified cells boxed and labelled in their colour."""
        if self.classes is None:
            return overlay(self.image, self.labels)
        return classified_overlay(self.image, self.labels, self.instances, self.cells, class_colours(self.classes))


def count_cells(cells: Sequence[dict], classes: Sequence[str] | None) -> dict:
    """``cells``, ``counts`` per class (every class listed, zeros included) and ``blast_percent``
    (blasts among all cells, in percent; ``None`` when nothing says which cells are blasts or no
    cell was found).

    >>> count_cells([{"class": "blast"}, {"class": "normal"}, {"class": "normal"}, {"class": "normal"}], ["blast", "normal"])
    {'cells': 4, 'counts': {'blast': 1, 'normal': 3}, 'blast_percent': 25.0}
    """
    summary: dict = {"cells": len(cells), "counts": None, "blast_percent": None}
    if classes is not None:
        found = [cell["class"] for cell in cells]
        summary["counts"] = {name: found.count(name) for name in classes}
        if BLAST in classes and cells:
            summary["blast_percent"] = round(100 * found.count(BLAST) / len(cells), 2)
    return summary


def analyze_labels(
    name: str, image: np.ndarray, labels: np.ndarray, instances: np.ndarray | None = None,
    classifier: CellClassifier | None = None, config: InstanceConfig | None = None,
) -> Analysis:
    """Cells of a label map (instances made as ``config`` says unless given), each classified
    by ``classifier`` when there is one."""
    if instances is None:
        instances = cell_instances(labels, config)
    rows = cell_rows(name, image, labels, instances)
    classes = None
    if classifier is not None:
        classes = classifier.classes
        for row, proba in zip(rows, classifier.predict_proba(image, instances, rows)):
            row["class"], row["probability"] = classes[int(proba.argmax())], round(float(proba.max()), 4)
    return Analysis(name, image, labels, instances, rows, classes)


def analyze(
    image: np.ndarray | str | Path, segmenter: str | Path | DeepSegmenter = "default",
    classifier: str | Path | CellClassifier | None = "default", instances: InstanceConfig | None = None, device: str = "auto",
) -> Analysis:
    """Segment, find, measure and classify the cells of one image in a single call (notebooks).

    ``image`` is an RGB array or a file; ``segmenter`` a segmentation checkpoint or a loaded
    :class:`DeepSegmenter`; ``classifier`` a classifier file, a loaded one, ``default`` (the
    bundled white-cell type classifier) or ``None``. For many images, load both once and pass them.
    """
    name = "image"
    if not isinstance(image, np.ndarray):
        name, image = Path(image).name, read_image(image)
    if classifier is not None and not isinstance(classifier, CellClassifier):
        classifier = CellClassifier.load(classifier, device=device)
    if not isinstance(segmenter, DeepSegmenter):
        segmenter = DeepSegmenter.load(segmenter, device=device)
    labels = segmenter.segment(image).labels
    return analyze_labels(name, image, labels, classifier=classifier, config=instances)
