"""Shared test helpers: synthetic smear-like images with known label maps, and the real-data path."""

from __future__ import annotations

import zlib
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

BACKGROUND_RGB = (235, 225, 215)
CYTOPLASM_RGB = (190, 170, 215)
NUCLEUS_RGB = (90, 50, 150)


def disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


PALETTE = np.array([BACKGROUND_RGB, CYTOPLASM_RGB, NUCLEUS_RGB], np.float64)


def synthetic_field(shape, cells, noise=4, seed=0):
    """Stained round cells ``(centre, cell_radius, nucleus_radius)`` on a pale background:
    returns (RGB uint8 image, label map 0/1/2)."""
    labels = np.zeros(shape, np.uint8)
    for centre, cell_radius, nucleus_radius in cells:
        labels[disc(shape, centre, cell_radius)] = 1
        labels[disc(shape, centre, nucleus_radius)] = 2
    image = PALETTE[labels] + np.random.default_rng(seed).normal(0, noise, (*shape, 3))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def synthetic_cell(shape=(96, 96), centre=(48, 48), cell_radius=30, nucleus_radius=15, noise=4, seed=0):
    """A pale background with one stained cell: returns (RGB uint8 image, label map 0/1/2)."""
    return synthetic_field(shape, [(centre, cell_radius, nucleus_radius)], noise, seed)


def colour_labels(image: np.ndarray) -> np.ndarray:
    """The label map of a synthetic image: each pixel's nearest palette colour (a perfect segmenter)."""
    distance = ((image[:, :, None, :].astype(np.float64) - PALETTE[None, None]) ** 2).sum(axis=3)
    return distance.argmin(axis=2).astype(np.uint8)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A 1x1 PNG whose header claims ``width`` x ``height``: a decompression bomb's header, 70 bytes."""
    buffer = BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


RED_CELL_RGB = (215, 150, 160)
PALLOR_RGB = (228, 195, 195)


def _circle(image: np.ndarray, centre: tuple[float, float], radius: float, colour: tuple[int, int, int]) -> None:
    """Fill a disc in place (sub-pixel centre and radius; cheap on large images)."""
    shift = 4
    cy, cx = (round(v * 2**shift) for v in centre)
    cv2.circle(image, (cx, cy), round(radius * 2**shift), colour, -1, cv2.LINE_8, shift)


def synthetic_smear(shape: tuple[int, int], red_cell_diameter: float, seed: int = 0, white_cells: int = 1) -> np.ndarray:
    """A smear-like RGB field: pink red cells of ``red_cell_diameter`` pixels (paler centres, some
    touching) and ``white_cells`` larger violet cells on a pale background."""
    rng = np.random.default_rng(seed)
    radius = red_cell_diameter / 2
    image = np.empty((*shape, 3), np.uint8)
    image[:] = BACKGROUND_RGB
    step = red_cell_diameter * 1.3
    for cy in np.arange(radius + 2, shape[0] - radius - 2, step):
        for cx in np.arange(radius + 2, shape[1] - radius - 2, step):
            if rng.random() < 0.3:  # gaps, as in a real field
                continue
            centre = (cy + rng.uniform(-0.05, 0.05) * red_cell_diameter, cx + rng.uniform(-0.05, 0.05) * red_cell_diameter)
            _circle(image, centre, radius * rng.uniform(0.95, 1.05), RED_CELL_RGB)
            _circle(image, centre, radius * 0.4, PALLOR_RGB)
    for _ in range(white_cells):
        centre = (rng.uniform(0.3, 0.7) * shape[0], rng.uniform(0.3, 0.7) * shape[1])
        _circle(image, centre, radius * 1.6, CYTOPLASM_RGB)
        _circle(image, centre, radius * 1.1, NUCLEUS_RGB)
    noisy = image + rng.normal(0, 3, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)
