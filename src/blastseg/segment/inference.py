"""Network inference on images of any size: pad to the network's multiple, or tile and blend.

An image that fits in one tile is padded (by reflection) to a multiple of 32 and cropped back.
A larger one is cut into overlapping ``tile_size`` windows whose probabilities are blended with a
Gaussian weight that fades towards each window's edge (as MONAI's ``sliding_window_inference``),
so memory stays bounded by the tile, not the image. Everything here is NumPy; the network itself
is an :class:`~blastseg.segment.engines.Engine` (a batch of arrays in, logits out).

A smear field is mostly red cells and background, so :func:`predict_where_cells_are` first runs
the network on a copy at half resolution, then at full resolution only in boxes around what that
pass found (with ``CONTEXT`` pixels of context), and calls the rest background, unless the boxes
would cost the network as many pixels as tiling the whole image.

>>> identity = lambda batch: batch[:, :1]  # an "engine" whose logit is the first channel
>>> predict_probabilities(identity, np.zeros((3, 50, 70), np.float32), multiclass=False).shape
(1, 50, 70)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

MULTIPLE = 32
COARSE = 2  # the candidate pass sees the image at 1/COARSE of the network's resolution
FOUND = 0.5  # a candidate pixel: foreground probability at least this in the candidate pass
MIN_CANDIDATE = 16  # coarse pixels: smaller candidates are specks (64 pixels at full resolution)
CONTEXT = 64  # pixels of context around each candidate, at full resolution
Engine = Callable[[np.ndarray], np.ndarray]  # N x C x H x W float32 → N x K x H x W logits


@dataclass(frozen=True)
class Tiling:
    """How an image goes through the network: whole when it fits in ``tile_size`` (rounded up to
    a multiple of 32), else in tiles overlapping by ``overlap``, ``batch_size`` tiles per pass,
    each averaged over flips with ``tta``."""

    tile_size: int = 512
    overlap: float = 0.25
    batch_size: int = 4
    tta: bool = False


def _round_up(value: int, multiple: int = MULTIPLE) -> int:
    return -(-value // multiple) * multiple


def fits_in_one_pass(height: int, width: int, tile_size: int) -> bool:
    """Whether an image goes through the network whole (padded) rather than in tiles."""
    tile = _round_up(tile_size)
    return height <= tile and width <= tile


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad C x H x W at the bottom and right by reflection (edge copies along a 1-pixel side).

    >>> pad_to(np.arange(3.0)[None, None], 2, 7)[0].tolist()
    [[0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0], [0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0]]
    """
    for axis, size in ((1, height), (2, width)):
        pad = [(0, 0)] * 3
        pad[axis] = (0, size - image.shape[axis])
        image = np.pad(image, pad, mode="reflect" if image.shape[axis] > 1 else "edge")
    return image


def activate(logits: np.ndarray, multiclass: bool) -> np.ndarray:
    """Softmax over channels (multiclass) or a sigmoid per channel, in float32."""
    logits = logits.astype(np.float32, copy=False)
    if multiclass:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 0.5 * (np.tanh(0.5 * logits) + 1)  # the logistic function, without overflow


def forward(engine: Engine, batch: np.ndarray, multiclass: bool, tta: bool) -> np.ndarray:
    """Probabilities of a batch; with ``tta`` the mean over the four flips."""
    if not tta:
        return activate(engine(batch), multiclass)
    total = np.zeros((), np.float32)
    for axes in ((), (3,), (2,), (2, 3)):
        flipped = np.ascontiguousarray(np.flip(batch, axes)) if axes else batch
        probs = activate(engine(flipped), multiclass)
        total = total + (np.flip(probs, axes) if axes else probs)
    return total / 4


def gaussian_weight(size: int, sigma_scale: float = 0.125) -> np.ndarray:
    """A ``size`` x ``size`` Gaussian importance map, largest in the middle, never zero."""
    coords = np.arange(size, dtype=np.float32) - (size - 1) / 2
    line = np.exp(-(coords**2) / (2 * (sigma_scale * size) ** 2))
    weight = line[:, None] * line[None, :]
    return np.maximum(weight / weight.max(), 1e-3).astype(np.float32)


def window_starts(length: int, tile: int, stride: int) -> list[int]:
    """Window origins covering ``length``; the last window ends at the edge.

    >>> window_starts(1000, 512, 384)
    [0, 384, 488]
    """
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _windows(height: int, width: int, tile: int, stride: int) -> Iterator[tuple[int, int]]:
    for top in window_starts(height, tile, stride):
        for left in window_starts(width, tile, stride):
            yield top, left


def _stride(tile: int, overlap: float) -> int:
    return max(MULTIPLE, int(tile * (1 - overlap)) // MULTIPLE * MULTIPLE)


def network_pixels(height: int, width: int, tiling: Tiling = Tiling()) -> int:
    """How many pixels the network processes for an image of this size (:func:`predict_probabilities`).

    >>> network_pixels(480, 640), network_pixels(300, 200)
    (524288, 71680)
    """
    if fits_in_one_pass(height, width, tiling.tile_size):
        return _round_up(height) * _round_up(width)
    tile = _round_up(tiling.tile_size)
    windows = _windows(max(height, tile), max(width, tile), tile, _stride(tile, tiling.overlap))
    return sum(1 for _ in windows) * tile * tile


def predict_probabilities(engine: Engine, image: np.ndarray, multiclass: bool, tiling: Tiling = Tiling()) -> np.ndarray:
    """Class probabilities (K x H x W float32) of one normalised image array (C x H x W)."""
    _, height, width = image.shape
    if fits_in_one_pass(height, width, tiling.tile_size):
        return predict_batch(engine, [image], multiclass, tiling.tta)[0]
    tile = _round_up(tiling.tile_size)
    padded = pad_to(image, max(height, tile), max(width, tile))
    stride = _stride(tile, tiling.overlap)
    weight = gaussian_weight(tile)
    total = weight_sum = None
    windows = list(_windows(padded.shape[1], padded.shape[2], tile, stride))
    for first in range(0, len(windows), tiling.batch_size):
        chunk = windows[first : first + tiling.batch_size]
        batch = np.stack([padded[:, top : top + tile, left : left + tile] for top, left in chunk])
        probs = forward(engine, batch, multiclass, tiling.tta)
        if total is None:
            total = np.zeros((probs.shape[1], *padded.shape[1:]), np.float32)
            weight_sum = np.zeros(padded.shape[1:], np.float32)
        for (top, left), tile_probs in zip(chunk, probs):
            total[:, top : top + tile, left : left + tile] += tile_probs * weight
            weight_sum[top : top + tile, left : left + tile] += weight
    return (total / weight_sum)[:, :height, :width]


def predict_batch(engine: Engine, images: list[np.ndarray], multiclass: bool, tta: bool = False) -> list[np.ndarray]:
    """Probabilities of several images of one shape that fit in a tile, in one forward pass."""
    _, height, width = images[0].shape
    batch = np.stack([pad_to(im, _round_up(height), _round_up(width)) for im in images])
    return list(forward(engine, batch, multiclass, tta)[:, :, :height, :width])


Box = tuple[int, int, int, int]  # top, left, bottom, right


def foreground(probabilities: np.ndarray, multiclass: bool) -> np.ndarray:
    """The probability that a pixel belongs to a cell: one minus background (multiclass), else
    the largest channel (every sigmoid channel is a kind of cell)."""
    return 1 - probabilities[0] if multiclass else probabilities.max(axis=0)


def candidate_boxes(found: np.ndarray, factor: int, shape: tuple[int, int], context: int = CONTEXT) -> list[Box]:
    """Full-resolution boxes: ``context`` pixels around each connected part of the coarse mask
    ``found`` (made at 1/``factor`` resolution) of at least ``MIN_CANDIDATE`` coarse pixels.

    >>> found = np.zeros((10, 10), bool); found[2:6, 2:6] = True; found[8, 8] = True  # a cell, a speck
    >>> candidate_boxes(found, 2, (20, 20), context=3)
    [(1, 1, 15, 15)]
    """
    count, _, stats, _ = cv2.connectedComponentsWithStats(found.astype(np.uint8), connectivity=8)
    height, width = shape
    return [
        (max(0, t * factor - context), max(0, x * factor - context), min(height, (t + h) * factor + context), min(width, (x + w) * factor + context))
        for x, t, w, h, area in stats[1:].tolist()
        if area >= MIN_CANDIDATE
    ]


def edge_weight(box: Box, shape: tuple[int, int]) -> np.ndarray:
    """Weights of a box's pixels where boxes overlap: 1 + the distance to the nearest box edge
    inside the image (an edge on the image's border loses no context), at most ``CONTEXT``.

    >>> edge_weight((0, 2, 3, 6), (3, 10)).tolist()
    [[1.0, 2.0, 2.0, 1.0], [1.0, 2.0, 2.0, 1.0], [1.0, 2.0, 2.0, 1.0]]
    """
    top, left, bottom, right = box
    far = float(CONTEXT)

    def distance(start: int, stop: int, side: int) -> np.ndarray:
        where = np.arange(start, stop, dtype=np.float32)
        before = where - start if start > 0 else np.full_like(where, far)
        return np.minimum(before, stop - 1 - where if stop < side else far)

    row_distance, column_distance = distance(top, bottom, shape[0]), distance(left, right, shape[1])
    return np.minimum(np.minimum(row_distance[:, None], column_distance[None, :]) + 1, far)


def downscaled(image: np.ndarray, factor: int) -> np.ndarray:
    """C x H x W shrunk by ``factor`` on each side (area averaging)."""
    height, width = max(1, image.shape[1] // factor), max(1, image.shape[2] // factor)
    planes = [cv2.resize(plane, (width, height), interpolation=cv2.INTER_AREA) for plane in image]
    return np.stack(planes)


def predict_where_cells_are(engine: Engine, image: np.ndarray, multiclass: bool, tiling: Tiling = Tiling()) -> tuple[np.ndarray, float]:
    """:func:`predict_probabilities`, with the network at full resolution only in boxes around the
    cells a half-resolution pass finds (blended where boxes overlap) and background elsewhere. An
    image that fits in one tile, or whose boxes would cost the network as many pixels as the whole
    image (:func:`network_pixels`), goes through whole. Returns the probabilities and the share of
    the image the full-resolution pass covered (1 when whole)."""
    _, height, width = image.shape
    if fits_in_one_pass(height, width, tiling.tile_size) or min(height, width) < COARSE * MULTIPLE:
        return predict_probabilities(engine, image, multiclass, tiling), 1.0
    coarse = predict_probabilities(engine, downscaled(image, COARSE), multiclass, tiling)
    boxes = candidate_boxes(foreground(coarse, multiclass) >= FOUND, COARSE, (height, width))
    cost = sum(network_pixels(bottom - top, right - left, tiling) for top, left, bottom, right in boxes)
    if cost >= network_pixels(height, width, tiling):
        return predict_probabilities(engine, image, multiclass, tiling), 1.0
    total = np.zeros((coarse.shape[0], height, width), np.float32)
    weight_sum = np.zeros((height, width), np.float32)
    for box in boxes:
        top, left, bottom, right = box
        weight = edge_weight(box, (height, width))
        total[:, top:bottom, left:right] += predict_probabilities(engine, image[:, top:bottom, left:right], multiclass, tiling) * weight
        weight_sum[top:bottom, left:right] += weight
    covered = weight_sum > 0
    probabilities = total / np.where(covered, weight_sum, 1)
    if multiclass:
        probabilities[0][~covered] = 1  # background
    return probabilities, float(covered.mean())
