"""A trained cell classifier: a JSON card plus a safetensors file of numbers (forest arrays or
network weights). Loading rebuilds the predictor from these; nothing is unpickled, and a file
that blastseg did not write, or one that does not fit its card, is refused with one line.

A classifier is named by either file, by its stem, by a ``blastseg classify train`` run folder
(its ``classifier`` pair), or ``default``: the white-cell type classifier bundled with the package.
"""

from __future__ import annotations

from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save as save_numpy
from safetensors.torch import save as save_torch

from blastseg.cells import cell_crops
from blastseg.classify.cnn import CnnParams, build_network, network_proba
from blastseg.classify.forest import FEATURES, ForestArrays
from blastseg.errors import ConfigError
from blastseg.io import write_bytes, write_json
from blastseg.runtime import resolve_device
from blastseg.segment.checkpoint import DEFAULT_CHECKPOINT, load_weights, paired_files, read_json_card

FORMAT = "blastseg-classifier"
DEFAULT_CLASSIFIER = DEFAULT_CHECKPOINT
RUN_STEM = "classifier"
KINDS = ("random_forest", "cnn")


class ClassifierCard(BaseModel):
    """What the classifier is and what it expects: written beside its numbers."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    kind: Literal["random_forest", "cnn"]
    classes: list[str] = Field(min_length=2)
    features: list[str] = Field(default_factory=list, description="random forest: the cells-table columns it reads")
    cnn: CnnParams | None = None
    crop_scale: float | None = 1.25
    trained_on: str = ""
    scores: dict[str, Any] = Field(default_factory=dict, description="cross-validated scores")
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def bundled_classifier() -> Path:
    return Path(str(files("blastseg") / "assets" / "models" / f"{RUN_STEM}.json"))


def classifier_files(path: str | Path) -> tuple[Path, Path]:
    """The (numbers, card) pair that ``path`` names."""
    return paired_files(path, bundled_classifier(), RUN_STEM, "classifier")


class CellClassifier:
    """Class probabilities for the cells of an image, from their features or their crops.

    >>> classifier = CellClassifier.load()  # doctest: +SKIP
    >>> classifier.predict_proba(image, instances, rows)  # cells x classes  # doctest: +SKIP
    """

    def __init__(self, card: ClassifierCard, forest: ForestArrays | None = None, net: torch.nn.Module | None = None, device: str = "auto"):
        self.card, self.forest, self.net = card, forest, net
        self.device = resolve_device(device)
        if net is not None:
            self.net = net.to(self.device).eval()

    @property
    def classes(self) -> list[str]:
        return self.card.classes

    def proba_of(self, rows: list[dict], crops: list[np.ndarray]) -> np.ndarray:
        """Probabilities (cells x classes) from cells-table rows (forest) or crops (network)."""
        if not rows:
            return np.zeros((0, len(self.classes)))
        if self.forest is not None:
            return self.forest.predict_proba(feature_matrix(rows, self.card.features))
        return network_proba(self.net, crops, self.card.cnn.input_size, self.device)

    def predict_proba(self, image: np.ndarray, instances: np.ndarray, rows: list[dict]) -> np.ndarray:
        """Probabilities (cells x classes) of the cells ``rows`` describes (in that order)."""
        crops = []
        if self.net is not None and rows:
            crop_of = cell_crops(image, instances, self.card.cnn.input_size, self.card.crop_scale)
            crops = [crop_of[row["cell_id"]] for row in rows]
        return self.proba_of(rows, crops)

    def save(self, stem: str | Path) -> Path:
        """Write ``stem.safetensors`` and ``stem.json``, each atomically."""
        stem = Path(stem)
        if self.forest is not None:
            data = save_numpy(self.forest.to_dict(), metadata={"format": FORMAT})
        else:
            state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
            data = save_torch(state, metadata={"format": FORMAT})
        write_bytes(stem.with_name(stem.name + ".safetensors"), data)
        write_json(stem.with_name(stem.name + ".json"), self.card.model_dump(mode="json"))
        return stem

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CLASSIFIER, device: str = "auto") -> CellClassifier:
        numbers, card_path = classifier_files(path)
        card = read_classifier_card(card_path)
        if card.kind == "random_forest":
            try:
                forest = ForestArrays.from_dict(load_numpy(str(numbers)))
                forest.check(len(card.features), len(card.classes))
            except (SafetensorError, OSError, KeyError, ValueError) as error:
                raise ConfigError(f"{numbers}: not a random forest written by blastseg for {card_path.name} ({error})") from None
            return cls(card, forest=forest, device=device)
        if card.cnn is None:
            raise ConfigError(f"{card_path}: a cnn classifier card needs its 'cnn' settings")
        net = build_network(card.cnn.model_copy(update={"weights_path": None}), len(card.classes))
        load_weights(net, numbers, f"{card.cnn.backbone or 'the small CNN'} with {len(card.classes)} classes")
        return cls(card, net=net, device=device)


def read_classifier_card(path: Path) -> ClassifierCard:
    card = read_json_card(path, ClassifierCard, FORMAT, "classifier")
    unknown = sorted(set(card.features) - set(FEATURES))
    if unknown:
        raise ConfigError(f"{path}: features {', '.join(unknown)} are not cells-table columns")
    return card


def feature_matrix(rows: list[dict], features: list[str] | tuple[str, ...] = FEATURES) -> np.ndarray:
    """Cells x features as float64; a missing value (NaN) becomes 0.

    >>> feature_matrix([{"area": 10, "nc_ratio": float("nan")}], ["area", "nc_ratio"]).tolist()
    [[10.0, 0.0]]
    """
    matrix = np.array([[float(row[name]) for name in features] for row in rows], np.float64).reshape(len(rows), len(features))
    return np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
