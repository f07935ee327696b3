"""How good a classifier is: precision, recall and F1 per class, macro F1, accuracy, the confusion
matrix (CSV and PNG), and the majority-class baseline to compare against.

>>> scores = classification_scores(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"])
>>> scores["per_class"]["a"]["recall"], scores["per_class"]["b"]["precision"], scores["confusion"]
(0.5, 0.6666666666666666, [[1, 1], [0, 2]])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from blastseg.io import write_bytes, write_csv
from blastseg.render import figure_png, pyplot


def classification_scores(truth: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> dict:
    """Per-class precision, recall, F1 and support; macro F1; accuracy; confusion (rows: truth)."""
    ids = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=ids, zero_division=0)
    return {
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "macro_f1": float(f1_score(truth, predicted, labels=ids, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "confusion": confusion_matrix(truth, predicted, labels=ids).tolist(),
    }


def majority_baseline(truth: np.ndarray, classes: Sequence[str]) -> dict:
    """The scores of always answering the most common class.

    >>> majority_baseline(np.array([1, 1, 0]), ["a", "b"])["macro_f1"]
    0.4
    """
    return classification_scores(truth, np.full_like(truth, np.bincount(truth).argmax()), classes)


def write_confusion(folder: Path, confusion: list[list[int]], classes: Sequence[str], title: str) -> None:
    """``confusion.csv`` (rows: true class, columns: predicted) and ``confusion.png``."""
    rows = [{"true \\ predicted": name, **dict(zip(classes, counts))} for name, counts in zip(classes, confusion)]
    write_csv(folder / "confusion.csv", rows, ["true \\ predicted", *classes])
    matrix = np.asarray(confusion)
    size = 1.2 + 0.9 * len(classes)
    figure, axes = pyplot().subplots(figsize=(size + 1, size))
    axes.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axes.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.tight_layout()
    write_bytes(folder / "confusion.png", figure_png(figure, dpi=120))
