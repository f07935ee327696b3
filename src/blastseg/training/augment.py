"""Training augmentation, configured in YAML and built with albumentations.

Image and mask go through the same geometric transforms; colour (stain) jitter touches the image
only. The training crop (padding by reflection where an image is smaller) comes last, so every
batch has one shape.

>>> import numpy as np
>>> config = AugmentConfig(rotate=0, scale=0.0)
>>> transform = build_augmentation(config, crop_size=32, seed=0)
>>> out = transform(image=np.zeros((20, 40, 3), np.uint8), mask=np.zeros((20, 40), np.uint8))
>>> out["image"].shape, out["mask"].shape
((32, 32, 3), (32, 32))
"""

from __future__ import annotations

from typing import Annotated

import albumentations as A
import cv2
from pydantic import Field

from blastseg.config import StrictModel


class AugmentConfig(StrictModel):
    """Which augmentations to apply; 0 or ``false`` turns one off."""

    flip: bool = Field(default=True, description="horizontal and vertical flips")
    rotate90: bool = Field(default=True, description="random multiples of 90 degrees")
    rotate: float = Field(default=45.0, ge=0, le=180, description="free rotation up to +-degrees (30, 45, 60...)")
    scale: float = Field(default=0.25, ge=0, lt=1, description="zoom by up to +-this fraction")
    brightness: float = Field(default=0.2, ge=0, le=1, description="brightness and contrast jitter")
    hue: int = Field(default=10, ge=0, le=180, description="hue shift up to +-degrees (stain colour)")
    saturation: int = Field(default=20, ge=0, le=255, description="saturation shift up to +-this")
    rescale: tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(ge=1, le=8)]] | None = Field(
        default=None,
        description="with the chance `probability`, resize by a factor in [low, high] before the crop: half the draws shrink, half enlarge (magnification)",
    )
    blur: float = Field(default=0.0, ge=0, le=20, description="Gaussian blur of sigma up to this (focus)")
    jpeg: int = Field(default=100, ge=1, le=100, description="JPEG-compress at a quality down to this (100: never)")
    stain: bool = Field(default=False, description="H&E-style stain-matrix and intensity jitter, and illuminant colour jitter")
    probability: float = Field(default=0.5, ge=0, le=1, description="chance of each random transform")


def build_augmentation(config: AugmentConfig, crop_size: int, seed: int | None = None) -> A.Compose:
    """Compose the training transforms of ``config`` followed by a ``crop_size`` square crop."""
    p = config.probability
    border = cv2.BORDER_REFLECT_101
    steps: list[A.BasicTransform] = []
    if config.rescale:
        low, high = config.rescale
        shrink = A.RandomScale((low - 1, 0), area_for_downscale="image", p=1)
        enlarge = A.RandomScale((0, high - 1), p=1)
        steps.append(A.OneOf([shrink, enlarge], p=p))
    if config.flip:
        steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    if config.rotate90:
        steps.append(A.RandomRotate90(p=0.5))
    if config.rotate or config.scale:
        steps.append(
            A.Affine(
                rotate=(-config.rotate, config.rotate),
                scale=(1 - config.scale, 1 + config.scale),
                border_mode=border,
                p=p,
            )
        )
    if config.brightness:
        steps.append(A.RandomBrightnessContrast(config.brightness, config.brightness, p=p))
    if config.hue or config.saturation:
        steps.append(A.HueSaturationValue(config.hue, config.saturation, 0, p=p))
    if config.stain:
        steps += [A.HEStain("random_preset", intensity_scale_range=(0.7, 1.3), intensity_shift_range=(-0.15, 0.15), p=p), A.PlanckianJitter(p=p)]
    if config.blur:
        steps.append(A.GaussianBlur(sigma_limit=(0.1, config.blur), p=p))
    if config.jpeg < 100:
        steps.append(A.ImageCompression(quality_range=(config.jpeg, 100), p=p))
    steps += [
        A.PadIfNeeded(crop_size, crop_size, border_mode=border),
        A.RandomCrop(crop_size, crop_size),
    ]
    return A.Compose(steps, seed=seed)
