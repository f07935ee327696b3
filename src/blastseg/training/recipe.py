"""The segmentation training recipe: one YAML file, validated section by section when loaded.

>>> cfg = TrainConfig.model_validate({"data": {"path": "data"}, "model": {"name": "unetplusplus"}})
>>> cfg.kind, cfg.model.name, cfg.output, cfg.optim.lr
('segmentation', 'unetplusplus', 'cell+nucleus', 0.0001)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from blastseg.config import FilePath, Seed, StrictModel, as_value_error
from blastseg.datasets.layouts import LayoutName, PseudoMask
from blastseg.datasets.masks import EncodingName
from blastseg.errors import DatasetError
from blastseg.preprocess import Pipeline
from blastseg.runtime import DeviceName
from blastseg.segment.checkpoint import read_checkpoint
from blastseg.segment.heads import Output, has_nucleus_channel, is_multiclass, output_channels
from blastseg.segment.networks import MODELS, ModelSpec
from blastseg.training.augment import AugmentConfig
from blastseg.training.losses import parse_loss

MAX_BATCH_PIXELS = 128 * 512 * 512  # per training step; far beyond what a 80 GB GPU trains


class TrainOnlySource(StrictModel):
    """More images to train on, never validated or tested on: for example BCCD's fields, whose
    ``WBC`` boxes teach the network what is not a white cell (red cells, platelets, background).

    >>> TrainOnlySource(path="bccd", masks_from="boxes").layout
    'auto'
    """

    path: FilePath = Field(description="dataset folder (any layout scan_dataset reads)")
    layout: LayoutName = "auto"
    mask_encoding: EncodingName | None = None
    image_list: FilePath | None = Field(default=None, description="text file of image names (stems) to use, e.g. BCCD's ImageSets/Main/trainval.txt")
    masks_from: PseudoMask | None = Field(
        default=None,
        description=(
            "how images without a mask get one: 'boxes' grows a cell in each white-cell box (datasets.box_masks; images without one are"
            " left out, since a missing box may be a missed cell), 'colour' finds the magenta objects (datasets.colour_masks; images with"
            " an object it does not trust are left out)"
        ),
    )
    learn_nucleus: bool = Field(
        default=True,
        description="false: inside these images' cells the nucleus output learns nothing (pseudo-nuclei too rough); their cells and background still train",
    )
    learn_edge: bool = Field(
        default=True,
        description=(
            "false (masks_from: boxes): a box teaches only that its grown cell's stained core is cell and that the outside of the boxes is not;"
            " the rest of the box's inscribed ellipse learns nothing (GrabCut misses pale cytoplasm)"
        ),
    )

    @model_validator(mode="after")
    def _edge_left_unknown_needs_boxes(self) -> TrainOnlySource:
        if not self.learn_edge and self.masks_from != "boxes":
            raise ValueError(f"learn_edge: false leaves the edges of cells grown in boxes unknown; it needs masks_from: boxes, not {self.masks_from}")
        return self


class DataConfig(StrictModel):
    path: FilePath = Field(description="dataset folder (any layout scan_dataset reads, with masks)")
    layout: LayoutName = "auto"
    mask_encoding: EncodingName | None = None
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: Seed = 0
    crop_size: int = Field(default=160, ge=32, le=2048, description="square training crop; multiple of 32")
    preprocess: list[str | dict[str, Any]] = Field(default_factory=list)
    red_cell_px: Annotated[float, Field(gt=0, le=10_000)] | dict[str, Annotated[float, Field(gt=0, le=10_000)]] | None = Field(
        default=None, description="red-cell diameter in the images' own pixels: one number, or one per sub-dataset (group)"
    )
    scale_to: float | None = Field(
        default=None, gt=0, le=1000, description="red-cell diameter (pixels) the network is trained at; predict rescales every image to it"
    )
    train_also: list[TrainOnlySource] = Field(default_factory=list, description="more datasets whose images all go to training")

    @model_validator(mode="after")
    def _scale_pair(self) -> DataConfig:
        if (self.red_cell_px is None) != (self.scale_to is None):
            raise ValueError("red_cell_px and scale_to go together: the images' red-cell size and the one to train at")
        return self

    def group_red_cell_px(self, group: str) -> float | None:
        """The red-cell diameter the recipe states for the images of ``group`` (``None`` without one)."""
        if self.red_cell_px is None or not isinstance(self.red_cell_px, dict):
            return self.red_cell_px
        if group not in self.red_cell_px:
            raise DatasetError(f"data.red_cell_px names no size for the images of {group!r}; it names {', '.join(self.red_cell_px) or 'none'}")
        return self.red_cell_px[group]

    def rescale_factor(self, group: str) -> float:
        """How much an image of ``group`` is resized for training (1 without ``scale_to``).

        >>> DataConfig(path="d", red_cell_px={"a": 60.0}, scale_to=30).rescale_factor("a")
        0.5
        """
        size = self.group_red_cell_px(group)
        return 1.0 if size is None else self.scale_to / size

    @field_validator("crop_size")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"must be a multiple of 32, got {value}")
        return value

    @field_validator("split")
    @classmethod
    def _fractions(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in value) or abs(sum(value) - 1) > 1e-6 or value[0] == 0:
            raise ValueError(f"needs three non-negative fractions (train, val, test) summing to 1 with some training, got {list(value)}")
        return value

    @field_validator("preprocess")
    @classmethod
    def _valid_steps(cls, value: list) -> list:
        as_value_error(Pipeline.from_config, value)  # an unknown step names the valid ones
        return value


class OptimConfig(StrictModel):
    epochs: int = Field(default=100, ge=1, le=100_000)
    batch_size: int = Field(default=8, ge=1, le=512, description="crops per step; memory grows with batch_size x crop_size squared")
    lr: float = Field(default=1e-4, gt=0, le=10)
    weight_decay: float = Field(default=0.0, ge=0)
    schedule: Literal["plateau", "poly"] = Field(
        default="plateau",
        description="plateau: drop the LR by lr_factor after lr_patience epochs without a better val Dice; poly: lr x (1 - done)^0.9 with done the larger share of epochs or max_minutes spent (nnU-Net's schedule, ending with the time budget)",
    )
    lr_patience: int = Field(default=5, ge=0, description="epochs without a better val Dice before the LR drops")
    lr_factor: float = Field(default=0.5, gt=0, lt=1)
    patience: int = Field(default=15, ge=1, description="early stopping: epochs without a better val Dice")
    max_minutes: float | None = Field(default=None, gt=0, description="stop after this much training time")
    steps_per_epoch: int | None = Field(default=None, ge=1, le=1_000_000, description="batches per epoch (default: one pass)")
    device: DeviceName = "auto"
    workers: int = Field(default=0, ge=0, le=64, description="processes that load and augment batches (0: the training process itself)")
    amp: bool = Field(default=True, description="mixed precision (CUDA only)")
    seed: int = Field(default=0, ge=0, le=4_000_000, description="epoch e reseeds from seed x 1000 + e, which must fit in 32 bits")


class TrainConfig(StrictModel):
    """A complete training recipe (``blastseg train --config``)."""

    kind: Literal["segmentation"] = "segmentation"
    data: DataConfig
    model: ModelSpec = Field(default_factory=ModelSpec)
    output: Output = "cell+nucleus"
    loss: str | dict[str, Any] | list[str | dict[str, Any]] = "bce_dice"
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    threshold: float = Field(default=0.5, gt=0, lt=1)
    init_from: FilePath | None = Field(
        default=None,
        description="fine-tuning: a segmentation checkpoint (run folder, NAME.json, or 'default', the bundled model) whose weights start"
        " the training; it must be the network this recipe builds, with the same output",
    )

    @model_validator(mode="after")
    def _starts_from_the_same_network(self) -> TrainConfig:
        if self.init_from is None:
            return self
        _, card = as_value_error(read_checkpoint, self.init_from)
        built = self.model_spec().model_copy(update={"encoder_weights_path": None})
        if card.model != built or card.output != self.output:
            raise ValueError(
                f"init_from {self.init_from} is {card.describe()} with output {card.output}, "
                f"but this recipe builds {built.name}/{built.encoder} (depth {built.depth}, decoder {built.decoder_channels}) with output {self.output}"
            )
        return self

    @model_validator(mode="after")
    def _nucleus_left_unknown_needs_its_own_channel(self) -> TrainConfig:
        if not has_nucleus_channel(self.output) and any(not source.learn_nucleus for source in self.data.train_also):
            raise ValueError(
                f"data.train_also's learn_nucleus: false needs an output with a sigmoid nucleus channel (cell+nucleus or nucleus), not {self.output}"
            )
        return self

    @model_validator(mode="after")
    def _edge_left_unknown_needs_sigmoid_outputs(self) -> TrainConfig:
        if is_multiclass(self.output) and any(not source.learn_edge for source in self.data.train_also):
            raise ValueError("data.train_also's learn_edge: false needs sigmoid outputs (cell, nucleus or cell+nucleus), not multiclass")
        return self

    @model_validator(mode="after")
    def _batch_fits(self) -> TrainConfig:
        pixels = self.optim.batch_size * self.data.crop_size**2
        if pixels > MAX_BATCH_PIXELS:
            raise ValueError(
                f"optim.batch_size {self.optim.batch_size} x data.crop_size {self.data.crop_size}^2 is {pixels / 1e6:.0f} megapixels per step, "
                f"over {MAX_BATCH_PIXELS / 1e6:.0f}: lower one of them"
            )
        return self

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: ModelSpec) -> ModelSpec:
        if value.name not in MODELS:
            raise ValueError(f"unknown model {value.name!r}; valid: {', '.join(MODELS)}")
        return value

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: Any) -> Any:
        as_value_error(parse_loss, value)  # an unknown loss or parameter names the valid ones
        return value

    def model_spec(self) -> ModelSpec:
        """The network spec with the output's channel count and registry defaults filled in."""
        return self.model.model_copy(update={"classes": output_channels(self.output)}).resolved()
