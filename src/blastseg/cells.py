"""The cells table: one row per cell instance, and fixed-size crops around each cell.

Columns, in order: ``image, cell_id, x, y`` (centroid, pixels), the bounding box ``bbox_x0,
bbox_y0`` (inclusive) ``bbox_x1, bbox_y1`` (exclusive), ``area, perimeter, circularity``
(4 pi area / perimeter^2, Crofton perimeter: near 1 for a disc), ``solidity, eccentricity, nucleus_area, nc_ratio``
(nucleus area / cell area), ``nucleus_parts`` (separate pieces of nucleus, each at least 5% of
it: lobes of a neutrophil), ``touches_border``, the cell's mean ``r, g, b`` and ``h, s, v`` (HSV,
OpenCV ranges: h 0-179), and GLCM texture of its grey levels (scikit-image; 32 levels, distance 1,
mean over 4 directions, pixels outside the cell excluded): ``glcm_contrast, glcm_dissimilarity,
glcm_homogeneity, glcm_energy, glcm_correlation, glcm_asm``; the scale-free nucleus and cytoplasm
descriptors of :mod:`blastseg.features` (nucleus texture, contour, chromatin, nucleoli-like spots,
cytoplasm ring and colour); then, when the image's scale is known
(:mod:`blastseg.scale`), ``pixel_size_um`` and the sizes in physical units: ``diameter_um``
(of the disc of the same area), ``area_um2, perimeter_um, nucleus_area_um2`` (empty otherwise).

>>> labels = np.zeros((6, 6), np.uint8); labels[1:5, 1:5] = 1; labels[2:4, 2:4] = 2
>>> image = np.full((6, 6, 3), 200, np.uint8)
>>> row = cell_rows("a.png", image, labels, (labels > 0).astype(np.int32))[0]
>>> row["x"], row["y"], row["area"], row["nucleus_area"], row["nc_ratio"], (row["bbox_x0"], row["bbox_x1"])
(2.5, 2.5, 16, 4, 0.25, (1, 5))
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.measure import regionprops

from blastseg.features import FEATURE_COLUMNS, LEVELS, cell_features, glcm_table
from blastseg.labels import NUCLEUS
from blastseg.postprocess import count_parts
from blastseg.preprocess import Resize, to_grey, to_hsv

GLCM_PROPERTIES = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
UNIT_COLUMNS = ("pixel_size_um", "diameter_um", "area_um2", "perimeter_um", "nucleus_area_um2")
COLUMNS = (
    "image",
    "cell_id",
    "x",
    "y",
    "bbox_x0",
    "bbox_y0",
    "bbox_x1",
    "bbox_y1",
    "area",
    "perimeter",
    "circularity",
    "solidity",
    "eccentricity",
    "nucleus_area",
    "nc_ratio",
    "nucleus_parts",
    "touches_border",
    "r",
    "g",
    "b",
    "h",
    "s",
    "v",
    *(f"glcm_{p.lower()}" for p in GLCM_PROPERTIES),
    *FEATURE_COLUMNS,
    *UNIT_COLUMNS,
)
# the columns that describe the cell itself (not where it is or which image it is in, nor the
# physical sizes, known only for some images): classifier inputs
FEATURES = tuple(c for c in COLUMNS if c not in ("image", "cell_id", "x", "y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "touches_border", *UNIT_COLUMNS))


def glcm_features(grey: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """GLCM texture of the ``mask`` pixels of a ``uint8`` grey image (pairs leaving the mask ignored).

    >>> flat = glcm_features(np.full((8, 8), 100, np.uint8), np.ones((8, 8), bool))
    >>> flat["glcm_contrast"], flat["glcm_homogeneity"], flat["glcm_energy"]
    (0.0, 1.0, 1.0)
    """
    levels = (grey.astype(np.int32) * (LEVELS - 1)) // 256
    table = glcm_table(levels, mask, [1], GLCM_PROPERTIES)
    return {f"glcm_{prop.lower()}": float(value) for prop, value in zip(GLCM_PROPERTIES, table[:, 0])}


def nucleus_parts(nucleus: np.ndarray, min_fraction: float = 0.05) -> int:
    """Pieces of a nucleus mask (8-connected) covering at least ``min_fraction`` of it.

    >>> mask = np.zeros((5, 12), bool); mask[0:4, 0:4] = True; mask[0:4, 6:10] = True; mask[4, 11] = True  # 16, 16, 1
    >>> nucleus_parts(mask)
    2
    """
    return count_parts(nucleus, min_fraction * np.count_nonzero(nucleus))


def physical_sizes(area: float, perimeter: float, nucleus_area: float, pixel_size_um: float | None) -> dict[str, float | None]:
    """The unit columns of one cell: sizes in micrometres (``None`` when the pixel size is unknown).

    >>> physical_sizes(400, 80, 100, 0.5)
    {'pixel_size_um': 0.5, 'diameter_um': 11.284, 'area_um2': 100.0, 'perimeter_um': 40.0, 'nucleus_area_um2': 25.0}
    """
    if pixel_size_um is None:
        return dict.fromkeys(UNIT_COLUMNS)
    square = pixel_size_um**2
    return {
        "pixel_size_um": round(pixel_size_um, 5),
        "diameter_um": round(2 * float(np.sqrt(area / np.pi)) * pixel_size_um, 3),
        "area_um2": round(area * square, 3),
        "perimeter_um": round(perimeter * pixel_size_um, 3),
        "nucleus_area_um2": round(nucleus_area * square, 3),
    }


def cell_rows(image_name: str, image: np.ndarray, labels: np.ndarray, instances: np.ndarray, pixel_size_um: float | None = None) -> list[dict]:
    """One row per instance of ``instances`` with the columns in :data:`COLUMNS` (sizes in
    micrometres too when ``pixel_size_um`` is given)."""
    rows = []
    nucleus = labels == NUCLEUS
    grey = to_grey(image)
    hsv = to_hsv(image)
    height, width = labels.shape
    for region in regionprops(instances):
        y0, x0, y1, x1 = region.bbox
        cy, cx = region.centroid
        inside = region.image
        area = int(region.area)
        cell_nucleus = nucleus[y0:y1, x0:x1] & inside
        nucleus_area = int(cell_nucleus.sum())
        perimeter = float(region.perimeter_crofton)  # unbiased for round shapes, unlike 4-neighbour counts
        rgb = image[y0:y1, x0:x1][inside].mean(axis=0)
        hsv_mean = hsv[y0:y1, x0:x1][inside].mean(axis=0)
        rows.append(
            {
                "image": image_name,
                "cell_id": region.label,
                "x": round(float(cx), 2),
                "y": round(float(cy), 2),
                "bbox_x0": x0,
                "bbox_y0": y0,
                "bbox_x1": x1,
                "bbox_y1": y1,
                "area": area,
                "perimeter": round(perimeter, 2),
                "circularity": 4 * np.pi * area / perimeter**2 if perimeter else 0.0,
                "solidity": float(region.solidity),
                "eccentricity": float(region.eccentricity),
                "nucleus_area": nucleus_area,
                "nc_ratio": nucleus_area / area,
                "nucleus_parts": nucleus_parts(cell_nucleus),
                "touches_border": bool(y0 == 0 or x0 == 0 or y1 == height or x1 == width),
                **dict(zip("rgb", map(float, rgb))),
                **dict(zip("hsv", map(float, hsv_mean))),
                **glcm_features(grey[y0:y1, x0:x1], inside),
                **cell_features(grey[y0:y1, x0:x1], hsv[y0:y1, x0:x1], inside, cell_nucleus),
                **physical_sizes(area, perimeter, nucleus_area, pixel_size_um),
            }
        )
    return rows


def resampled_features(image: np.ndarray, labels: np.ndarray, instances: np.ndarray, diameter: int, context: float = 1.5) -> dict[int, dict]:
    """Each cell's :data:`FEATURES` measured at one resolution: the cell's window (``context``
    times its longer side) resampled so that its equivalent diameter is ``diameter`` pixels
    (pixel area averaging when it shrinks, bilinear when it grows; masks nearest). A classifier
    that learns from several labs then cannot tell them apart by how many pixels a cell spans or
    how sharp they are: a 22-pixel blast and a 135-pixel neutrophil are both seen at ``diameter``.
    Cells too small to survive the resampling are left out of the answer.
    """
    answer = {}
    for region in regionprops(instances):
        top, left, bottom, right = crop_window(region.centroid, cell_window(region.bbox, context), instances.shape)
        factor = diameter / max(region.equivalent_diameter_area, 1.0)
        size = (max(1, round((right - left) * factor)), max(1, round((bottom - top) * factor)))
        smooth = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        crop = cv2.resize(np.ascontiguousarray(image[top:bottom, left:right]), size, interpolation=smooth)
        cell = cv2.resize((instances[top:bottom, left:right] == region.label).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        parts = cv2.resize(np.ascontiguousarray(labels[top:bottom, left:right]), size, interpolation=cv2.INTER_NEAREST)
        rows = cell_rows("", crop, parts, cell.astype(np.int32))
        if rows:
            answer[region.label] = {name: rows[0][name] for name in FEATURES}
    return answer


def with_resampled_features(rows: list[dict], image: np.ndarray, labels: np.ndarray, instances: np.ndarray, diameter: int) -> list[dict]:
    """``rows`` (cells-table rows of these ``instances``) with their :data:`FEATURES` measured as
    :func:`resampled_features` does; a cell lost in the resampling keeps its own."""
    measured = resampled_features(image, labels, instances, diameter)
    return [{**row, **measured.get(row["cell_id"], {})} for row in rows]


def cell_window(bbox: tuple[int, int, int, int], scale: float) -> int:
    """The side of a square window ``scale`` times a cell's longer bounding-box side (8 at least).

    >>> cell_window((10, 20, 50, 40), 1.25)  # 40 rows by 20 columns
    50
    """
    y0, x0, y1, x1 = bbox
    return max(8, round(scale * max(y1 - y0, x1 - x0)))


def crop_window(centre: tuple[float, float], size: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of a ``size`` square around ``centre`` (y, x), shifted inward
    so it stays inside an image of ``shape``; an image smaller than ``size`` gives its full side.

    >>> crop_window((5, 95), 20, (100, 100))  # near the top-right corner: shifted down and left
    (0, 80, 20, 100)
    """
    corners = []
    for middle, side in zip(centre, shape):
        extent = min(size, side)
        start = int(round(middle - extent / 2))
        start = min(max(start, 0), side - extent)
        corners.append((start, start + extent))
    (top, bottom), (left, right) = corners
    return top, left, bottom, right


def cell_crops(image: np.ndarray, instances: np.ndarray, size: int, scale: float | None = None) -> dict[int, np.ndarray]:
    """A ``size`` x ``size`` RGB crop around each cell's centroid, never crossing the image border
    (shifted inward instead).

    Without ``scale`` the window is ``size`` pixels of the image (resized up only when the image
    itself is smaller). With ``scale`` the window is ``scale`` times the cell's longer bounding-box
    side, resized to ``size``: every cell then fills its crop alike, whatever the magnification.
    """
    crops = {}
    for region in regionprops(instances):
        top, left, bottom, right = crop_window(region.centroid, size if scale is None else cell_window(region.bbox, scale), instances.shape)
        crop = image[top:bottom, left:right]
        crops[region.label] = crop if crop.shape[:2] == (size, size) else Resize(width=size, height=size)(crop)
    return crops
