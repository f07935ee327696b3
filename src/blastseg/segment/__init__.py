"""Segmenters: classical methods by name, trained networks from checkpoints, one answer type.

>>> segmenter = create_segmenter("kmeans", target="nucleus")
>>> isinstance(segmenter, Segmenter)
True

``load_segmenter`` imports torch when first called; the classical methods never do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from blastseg.segment.base import Segmentation, Segmenter, channel
from blastseg.segment.classical import SEGMENTERS, ClassicalSegmenter, create_segmenter

if TYPE_CHECKING:
    from blastseg.segment.deep import DeepSegmenter


def load_segmenter(checkpoint: str | Path = "default", **options: Any) -> DeepSegmenter:
    """A trained network as a segmenter (a run folder, a checkpoint file, or ``default``)."""
    from blastseg.segment.deep import DeepSegmenter

    return DeepSegmenter.load(checkpoint, **options)


__all__ = ["SEGMENTERS", "ClassicalSegmenter", "Segmentation", "Segmenter", "channel", "create_segmenter", "load_segmenter"]
