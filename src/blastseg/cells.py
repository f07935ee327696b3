"""The cells table: one row per cell instance, with where it is and how big it and its nucleus are.

>>> labels = np.zeros((6, 6), np.uint8); labels[1:5, 1:5] = 1; labels[2:4, 2:4] = 2
>>> instances = (labels > 0).astype(np.int32)
>>> row = cell_rows("a.png", labels, instances)[0]
>>> row["x"], row["y"], row["area"], row["nucleus_area"], (row["bbox_x0"], row["bbox_x1"])
(2.5, 2.5, 16, 4, (1, 5))
"""

from __future__ import annotations

import numpy as np
from skimage.measure import regionprops

from blastseg.labels import NUCLEUS

COLUMNS = ("image", "cell_id", "x", "y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "area", "nucleus_area")


def cell_rows(image_name: str, labels: np.ndarray, instances: np.ndarray) -> list[dict]:
    """One row per instance: centroid (x, y), bounding box (x0, y0 inclusive; x1, y1 exclusive),
    area and nucleus area in pixels."""
    rows = []
    nucleus = labels == NUCLEUS
    for region in regionprops(instances):
        y0, x0, y1, x1 = region.bbox
        cy, cx = region.centroid
        inside = nucleus[y0:y1, x0:x1] & region.image
        rows.append({
            "image": image_name, "cell_id": region.label, "x": round(float(cx), 2), "y": round(float(cy), 2),
            "bbox_x0": x0, "bbox_y0": y0, "bbox_x1": x1, "bbox_y1": y1,
            "area": int(region.area), "nucleus_area": int(inside.sum()),
        })
    return rows
