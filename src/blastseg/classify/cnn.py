"""A convolutional classifier of cell crops: the small network of the published ALL subtype work
(two conv+pool blocks, dense 196 and 96, softmax) or any timm backbone. Training is in
:mod:`blastseg.training.cnn`.

>>> net = build_network(CnnSpec(input_size=32), n_classes=3)
>>> tuple(net(torch.zeros(2, 3, 32, 32)).shape)
(2, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from blastseg.artifacts import load_state, read_weights
from blastseg.classify.card import CnnSpec
from blastseg.errors import ConfigError
from blastseg.preprocess import Normalize, Resize
from blastseg.tensors import to_tensor


class SmallCnn(nn.Module):
    """conv 3x3 (32) + max-pool, conv 3x3 (64) + max-pool, dense 196, dense 96, class logits."""

    def __init__(self, n_classes: int, input_size: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = input_size // 4
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(64 * side * side, 196),
            nn.ReLU(inplace=True),
            nn.Linear(196, 96),
            nn.ReLU(inplace=True),
            nn.Linear(96, n_classes),  # softmax lives in the loss and in predict_proba
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_network(spec: CnnSpec, n_classes: int) -> nn.Module:
    """The small CNN, or ``spec.backbone`` from timm with random (or local) weights."""
    if spec.backbone is None:
        return SmallCnn(n_classes, spec.input_size)
    import timm

    if not timm.is_model(spec.backbone):
        raise ConfigError(f"unknown timm backbone {spec.backbone!r} (see timm.list_models())")
    net = timm.create_model(spec.backbone, pretrained=False, num_classes=n_classes)
    if spec.weights_path:
        load_backbone_weights(net, Path(spec.weights_path))
    return net


def load_backbone_weights(net: nn.Module, path: Path) -> None:
    """Load local weights into every layer but the classification head (which is sized per task)."""
    head = net.pretrained_cfg.get("classifier", "")
    load_state(net, read_weights(path, "backbone weights"), f"backbone weights {path}", "this backbone", skip=f"{head}.")


class CropDataset(Dataset):
    """Crops (RGB uint8, any square size) resized to ``input_size`` and stain-normalised as
    ``spec`` says, then augmented when given a transform."""

    def __init__(self, crops: Sequence[np.ndarray], labels: Sequence[int], spec: CnnSpec, transform=None):
        size = spec.input_size
        resize = Resize(width=size, height=size)
        self.crops = [crop if crop.shape[:2] == (size, size) else resize(crop) for crop in crops]
        if spec.stain_target is not None:
            self.crops = [spec.stain_target(crop) for crop in self.crops]
        self.labels = list(labels)
        self.transform = transform
        self.normalize = Normalize()

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        crop = self.crops[index]
        if self.transform is not None:
            crop = self.transform(image=crop)["image"]
        return to_tensor(crop, self.normalize), self.labels[index]


@torch.no_grad()
def network_proba(net: nn.Module, crops: Sequence[np.ndarray], spec: CnnSpec, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (cells x classes) of ``crops``, fed as ``spec`` says."""
    net.eval()
    data = CropDataset(crops, [0] * len(crops), spec)
    parts = [torch.softmax(net(images.to(device)), dim=1).cpu() for images, _ in DataLoader(data, batch_size=batch_size)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0))
