"""Detection scores against boxes, worked out by hand on a field with one known cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blastseg.annotations import Box
from blastseg.datasets.layouts import Sample
from blastseg.evaluation.detection import centred_cell, score_fields
from blastseg.postprocess import InstanceRules
from blastseg.segment.base import Segmentation
from tests.synthetic import disc


def draw_cell(labels: np.ndarray, centre: tuple[int, int], radius: int) -> None:
    """A disc cell of ``radius`` with a nucleus of half that radius."""
    labels[disc(labels.shape, centre, radius)] = 1
    labels[disc(labels.shape, centre, radius // 2)] = 2


def blank_field(tmp_path) -> Path:
    path = tmp_path / "field.png"
    Image.fromarray(np.full((100, 120, 3), 230, np.uint8)).save(path)
    return path


class FixedAnswer:
    """A segmenter that always finds one cell: a disc of radius 20 at (50, 50) with a nucleus."""

    target = "multiclass"

    def segment(self, image):
        labels = np.zeros(image.shape[:2], np.uint8)
        draw_cell(labels, (50, 50), 20)
        return Segmentation(labels)


def test_box_iou_precision_and_recall_by_hand(tmp_path):
    path = blank_field(tmp_path)
    boxes = [Box("WBC", 30, 30, 70, 70), Box("WBC", 90, 80, 110, 95), Box("RBC", 0, 0, 10, 10)]
    scores = score_fields([Sample(path, boxes=boxes)], FixedAnswer(), InstanceRules(min_area=10))
    assert (scores.tp, scores.fp, scores.fn) == (1, 0, 1)
    assert (scores.precision, scores.recall) == (1.0, 0.5)
    # the opening trims the disc's one-pixel tip on the left: the cell's box is x in [31, 70),
    # y in [30, 71); against [30, 70] x [30, 70]: overlap 39 x 40, union 39 x 41 + 40 x 40 - 1560
    assert scores.median_box_iou == pytest.approx(1560 / 1639)


class EdgeAnswer(FixedAnswer):
    """FixedAnswer's cell and a second one cut by the field's left edge."""

    def segment(self, image):
        labels = super().segment(image).labels
        draw_cell(labels, (50, 5), 15)
        return Segmentation(labels)


def test_false_alarms_cut_by_the_edge_are_counted_apart(tmp_path):
    path = blank_field(tmp_path)
    unboxed = score_fields([Sample(path, boxes=[Box("WBC", 30, 30, 70, 70)])], EdgeAnswer(), InstanceRules(min_area=10))
    assert (unboxed.tp, unboxed.fp, unboxed.fp_at_border) == (1, 1, 1)
    assert (unboxed.precision, unboxed.precision_inside) == (0.5, 1.0)
    boxed = score_fields([Sample(path, boxes=[Box("WBC", 30, 30, 70, 70), Box("WBC", 0, 35, 20, 65)])], EdgeAnswer(), InstanceRules(min_area=10))
    assert (boxed.tp, boxed.fp, boxed.fp_at_border, boxed.precision_inside) == (2, 0, 0, 1.0)
    nothing_inside = score_fields([Sample(path, boxes=[Box("WBC", 90, 80, 110, 95)])], EdgeAnswer(), InstanceRules(min_area=10))
    assert (nothing_inside.fp, nothing_inside.fp_at_border, nothing_inside.precision_inside) == (2, 1, 0.0)


def test_the_centred_cell_is_the_only_one_near_the_centre():
    centre, neighbour = {"x": 60.0, "y": 50.0}, {"x": 10.0, "y": 10.0}
    assert centred_cell([neighbour, centre], 100, 120) is centre  # a neighbour near the border does not count
    assert centred_cell([centre, {"x": 70.0, "y": 60.0}], 100, 120) is None  # 14 from the centre: two cells there
    assert centred_cell([], 100, 120) is None
    assert centred_cell([{"x": 60.0, "y": 71.0}], 100, 120) is None  # 21 from the centre: over 0.2 x 100
