"""From a label map to the answer a haematologist wants: each cell found, measured, classified,
and counted, with the blast percentage.

>>> result = blastseg.analyze("smear.jpg", classifier="default")  # doctest: +SKIP
>>> result.summary().counts, result.cells[0]["class"]  # doctest: +SKIP
({'lymphocyte': 1, 'neutrophil': 2}, 'neutrophil')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blastseg.cells import cell_rows
from blastseg.classify.model import CellClassifier
from blastseg.io import as_rgb, read_image
from blastseg.labels import BLAST
from blastseg.postprocess import InstanceRules
from blastseg.render import class_colours, classified_overlay, overlay
from blastseg.scale import UNKNOWN, Scale
from blastseg.segment import Segmenter, load_segmenter
from blastseg.segment.base import image_cells


@dataclass
class CellCounts:
    """``cells`` found, ``counts`` per class (every class listed, zeros included; ``None`` without
    a classifier), ``blast_percent`` (blasts among all cells; ``None`` when nothing says which
    cells are blasts or no cell was found) and its 95 % Wilson score interval ``blast_percent_ci``
    (how far the true share may lie from a count of this many cells)."""

    cells: int
    counts: dict[str, int] | None = None
    blast_percent: float | None = None
    blast_percent_ci: tuple[float, float] | None = None


def count_cells(cells: Sequence[dict], classes: Sequence[str] | None) -> CellCounts:
    """Count ``cells`` (cells-table rows, with ``class`` when classified) per class.

    >>> count_cells([{"class": "blast"}, {"class": "normal"}, {"class": "normal"}, {"class": "normal"}], ["blast", "normal"])
    CellCounts(cells=4, counts={'blast': 1, 'normal': 3}, blast_percent=25.0, blast_percent_ci=(4.56, 69.94))
    """
    if classes is None:
        return CellCounts(len(cells))
    found = [cell["class"] for cell in cells]
    return _with_blast_percent(len(cells), {name: found.count(name) for name in classes})


def total_counts(parts: Iterable[dict], classes: Sequence[str] | None) -> CellCounts:
    """The counts of several images together, from each one's :class:`CellCounts` as a dict
    (what ``summary.json`` keeps per image).

    >>> total_counts([{"cells": 1, "counts": {"blast": 1, "normal": 0}}, {"cells": 3, "counts": {"blast": 0, "normal": 3}}], ["blast", "normal"])
    CellCounts(cells=4, counts={'blast': 1, 'normal': 3}, blast_percent=25.0, blast_percent_ci=(4.56, 69.94))
    """
    parts = list(parts)
    cells = sum(part["cells"] for part in parts)
    if classes is None:
        return CellCounts(cells)
    return _with_blast_percent(cells, {name: sum(part["counts"][name] for part in parts) for name in classes})


def _with_blast_percent(cells: int, counts: dict[str, int]) -> CellCounts:
    if BLAST not in counts or not cells:
        return CellCounts(cells, counts)
    from scipy.stats import binomtest  # imported here: scipy.stats takes a while to import

    interval = binomtest(counts[BLAST], cells).proportion_ci(confidence_level=0.95, method="wilson")
    return CellCounts(cells, counts, round(100 * counts[BLAST] / cells, 2), (round(100 * float(interval.low), 2), round(100 * float(interval.high), 2)))


@dataclass
class Analysis:
    """One image's cells: ``cells`` holds cells-table rows, with ``class`` and ``probability``
    when a classifier was given (its classes in ``classes``); ``instances`` the cell ids (int32)."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    cells: list[dict]
    classes: list[str] | None = None
    scale: Scale = UNKNOWN

    def summary(self) -> CellCounts:
        """Cell count, counts per class and blast percentage."""
        return count_cells(self.cells, self.classes)

    def overlay(self) -> np.ndarray:
        """The image with every cell outlined; classified cells boxed and labelled in their colour."""
        if self.classes is None:
            return overlay(self.image, self.labels)
        return classified_overlay(self.image, self.labels, self.instances, self.cells, class_colours(self.classes))


def analyze_labels(
    name: str,
    image: np.ndarray,
    labels: np.ndarray,
    instances: np.ndarray | None = None,
    classifier: CellClassifier | None = None,
    rules: InstanceRules | None = None,
    scale: Scale = UNKNOWN,
) -> Analysis:
    """Cells of a label map (cell ``instances`` made as ``rules`` say unless given), each
    classified by ``classifier`` when there is one, measured in micrometres too when ``scale`` is known."""
    if instances is None:
        instances = image_cells(image, labels, rules, scale.red_cell_px)
    rows = cell_rows(name, image, labels, instances, scale.pixel_size_um)
    classes = None
    if classifier is not None:
        classes = classifier.classes
        for row, proba in zip(rows, classifier.predict_proba(image, labels, instances, rows)):
            row["class"], row["probability"] = classes[int(proba.argmax())], round(float(proba.max()), 4)
    return Analysis(name, image, labels, instances, rows, classes, scale)


def analyze(
    image: np.ndarray | str | Path,
    segmenter: str | Path | Segmenter = "default",
    classifier: str | Path | CellClassifier | None = "default",
    rules: InstanceRules | None = None,
    device: str = "auto",
    scale: Scale | None = None,
) -> Analysis:
    """Segment, find, measure and classify the cells of one image in a single call (notebooks).

    ``image`` is an array (grey, RGB or RGBA, any dtype; taken as :func:`~blastseg.io.as_rgb` does) or a file; ``segmenter`` a segmentation checkpoint or a loaded
    segmenter; ``classifier`` a classifier file, a loaded one, ``default`` (the bundled white-cell
    type classifier) or ``None``. For many images, load both once and pass them. ``scale`` (for
    example ``blastseg.given_scale(pixel_size=0.1)``) is estimated from the red cells when not given.
    """
    name = "image"
    if isinstance(image, np.ndarray):
        image = as_rgb(image)
    else:
        name, image = Path(image).name, read_image(image)
    if classifier is not None and not isinstance(classifier, CellClassifier):
        classifier = CellClassifier.load(classifier, device=device)
    if not isinstance(segmenter, Segmenter):
        segmenter = load_segmenter(segmenter, device=device)
    answer = segmenter.segment(image)
    return analyze_labels(name, image, answer.labels, classifier=classifier, rules=rules, scale=scale or answer.scale_of(image))
