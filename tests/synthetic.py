"""Shared test helpers: synthetic smear-like images with known label maps, and the real-data path."""

from __future__ import annotations

import zlib
from io import BytesIO
from pathlib import Path

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
