"""Deep segmentation networks by name, built with segmentation-models-pytorch.

Every network starts from random weights (there is no network access at run time);
``encoder_weights_path`` loads a local state dict into the encoder. segmentation-models-pytorch
is imported when a network is built, so a card's ``ModelSpec`` is read without torch.

>>> import torch
>>> spec = ModelSpec(name="unet", encoder="resnet18", depth=3, decoder_channels=[32, 16, 8], classes=2)
>>> model = create_model(spec)
>>> tuple(model(torch.zeros(1, 3, 32, 32)).shape)
(1, 2, 32, 32)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from blastseg.artifacts import load_state, read_weights
from blastseg.config import FilePath, StrictModel, validate
from blastseg.errors import ConfigError, lookup

if TYPE_CHECKING:
    import torch

# name → (smp architecture, default encoder)
MODELS: dict[str, tuple[str, str]] = {
    "unet": ("Unet", "resnet18"),
    "unetplusplus": ("UnetPlusPlus", "resnet18"),
    "effunet": ("Unet", "efficientnet-b0"),
}


class ModelSpec(StrictModel):
    """Everything needed to rebuild a network (saved beside its weights)."""

    name: str = "unet"
    encoder: str | None = Field(default=None, description="smp encoder name; default depends on the model")
    depth: int = Field(default=5, ge=1, le=5)
    decoder_channels: list[Annotated[int, Field(ge=1, le=1024)]] | None = Field(default=None, max_length=5)
    in_channels: Literal[1, 3] = Field(default=3, description="3 (RGB) or 1 (the mean of the three)")
    classes: int = Field(default=1, ge=1, le=64)
    encoder_weights_path: FilePath | None = None

    @model_validator(mode="after")
    def _one_channel_count_per_level(self) -> ModelSpec:
        if self.decoder_channels is not None and len(self.decoder_channels) != self.depth:
            raise ValueError(f"decoder_channels needs {self.depth} values (one per depth level), got {self.decoder_channels}")
        return self

    def resolved(self) -> ModelSpec:
        """A copy with the registry defaults filled in (what a checkpoint records)."""
        _, default_encoder = lookup(MODELS, self.name, "model")
        channels = self.decoder_channels or [256, 128, 64, 32, 16][5 - self.depth :]
        return self.model_copy(update={"encoder": self.encoder or default_encoder, "decoder_channels": channels})


def create_model(spec: ModelSpec | dict[str, Any]) -> torch.nn.Module:
    """Build the network ``spec`` describes, with the encoder weights file loaded if one is named."""
    import segmentation_models_pytorch as smp

    spec = (spec if isinstance(spec, ModelSpec) else validate(ModelSpec, spec, "model")).resolved()
    arch, _ = MODELS[spec.name]
    try:
        model = smp.create_model(
            arch,
            encoder_name=spec.encoder,
            encoder_weights=None,
            encoder_depth=spec.depth,
            decoder_channels=spec.decoder_channels,
            in_channels=spec.in_channels,
            classes=spec.classes,
        )
    except (KeyError, ValueError) as error:
        raise ConfigError(f"cannot build {spec.name} with encoder {spec.encoder!r}: {error}") from None
    if spec.encoder_weights_path:
        load_encoder_weights(model, spec.encoder_weights_path)
    return model


def load_encoder_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a local state dict (``.safetensors`` or a plain tensor ``.pt``/``.pth``) into the encoder.

    Keys may carry an ``encoder.`` prefix (a whole-model state dict) or not.
    """
    state = {key.removeprefix("encoder."): value for key, value in read_weights(path, "encoder weights").items()}
    load_state(model.encoder, state, f"encoder weights {path}", "this encoder")
