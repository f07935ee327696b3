"""What a cell classifier is, as its JSON card says: its kind, classes and inputs, and for a CNN
the network and how crops are fed to it. Reading a card needs no torch."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from blastseg.artifacts import read_card
from blastseg.cells import FEATURES
from blastseg.config import FilePath, StrictModel
from blastseg.errors import ModelFileError
from blastseg.preprocess import Reinhard

FORMAT = "blastseg-classifier"


class CnnSpec(StrictModel):
    """What builds the network and feeds it (saved in the classifier's card)."""

    backbone: str | None = Field(default=None, description="a timm model name (random weights); null: the small CNN")
    weights_path: FilePath | None = Field(default=None, description="local timm weights (.safetensors) for the backbone")
    input_size: int = Field(default=64, ge=16, le=1024, description="crops are resized to this square")
    stain_target: Reinhard | None = Field(
        default=None,
        description="Reinhard colour transfer of every crop (training and predict) to this L*a*b* mean and spread, so that one lab's stain cannot stand in for a class; null: crops as they are",
    )


class ClassifierCard(StrictModel):
    """What the classifier is and what it expects: written beside its numbers."""

    format: str = FORMAT
    kind: Literal["random_forest", "cnn"]
    classes: list[str] = Field(min_length=2, max_length=1000)
    features: list[str] = Field(default_factory=list, max_length=1000, description="random forest: the cells-table columns it reads")
    cell_diameter: int | None = Field(default=None, ge=8, le=512, description="random forest: cells are measured resampled to this diameter in pixels")
    cnn: CnnSpec | None = None
    crop_scale: float | None = Field(default=1.25, gt=0, le=10)
    trained_on: str = ""
    scores: dict[str, Any] = Field(default_factory=dict, description="cross-validated scores")
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def read_classifier_card(path: Path) -> ClassifierCard:
    card = read_card(path, ClassifierCard, FORMAT, "classifier")
    unknown = sorted(set(card.features) - set(FEATURES))
    if unknown:
        raise ModelFileError(f"{path}: features {', '.join(unknown)} are not cells-table columns")
    return card
