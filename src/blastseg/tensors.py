"""Images to network inputs, the same way for training and inference.

>>> from blastseg.preprocess import Normalize
>>> to_array(np.zeros((4, 5, 3), np.uint8), Normalize(), channels=1).shape
(1, 4, 5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from blastseg.preprocess import Normalize

if TYPE_CHECKING:
    import torch


def to_array(image: np.ndarray, normalize: Normalize, channels: int = 3) -> np.ndarray:
    """RGB ``uint8`` H x W x 3 → normalised float32 C x H x W (``channels`` 1: the mean of the three)."""
    array = np.ascontiguousarray(normalize(image).transpose(2, 0, 1))
    return array.mean(axis=0, keepdims=True) if channels == 1 else array


def to_tensor(image: np.ndarray, normalize: Normalize, channels: int = 3) -> torch.Tensor:
    """:func:`to_array` as a torch tensor (what datasets hand to a DataLoader)."""
    import torch

    return torch.from_numpy(to_array(image, normalize, channels))
