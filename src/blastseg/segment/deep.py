"""A trained network as a segmenter: same ``segment(image)`` answer as the classical methods.

A network whose card names the red-cell diameter it was trained at (``red_cell_px``) sees every
image rescaled to that size: the image's own red-cell diameter is given (``scale``) or estimated
(:func:`~blastseg.scale.estimate_scale`), and the probabilities are resized back to the image's
own pixels before they are thresholded. An image whose red cells cannot be measured (a crop
holding one white cell) is first segmented as it is; its largest cell, taken as
``WHITE_TO_RED`` red cells across, then sets the factor for a second pass. No cell found: the
image is segmented as it is.

>>> segmenter = DeepSegmenter.load()  # the bundled default model  # doctest: +SKIP
>>> result = segmenter.segment(blastseg.read_image("smear.jpg"))  # doctest: +SKIP
>>> result.labels  # 0 background, 1 cytoplasm, 2 nucleus  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from blastseg.artifacts import DEFAULT
from blastseg.preprocess import Pipeline
from blastseg.scale import Scale, estimate_scale, resized
from blastseg.segment.base import Segmentation
from blastseg.segment.checkpoint import ModelCard
from blastseg.segment.engines import TorchEngine, load_engine
from blastseg.segment.heads import decode_probabilities, is_multiclass, label_target
from blastseg.segment.inference import Engine, Tiling, fits_in_one_pass, predict_batch, predict_probabilities, predict_where_cells_are
from blastseg.tensors import to_array

if TYPE_CHECKING:
    import torch

WHITE_TO_RED = 2.2  # a white cell's diameter in red cells: Zheng Dataset2 (155 / 70 pixels)
MAX_FACTOR = 8.0  # rescaling stays within 1/8x-8x
MAX_RESCALED_PIXELS = 64_000_000


def back_to(probabilities: np.ndarray, height: int, width: int) -> np.ndarray:
    """C x h x w probabilities resized (bilinear) to C x ``height`` x ``width``."""
    if probabilities.shape[1:] == (height, width):
        return probabilities
    planes = [cv2.resize(np.ascontiguousarray(p), (width, height), interpolation=cv2.INTER_LINEAR) for p in probabilities]
    return np.stack(planes)


def bounded_factor(factor: float, shape: tuple[int, ...]) -> float:
    """``factor`` within 1/``MAX_FACTOR``-``MAX_FACTOR`` and small enough to keep the rescaled image
    under ``MAX_RESCALED_PIXELS``.

    >>> bounded_factor(20.0, (100, 100)), bounded_factor(4.0, (4000, 4000))
    (8.0, 2.0)
    """
    largest = max(1.0, float(np.sqrt(MAX_RESCALED_PIXELS / (shape[0] * shape[1]))))
    return float(np.clip(factor, 1 / MAX_FACTOR, min(MAX_FACTOR, largest)))


class DeepSegmenter:
    """Wraps a network's engine and its card: preprocessing, normalisation, tiled inference, decoding."""

    def __init__(
        self,
        engine: Engine,
        card: ModelCard,
        tile_size: int = 512,
        overlap: float = 0.25,
        batch_size: int = 4,
        tta: bool = False,
        threshold: float | None = None,
        source: str = "",
        scale: Scale | None = None,
        regions: bool = True,
    ):
        self.engine = engine
        self.card = card
        self.preprocess = Pipeline.from_config(card.preprocess)
        self.normalize = card.normalize
        self.multiclass = is_multiclass(card.output)
        self.target = label_target(card.output)
        self.tiling = Tiling(tile_size, overlap, batch_size, tta)
        self.threshold = card.threshold if threshold is None else threshold
        self.source = source
        self.scale = scale  # every image's red-cell size, when the user states it
        self.regions = regions  # full resolution only where a half-resolution pass finds cells

    @classmethod
    def load(cls, checkpoint: str | Path = DEFAULT, engine: str = "auto", device: str = "auto", **options) -> DeepSegmenter:
        """Load a checkpoint (a run folder, a ``.safetensors``/``.json`` file, or ``default``) with
        the engine :func:`~blastseg.segment.engines.load_engine` picks."""
        runner, card = load_engine(checkpoint, engine, device)
        return cls(runner, card, source=str(checkpoint), **options)

    @classmethod
    def from_model(cls, model: torch.nn.Module, card: ModelCard, device: str = "auto", channels_last: bool = True, **options) -> DeepSegmenter:
        """A PyTorch network in memory (for example the one being trained) as a segmenter."""
        return cls(TorchEngine(model, device, channels_last), card, **options)

    def provenance(self) -> dict[str, Any]:
        """What ``summary.json`` records of this segmenter."""
        return {
            "checkpoint": self.source,
            "engine": getattr(self.engine, "name", type(self.engine).__name__),
            "regions": self.regions,
            "model": self.card.model.model_dump(),
            "output": self.card.output,
            "threshold": self.threshold,
            "tta": self.tiling.tta,
            "red_cell_px": self.card.red_cell_px,
            "not_for": self.card.not_for,
        }

    def _array(self, image: np.ndarray) -> np.ndarray:
        return to_array(self.preprocess(image), self.normalize, self.card.model.in_channels)

    def _native_probabilities(self, image: np.ndarray) -> np.ndarray:
        """Probabilities of ``image`` as it is (only around its cells with ``regions``)."""
        if self.regions:
            return predict_where_cells_are(self.engine, self._array(image), self.multiclass, self.tiling)[0]
        return predict_probabilities(self.engine, self._array(image), self.multiclass, self.tiling)

    def rescaling(self, image: np.ndarray, scale: Scale | None = None) -> tuple[float, Scale | None]:
        """The factor that brings ``image`` to the network's red-cell size, and the scale it came
        from (1 and ``None`` for a network without one; 1 and an unknown scale when unmeasurable)."""
        if self.card.red_cell_px is None:
            return 1.0, None
        scale = scale or self.scale or estimate_scale(image)
        if not scale.known:
            return 1.0, scale
        return bounded_factor(self.card.red_cell_px / scale.red_cell_px, image.shape), scale

    def _white_cell_factor(self, probabilities: np.ndarray, shape: tuple[int, ...]) -> float | None:
        """The factor that makes the largest cell of a first pass ``WHITE_TO_RED`` network red cells across."""
        labels = decode_probabilities(probabilities, self.card.output, self.threshold)
        count, _, stats, _ = cv2.connectedComponentsWithStats((labels > 0).astype(np.uint8))
        if count <= 1:
            return None
        diameter = 2 * np.sqrt(stats[1:, cv2.CC_STAT_AREA].max() / np.pi)
        return bounded_factor(WHITE_TO_RED * self.card.red_cell_px / diameter, shape)

    def probabilities(self, image: np.ndarray, scale: Scale | None = None) -> np.ndarray:
        """C x H x W probabilities of one RGB ``uint8`` image of any size (rescaled as the module says)."""
        return self._segment_one(image, scale)[0]

    def _segment_one(self, image: np.ndarray, scale: Scale | None) -> tuple[np.ndarray, dict[str, Any]]:
        factor, scale = self.rescaling(image, scale)
        source = None if scale is None else scale.source
        height, width = image.shape[:2]
        if scale is not None and not scale.known:
            first = self._native_probabilities(image)
            factor = self._white_cell_factor(first, image.shape)
            if factor is None:
                return first, self._rescale_info(1.0, "unknown", scale)
            source = "white cell"
        probabilities = back_to(self._native_probabilities(resized(image, factor)), height, width)
        return probabilities, self._rescale_info(factor, source, scale)

    @staticmethod
    def _rescale_info(factor: float, source: str | None, scale: Scale | None) -> dict[str, Any]:
        info: dict[str, Any] = {} if scale is None else {"scale": scale}
        if source is not None:
            info["rescale"] = {"factor": round(factor, 4), "source": source}
        return info

    def _result(self, probabilities: np.ndarray, info: dict[str, Any] | None = None) -> Segmentation:
        labels = decode_probabilities(probabilities, self.card.output, self.threshold)
        return Segmentation(labels, info={"probabilities": probabilities, **(info or {})})

    def segment(self, image: np.ndarray, scale: Scale | None = None) -> Segmentation:
        return self._result(*self._segment_one(image, scale))

    def segment_many(self, images: Sequence[np.ndarray]) -> list[Segmentation]:
        """Segment several images; those that fit in a tile and share a shape once rescaled share forward passes."""
        results: list[Segmentation | None] = [None] * len(images)
        by_shape: dict[tuple[int, int], list[tuple[int, np.ndarray, dict[str, Any]]]] = {}
        for index, image in enumerate(images):
            factor, scale = self.rescaling(image)
            work = resized(image, factor)
            if (scale is not None and not scale.known) or not fits_in_one_pass(*work.shape[:2], self.tiling.tile_size):
                results[index] = self.segment(image, scale)
                continue
            info = self._rescale_info(factor, None if scale is None else scale.source, scale)
            by_shape.setdefault(work.shape[:2], []).append((index, work, info))
        for members in by_shape.values():
            for first in range(0, len(members), self.tiling.batch_size):
                chunk = members[first : first + self.tiling.batch_size]
                probs = predict_batch(self.engine, [self._array(work) for _, work, _ in chunk], self.multiclass, self.tiling.tta)
                for (index, _, info), p in zip(chunk, probs):
                    results[index] = self._result(back_to(p, *images[index].shape[:2]), info)
        return results
