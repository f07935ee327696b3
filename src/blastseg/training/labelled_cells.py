"""Labelled cells to learn from, whatever the dataset says about them.

- single-cell images (Zheng crops with ``labels.csv``, ALL-IDB2 ``ImNNN_L.tif``, class
  sub-folders, any folder with a ``labels.csv``): the image's label goes to the cell nearest the
  image centre;
- fields labelled as a whole (``every_cell``: all_blasts, whose label is the patient's diagnosis):
  every cell found inherits the image's label, which is true of most of them, not all
  (multiple-instance data; cross-validation keeps an image's cells in one fold);
- fields with ``.xyc`` blast centroids (ALL-IDB1): every cell found is a blast when a listed
  centroid lies within its radius (``match_radius`` pixels, or the cell's own equivalent radius),
  normal otherwise; listed centroids no cell lies near are reported, never silently dropped.

Cells come from the dataset's own masks where it has them, otherwise from a segmenter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from blastseg.cells import cell_crops, cell_rows, with_resampled_features
from blastseg.datasets.layouts import Sample
from blastseg.errors import ConfigError, DatasetError
from blastseg.evaluation.detection import match_centroids
from blastseg.io import read_image
from blastseg.labels import BLAST, NORMAL
from blastseg.postprocess import InstanceRules
from blastseg.segment.base import Segmentation, Segmenter


@dataclass
class LabelledCells:
    """Cells-table ``rows`` (each with its ``label``), their ``crops``, the image file each came
    from (``groups``: cross-validation keeps an image's cells together), and what was left out:
    ``unmatched`` listed centroids (image, x, y) and ``skipped`` images (image, reason)."""

    rows: list[dict] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    unmatched: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def labels(self) -> list[str]:
        return [row["label"] for row in self.rows]

    def subset(self, keep: Sequence[int]) -> LabelledCells:
        """The cells at positions ``keep``, with everything that was left out."""
        return LabelledCells([self.rows[i] for i in keep], [self.crops[i] for i in keep], [self.groups[i] for i in keep], self.unmatched, self.skipped)

    def at_most_per_image(self, limit: int, seed: int) -> LabelledCells:
        """At most ``limit`` cells of each image, drawn at random; the order of the rest is kept.

        >>> cells = LabelledCells([{"i": i} for i in range(5)], [None] * 5, ["a", "a", "a", "b", "b"])
        >>> cells.at_most_per_image(2, seed=0).groups
        ['a', 'a', 'b', 'b']
        """
        taken: Counter[str] = Counter()
        keep = []
        for index in np.random.default_rng(seed).permutation(len(self.rows)):
            taken[self.groups[index]] += 1
            if taken[self.groups[index]] <= limit:
                keep.append(index)
        return self.subset(sorted(keep))

    def extend(self, other: LabelledCells) -> None:
        for name in ("rows", "crops", "groups", "unmatched", "skipped"):
            getattr(self, name).extend(getattr(other, name))


def nearest_to_centre(rows: Sequence[dict], shape: tuple[int, ...]) -> dict:
    """The row whose centroid lies nearest the middle of an image of ``shape``.

    >>> nearest_to_centre([{"x": 1, "y": 1}, {"x": 9, "y": 11}], (20, 20))["x"]
    9
    """
    middle_y, middle_x = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    return min(rows, key=lambda row: (row["x"] - middle_x) ** 2 + (row["y"] - middle_y) ** 2)


def equivalent_radius(rows: Sequence[dict]) -> np.ndarray:
    """The radius of the disc of each cell's area."""
    return np.sqrt(np.array([row["area"] for row in rows], np.float64) / np.pi)


def collect_cells(
    samples: Sequence[Sample],
    segmenter: Segmenter | None,
    rules: InstanceRules,
    crop_size: int,
    crop_scale: float | None,
    match_radius: float | None = None,
    use_masks: bool = True,
    on_done: Callable[[Sample], None] | None = None,
    every_cell: bool = False,
    cell_diameter: int | None = None,
    rename: dict[str, str | None] | None = None,
) -> LabelledCells:
    """Segment (or read the masks of) every sample and label its cells as the module says.

    ``segmenter`` finds the cells of samples without a mask (it may be ``None`` when every sample has
    one); the instance rules are scaled to each image's red cells as ``predict`` scales them.
    Crops are as :func:`blastseg.cells.cell_crops` makes them with ``crop_size`` and ``crop_scale``;
    with ``cell_diameter`` the rows' features are measured at that resolution
    (:func:`blastseg.cells.with_resampled_features`), as a classifier trained so measures them.
    ``rename`` maps the blast/normal labels that ``.xyc`` centroids give onto the recipe's classes
    (a class renamed to ``None`` is left out); the samples' own labels come named already.
    """
    rename = rename or {}
    found = LabelledCells()
    for sample in samples:
        image, labels = sample.load() if use_masks else (read_image(sample.image), None)
        if labels is None and segmenter is None:
            raise ConfigError(f"{sample.image}: no mask and no segmentation model to find its cells")
        answer = Segmentation(labels) if labels is not None else segmenter.segment(image)
        cells = answer.cells(image, rules)  # a network's own measure of the scale is reused
        rows = cell_rows(sample.image.name, image, answer.labels, cells)
        if cell_diameter is not None:
            rows = with_resampled_features(rows, image, answer.labels, cells, cell_diameter)
        crop_of = cell_crops(image, cells, crop_size, crop_scale)
        if sample.centroids is not None:
            radius = equivalent_radius(rows) if match_radius is None else match_radius
            matches = match_centroids(rows, sample.centroids, radius)
            blasts = {cell for cell, _ in matches.pairs}
            for index, row in enumerate(rows):
                label = rename.get(label := BLAST if index in blasts else NORMAL, label)
                if label is not None:
                    _add(found, sample, row, label, crop_of)
            found.unmatched += [
                {"image": sample.image.name, "x": float(sample.centroids[j][0]), "y": float(sample.centroids[j][1])} for j in matches.unmatched_truth
            ]
        elif sample.label is None:
            found.skipped.append({"image": sample.image.name, "reason": "no label"})
        elif not rows:
            found.skipped.append({"image": sample.image.name, "reason": "no cell found"})
        else:
            for row in rows if every_cell else [nearest_to_centre(rows, image.shape)]:
                _add(found, sample, row, sample.label, crop_of)
        if on_done:
            on_done(sample)
    if not found.rows:
        raise DatasetError(f"no labelled cells found in {len(samples)} image(s) (skipped: {_reasons(found.skipped)})")
    return found


def _add(found: LabelledCells, sample: Sample, row: dict, label: str, crop_of: dict[int, np.ndarray]) -> None:
    found.rows.append({**row, "label": label})
    found.crops.append(crop_of[row["cell_id"]])
    found.groups.append(str(sample.image))


def _reasons(skipped: list[dict]) -> str:
    reasons = [s["reason"] for s in skipped]
    return ", ".join(f"{reasons.count(r)} {r}" for r in sorted(set(reasons))) or "none"
