"""What a network's output channels mean, and the conversions to and from label maps.

- ``nucleus`` or ``cell``: one sigmoid channel;
- ``cell+nucleus``: two sigmoid channels (cell, nucleus);
- ``multiclass``: three softmax channels (background, cytoplasm, nucleus).

>>> labels = np.array([[0, 1, 2]], np.uint8)
>>> encode_target(labels, "cell+nucleus").tolist()
[[[0.0, 1.0, 1.0]], [[0.0, 0.0, 1.0]]]
>>> decode_probabilities(encode_target(labels, "cell+nucleus"), "cell+nucleus").tolist()
[[0, 1, 2]]
>>> encode_target(np.array([[0, 255, 2]], np.uint8), "cell+nucleus").tolist()  # UNSURE: unknown in every channel
[[[0.0, -1.0, 1.0]], [[0.0, -1.0, 1.0]]]
>>> encode_target(labels, "cell+nucleus", nucleus_known=False)[1].tolist()  # inside cells: unknown
[[0.0, -1.0, -1.0]]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from blastseg.errors import lookup
from blastseg.labels import CYTOPLASM, NUCLEUS, UNSURE

OUTPUTS: dict[str, tuple[str, ...]] = {
    "nucleus": ("nucleus",),
    "cell": ("cell",),
    "cell+nucleus": ("cell", "nucleus"),
    "multiclass": ("background", "cytoplasm", "nucleus"),
}
Output = Literal[tuple(OUTPUTS)]  # the names above, for validated configs and checkpoint cards
UNKNOWN = -1.0  # a sigmoid target pixel the loss ignores (training.losses)


def output_channels(output: str) -> int:
    return len(lookup(OUTPUTS, output, "model output"))


def is_multiclass(output: str) -> bool:
    return lookup(OUTPUTS, output, "model output") == OUTPUTS["multiclass"]


def label_target(output: str) -> str:
    """The label-map target (``nucleus``, ``cell`` or ``multiclass``) an output produces."""
    return output if output in ("nucleus", "cell") else "multiclass"


def has_nucleus_channel(output: str) -> bool:
    """Whether ``output`` has a sigmoid nucleus channel (one that can leave nuclei unknown)."""
    return not is_multiclass(output) and "nucleus" in OUTPUTS[output]


def encode_target(labels: np.ndarray, output: str, nucleus_known: bool = True) -> np.ndarray:
    """Training target of a label map: C x H x W float32 for sigmoid outputs, H x W int64 for
    multiclass. With ``nucleus_known`` false the nucleus channel is :data:`UNKNOWN` inside the
    cells (their nuclei are too rough to learn from) and 0 outside them; ``UNSURE`` pixels are
    :data:`UNKNOWN` in every channel (sigmoid outputs only)."""
    unsure = labels == UNSURE
    if is_multiclass(output):
        if not nucleus_known or unsure.any():
            raise ValueError("a multiclass target cannot leave a pixel unknown")
        return labels.astype(np.int64)
    cell = (labels == CYTOPLASM) | (labels == NUCLEUS)
    nucleus = (labels == NUCLEUS).astype(np.float32) if nucleus_known else np.where(cell, UNKNOWN, 0.0)
    planes = {"cell": cell.astype(np.float32), "nucleus": nucleus}
    return np.stack([np.where(unsure, UNKNOWN, planes[name]) for name in OUTPUTS[output]]).astype(np.float32)


def decode_probabilities(probabilities: np.ndarray, output: str, threshold: float = 0.5) -> np.ndarray:
    """C x H x W probabilities → ``uint8`` label map (0 background, 1 cytoplasm, 2 nucleus).

    For ``cell+nucleus`` a nucleus pixel counts as cell too, so the nucleus always lies inside
    the cell.
    """
    if is_multiclass(output):
        return probabilities.argmax(axis=0).astype(np.uint8)
    labels = np.zeros(probabilities.shape[1:], np.uint8)
    above = {name: probabilities[i] > threshold for i, name in enumerate(OUTPUTS[output])}
    if "cell" in above:
        labels[above["cell"]] = CYTOPLASM
    if "nucleus" in above:
        labels[above["nucleus"]] = NUCLEUS
    return labels
