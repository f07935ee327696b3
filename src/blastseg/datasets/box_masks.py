"""Label maps drawn from boxes: a white cell's outline grown inside its box by GrabCut, and its
nucleus as the part of the cell that absorbs most red light (the stained chromatin).

Detection sets such as BCCD give a box per white cell and nothing finer. A box is enough to teach a
network what is *not* a white cell (red cells, platelets, background), and GrabCut, seeded with
the box's centre as certain cell and the outside as certain background, gives an outline that
follows the cell's edge. These are pseudo-masks: good enough to train on, never to score against.

GrabCut keeps what is stained. A neutrophil's pale, granular cytoplasm looks much like the background
and the red cells around it, so GrabCut often stops at the nucleus. With ``edge_known=False`` the rest
of the ellipse inscribed in the box is marked ``UNSURE``: the box then says only that the stained core
is cell and that everything outside the box is not, and the cell's edge is left to what the network
learned from drawn masks.

>>> import numpy as np
>>> from blastseg.annotations import Box
>>> image = np.full((80, 80, 3), 235, np.uint8)
>>> yy, xx = np.mgrid[:80, :80]
>>> image[(yy - 40) ** 2 + (xx - 40) ** 2 < 18**2] = (200, 170, 210)  # pale cytoplasm
>>> image[(yy - 40) ** 2 + (xx - 40) ** 2 < 9**2] = (90, 40, 140)  # dark nucleus
>>> labels = masks_from_boxes(image, [Box("WBC", 18, 18, 62, 62)])
>>> [int((labels == k).sum()) for k in (1, 2)]  # cytoplasm ring and nucleus; drawn: 763 and 254 px
[760, 245]
>>> labels = masks_from_boxes(image, [Box("WBC", 18, 18, 62, 62)], edge_known=False)
>>> int((labels == UNSURE).sum())  # the ellipse in the box (1,595 px as drawn) less the grown cell
590
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from blastseg.annotations import Box
from blastseg.labels import BACKGROUND, CYTOPLASM, NUCLEUS, UNSURE

WHITE_CELL_LABEL = "WBC"
CERTAIN_CORE = 0.3  # the ellipse of this share of the box is surely cell
LIKELY_CELL = 0.85  # ... and this one probably cell; the rest of the box probably not
GRABCUT_ITERATIONS = 5
MIN_NUCLEUS_SHARE = 0.05  # a nucleus piece smaller than this share of the largest is dropped


def _ellipse(shape: tuple[int, int], box: tuple[int, int, int, int], share: float) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, np.uint8)
    centre = ((x0 + x1) // 2, (y0 + y1) // 2)
    axes = (max(1, round((x1 - x0) * share / 2)), max(1, round((y1 - y0) * share / 2)))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return mask.astype(bool)


def cell_from_box(image: np.ndarray, box: Box) -> np.ndarray:
    """Boolean mask (image-sized) of the cell inside ``box``, grown by GrabCut.

    The box is clipped to the image; a box too small to hold a cell (under 4 pixels a side) gives
    an empty mask.
    """
    height, width = image.shape[:2]
    x0, y0 = max(0, int(box.xmin)), max(0, int(box.ymin))
    x1, y1 = min(width, int(np.ceil(box.xmax))), min(height, int(np.ceil(box.ymax)))
    cell = np.zeros((height, width), bool)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return cell
    margin = max(4, (x1 - x0 + y1 - y0) // 8)  # GrabCut learns the background from a ring outside the box
    rx0, ry0, rx1, ry1 = max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin)
    inner = (x0 - rx0, y0 - ry0, x1 - rx0, y1 - ry0)
    shape = (ry1 - ry0, rx1 - rx0)
    seeds = np.full(shape, cv2.GC_BGD, np.uint8)
    seeds[inner[1] : inner[3], inner[0] : inner[2]] = cv2.GC_PR_BGD
    seeds[_ellipse(shape, inner, LIKELY_CELL)] = cv2.GC_PR_FGD
    seeds[_ellipse(shape, inner, CERTAIN_CORE)] = cv2.GC_FGD
    roi = np.ascontiguousarray(image[ry0:ry1, rx0:rx1, ::-1])  # OpenCV models colour in BGR order
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: the same box gives the same mask
    cv2.grabCut(roi, seeds, None, background, foreground, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    grown = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    count, ids, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    if count > 1:  # keep the piece that holds the certain core, holes filled
        core = ids[_ellipse(shape, inner, CERTAIN_CORE)]
        keep = np.bincount(core[core > 0], minlength=count).argmax() if (core > 0).any() else 1 + stats[1:, cv2.CC_STAT_AREA].argmax()
        grown = (ids == keep).astype(np.uint8)
        contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(grown, contours, -1, 1, -1)
    cell[ry0:ry1, rx0:rx1] = grown.astype(bool)
    return cell


def nucleus_in(image: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """The nucleus inside a cell mask: cell pixels whose red channel is below Otsu's threshold
    over the cell (chromatin absorbs red light; eosinophil granules and cytoplasm much less),
    smoothed, with small pieces dropped."""
    nucleus = np.zeros(cell.shape, bool)
    red = image[..., 0][cell]
    if red.size < 16 or int(red.max()) == int(red.min()):
        return nucleus
    threshold, _ = cv2.threshold(red.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    nucleus[cell] = red <= threshold
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    smooth = cv2.morphologyEx(nucleus.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    smooth = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, kernel) & cell.astype(np.uint8)
    count, ids, stats, _ = cv2.connectedComponentsWithStats(smooth, connectivity=8)
    if count <= 1:
        return nucleus & False
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= MIN_NUCLEUS_SHARE * areas.max())
    return np.isin(ids, keep)


def masks_from_boxes(image: np.ndarray, boxes: Sequence[Box], label: str = WHITE_CELL_LABEL, edge_known: bool = True) -> np.ndarray:
    """A label map (0 background, 1 cytoplasm, 2 nucleus) with a cell grown in every box named
    ``label``; every other pixel, other boxes' cells included, is background. With ``edge_known``
    false, the pixels of each box's inscribed ellipse outside the grown cells are ``UNSURE``."""
    labels = np.full(image.shape[:2], BACKGROUND, np.uint8)
    cells = [box for box in boxes if box.label == label]
    if not edge_known:
        for box in cells:
            corners = (int(box.xmin), int(box.ymin), int(np.ceil(box.xmax)), int(np.ceil(box.ymax)))  # a cell cut by the edge: its whole ellipse
            labels[_ellipse(labels.shape, corners, 1.0)] = UNSURE
    for box in cells:
        cell = cell_from_box(image, box)
        labels[cell] = CYTOPLASM
        labels[nucleus_in(image, cell)] = NUCLEUS
    return labels
