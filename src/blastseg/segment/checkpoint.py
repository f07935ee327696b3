"""Model checkpoints: weights as safetensors plus a JSON card that rebuilds the model.

A checkpoint is a pair ``NAME.safetensors`` + ``NAME.json``. It is named by either file, by its
stem, or by a training run folder (which means the run's ``best`` checkpoint); ``default`` names
the model bundled with the package. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from blastseg.errors import ConfigError
from blastseg.io import write_bytes, write_json
from blastseg.segment.models import ModelSpec, create_model
from blastseg.segment.outputs import Output

FORMAT = "blastseg-segmentation"
CardT = TypeVar("CardT", bound=BaseModel)
DEFAULT_CHECKPOINT = "default"


class Normalization(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


class ModelCard(BaseModel):
    """Everything needed to rebuild a network and feed it: written beside its weights."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    model: ModelSpec
    output: Output
    preprocess: list[dict[str, Any]] = Field(default_factory=list)
    normalize: Normalization = Field(default_factory=Normalization)
    threshold: float = 0.5
    trained_on: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def bundled_checkpoint() -> Path:
    return Path(str(files("blastseg") / "assets" / "models" / "default.json"))


def paired_files(path: str | Path, default: Path, run_stem: str, what: str) -> tuple[Path, Path]:
    """The (``.safetensors``, ``.json``) pair that ``path`` names: either file, their stem, a run
    folder (its ``run_stem`` pair) or ``default`` (the bundled pair ``default``)."""
    if str(path) == DEFAULT_CHECKPOINT:
        path = default
    path = Path(path)
    if path.is_dir():
        path = path / run_stem
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    weights, card = stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")
    for needed in (weights, card):
        if not needed.is_file():
            raise ConfigError(f"{what} {path}: {needed} not found (a {what} is NAME.safetensors + NAME.json)")
    return weights, card


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """The (weights, card) pair that ``path`` names."""
    return paired_files(path, bundled_checkpoint(), "best", "checkpoint")


def save_checkpoint(stem: str | Path, model: torch.nn.Module, card: ModelCard, half: bool = False) -> Path:
    """Write ``stem.safetensors`` (float16 when ``half``) and ``stem.json``, each atomically."""
    stem = Path(stem)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes(stem.with_name(stem.name + ".safetensors"), save(state, metadata={"format": FORMAT}))
    write_json(stem.with_name(stem.name + ".json"), card.model_dump(mode="json"))
    return stem


def read_json_card(path: Path, model: type[CardT], fmt: str, what: str) -> CardT:
    """Read and validate a JSON card; one that another program wrote is refused with one line."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a readable {what} card ({error})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ConfigError(f"{path}: not a blastseg {what} (format {data.get('format') if isinstance(data, dict) else None!r})")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise ConfigError(f"{path}: bad {what} card at {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def read_card(path: Path) -> ModelCard:
    return read_json_card(path, ModelCard, FORMAT, "segmentation checkpoint")


def load_weights(model: torch.nn.Module, weights: Path, describe: str) -> None:
    """Load a safetensors file into ``model``; weights of another architecture are refused."""
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"{weights}: not a readable safetensors file ({error})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or unexpected or reshaped:
        example = (missing or unexpected or reshaped)[0]
        raise ConfigError(
            f"{weights} holds weights of another architecture than {describe} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape, e.g. {example})"
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def load_checkpoint(path: str | Path = DEFAULT_CHECKPOINT) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the model a checkpoint describes, with its weights, in eval mode on the CPU."""
    weights, card_path = checkpoint_files(path)
    card = read_card(card_path)
    model = create_model(card.model.model_copy(update={"encoder_weights_path": None}))
    load_weights(model, weights, f"{card.model.name}/{card.model.encoder} (depth {card.model.depth})")
    return model.eval(), card
