"""Network inference on images of any size: pad to the network's multiple, or tile and blend.

An image that fits in one tile is padded (by reflection) to a multiple of 32 and cropped back.
A larger one is cut into overlapping ``tile_size`` windows whose probabilities are blended with a
Gaussian weight that fades towards each window's edge (as MONAI's ``sliding_window_inference``),
so memory stays bounded by the tile, not the image.

>>> model = torch.nn.Conv2d(3, 1, 1)
>>> predict_probabilities(model, torch.zeros(3, 50, 70), multiclass=False).shape
(1, 50, 70)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

MULTIPLE = 32


def _round_up(value: int, multiple: int = MULTIPLE) -> int:
    return -(-value // multiple) * multiple


def fits_in_one_pass(height: int, width: int, tile_size: int) -> bool:
    """Whether an image goes through the network whole (padded) rather than in tiles."""
    tile = _round_up(tile_size)
    return height <= tile and width <= tile


def _pad_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad C x H x W at the bottom and right by reflection (repeated for very small images)."""
    while image.shape[1] < height or image.shape[2] < width:
        pad_h = min(height - image.shape[1], image.shape[1] - 1)
        pad_w = min(width - image.shape[2], image.shape[2] - 1)
        if pad_h <= 0 and pad_w <= 0:  # a 1-pixel side cannot be reflected
            return F.pad(image, (0, width - image.shape[2], 0, height - image.shape[1]), mode="replicate")
        image = F.pad(image[None], (0, max(pad_w, 0), 0, max(pad_h, 0)), mode="reflect")[0]
    return image


def _activate(logits: torch.Tensor, multiclass: bool) -> torch.Tensor:
    return logits.softmax(dim=1) if multiclass else logits.sigmoid()


def _forward(model: torch.nn.Module, batch: torch.Tensor, multiclass: bool, tta: bool) -> torch.Tensor:
    """Probabilities of a batch; with ``tta`` the mean over the four flips."""
    if not tta:
        return _activate(model(batch), multiclass)
    total = torch.zeros(())
    for dims in ((), (3,), (2,), (2, 3)):
        flipped = batch.flip(dims) if dims else batch
        probs = _activate(model(flipped), multiclass)
        total = total + (probs.flip(dims) if dims else probs)
    return total / 4


def gaussian_weight(size: int, sigma_scale: float = 0.125) -> torch.Tensor:
    """A ``size`` x ``size`` Gaussian importance map, largest in the middle, never zero."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    line = torch.exp(-(coords**2) / (2 * (sigma_scale * size) ** 2))
    weight = line[:, None] * line[None, :]
    return (weight / weight.max()).clamp_min(1e-3)


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


@torch.inference_mode()
def predict_probabilities(
    model: torch.nn.Module,
    image: torch.Tensor,
    multiclass: bool,
    tile_size: int = 512,
    overlap: float = 0.25,
    batch_size: int = 4,
    tta: bool = False,
) -> np.ndarray:
    """Class probabilities (C x H x W float32) of one normalised image tensor (3 x H x W)."""
    device = next(model.parameters()).device
    _, height, width = image.shape
    if fits_in_one_pass(height, width, tile_size):
        return predict_batch(model, [image], multiclass, tta)[0]
    tile = _round_up(tile_size)
    padded = _pad_to(image, max(height, tile), max(width, tile))
    stride = max(MULTIPLE, int(tile * (1 - overlap)) // MULTIPLE * MULTIPLE)
    weight = gaussian_weight(tile)
    total = weight_sum = None
    windows = list(_windows(padded.shape[1], padded.shape[2], tile, stride))
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        batch = torch.stack([padded[:, top : top + tile, left : left + tile] for top, left in chunk]).to(device)
        probs = _forward(model, batch, multiclass, tta).float().cpu()
        if total is None:
            total = torch.zeros(probs.shape[1], *padded.shape[1:])
            weight_sum = torch.zeros(padded.shape[1:])
        for (top, left), tile_probs in zip(chunk, probs):
            total[:, top : top + tile, left : left + tile] += tile_probs * weight
            weight_sum[top : top + tile, left : left + tile] += weight
    return (total / weight_sum)[:, :height, :width].numpy()


@torch.inference_mode()
def predict_batch(model: torch.nn.Module, images: list[torch.Tensor], multiclass: bool, tta: bool = False) -> list[np.ndarray]:
    """Probabilities of several images of one shape that fit in a tile, in one forward pass."""
    device = next(model.parameters()).device
    _, height, width = images[0].shape
    batch = torch.stack([_pad_to(im, _round_up(height), _round_up(width)) for im in images]).to(device)
    probs = _forward(model, batch, multiclass, tta)[:, :, :height, :width].float().cpu().numpy()
    return list(probs)
