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
from typing import Any, ClassVar

import torch
from pydantic import Field
from segmentation_models_pytorch import losses as smp_losses
from torch import nn

from blastseg.config import StrictModel, validate
from blastseg.errors import ConfigError, lookup
from blastseg.segment.heads import UNKNOWN


def _mode(multiclass: bool) -> str:
    return smp_losses.MULTICLASS_MODE if multiclass else smp_losses.MULTILABEL_MODE


class Loss(StrictModel):
    """Base of the losses: the fields are the loss's parameters; ``build`` makes the torch module."""

    name: ClassVar[str] = ""

    def build(self, multiclass: bool) -> nn.Module:
        raise NotImplementedError


class Bce(Loss):
    """Binary cross-entropy on logits (cross-entropy for ``multiclass``)."""

    name: ClassVar[str] = "bce"

    def build(self, multiclass: bool) -> nn.Module:
        return nn.CrossEntropyLoss() if multiclass else nn.BCEWithLogitsLoss()


class Dice(Loss):
    """Soft Dice loss, 1 - Dice, averaged over channels (classes)."""

    name: ClassVar[str] = "dice"
    smooth: float = Field(default=0.0, ge=0)

    def build(self, multiclass: bool) -> nn.Module:
        return smp_losses.DiceLoss(_mode(multiclass), smooth=self.smooth)


class BceDice(Loss):
    """``lam * bce + (1 - lam) * dice``."""

    name: ClassVar[str] = "bce_dice"
    lam: float = Field(default=0.5, ge=0, le=1, description="weight of bce, in [0, 1]")

    def build(self, multiclass: bool) -> nn.Module:
        return WeightedSum([(self.lam, Bce().build(multiclass)), (1 - self.lam, Dice().build(multiclass))])


class Tversky(Loss):
    """Tversky loss: ``alpha`` weighs false positives, ``beta`` false negatives (0.5/0.5 is Dice)."""

    name: ClassVar[str] = "tversky"
    alpha: float = Field(default=0.3, ge=0)
    beta: float = Field(default=0.7, ge=0)

    def build(self, multiclass: bool) -> nn.Module:
        return smp_losses.TverskyLoss(_mode(multiclass), alpha=self.alpha, beta=self.beta)


class Focal(Loss):
    """Focal loss: cross-entropy down-weighting easy pixels by ``(1 - p) ** gamma``."""

    name: ClassVar[str] = "focal"
    gamma: float = Field(default=2.0, ge=0)
    alpha: float | None = Field(default=None, ge=0, le=1)

    def build(self, multiclass: bool) -> nn.Module:
        return smp_losses.FocalLoss(_mode(multiclass), alpha=self.alpha, gamma=self.gamma)


LOSSES: dict[str, type[Loss]] = {loss.name: loss for loss in (Bce, Dice, BceDice, Tversky, Focal)}


class WeightedSum(nn.Module):
    """Sum of ``weight * loss(logits, target)`` terms."""

    def __init__(self, terms: Sequence[tuple[float, Callable]]):
        super().__init__()
        self.weights = [float(w) for w, _ in terms]
        self.terms = nn.ModuleList(term for _, term in terms)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * term(logits, target) for w, term in zip(self.weights, self.terms))


class UnknownIgnored(nn.Module):
    """A sigmoid-output loss that ignores the target pixels marked :data:`~blastseg.segment.heads.UNKNOWN`:
    there the logit is replaced by a constant far below zero and the target by 0, so the pixel
    adds (next to) nothing to any term and passes no gradient back.

    >>> bce = UnknownIgnored(nn.BCEWithLogitsLoss(reduction="sum"))
    >>> target = torch.tensor([[[[1.0, UNKNOWN]]]])
    >>> float(bce(torch.tensor([[[[0.0, 5.0]]]]), target)) == float(bce(torch.tensor([[[[0.0, -5.0]]]]), target))
    True
    """

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        unknown = target == UNKNOWN
        if unknown.any():
            logits, target = logits.masked_fill(unknown, -40.0), target.masked_fill(unknown, 0.0)
        return self.loss(logits, target)


def parse_loss(spec: str | dict[str, Any] | Sequence[str | dict[str, Any]]) -> list[tuple[float, Loss]]:
    """The ``(weight, loss)`` terms of a name, ``{"name": ..., "weight": ..., **params}``, or a list of those.

    >>> parse_loss([{"name": "tversky", "alpha": 0.5}, "bce"])
    [(1.0, Tversky(alpha=0.5, beta=0.7)), (1.0, Bce())]
    """
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    if not specs:
        raise ConfigError(f"loss needs at least one term; valid: {', '.join(LOSSES)}")
    terms = []
    for item in specs:
        params = {"name": item} if isinstance(item, str) else dict(item)
        if "name" not in params:
            raise ConfigError(f"a loss term needs a 'name'; valid: {', '.join(LOSSES)}")
        name, weight = params.pop("name"), params.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < 1e6:
            raise ConfigError(f"loss {name!r}: weight must be a positive finite number, got {weight!r}")
        terms.append((float(weight), validate(lookup(LOSSES, name, "loss"), params, f"loss {name!r}")))
    return terms


def build_loss(spec: str | dict[str, Any] | Sequence[str | dict[str, Any]], multiclass: bool) -> nn.Module:
    """The summed loss module of ``spec`` (see :func:`parse_loss`); for sigmoid outputs it ignores
    target pixels marked unknown (:class:`UnknownIgnored`)."""
    loss = WeightedSum([(weight, loss.build(multiclass)) for weight, loss in parse_loss(spec)])
    return loss if multiclass else UnknownIgnored(loss)
