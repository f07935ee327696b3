"""Segmentation losses by name, and weighted sums of them.

Sigmoid outputs (one channel per binary target) take a float target of the same shape;
``multiclass`` (softmax) outputs take an integer label map N x H x W. The soft Dice, Tversky and
focal terms come from segmentation-models-pytorch.

>>> loss = build_loss([{"name": "bce", "weight": 1.0}, {"name": "dice", "weight": 0.5}], multiclass=False)
>>> logits = torch.zeros(1, 1, 2, 2); target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
>>> round(float(loss(logits, target)), 4)  # log(2) + 0.5 * (1 - 2 * 0.5 / (2 + 1))
1.0265
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from segmentation_models_pytorch import losses as smp_losses
from torch import nn

from blastseg.config import construct
from blastseg.errors import ConfigError, lookup


def _mode(multiclass: bool) -> str:
    return smp_losses.MULTICLASS_MODE if multiclass else smp_losses.MULTILABEL_MODE


@dataclass
class Bce:
    """Binary cross-entropy on logits (cross-entropy for ``multiclass``)."""

    def build(self, multiclass: bool) -> nn.Module:
        return nn.CrossEntropyLoss() if multiclass else nn.BCEWithLogitsLoss()


@dataclass
class Dice:
    """Soft Dice loss, 1 - Dice, averaged over channels (classes)."""

    smooth: float = 0.0

    def build(self, multiclass: bool) -> nn.Module:
        return smp_losses.DiceLoss(_mode(multiclass), smooth=self.smooth)


@dataclass
class BceDice:
    """``lam * bce + (1 - lam) * dice``."""

    lam: float = 0.5

    def build(self, multiclass: bool) -> nn.Module:
        if not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"bce_dice lam must lie in [0, 1], got {self.lam}")
        return WeightedSum([(self.lam, Bce().build(multiclass)), (1 - self.lam, Dice().build(multiclass))])


@dataclass
class Tversky:
    """Tversky loss: ``alpha`` weighs false positives, ``beta`` false negatives (0.5/0.5 is Dice)."""

    alpha: float = 0.3
    beta: float = 0.7

    def build(self, multiclass: bool) -> nn.Module:
        return smp_losses.TverskyLoss(_mode(multiclass), alpha=self.alpha, beta=self.beta)


@dataclass
class Focal:
    """Focal loss: cross-entropy down-weighting easy pixels by ``(1 - p) ** gamma``."""

    gamma: float = 2.0
    alpha: float | None = None

    def build(self, multiclass: bool) -> nn.Module:
        return smp_losses.FocalLoss(_mode(multiclass), alpha=self.alpha, gamma=self.gamma)


LOSSES: dict[str, type] = {"bce": Bce, "dice": Dice, "bce_dice": BceDice, "tversky": Tversky, "focal": Focal}


class WeightedSum(nn.Module):
    """Sum of ``weight * loss(logits, target)`` terms."""

    def __init__(self, terms: Sequence[tuple[float, Callable]]):
        super().__init__()
        self.weights = [float(w) for w, _ in terms]
        self.terms = nn.ModuleList(term for _, term in terms)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * term(logits, target) for w, term in zip(self.weights, self.terms))


def build_loss(spec: str | dict[str, Any] | Sequence[str | dict[str, Any]], multiclass: bool) -> nn.Module:
    """A loss from a name, ``{"name": ..., "weight": ..., **params}``, or a list of those (summed)."""
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    if not specs:
        raise ConfigError(f"loss needs at least one term; valid: {', '.join(LOSSES)}")
    terms = []
    for item in specs:
        params = {"name": item} if isinstance(item, str) else dict(item)
        if "name" not in params:
            raise ConfigError(f"a loss term needs a 'name'; valid: {', '.join(LOSSES)}")
        name, weight = params.pop("name"), params.pop("weight", 1.0)
        cls = lookup(LOSSES, name, "loss")
        terms.append((weight, construct(cls, params, f"loss {name!r}").build(multiclass)))
    return WeightedSum(terms)
