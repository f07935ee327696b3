"""Segmentation metrics for binary masks, per image and aggregated.

Conventions (the same for every metric): a ratio whose denominator is zero is 1.0 when the
prediction is also right by default, so two empty masks score Dice = IoU = precision = recall = 1;
an empty truth with a non-empty prediction scores Dice = IoU = precision = 0 and recall = 1 (there
was nothing to find). Specificity with no negative pixels in the truth is 1.0.

>>> truth = np.array([[1, 1, 0, 0]], bool); pred = np.array([[1, 0, 0, 0]], bool)
>>> round(segmentation_metrics(pred, truth)["dice"], 4)
0.6667
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from skimage.metrics import structural_similarity

from blastseg.errors import MaskError

METRICS = ("dice", "iou", "ssim", "precision", "recall", "specificity", "accuracy")


def _ratio(numerator: int, denominator: int) -> float:
    return 1.0 if denominator == 0 else numerator / denominator


def _check(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if pred.shape != truth.shape:
        raise MaskError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")
    return pred.astype(bool), truth.astype(bool)


def _confusion(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """True positives, false positives, false negatives, true negatives."""
    pred, truth = _check(pred, truth)
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return tp, fp, fn, pred.size - tp - fp - fn


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """2|P∩T| / (|P|+|T|); 1.0 when both are empty."""
    tp, fp, fn, _ = _confusion(pred, truth)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """|P∩T| / |P∪T|; 1.0 when both are empty."""
    tp, fp, fn, _ = _confusion(pred, truth)
    return _ratio(tp, tp + fp + fn)


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """Structural similarity of the two masks as 0/1 images (scikit-image, 7x7 window).

    Masks smaller than 7 pixels on a side are compared with the largest odd window that fits.
    """
    pred, truth = _check(pred, truth)
    if np.array_equal(pred, truth):
        return 1.0
    window = min(7, *pred.shape)
    window -= 1 - window % 2
    if window < 3:
        return float(np.mean(pred == truth))
    return float(structural_similarity(pred.astype(np.float64), truth.astype(np.float64), data_range=1.0, win_size=window))


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Every metric in ``METRICS`` for one pair of binary masks."""
    tp, fp, fn, tn = _confusion(pred, truth)
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "ssim": ssim(pred, truth),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
    }


def aggregate(rows: Iterable[dict[str, float]], keys: Iterable[str] = METRICS) -> dict[str, dict[str, float]]:
    """Mean, standard deviation (population), median, min and count of each metric over rows.

    >>> aggregate([{"dice": 1.0}, {"dice": 0.5}], ["dice"])["dice"]["mean"]
    0.75
    """
    rows = list(rows)
    summary = {}
    for key in keys:
        values = np.array([row[key] for row in rows if key in row], dtype=np.float64)
        if values.size == 0:
            continue
        summary[key] = {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "median": float(np.median(values)),
            "min": float(values.min()),
            "n": int(values.size),
        }
    return summary
