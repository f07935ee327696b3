"""Segmentation checkpoints: weights as safetensors plus a JSON card that rebuilds the network.

A checkpoint is named as :mod:`blastseg.artifacts` says: either file of the pair, their stem, a
training run folder (its ``best`` pair) or ``default`` (the bundled model). Nothing is unpickled.
torch is imported by the functions that build or save networks, so reading a card stays light.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from blastseg.artifacts import DEFAULT, bundled, load_state, paired_files, read_card, read_weights, write_pair
from blastseg.config import StrictModel
from blastseg.preprocess import Normalize
from blastseg.segment.heads import Output
from blastseg.segment.networks import ModelSpec, create_model

if TYPE_CHECKING:
    import torch

FORMAT = "blastseg-segmentation"
BUNDLED_STEM = "default"
RUN_STEM = "best"


class ModelCard(StrictModel):
    """Everything needed to rebuild a network and feed it: written beside its weights."""

    format: str = FORMAT
    model: ModelSpec
    output: Output
    preprocess: list[dict[str, Any]] = Field(default_factory=list)
    normalize: Normalize = Field(default_factory=Normalize)
    threshold: float = Field(default=0.5, gt=0, lt=1)
    red_cell_px: float | None = Field(
        default=None, gt=0, le=10_000, description="red-cell diameter (pixels) the network was trained at; images are rescaled to it (None: never)"
    )
    trained_on: str = ""
    not_for: str = Field(default="", description="what the model is known to fail on or was never checked for")
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def describe(self) -> str:
        return f"{self.model.name}/{self.model.encoder} (depth {self.model.depth})"


def bundled_checkpoint() -> Path:
    """The card of the segmentation model shipped with the package."""
    return bundled("models", f"{BUNDLED_STEM}.json")


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """The (weights, card) pair that ``path`` names."""
    return paired_files(path, BUNDLED_STEM, RUN_STEM, "checkpoint")


def save_checkpoint(stem: str | Path, model: torch.nn.Module, card: ModelCard, half: bool = False) -> Path:
    """Write ``stem.safetensors`` (float16 when ``half``) and ``stem.json``, each atomically."""
    from safetensors.torch import save

    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_pair(stem, save(state, metadata={"format": FORMAT}), card)


def load_weights(model: torch.nn.Module, weights: Path, describe: str) -> None:
    """Load a safetensors file into ``model``; weights of another architecture are refused."""
    load_state(model, read_weights(weights), weights, describe)


def read_checkpoint(path: str | Path = DEFAULT) -> tuple[Path, ModelCard]:
    """The weights file and the validated card of the checkpoint ``path`` names (no tensors read)."""
    weights, card_path = checkpoint_files(path)
    return weights, read_card(card_path, ModelCard, FORMAT, "segmentation checkpoint")


def load_checkpoint(path: str | Path = DEFAULT) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the model a checkpoint describes, with its weights, in eval mode on the CPU."""
    weights, card = read_checkpoint(path)
    model = create_model(card.model.model_copy(update={"encoder_weights_path": None}))
    load_weights(model, weights, card.describe())
    return model.eval(), card
