"""What every segmenter is and returns, and the colour channels that segmenters threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from blastseg.errors import lookup
from blastseg.postprocess import InstanceRules, cell_instances
from blastseg.preprocess import to_grey, to_hsv, to_lab
from blastseg.scale import Scale, estimate_scale


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

    def scale_of(self, image: np.ndarray) -> Scale:
        """The image's scale: the one the segmenter measured (a network that rescales), else estimated from its red cells."""
        return self.info.get("scale") or estimate_scale(image)

    def cells(self, image: np.ndarray, rules: InstanceRules | None = None) -> np.ndarray:
        """The cell instances of ``labels``, by ``rules`` scaled to the image's red cells (:meth:`scale_of`)."""
        return cell_instances(self.labels, rules, self.scale_of(image).red_cell_px)


@runtime_checkable
class Segmenter(Protocol):
    """Anything that turns RGB ``uint8`` images into :class:`Segmentation` answers.

    ``target`` says what its label maps hold: ``nucleus``, ``cell`` or ``multiclass``.
    """

    target: str

    def segment(self, image: np.ndarray) -> Segmentation: ...

    def segment_many(self, images: Sequence[np.ndarray]) -> list[Segmentation]: ...


CHANNELS = {
    "gray": to_grey,
    "red": lambda im: im[..., 0],
    "green": lambda im: im[..., 1],
    "blue": lambda im: im[..., 2],
    "hue": lambda im: to_hsv(im, full_hue=True)[..., 0],
    "saturation": lambda im: to_hsv(im)[..., 1],
    "value": lambda im: to_hsv(im)[..., 2],
    "l": lambda im: to_lab(im)[..., 0],
    "a": lambda im: to_lab(im)[..., 1],
    "b": lambda im: to_lab(im)[..., 2],
}


def channel(image: np.ndarray, name: str) -> np.ndarray:
    """One named channel of an RGB image as ``uint8`` HxW (``l``, ``a``, ``b`` are CIE L*a*b*).

    >>> channel(np.full((1, 1, 3), (10, 20, 30), np.uint8), "green").tolist()
    [[20]]
    """
    return np.ascontiguousarray(lookup(CHANNELS, name, "channel")(image))
