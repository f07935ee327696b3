"""What every segmenter returns, and the colour channels segmenters threshold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from blastseg.errors import lookup


@dataclass
class Segmentation:
    """A segmenter's answer for one image.

    ``labels`` is a ``uint8`` label map (0 background, 1 cytoplasm, 2 nucleus); ``instances``
    (int32, 0 background, 1..N) is set by segmenters that separate objects; ``info`` holds what
    the method chose (k, thresholds, score tables) for reports.
    """

    labels: np.ndarray
    instances: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2LAB)


def _hsv(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)


CHANNELS = {
    "gray": lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY),
    "red": lambda im: im[..., 0],
    "green": lambda im: im[..., 1],
    "blue": lambda im: im[..., 2],
    "hue": lambda im: _hsv(im)[..., 0],
    "saturation": lambda im: _hsv(im)[..., 1],
    "value": lambda im: _hsv(im)[..., 2],
    "l": lambda im: _lab(im)[..., 0],
    "a": lambda im: _lab(im)[..., 1],
    "b": lambda im: _lab(im)[..., 2],
}


def channel(image: np.ndarray, name: str) -> np.ndarray:
    """One named channel of an RGB image as ``uint8`` HxW (``l``, ``a``, ``b`` are CIE L*a*b*).

    >>> channel(np.full((1, 1, 3), (10, 20, 30), np.uint8), "green").tolist()
    [[20]]
    """
    return np.ascontiguousarray(lookup(CHANNELS, name, "channel")(image))
