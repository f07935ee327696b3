"""Scale-free descriptors of a cell's nucleus and cytoplasm: the cells-table columns that tell a
blast from a lymphocyte or a hematogone when a forest is trained on them.

Every value is a share, a ratio, or a texture measured at distances that are fractions of the
nucleus's own diameter, so the same cell imaged at twice the magnification gives nearly the same
row; grey levels are stretched over the nucleus's own 2nd-98th percentiles, so a darker or paler
stain moves no texture value.

- nucleus texture: GLCM ``contrast, homogeneity, energy, correlation`` at 3 %, 8 % and 15 % of
  the nucleus's diameter (``nuc_glcm_<property>_near / _mid / _far``, mean over four directions),
  and the histogram of rotation-invariant uniform local binary patterns (8 neighbours at 5 % of
  the diameter; ``nuc_lbp_0`` ... ``nuc_lbp_9``, shares of the nucleus's pixels);
- nucleus contour: ``nuc_solidity`` (area over its convex hull's; lobes and notches lower it) and
  ``nuc_roughness`` (perimeter over its convex hull's, less 1; a jagged edge raises it);
- chromatin: ``nuc_grey_cv`` (the grey levels' spread over their mean: fine, even chromatin is
  low) and ``nuc_cyto_contrast`` (the nucleus's mean grey over the cytoplasm's);
- nucleoli-like spots: pale round spots inside the nucleus (a white top-hat a fifth of its
  diameter wide, rising over half the way from the nucleus's median grey to the cytoplasm's):
  ``nucleoli`` (how many) and ``nucleoli_share`` (of the nucleus's area);
- cytoplasm: the ring's width from the nucleus's edge to the cell's edge over the cell's radius,
  median and thinnest (``cyto_ring_median, cyto_ring_min``: a blast's thin rim is low), and its
  mean colour ``cyto_h, cyto_s, cyto_v`` (HSV, OpenCV ranges).

A cell without a nucleus (or without cytoplasm) gets 0 for what it lacks.

>>> yy, xx = np.mgrid[:80, :80]
>>> cell, nucleus = (yy - 40) ** 2 + (xx - 40) ** 2 < 30**2, (yy - 40) ** 2 + (xx - 40) ** 2 < 15**2
>>> image = np.where(nucleus[..., None], 90, 200).astype(np.uint8).repeat(3, axis=2)
>>> row = cell_features(image[..., 0], cv2.cvtColor(image, cv2.COLOR_RGB2HSV), cell, nucleus)
>>> round(row["cyto_ring_median"], 1), round(row["nuc_cyto_contrast"], 2), row["nucleoli"]  # a ring half the radius
(0.5, 0.45, 0)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
from skimage.measure import perimeter_crofton

GLCM_DISTANCES = {"near": 0.03, "mid": 0.08, "far": 0.15}  # shares of the nucleus's diameter
NUCLEUS_GLCM = ("contrast", "homogeneity", "energy", "correlation")
LEVELS = 32  # grey levels of a GLCM: 0 marks the pixels outside the mask, 1..31 those inside
LBP_POINTS, LBP_RADIUS = 8, 0.05
LBP_BINS = LBP_POINTS + 2  # the uniform patterns (0..8 set bits) and one bin for all the others
SPOT_SIZE, SPOT_RISE = 0.2, 0.5  # nucleoli: top-hat width (share of the diameter), rise (share of the way to the cytoplasm's grey)
FEATURE_COLUMNS = (
    *(f"nuc_glcm_{p}_{d}" for p in NUCLEUS_GLCM for d in GLCM_DISTANCES),
    *(f"nuc_lbp_{i}" for i in range(LBP_BINS)),
    "nuc_solidity",
    "nuc_roughness",
    "nuc_grey_cv",
    "nuc_cyto_contrast",
    "nucleoli",
    "nucleoli_share",
    "cyto_ring_median",
    "cyto_ring_min",
    "cyto_h",
    "cyto_s",
    "cyto_v",
)


def diameter(mask: np.ndarray) -> float:
    """The diameter of the disc with the mask's area."""
    return 2 * float(np.sqrt(np.count_nonzero(mask) / np.pi))


def stretched(grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey levels as floats in [0, 1] over the mask's own 2nd-98th percentiles (clipped).

    >>> stretched(np.array([[0, 50, 100]], np.uint8), np.ones((1, 3), bool)).round(2).tolist()
    [[0.0, 0.5, 1.0]]
    """
    low, high = np.percentile(grey[mask], (2, 98))
    return np.clip((grey.astype(np.float64) - low) / max(high - low, 1.0), 0, 1)


def glcm_table(levels: np.ndarray, mask: np.ndarray, distances: Sequence[int], properties: Sequence[str]) -> np.ndarray:
    """GLCM ``properties`` (rows) at ``distances`` (columns) of the ``mask`` pixels, each the mean
    over four directions; ``levels`` are grey levels 0..LEVELS-2, and pairs leaving the mask are
    ignored (a distance without a pair inside gives 0).

    >>> glcm_table(np.full((8, 8), 3), np.ones((8, 8), bool), [1, 2], ["contrast", "homogeneity"]).tolist()
    [[0.0, 0.0], [1.0, 1.0]]
    """
    quantised = np.where(mask, 1 + levels, 0).astype(np.uint8)  # pairs with a 0 are dropped below
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    matrix = graycomatrix(quantised, list(distances), angles, levels=LEVELS, symmetric=True)[1:, 1:].astype(np.float64)
    pairs = matrix.sum(axis=(0, 1)) > 0  # distances x angles with pairs inside the mask
    table = np.zeros((len(properties), len(distances)))
    for k, prop in enumerate(properties if pairs.any() else []):
        values = graycoprops(matrix, prop)
        table[k] = [values[i][pairs[i]].mean() if pairs[i].any() else 0.0 for i in range(len(distances))]
    return table


def nucleus_texture(grey: np.ndarray, nucleus: np.ndarray) -> dict[str, float]:
    """GLCM properties at three distances and the LBP histogram of the nucleus pixels."""
    size = diameter(nucleus)
    levels = stretched(grey, nucleus)
    distances = [max(1, round(share * size)) for share in GLCM_DISTANCES.values()]
    table = glcm_table(np.minimum(levels * (LEVELS - 1), LEVELS - 2).astype(np.uint8), nucleus, distances, NUCLEUS_GLCM)
    row = {f"nuc_glcm_{prop}_{name}": float(table[k, i]) for k, prop in enumerate(NUCLEUS_GLCM) for i, name in enumerate(GLCM_DISTANCES)}
    codes = local_binary_pattern((levels * 255).astype(np.uint8), LBP_POINTS, max(1.0, LBP_RADIUS * size), method="uniform")[nucleus]
    histogram = np.bincount(codes.astype(np.int64), minlength=LBP_BINS)[:LBP_BINS] / max(codes.size, 1)
    row.update({f"nuc_lbp_{i}": float(share) for i, share in enumerate(histogram)})
    return row


def nucleus_contour(nucleus: np.ndarray) -> dict[str, float]:
    """Solidity and roughness of the whole nucleus (its lobes together)."""
    hull = np.zeros(nucleus.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero(nucleus.astype(np.uint8))), 1)
    hull_perimeter = perimeter_crofton(hull)
    return {
        "nuc_solidity": float(nucleus.sum() / hull.sum()),
        "nuc_roughness": float(max(perimeter_crofton(nucleus) / hull_perimeter - 1, 0.0)) if hull_perimeter else 0.0,
    }


def nucleoli(grey: np.ndarray, nucleus: np.ndarray, cytoplasm: np.ndarray) -> dict[str, float]:
    """Pale round spots inside the nucleus, narrower than ``SPOT_SIZE`` of its diameter, rising
    ``SPOT_RISE`` of the way to the cytoplasm's grey (to the nucleus's brightest without cytoplasm)."""
    width = max(3, 2 * round(SPOT_SIZE * diameter(nucleus) / 2) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    base = float(np.median(grey[nucleus]))
    pale = float(grey[cytoplasm].mean()) if cytoplasm.any() else float(grey[nucleus].max())
    levels = np.where(nucleus, grey, 0).astype(np.uint8)  # the pale cytoplasm around is not a spot
    inner = cv2.erode(nucleus.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    spots = (cv2.morphologyEx(levels, cv2.MORPH_TOPHAT, kernel) > max(SPOT_RISE * (pale - base), 1.0)) & inner
    count, _, stats, _ = cv2.connectedComponentsWithStats(spots.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    kept = areas[areas >= 2]
    return {"nucleoli": int(kept.size), "nucleoli_share": float(kept.sum() / nucleus.sum())}


def cytoplasm_ring(cell: np.ndarray, nucleus: np.ndarray) -> dict[str, float]:
    """How far the cell's edge lies from the nucleus's edge, over the cell's radius."""
    inside = cv2.distanceTransform(np.pad(cell, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    edge = nucleus & ~cv2.erode(nucleus.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    widths = inside[edge] / (diameter(cell) / 2)
    return {"cyto_ring_median": float(np.median(widths)), "cyto_ring_min": float(widths.min())}


def cell_features(grey: np.ndarray, hsv: np.ndarray, cell: np.ndarray, nucleus: np.ndarray) -> dict[str, float]:
    """The :data:`FEATURE_COLUMNS` of one cell, from crops of its grey and HSV image and its
    ``cell`` and ``nucleus`` masks (the nucleus inside the cell)."""
    nucleus = nucleus & cell
    cytoplasm = cell & ~nucleus
    row = dict.fromkeys(FEATURE_COLUMNS, 0.0)
    if np.count_nonzero(nucleus) >= 4:
        row.update(nucleus_texture(grey, nucleus))
        row.update(nucleus_contour(nucleus))
        row.update(nucleoli(grey, nucleus, cytoplasm))
        row.update(cytoplasm_ring(cell, nucleus))
        values = grey[nucleus].astype(np.float64)
        row["nuc_grey_cv"] = float(values.std() / max(values.mean(), 1.0))
        if cytoplasm.any():
            row["nuc_cyto_contrast"] = float(values.mean() / max(grey[cytoplasm].mean(), 1.0))
    if cytoplasm.any():
        row.update(dict(zip(("cyto_h", "cyto_s", "cyto_v"), map(float, hsv[cytoplasm].mean(axis=0)))))
    return row
