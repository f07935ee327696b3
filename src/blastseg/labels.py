"""The shared label-map id scheme and the segmentation targets derived from it.

A label map is ``uint8`` HxW with 0 background, 1 cytoplasm and 2 nucleus (a training label map may
also mark pixels whose class is not known: ``UNSURE``, which the loss ignores). A *target* is what a
user asks to segment: ``nucleus`` (label 2), ``cell`` (labels 1 or 2: the whole white cell) or
``multiclass`` (the label map itself).
"""

from __future__ import annotations

import numpy as np

from blastseg.errors import UnknownNameError

BACKGROUND, CYTOPLASM, NUCLEUS = 0, 1, 2
UNSURE = 255  # a pseudo-mask pixel that may be cell or background: training learns nothing there
TARGETS = ("nucleus", "cell", "multiclass")
BLAST, NORMAL = "blast", "normal"  # the cell classes of the ALL-IDB data; a classifier with ``blast`` gives a blast percentage
BINARY_TARGETS = ("nucleus", "cell")


def check_target(target: str, allowed: tuple[str, ...] = TARGETS) -> str:
    if target not in allowed:
        raise UnknownNameError(f"unknown target {target!r}; valid: {', '.join(allowed)}")
    return target


def target_mask(labels: np.ndarray, target: str) -> np.ndarray:
    """Return the boolean mask of ``target`` (``nucleus`` or ``cell``) in a label map.

    >>> target_mask(np.array([[0, 1, 2]], np.uint8), "cell").tolist()
    [[False, True, True]]
    """
    check_target(target, BINARY_TARGETS)
    return labels == NUCLEUS if target == "nucleus" else labels > BACKGROUND


def mask_to_labels(mask: np.ndarray, target: str) -> np.ndarray:
    """Turn a boolean mask of one target back into a label map (cell → 1, nucleus → 2)."""
    check_target(target, BINARY_TARGETS)
    value = NUCLEUS if target == "nucleus" else CYTOPLASM
    return np.where(mask, value, BACKGROUND).astype(np.uint8)
