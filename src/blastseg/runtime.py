"""Where computation runs and how it is seeded: one place for each."""

from __future__ import annotations

import random

import numpy as np
import torch

from blastseg.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU; asking for CUDA without a GPU is an error.

    >>> resolve_device("cpu").type
    'cpu'
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] not in DEVICES[1:]:
        raise ConfigError(f"unknown device {name!r}; valid: {', '.join(DEVICES)} (or cuda:N)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available; use 'cpu' or 'auto'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) at once."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
