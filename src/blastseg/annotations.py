"""Annotation files: ALL-IDB1 ``.xyc`` blast centroids (read and written) and Pascal VOC boxes (BCCD).

A missing or malformed file is an :class:`~blastseg.errors.AnnotationError` naming the file and line.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blastseg.errors import AnnotationError


def read_xyc(path: str | os.PathLike) -> np.ndarray:
    """Read ALL-IDB1 ``.xyc`` centroids: one ``x y`` pair a line; returns float array (N, 2)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such file")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise AnnotationError(f"{path}:{number}: expected 'x y', got {line.strip()!r}")
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise AnnotationError(f"{path}:{number}: expected two numbers, got {line.strip()!r}") from None
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def xyc_text(centroids: np.ndarray) -> str:
    r"""ALL-IDB1 ``.xyc`` text of (N, 2) ``x y`` centroids, rounded to whole pixels as the dataset has them.

    >>> xyc_text(np.array([[10.4, 20.6], [3.0, 4.0]]))
    '10 21\n3 4\n'
    """
    return "".join(f"{round(x)} {round(y)}\n" for x, y in np.asarray(centroids, np.float64).reshape(-1, 2))


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels (VOC convention: inclusive corners)."""

    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def corners(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)``."""
        return (self.xmin, self.ymin, self.xmax, self.ymax)


def read_voc(path: str | os.PathLike) -> list[Box]:
    """Read the object boxes of a Pascal VOC XML annotation file."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise AnnotationError(f"{path}: not a valid VOC XML file ({error})") from None
    boxes = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        name = obj.findtext("name", default="").strip()
        if box is None:
            continue
        try:
            coords = [float(box.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}: object {name!r} has a malformed bndbox") from None
        boxes.append(Box(name, *coords))
    return boxes
