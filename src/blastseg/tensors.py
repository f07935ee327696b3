"""Images to tensors, the same way for training and inference.

>>> from blastseg.preprocess import Normalize
>>> tuple(to_tensor(np.zeros((4, 5, 3), np.uint8), Normalize(), channels=1).shape)
(1, 4, 5)
"""

from __future__ import annotations

import numpy as np
import torch

from blastseg.preprocess import Normalize


def to_tensor(image: np.ndarray, normalize: Normalize, channels: int = 3) -> torch.Tensor:
    """RGB ``uint8`` H x W x 3 → normalised float32 tensor C x H x W (``channels`` 1: the mean of the three)."""
    tensor = torch.from_numpy(np.ascontiguousarray(normalize(image).transpose(2, 0, 1)))
    return tensor.mean(dim=0, keepdim=True) if channels == 1 else tensor
