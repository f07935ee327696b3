"""Segmenters by name: ``create_segmenter("kmeans", target="nucleus")``.

>>> sorted(SEGMENTERS)
['adaptive', 'hsv', 'kmeans', 'otsu', 'watershed']
"""

from __future__ import annotations

from typing import Any

from blastseg.config import construct
from blastseg.errors import lookup
from blastseg.segment.base import Segmentation, channel
from blastseg.segment.classical import (
    AdaptiveSegmenter,
    HsvSegmenter,
    KMeansSegmenter,
    OtsuSegmenter,
    WatershedSegmenter,
)

SEGMENTERS: dict[str, type] = {
    "otsu": OtsuSegmenter,
    "adaptive": AdaptiveSegmenter,
    "hsv": HsvSegmenter,
    "kmeans": KMeansSegmenter,
    "watershed": WatershedSegmenter,
}


def create_segmenter(name: str, **params: Any):
    """Build a segmenter by registry name; unknown names or parameters list the valid ones."""
    return construct(lookup(SEGMENTERS, name, "segmenter"), params, f"segmenter {name!r}")


__all__ = ["SEGMENTERS", "Segmentation", "channel", "create_segmenter"]
