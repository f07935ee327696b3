"""What a person looks at: mask PNGs in the shared grey coding, outline overlays, and plots."""

from __future__ import annotations

import io

import cv2
import numpy as np

from blastseg.labels import BLAST, CYTOPLASM, NORMAL, NUCLEUS, target_mask

CELL_COLOUR = (0, 200, 0)
NUCLEUS_COLOUR = (30, 60, 255)
CLASS_COLOURS = {BLAST: (230, 25, 25), NORMAL: (0, 190, 0)}
# colours for other classes, in order of the classifier's class list (none red, green or blue)
PALETTE = ((255, 160, 0), (190, 0, 190), (0, 190, 200), (140, 90, 40), (255, 110, 180), (120, 120, 120), (200, 200, 0))


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


def class_colours(classes: list[str]) -> dict[str, tuple[int, int, int]]:
    """Blasts red and every other class green (normal) when the classifier knows blasts, as the
    tools labs use draw them (the label names the type); without a blast class, each class its own
    colour from :data:`PALETTE`.

    >>> colours = class_colours(["blast", "lymphocyte", "monocyte"])
    >>> colours["blast"], colours["monocyte"], class_colours(["lymphocyte", "monocyte"])["monocyte"]
    ((230, 25, 25), (0, 190, 0), (190, 0, 190))
    """
    if BLAST in classes:
        return {name: CLASS_COLOURS[BLAST] if name == BLAST else CLASS_COLOURS[NORMAL] for name in classes}
    others = iter(PALETTE * (len(classes) // len(PALETTE) + 1))
    return {name: CLASS_COLOURS.get(name) or next(others) for name in classes}


def classified_overlay(image: np.ndarray, labels: np.ndarray, instances: np.ndarray, rows: list[dict], colours: dict[str, tuple[int, int, int]]) -> np.ndarray:
    """Each cell outlined and boxed in its class colour with ``class probability`` written above
    its box; nuclei outlined in blue."""
    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 400))
    font_scale = 0.4 * thickness
    contours, _ = cv2.findContours((labels == NUCLEUS).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, NUCLEUS_COLOUR, thickness)
    for row in rows:
        colour = colours[row["class"]]
        x0, y0, x1, y1 = row["bbox_x0"], row["bbox_y0"], row["bbox_x1"], row["bbox_y1"]
        cell = (instances[y0:y1, x0:x1] == row["cell_id"]).astype(np.uint8)  # its box only: fields hold many cells
        contours, _ = cv2.findContours(cell, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(x0, y0))
        cv2.drawContours(canvas, contours, -1, colour, thickness)
        top_left, bottom_right = (row["bbox_x0"], row["bbox_y0"]), (row["bbox_x1"] - 1, row["bbox_y1"] - 1)
        cv2.rectangle(canvas, top_left, bottom_right, colour, thickness)
        text = f"{row['class']} {row['probability']:.2f}"
        (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        x = min(max(row["bbox_x0"], 0), max(image.shape[1] - width, 0))
        y = row["bbox_y0"] - base - 2 if row["bbox_y0"] >= height + base + 2 else row["bbox_y1"] + height + 2
        y = min(y, image.shape[0] - base)
        cv2.rectangle(canvas, (x, y - height - 1), (x + width, y + base), colour, cv2.FILLED)
        cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported on first use (it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def figure_png(figure, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(figure)
    return buffer.getvalue()
