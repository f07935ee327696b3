"""Scoring cell instances against reference instances (``0`` background, ``1..N`` cells).

A predicted cell *matches* a reference cell when their IoU is at least ``threshold`` (0.5 or more
makes the matching one-to-one). A predicted cell *merges* when it covers at least ``cover`` of
each of two or more reference cells: the failure that turns a cluster of blasts into one "cell".

>>> reference = np.array([[1, 1, 0, 2, 2, 0, 3]])
>>> predicted = np.array([[1, 1, 1, 1, 1, 0, 0]])
>>> merged_cells(predicted, reference), match_instances(predicted, reference)
(1, InstanceMatches(matched=0, predicted=1, reference=3))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InstanceMatches:
    """How many predicted cells matched a reference cell, of how many on each side."""

    matched: int
    predicted: int
    reference: int

    @property
    def recall(self) -> float:
        return self.matched / self.reference if self.reference else float("nan")

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else float("nan")


def _overlaps(predicted: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts: (predicted x reference overlap table, predicted areas, reference areas) of the
    ids present (a gap in the numbering is no cell)."""
    if predicted.shape != reference.shape:
        raise ValueError(f"predicted {predicted.shape} and reference {reference.shape} instances differ in shape")
    rows, columns = int(predicted.max()) + 1, int(reference.max()) + 1
    table = np.bincount(predicted.ravel().astype(np.int64) * columns + reference.ravel(), minlength=rows * columns)
    table = table.reshape(rows, columns)
    predicted_area, reference_area = table[1:].sum(axis=1), table[:, 1:].sum(axis=0)
    present_rows, present_columns = predicted_area > 0, reference_area > 0
    return table[1:, 1:][present_rows][:, present_columns], predicted_area[present_rows], reference_area[present_columns]


def match_instances(predicted: np.ndarray, reference: np.ndarray, threshold: float = 0.5) -> InstanceMatches:
    """Count the predicted cells whose IoU with a reference cell reaches ``threshold`` (>= 0.5)."""
    overlap, predicted_area, reference_area = _overlaps(predicted, reference)
    union = predicted_area[:, None] + reference_area[None, :] - overlap
    iou = np.divide(overlap, union, out=np.zeros(overlap.shape), where=union > 0)
    matched = int((iou >= threshold).any(axis=1).sum()) if iou.size else 0
    return InstanceMatches(matched, len(predicted_area), len(reference_area))


def best_cell_dice(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Dice of the one reference cell (a boolean mask) with the predicted cell overlapping it
    most, 0 if none does; cells elsewhere in the image do not count.

    >>> best_cell_dice(np.array([[1, 1, 0, 2]]), np.array([[True, True, True, False]]))
    0.8
    """
    overlap = np.bincount(predicted[reference].ravel(), minlength=int(predicted.max()) + 1)[1:]
    if not overlap.any():
        return 0.0
    best = predicted == 1 + int(overlap.argmax())
    return float(2 * (best & reference).sum() / (best.sum() + reference.sum()))


def merged_cells(predicted: np.ndarray, reference: np.ndarray, cover: float = 0.5) -> int:
    """How many predicted cells cover at least ``cover`` of each of two or more reference cells."""
    overlap, _, reference_area = _overlaps(predicted, reference)
    covered = overlap >= cover * np.maximum(reference_area[None, :], 1)
    return int((covered.sum(axis=1) >= 2).sum())
