import numpy as np
import pytest

from blastseg.errors import MaskError
from blastseg.metrics import aggregate, dice, iou, segmentation_metrics, ssim

TRUTH = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], bool)
PRED = np.array([[1, 0, 0, 0], [1, 1, 1, 1]], bool)  # tp 3, fp 2, fn 1, tn 2


def test_hand_worked_confusion_metrics():
    m = segmentation_metrics(PRED, TRUTH)
    assert m["dice"] == pytest.approx(6 / 9)
    assert m["iou"] == pytest.approx(3 / 6)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(2 / 4)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert dice(PRED, TRUTH) == pytest.approx(6 / 9) and iou(PRED, TRUTH) == pytest.approx(0.5)


def test_empty_mask_conventions():
    empty = np.zeros((4, 4), bool)
    both = segmentation_metrics(empty, empty)
    assert all(value == 1.0 for value in both.values())
    spurious = segmentation_metrics(~empty, empty)
    assert (spurious["dice"], spurious["iou"], spurious["precision"], spurious["recall"]) == (0.0, 0.0, 0.0, 1.0)
    missed = segmentation_metrics(empty, ~empty)
    assert (missed["dice"], missed["recall"], missed["precision"], missed["specificity"]) == (0.0, 0.0, 1.0, 1.0)


def test_ssim_hand_worked_on_constant_masks():
    ones, zeros = np.ones((8, 8), bool), np.zeros((8, 8), bool)
    assert ssim(ones, ones) == 1.0
    # constant images: SSIM = (2·1·0 + C1)/(1 + 0 + C1) with C1 = (0.01·1)²
    assert ssim(ones, zeros) == pytest.approx(1e-4 / (1 + 1e-4), rel=1e-6)
    square = np.zeros((20, 20), bool)
    square[5:15, 5:15] = True
    shifted = np.roll(square, 1, axis=0)
    assert 0.5 < ssim(square, shifted) < 1.0
    assert ssim(square, shifted) == pytest.approx(ssim(shifted, square))
    assert ssim(PRED, TRUTH) == pytest.approx(np.mean(PRED == TRUTH))  # too small for a 3x3 window


def test_shape_mismatch_is_an_error():
    with pytest.raises(MaskError, match="differ in shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))


def test_aggregate_mean_std_median():
    summary = aggregate([{"dice": 1.0}, {"dice": 0.5}, {"dice": 0.0}], ["dice"])["dice"]
    assert summary == {"mean": 0.5, "std": pytest.approx(np.sqrt(1 / 6)), "median": 0.5, "min": 0.0, "n": 3}
