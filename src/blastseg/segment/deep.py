"""A trained network as a segmenter: same ``segment(image)`` answer as the classical methods.

>>> segmenter = DeepSegmenter.load()  # the bundled default model  # doctest: +SKIP
>>> result = segmenter.segment(blastseg.read_image("smear.jpg"))  # doctest: +SKIP
>>> result.labels  # 0 background, 1 cytoplasm, 2 nucleus  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blastseg.artifacts import DEFAULT
from blastseg.preprocess import Pipeline
from blastseg.runtime import resolve_device
from blastseg.segment.base import Segmentation
from blastseg.segment.checkpoint import ModelCard, load_checkpoint
from blastseg.segment.heads import decode_probabilities, is_multiclass, label_target
from blastseg.segment.inference import fits_in_one_pass, predict_batch, predict_probabilities
from blastseg.tensors import to_tensor


class DeepSegmenter:
    """Wraps a network and its card: preprocessing, normalisation, tiled inference, decoding."""

    def __init__(
        self,
        model: torch.nn.Module,
        card: ModelCard,
        device: str = "auto",
        tile_size: int = 512,
        overlap: float = 0.25,
        batch_size: int = 4,
        tta: bool = False,
        threshold: float | None = None,
        source: str = "",
    ):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.card = card
        self.preprocess = Pipeline.from_config(card.preprocess)
        self.normalize = card.normalize
        self.multiclass = is_multiclass(card.output)
        self.target = label_target(card.output)
        self.tile_size, self.overlap, self.batch_size, self.tta = tile_size, overlap, batch_size, tta
        self.threshold = card.threshold if threshold is None else threshold
        self.source = source

    @classmethod
    def load(cls, checkpoint: str | Path = DEFAULT, **options) -> DeepSegmenter:
        """Load a checkpoint (a run folder, a ``.safetensors``/``.json`` file, or ``default``)."""
        model, card = load_checkpoint(checkpoint)
        return cls(model, card, source=str(checkpoint), **options)

    def provenance(self) -> dict[str, Any]:
        """What ``summary.json`` records of this segmenter."""
        return {"checkpoint": self.source, "model": self.card.model.model_dump(), "output": self.card.output, "threshold": self.threshold, "tta": self.tta}

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(self.preprocess(image), self.normalize, self.card.model.in_channels)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """C x H x W probabilities of one RGB ``uint8`` image of any size."""
        return predict_probabilities(self.model, self._tensor(image), self.multiclass, self.tile_size, self.overlap, self.batch_size, self.tta)

    def _result(self, probabilities: np.ndarray) -> Segmentation:
        labels = decode_probabilities(probabilities, self.card.output, self.threshold)
        return Segmentation(labels, info={"probabilities": probabilities})

    def segment(self, image: np.ndarray) -> Segmentation:
        return self._result(self.probabilities(image))

    def segment_many(self, images: Sequence[np.ndarray]) -> list[Segmentation]:
        """Segment several images; those of one shape that fit in a tile share forward passes."""
        results: list[Segmentation | None] = [None] * len(images)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            if fits_in_one_pass(*image.shape[:2], self.tile_size):
                by_shape.setdefault(image.shape[:2], []).append(index)
            else:
                results[index] = self.segment(image)
        for indices in by_shape.values():
            for first in range(0, len(indices), self.batch_size):
                chunk = indices[first : first + self.batch_size]
                probs = predict_batch(self.model, [self._tensor(images[i]) for i in chunk], self.multiclass, self.tta)
                for index, p in zip(chunk, probs):
                    results[index] = self._result(p)
        return results
