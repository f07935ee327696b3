"""Preprocessing steps and the pipeline that chains them.

Each step is a small strict model whose fields are its parameters; a pipeline is built from a YAML
list and serialises back to the same list, so the preprocessing a model expects travels with it::

    >>> pipeline = Pipeline.from_config(["hsv_saturation", {"name": "gaussian", "kernel": 5}])
    >>> pipeline.to_config()
    [{'name': 'hsv_saturation', 'factor': 2.0}, {'name': 'gaussian', 'kernel': 5, 'sigma': 0.0}]

Input and output of every step but ``normalize`` is ``uint8`` HxWx3; ``normalize`` gives float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import cv2
import numpy as np
import yaml
from pydantic import AfterValidator, Field

from blastseg.config import StrictModel, validate
from blastseg.errors import ConfigError, lookup

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_grey(image: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R 601) of an RGB ``uint8`` image, HxW."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def to_hsv(image: np.ndarray, full_hue: bool = False) -> np.ndarray:
    """HSV with OpenCV's ranges: hue 0..179, or 0..255 with ``full_hue``."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL if full_hue else cv2.COLOR_RGB2HSV)


def to_lab(image: np.ndarray) -> np.ndarray:
    """CIE L*a*b* with OpenCV's 8-bit scaling: L*·255/100, a* and b* + 128."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2LAB)


def boosted_saturation(saturation: np.ndarray, factor: float) -> np.ndarray:
    """An HSV saturation channel multiplied by ``factor``, clipped to 255 (``uint8`` HxW)."""
    return np.clip(saturation.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(f"must be a positive odd integer, got {value}")
    return value


OddKernel = Annotated[int, Field(ge=1, le=255), AfterValidator(_odd)]


class Step(StrictModel):
    """Base class: subclasses set ``name`` and implement ``__call__``."""

    name: ClassVar[str] = ""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.model_dump(mode="json")}


class HsvSaturation(Step):
    """Multiply HSV saturation by ``factor`` (clipped to 255): stained nuclei stand out."""

    name: ClassVar[str] = "hsv_saturation"
    factor: float = Field(default=2.0, ge=0, le=100)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        hsv = to_hsv(image)
        hsv[..., 1] = boosted_saturation(hsv[..., 1], self.factor)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


class Grayscale(Step):
    """Luminance (ITU-R 601) repeated in three channels, so later steps still see HxWx3."""

    name: ClassVar[str] = "grayscale"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return np.repeat(to_grey(image)[..., None], 3, axis=2)


class Clahe(Step):
    """Contrast-limited adaptive histogram equalisation of the L* channel."""

    name: ClassVar[str] = "clahe"
    clip_limit: float = Field(default=2.0, gt=0, le=1000)
    tile_grid: int = Field(default=8, ge=1, le=256)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        clahe = cv2.createCLAHE(clipLimit=self.clip_limit, tileGridSize=(self.tile_grid, self.tile_grid))
        lab = to_lab(image)
        lab[..., 0] = clahe.apply(lab[..., 0])
        return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


class Reinhard(Step):
    """Reinhard colour transfer: each L*a*b* channel shifted and stretched to a target mean and
    spread, so that smears stained or lit differently look alike (Reinhard et al. 2001, as used
    for stain normalisation). The default target is the median over the Zheng training crops.

    >>> out = Reinhard()(np.full((4, 4, 3), (200, 120, 160), np.uint8))
    >>> out.shape, out.dtype.name
    ((4, 4, 3), 'uint8')
    """

    name: ClassVar[str] = "reinhard"
    mean: tuple[float, float, float] = (80.56, 8.25, 23.25)
    std: tuple[Annotated[float, Field(gt=0, le=200)], Annotated[float, Field(gt=0, le=200)], Annotated[float, Field(gt=0, le=200)]] = (22.61, 16.61, 17.32)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)
        mean, std = lab.mean(axis=0), lab.std(axis=0)
        lab = (lab - mean) / np.maximum(std, 1e-3) * np.array(self.std) + np.array(self.mean)
        lab[:, 0] = np.clip(lab[:, 0], 0, 100)
        rgb = cv2.cvtColor(lab.reshape(image.shape).astype(np.float32), cv2.COLOR_LAB2RGB)
        return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


class Gaussian(Step):
    """Gaussian blur with a ``kernel`` x ``kernel`` window; ``sigma`` 0 derives it from the kernel."""

    name: ClassVar[str] = "gaussian"
    kernel: OddKernel = 5
    sigma: float = Field(default=0.0, ge=0, le=100)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (self.kernel, self.kernel), self.sigma)


class Median(Step):
    """Median blur with a ``kernel`` x ``kernel`` window."""

    name: ClassVar[str] = "median"
    kernel: OddKernel = 5

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return cv2.medianBlur(image, self.kernel)


class Lab(Step):
    """Convert RGB to CIE L*a*b* (OpenCV's 8-bit scaling: L*·255/100, a* and b* + 128)."""

    name: ClassVar[str] = "lab"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return to_lab(image)


class Hsv(Step):
    """Convert RGB to HSV with hue spread over 0..255 (OpenCV's ``HSV_FULL``)."""

    name: ClassVar[str] = "hsv"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return to_hsv(image, full_hue=True)


class Resize(Step):
    """Resize to ``width`` x ``height`` pixels (area averaging when shrinking, else linear)."""

    name: ClassVar[str] = "resize"
    width: int = Field(default=256, ge=1, le=8192)
    height: int = Field(default=256, ge=1, le=8192)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        shrink = self.width * self.height < image.shape[0] * image.shape[1]
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return cv2.resize(image, (self.width, self.height), interpolation=interpolation)


class Normalize(Step):
    """Scale to 0..1 then standardise per channel: ``(x / 255 - mean) / std`` as float32."""

    name: ClassVar[str] = "normalize"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = IMAGENET_STD

    def __call__(self, image: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return (image.astype(np.float32) / 255.0 - mean) / std


STEPS: dict[str, type[Step]] = {step.name: step for step in (HsvSaturation, Grayscale, Clahe, Reinhard, Gaussian, Median, Lab, Hsv, Resize, Normalize)}


def build_step(spec: str | dict[str, Any]) -> Step:
    """Build one step from its name or a ``{"name": ..., **params}`` dict."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"a preprocessing step is a name or a mapping with 'name', got {spec!r}")
    params = dict(spec)
    cls = lookup(STEPS, params.pop("name"), "preprocessing step")
    return validate(cls, params, f"step {cls.name!r}")


@dataclass
class Pipeline:
    """An ordered list of steps applied one after another."""

    steps: list[Step] = field(default_factory=list)

    @classmethod
    def from_config(cls, specs: Sequence[str | dict[str, Any]] | None) -> Pipeline:
        return cls([build_step(spec) for spec in specs or []])

    @classmethod
    def from_yaml(cls, text: str) -> Pipeline:
        return cls.from_config(yaml.safe_load(text))

    def to_config(self) -> list[dict[str, Any]]:
        return [step.to_config() for step in self.steps]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_config(), sort_keys=False)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        for step in self.steps:
            image = step(image)
        return image
