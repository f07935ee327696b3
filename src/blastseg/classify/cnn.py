"""A convolutional classifier of cell crops: the small network of the published ALL subtype work
(two conv+pool blocks, dense 196 and 96, softmax) or any timm backbone, trained with augmentation.

>>> net = build_network(CnnParams(input_size=32), n_classes=3)
>>> tuple(net(torch.zeros(2, 3, 32, 32)).shape)
(2, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader, Dataset

from blastseg.augment import AugmentConfig, build_augmentation
from blastseg.dataset import to_tensor
from blastseg.errors import ConfigError
from blastseg.preprocess import Normalize, Resize
from blastseg.segment.models import read_state_dict


class CnnParams(BaseModel):
    """The network and how it is trained (YAML ``cnn:`` section)."""

    model_config = ConfigDict(extra="forbid")

    backbone: str | None = Field(default=None, description="a timm model name (random weights); null: the small CNN")
    weights_path: str | None = Field(default=None, description="local timm weights (.safetensors) for the backbone")
    input_size: int = Field(default=64, ge=16, description="crops are resized to this square")
    epochs: int = Field(default=40, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


class SmallCnn(nn.Module):
    """conv 3x3 (32) + max-pool, conv 3x3 (64) + max-pool, dense 196, dense 96, class logits."""

    def __init__(self, n_classes: int, input_size: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = input_size // 4
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.5),
            nn.Linear(64 * side * side, 196), nn.ReLU(inplace=True),
            nn.Linear(196, 96), nn.ReLU(inplace=True),
            nn.Linear(96, n_classes),  # softmax lives in the loss and in predict_proba
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_network(params: CnnParams, n_classes: int) -> nn.Module:
    """The small CNN, or ``params.backbone`` from timm with random (or local) weights."""
    if params.backbone is None:
        return SmallCnn(n_classes, params.input_size)
    import timm

    if not timm.is_model(params.backbone):
        raise ConfigError(f"unknown timm backbone {params.backbone!r} (see timm.list_models())")
    net = timm.create_model(params.backbone, pretrained=False, num_classes=n_classes)
    if params.weights_path:
        load_backbone_weights(net, Path(params.weights_path))
    return net


def load_backbone_weights(net: nn.Module, path: Path) -> None:
    """Load local weights into every layer but the classification head (which is sized per task)."""
    head = net.pretrained_cfg.get("classifier", "")
    state = {k: v for k, v in read_state_dict(path, "backbone weights").items() if not k.startswith(f"{head}.")}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as error:  # tensors of another shape
        raise ConfigError(f"backbone weights {path} do not fit this backbone: {str(error).splitlines()[-1].strip()}") from None
    missing = [k for k in missing if not k.startswith(f"{head}.")]
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise ConfigError(f"backbone weights {path} do not fit this backbone ({len(missing)} missing, {len(unexpected)} unexpected, e.g. {example})")


class CropDataset(Dataset):
    """Crops (RGB uint8, any square size) resized to ``input_size``, augmented when given a transform."""

    def __init__(self, crops: Sequence[np.ndarray], labels: Sequence[int], input_size: int, transform=None):
        resize = Resize(input_size, input_size)
        self.crops = [crop if crop.shape[:2] == (input_size, input_size) else resize(crop) for crop in crops]
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


def fit_network(
    crops: Sequence[np.ndarray], labels: np.ndarray, n_classes: int, params: CnnParams, device: torch.device, seed: int = 0
) -> nn.Module:
    """Train a fresh network on ``crops`` with class-balanced cross-entropy for ``params.epochs``."""
    torch.manual_seed(seed)
    net = build_network(params, n_classes).to(device)
    transform = build_augmentation(params.augment, params.input_size, seed=seed)
    data = CropDataset(crops, labels.tolist(), params.input_size, transform)
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


@torch.no_grad()
def network_proba(net: nn.Module, crops: Sequence[np.ndarray], input_size: int, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (cells x classes) of ``crops``."""
    net.eval()
    data = CropDataset(crops, [0] * len(crops), input_size)
    parts = [torch.softmax(net(images.to(device)), dim=1).cpu() for images, _ in DataLoader(data, batch_size=batch_size)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0))
