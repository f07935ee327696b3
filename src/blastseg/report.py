"""What a person looks at: mask PNGs in the shared grey coding, and outline overlays."""

from __future__ import annotations

import cv2
import numpy as np

from blastseg.labels import CYTOPLASM, NUCLEUS, target_mask

CELL_COLOUR = (0, 200, 0)
NUCLEUS_COLOUR = (30, 60, 255)


def mask_image(labels: np.ndarray, target: str) -> np.ndarray:
    """Visible 8-bit mask: multiclass 0/128/255 (background/cytoplasm/nucleus), one target 0/255.

    >>> mask_image(np.array([[0, 1, 2]], np.uint8), "multiclass").tolist()
    [[0, 128, 255]]
    """
    if target == "multiclass":
        lut = np.zeros(256, np.uint8)
        lut[CYTOPLASM], lut[NUCLEUS] = 128, 255
        return lut[labels]
    return target_mask(labels, target).astype(np.uint8) * 255


def overlay(image: np.ndarray, labels: np.ndarray, thickness: int | None = None) -> np.ndarray:
    """The image with cell outlines (green) and nucleus outlines (blue) drawn on a copy."""
    canvas = image.copy()
    thickness = thickness or max(1, round(max(image.shape[:2]) / 400))
    for mask, colour in ((labels > 0, CELL_COLOUR), (labels == NUCLEUS, NUCLEUS_COLOUR)):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, colour, thickness)
    return canvas
