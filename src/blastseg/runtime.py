"""Where computation runs and how it is seeded: one place for each.

torch is imported by the functions that need it, so a recipe's ``device`` is checked when the
recipe loads without loading torch.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import sys
from typing import TYPE_CHECKING

import numpy as np

from blastseg.config import checked_name
from blastseg.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
_thread_share: int | None = None  # this process's CPU threads, when it shares the machine (share_threads)


def check_device(name: str) -> str:
    """A device name blastseg knows: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether a GPU is
    there is checked when the device is used).

    >>> check_device("cuda:1")
    'cuda:1'
    """
    if name not in DEVICES and not re.fullmatch(r"cuda:\d+", name):
        raise ConfigError(f"unknown device {name!r}; valid: {', '.join(DEVICES)} (or cuda:N)")
    return name


DeviceName = checked_name(check_device)


GPU_DEVICE_FILES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd")  # NVIDIA driver, AMD ROCm


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a broken install counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def gpu_present() -> bool:
    """Whether torch would find a GPU; on a machine without a GPU driver (or without torch) this
    answers without importing torch, which costs seconds."""
    if not installed("torch") or not any(os.path.exists(p) for p in GPU_DEVICE_FILES):
        return False
    import torch

    return torch.cuda.is_available()


def cpu_count() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def share_threads(threads: int) -> None:
    """Limit this process to ``threads`` CPU threads (a worker of a batch shares the machine):
    OpenCV's and torch's pools now, ONNX Runtime's sessions when they are made (:func:`thread_share`)."""
    import cv2

    global _thread_share
    _thread_share = threads
    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def thread_share() -> int:
    """The threads :func:`share_threads` set, or 0: as many as the library likes."""
    return _thread_share or 0


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU; asking for CUDA without a GPU is an error.

    >>> resolve_device("cpu").type
    'cpu'
    """
    import torch

    if check_device(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available; use 'cpu' or 'auto'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) at once."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
