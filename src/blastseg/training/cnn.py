"""Training the cell-crop CNN: its recipe section and the fitting loop.

>>> CnnTraining(input_size=32).spec()
CnnSpec(backbone=None, weights_path=None, input_size=32, stain_target=None)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader

from blastseg.classify.cnn import CnnSpec, CropDataset, build_network
from blastseg.training.augment import AugmentConfig, build_augmentation


class CnnTraining(CnnSpec):
    """The network and how it is trained (YAML ``cnn:`` section of a classifier recipe)."""

    epochs: int = Field(default=40, ge=1, le=100_000)
    batch_size: int = Field(default=32, ge=1, le=4096)
    lr: float = Field(default=1e-3, gt=0, le=10)
    weight_decay: float = Field(default=1e-4, ge=0)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    def spec(self) -> CnnSpec:
        """What the classifier card keeps: the network, not how it was trained."""
        return CnnSpec(**self.model_dump(include=set(CnnSpec.model_fields)))


def fit_network(crops: Sequence[np.ndarray], labels: np.ndarray, n_classes: int, params: CnnTraining, device: torch.device, seed: int = 0) -> nn.Module:
    """Train a fresh network on ``crops`` with class-balanced cross-entropy for ``params.epochs``."""
    torch.manual_seed(seed)
    net = build_network(params, n_classes).to(device)
    transform = build_augmentation(params.augment, params.input_size, seed=seed)
    data = CropDataset(crops, labels.tolist(), params.spec(), transform)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size=params.batch_size, shuffle=True, generator=generator, drop_last=len(data) > params.batch_size)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float32)
    weights = torch.tensor(counts.sum() / np.maximum(counts, 1) / n_classes, device=device)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(net.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=params.epochs * len(loader))
    net.train()
    for _ in range(params.epochs):
        for images, targets in loader:
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(net(images.to(device)), targets.to(device))
            loss.backward()
            optimiser.step()
            schedule.step()
    return net.eval()
