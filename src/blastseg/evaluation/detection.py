"""Matching detected cells to annotations: boxes (Pascal VOC) and centroids (ALL-IDB1 ``.xyc``).

A detected cell matches a box when their boxes overlap with IoU >= ``iou_threshold`` or the cell's
centroid lies inside the box; each box and each cell is matched at most once (best IoU first).

>>> cells = [{"x": 15.0, "y": 15.0, "bbox_x0": 10, "bbox_y0": 10, "bbox_x1": 20, "bbox_y1": 20}]
>>> match_boxes(cells, [Box("WBC", 11, 11, 21, 21), Box("WBC", 50, 50, 60, 60)])
Matches(pairs=[(0, 0)], unmatched_cells=[], unmatched_truth=[1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from blastseg.annotations import Box
from blastseg.cells import cell_rows
from blastseg.datasets.layouts import Sample
from blastseg.postprocess import InstanceRules
from blastseg.segment import Segmenter


@dataclass
class Matches:
    """``pairs`` of (cell index, truth index), and the indices left over on each side."""

    pairs: list[tuple[int, int]]
    unmatched_cells: list[int]
    unmatched_truth: list[int]


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """IoU of two ``(x0, y0, x1, y1)`` boxes.

    >>> box_iou((0, 0, 2, 2), (1, 0, 3, 2))
    0.3333333333333333
    """
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _greedy(scores: np.ndarray, allowed: np.ndarray) -> Matches:
    pairs, used_cells, used_truth = [], set(), set()
    order = np.dstack(np.unravel_index(np.argsort(-scores, axis=None), scores.shape))[0] if scores.size else []
    for i, j in order:
        if allowed[i, j] and i not in used_cells and j not in used_truth:
            pairs.append((int(i), int(j)))
            used_cells.add(i)
            used_truth.add(j)
    return Matches(
        sorted(pairs),
        [i for i in range(scores.shape[0]) if i not in used_cells],
        [j for j in range(scores.shape[1]) if j not in used_truth],
    )


def cell_box(cell: dict) -> tuple[float, float, float, float]:
    """A cells-table row's bounding box as ``(x0, y0, x1, y1)``."""
    return (cell["bbox_x0"], cell["bbox_y0"], cell["bbox_x1"], cell["bbox_y1"])


def match_boxes(cells: Sequence[dict], boxes: Sequence[Box], iou_threshold: float = 0.5) -> Matches:
    """Match cells-table rows to truth boxes by IoU >= ``iou_threshold`` or centroid inside."""
    scores = np.zeros((len(cells), len(boxes)))
    allowed = np.zeros_like(scores, bool)
    for i, cell in enumerate(cells):
        corners = cell_box(cell)
        for j, box in enumerate(boxes):
            iou = box_iou(corners, box.corners)
            inside = box.xmin <= cell["x"] <= box.xmax and box.ymin <= cell["y"] <= box.ymax
            scores[i, j] = iou + inside  # centroid-inside pairs first, then by IoU
            allowed[i, j] = iou >= iou_threshold or inside
    return _greedy(scores, allowed)


def match_centroids(cells: Sequence[dict], centroids: np.ndarray, radius: float | np.ndarray) -> Matches:
    """Match cells to listed centroids (x, y) lying within ``radius`` pixels, nearest first;
    ``radius`` is one number or one per cell.

    >>> match_centroids([{"x": 10.0, "y": 10.0}], np.array([[12.0, 10.0], [40.0, 40.0]]), radius=5)
    Matches(pairs=[(0, 0)], unmatched_cells=[], unmatched_truth=[1])
    """
    points = np.array([[c["x"], c["y"]] for c in cells], np.float64).reshape(-1, 2)
    distance = np.linalg.norm(points[:, None, :] - np.asarray(centroids, np.float64).reshape(1, -1, 2), axis=2)
    return _greedy(-distance, distance <= np.reshape(radius, (-1, 1)))


def detection_scores(true_positive: int, false_positive: int, false_negative: int) -> dict[str, float]:
    """Precision and recall (1.0 when their denominator is zero).

    >>> detection_scores(9, 1, 0)
    {'precision': 0.9, 'recall': 1.0}
    """
    found, actual = true_positive + false_positive, true_positive + false_negative
    return {"precision": true_positive / found if found else 1.0, "recall": true_positive / actual if actual else 1.0}


@dataclass
class DetectionScores:
    """Cells found on annotated fields against the truth: counts of true and false positives and
    misses, precision, recall, the median IoU of each matched cell's box with its truth box
    (how tight the outlines are), the mean absolute error of the per-field count, the median area of
    matched and unmatched cells, and the fields with a miss or a false alarm.

    ``fp_at_border`` counts the false alarms cut by the image's edge, and ``precision_inside`` is
    the precision of the cells wholly inside the field: annotators often leave a cell that the
    edge cuts without a box (BCCD), so a false alarm there may be a white cell all the same."""

    fields: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    fp_at_border: int
    precision_inside: float
    median_box_iou: float | None
    count_mae: float
    median_area: dict[str, float | None]
    fields_with_errors: list[dict]


def score_fields(samples: Sequence[Sample], segmenter: Segmenter, rules: InstanceRules, label: str = "WBC") -> DetectionScores:
    """Detect cells on fields with boxes (segment, instances as ``rules`` say) and score them
    against the ``label`` boxes: TP/FP/FN, precision, recall, the mean absolute error of the
    per-field count, each cell's area by outcome, and the fields with a miss or a false alarm."""
    totals = {"tp": 0, "fp": 0, "fn": 0}
    inside = {"tp": 0, "fp": 0}
    count_errors, fields = [], []
    areas: dict[str, list[int]] = {"matched": [], "unmatched": []}
    ious: list[float] = []
    for sample in samples:
        image, _ = sample.load()
        truth = [box for box in sample.boxes or [] if box.label == label]
        answer = segmenter.segment(image)
        cells = cell_rows(sample.image.name, image, answer.labels, answer.cells(image, rules))
        matches = match_boxes(cells, truth)
        outcome = {"tp": len(matches.pairs), "fp": len(matches.unmatched_cells), "fn": len(matches.unmatched_truth)}
        for key, value in outcome.items():
            totals[key] += value
        inside["tp"] += sum(not cells[i]["touches_border"] for i, _ in matches.pairs)
        inside["fp"] += sum(not cells[i]["touches_border"] for i in matches.unmatched_cells)
        areas["matched"] += [cells[i]["area"] for i, _ in matches.pairs]
        ious += [box_iou(cell_box(cells[i]), truth[j].corners) for i, j in matches.pairs]
        areas["unmatched"] += [cells[i]["area"] for i in matches.unmatched_cells]
        count_errors.append(abs(len(cells) - len(truth)))
        if outcome["fp"] or outcome["fn"]:
            fields.append({"image": sample.image.name, "truth": len(truth), "found": len(cells), **outcome})
    return DetectionScores(
        len(count_errors),
        **totals,
        **detection_scores(totals["tp"], totals["fp"], totals["fn"]),
        fp_at_border=totals["fp"] - inside["fp"],
        precision_inside=detection_scores(inside["tp"], inside["fp"], 0)["precision"],
        median_box_iou=float(np.median(ious)) if ious else None,
        count_mae=float(np.mean(count_errors)) if count_errors else 0.0,
        median_area={k: float(np.median(v)) if v else None for k, v in areas.items()},
        fields_with_errors=fields,
    )


def centred_cell(cells: Sequence[dict], height: int, width: int, radius_fraction: float = 0.2) -> dict | None:
    """The one cell whose centroid lies within ``radius_fraction`` of the image's shorter side from
    its centre, or ``None`` when no cell or several do (a single-cell crop such as PBC's, where a
    neighbour elsewhere in the crop does not count).

    >>> centred_cell([{"x": 55.0, "y": 45.0}, {"x": 5.0, "y": 90.0}], 100, 100)
    {'x': 55.0, 'y': 45.0}
    >>> centred_cell([{"x": 55.0, "y": 45.0}, {"x": 45.0, "y": 60.0}], 100, 100) is None
    True
    """
    radius = radius_fraction * min(height, width)
    near = [cell for cell in cells if np.hypot(cell["x"] - width / 2, cell["y"] - height / 2) <= radius]
    return near[0] if len(near) == 1 else None
