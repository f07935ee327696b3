"""A trained cell classifier: a JSON card plus a safetensors file of numbers (forest arrays or
network weights). Loading rebuilds the predictor from these; nothing is unpickled, and a file
that blastseg did not write, or one that does not fit its card, is refused with one line.

A classifier is named by either file, by its stem, by a ``blastseg classify train`` run folder
(its ``classifier`` pair), or ``default``: the white-cell type classifier bundled with the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save as save_numpy

from blastseg.artifacts import DEFAULT, bundled, load_state, paired_files, read_weights, write_pair
from blastseg.cells import FEATURES, cell_crops, with_resampled_features
from blastseg.classify.card import FORMAT, ClassifierCard, read_classifier_card
from blastseg.classify.forest import ForestArrays
from blastseg.errors import ModelFileError
from blastseg.runtime import resolve_device

if TYPE_CHECKING:
    import torch

RUN_STEM = "classifier"


def bundled_classifier() -> Path:
    """The card of the white-cell type classifier shipped with the package."""
    return bundled("models", f"{RUN_STEM}.json")


def classifier_files(path: str | Path) -> tuple[Path, Path]:
    """The (numbers, card) pair that ``path`` names."""
    return paired_files(path, RUN_STEM, RUN_STEM, "classifier")


class CellClassifier:
    """Class probabilities for the cells of an image, from their features or their crops.

    >>> classifier = CellClassifier.load()  # doctest: +SKIP
    >>> classifier.predict_proba(image, labels, instances, rows)  # cells x classes  # doctest: +SKIP
    """

    def __init__(
        self,
        card: ClassifierCard,
        forest: ForestArrays | None = None,
        net: torch.nn.Module | None = None,
        device: str = "auto",
        source: str = "",
    ):
        self.card, self.forest, self.net, self.source = card, forest, net, source
        self.device = resolve_device(device) if net is not None else None  # a forest runs in NumPy, without torch
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
        from blastseg.classify.cnn import network_proba

        return network_proba(self.net, crops, self.card.cnn, self.device)

    def predict_proba(self, image: np.ndarray, labels: np.ndarray, instances: np.ndarray, rows: list[dict]) -> np.ndarray:
        """Probabilities (cells x classes) of the cells ``rows`` describes (in that order), found
        in ``image`` as the label map ``labels`` and the cell ``instances``."""
        crops = []
        if self.net is not None and rows:
            crop_of = cell_crops(image, instances, self.card.cnn.input_size, self.card.crop_scale)
            crops = [crop_of[row["cell_id"]] for row in rows]
        if self.forest is not None and self.card.cell_diameter and rows:
            rows = with_resampled_features(rows, image, labels, instances, self.card.cell_diameter)
        return self.proba_of(rows, crops)

    def provenance(self) -> dict[str, Any]:
        """What ``summary.json`` records of this classifier."""
        card = self.card
        return {
            "classifier": self.source,
            "kind": card.kind,
            "classes": card.classes,
            "trained_on": card.trained_on,
            "cv_macro_f1": card.scores.get("macro_f1"),
            "decision": "most probable class",
        }

    def save(self, stem: str | Path) -> Path:
        """Write ``stem.safetensors`` and ``stem.json``, each atomically."""
        if self.forest is not None:
            data = save_numpy(self.forest.to_dict(), metadata={"format": FORMAT})
        else:
            from safetensors.torch import save as save_torch

            state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
            data = save_torch(state, metadata={"format": FORMAT})
        return write_pair(stem, data, self.card)

    @classmethod
    def load(cls, path: str | Path = DEFAULT, device: str = "auto") -> CellClassifier:
        """Load a classifier (a run folder, either file of its pair, or ``default``)."""
        numbers, card_path = classifier_files(path)
        card = read_classifier_card(card_path)
        if card.kind == "random_forest":
            try:
                forest = ForestArrays.from_dict(load_numpy(str(numbers)))
                forest.check(len(card.features), len(card.classes))
            except (SafetensorError, OSError, KeyError, ValueError) as error:
                raise ModelFileError(f"{numbers}: not a random forest written by blastseg for {card_path.name} ({error})") from None
            return cls(card, forest=forest, device=device, source=str(path))
        if card.cnn is None:
            raise ModelFileError(f"{card_path}: a cnn classifier card needs its 'cnn' settings")
        from blastseg.classify.cnn import build_network

        net = build_network(card.cnn.model_copy(update={"weights_path": None}), len(card.classes))
        describe = f"{card.cnn.backbone or 'the small CNN'} with {len(card.classes)} classes"
        load_state(net, read_weights(numbers), numbers, describe)
        return cls(card, net=net, device=device, source=str(path))


def feature_matrix(rows: list[dict], features: list[str] | tuple[str, ...] = FEATURES) -> np.ndarray:
    """Cells x features as float64; a missing value (NaN) becomes 0.

    >>> feature_matrix([{"area": 10, "nc_ratio": float("nan")}], ["area", "nc_ratio"]).tolist()
    [[10.0, 0.0]]
    """
    matrix = np.array([[float(row[name]) for name in features] for row in rows], np.float64).reshape(len(rows), len(features))
    return np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
