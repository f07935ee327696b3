"""Label maps of unannotated smear fields from colour alone: pseudo-masks to train on.

In a Romanowsky-stained smear (Giemsa, Wright, May-Grunwald) the white cells are the magenta to
violet objects, while red cells are grey-blue to pink-grey and the background is pale. The CIE
L*a*b* ``a*`` channel (green to magenta) separates them: white cells are the pixels above Otsu's
threshold of ``a*`` over the field. Each piece is then checked: a white cell is compact, so a piece
whose solidity (area over convex-hull area) is below ``MIN_SOLIDITY`` after touching cells are
split is something else or something uncertain (a smudge cell, a platelet clump, a cell cut in
two) and the whole field is left out: a field trains only when every piece in it is plausible,
because a left-out cell would teach the network to call a cell background. The nucleus is found
inside each cell as for boxes (:func:`~blastseg.datasets.box_masks.nucleus_in`).

These are pseudo-masks for training only, never references to score against. Where the rule
fails: neutrophils' pale pink cytoplasm is often missed, and a field whose red cells stain more
magenta than its white cells gives nonsense (``configs/travel_model.yaml`` uses it only on the
all_blasts fields, where overlays were looked at).

>>> image = np.full((60, 60, 3), 235, np.uint8)
>>> yy, xx = np.mgrid[:60, :60]
>>> image[(yy - 30) ** 2 + (xx - 30) ** 2 < 12**2] = (170, 120, 200)  # violet cell
>>> image[(yy - 30) ** 2 + (xx - 30) ** 2 < 6**2] = (90, 40, 140)  # dark nucleus
>>> labels = white_cells_by_colour(image)
>>> [int((labels == k).sum()) for k in (1, 2)]  # drawn: 328 and 109 pixels
[332, 105]
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.filters import threshold_otsu

from blastseg.datasets.box_masks import nucleus_in
from blastseg.labels import BACKGROUND, CYTOPLASM, NUCLEUS
from blastseg.postprocess import fill_holes, keep_large_components, opening, split_by_depth
from blastseg.preprocess import to_lab

MIN_SOLIDITY = 0.85  # a touching pair of round cells, once split, is well above; a smudge is below
MIN_SHARE = 0.1  # a piece smaller than this share of the largest is a speck (background)
SMOOTHING = 1.0  # Gaussian sigma in pixels, before the threshold


def magenta_mask(image: np.ndarray) -> np.ndarray:
    """Boolean mask of the field's magenta objects: ``a*`` above Otsu's threshold, holes filled,
    opened, specks dropped; empty when the field has one colour."""
    magenta = cv2.GaussianBlur(to_lab(image)[..., 1].astype(np.float32), (0, 0), SMOOTHING)
    if magenta.max() - magenta.min() < 1:
        return np.zeros(image.shape[:2], bool)
    mask = fill_holes(magenta > threshold_otsu(magenta))
    return keep_large_components(opening(mask, 3), MIN_SHARE)


def _solidity(piece: np.ndarray) -> float:
    contours, _ = cv2.findContours(piece.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    hull = cv2.contourArea(cv2.convexHull(np.vstack(contours)))
    return float(piece.sum() / hull) if hull > 0 else 0.0


def white_cells_by_colour(image: np.ndarray) -> np.ndarray | None:
    """Label map (0 background, 1 cytoplasm, 2 nucleus) of the field's white cells by colour, or
    ``None`` when a piece is not a plausible cell (solidity below ``MIN_SOLIDITY``) or there is none."""
    cells = magenta_mask(image)
    pieces = split_by_depth(cells)
    if pieces.max() == 0 or any(_solidity(pieces == i) < MIN_SOLIDITY for i in range(1, pieces.max() + 1)):
        return None
    labels = np.where(cells, CYTOPLASM, BACKGROUND).astype(np.uint8)
    for i in range(1, pieces.max() + 1):
        labels[nucleus_in(image, pieces == i)] = NUCLEUS
    return labels
