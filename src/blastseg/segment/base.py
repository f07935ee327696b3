"""What every segmenter is and returns, and the colour channels that segmenters threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from skimage.measure import regionprops

from blastseg.datasets.colour_masks import magenta_mask
from blastseg.errors import lookup
from blastseg.labels import CYTOPLASM
from blastseg.postprocess import InstanceRules, cell_instances, split_at_markers, split_by_size
from blastseg.preprocess import to_grey, to_hsv, to_lab
from blastseg.scale import Scale, estimate_scale

COLOUR_SPLIT_SOLIDITY = 0.92  # a cell less convex than this may be two; chosen on half the hand-checked all_blasts fields


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
        return image_cells(image, self.labels, rules, self.scale_of(image).red_cell_px)


def image_cells(image: np.ndarray, labels: np.ndarray, rules: InstanceRules | None = None, red_cell_px: float | None = None) -> np.ndarray:
    """The cell instances of an image's label map: :func:`~blastseg.postprocess.cell_instances`,
    then, with ``rules.colour_split``, each non-convex cell cut between the stained objects it
    holds (:func:`stained_cells`; only computed when some cell is not convex)."""
    rules = rules or InstanceRules()
    instances = cell_instances(labels, rules, red_cell_px)
    if not rules.colour_split or all(cell.solidity >= COLOUR_SPLIT_SOLIDITY for cell in regionprops(instances)):
        return instances
    return split_at_markers(instances, stained_cells(image, instances > 0, rules, red_cell_px), COLOUR_SPLIT_SOLIDITY)


def stained_cells(image: np.ndarray, cells: np.ndarray, rules: InstanceRules, red_cell_px: float | None) -> np.ndarray:
    """The white cells the stain outlines: the magenta objects of
    :func:`~blastseg.datasets.colour_masks.magenta_mask` made instances by ``rules``, keeping only
    the objects that lie mostly (half or more) inside ``cells``, a segmenter's cell mask, and then
    splitting those by size. Elsewhere the magenta objects are red cells or clumps (a smear whose
    red cells take the stain), whose cuts say nothing about where a white cell ends; nor may their
    size set the typical cell of the size split, which would then cut a white cell into wedges."""
    stained = np.where(magenta_mask(image), CYTOPLASM, 0).astype(np.uint8)
    whole = cell_instances(stained, rules.model_copy(update={"size_split": None}), red_cell_px)
    share_inside = np.bincount(whole[cells], minlength=whole.max() + 1) / np.maximum(np.bincount(whole.ravel()), 1)
    white = share_inside >= 0.5
    white[0] = False
    kept = np.where(white[whole], whole, 0)
    return split_by_size(kept, None, rules.size_split) if rules.splits_by_size else kept


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
