"""The classifier training recipe (``blastseg classify train --config``), validated key by key.

>>> cfg = ClassifyConfig.model_validate({"data": {"path": "cells"}, "model": "cnn"})
>>> cfg.kind, cfg.model, cfg.folds, cfg.cnn.input_size, cfg.data.segmentation
('classifier', 'cnn', 5, 64, 'auto')
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from blastseg.cells import FEATURES
from blastseg.config import FilePath, Seed, StrictModel
from blastseg.datasets.layouts import LayoutName
from blastseg.datasets.masks import EncodingName
from blastseg.postprocess import InstanceRules
from blastseg.runtime import DeviceName
from blastseg.training.cnn import CnnTraining
from blastseg.training.forest import ForestParams


class ClassifySource(StrictModel):
    """One dataset of labelled cells: where it is, which of its images, how its cells are found
    and labelled, and how its class names map onto the classifier's."""

    path: FilePath = Field(description="dataset folder: Zheng, ALL-IDB1 (.xyc), ALL-IDB2, class sub-folders, images/ + labels.csv")
    layout: LayoutName = "auto"
    mask_encoding: EncodingName | None = None
    labels_csv: FilePath | None = Field(default=None, description="image_id,class_label CSV overriding the layout's labels")
    image_list: FilePath | None = Field(default=None, description="text file of image names (stems) to use; the others are left out (a held-out part)")
    classes: dict[str, str | None] = Field(
        default_factory=dict,
        description="renames the dataset's classes (benign: lymphocyte); null leaves a class out (platelet: null); unnamed classes stay as they are",
    )
    segmentation: Literal["auto", "masks", "model"] = Field(
        default="auto", description="auto: the dataset's masks where present, else the segmenter; masks: masks only; model: always the segmenter"
    )
    segmenter: Literal["network", "magenta"] = Field(
        default="network",
        description="what finds the cells of images without masks: network (the checkpoint) or magenta (the stain's colour, segment.classical)",
    )
    checkpoint: FilePath = Field(default="default", description="segmentation checkpoint for images without masks")
    match_radius: float | None = Field(default=None, gt=0, description=".xyc matching radius in pixels (default: each cell's equivalent radius)")
    label_cells: Literal["centre", "every"] = Field(
        default="centre",
        description=(
            "centre: an image's label goes to the cell nearest its centre (single-cell crops); every: every cell found inherits it (fields"
            " labelled by the patient's diagnosis, such as all_blasts: true of most cells, not all), and cv.json scores the images too"
        ),
    )
    max_cells_per_image: int | None = Field(
        default=None,
        ge=1,
        description="label_cells every: keep at most this many cells of each image, drawn at random (seeded), so that crowded fields do not outweigh the rest; null: all",
    )
    instances: InstanceRules = Field(default_factory=InstanceRules)


class ClassifyData(ClassifySource):
    also: list[ClassifySource] = Field(default_factory=list, description="more datasets whose cells join the same classifier (and its cross-validation)")
    crop_scale: float | None = Field(
        default=1.25,
        gt=0,
        le=10,
        description="CNN crop window = this x the cell's longer side, resized to cnn.input_size (null: input_size pixels of the image)",
    )

    @property
    def sources(self) -> list[ClassifySource]:
        """This dataset and those of ``also``."""
        return [self, *self.also]


class ClassifyConfig(StrictModel):
    """A complete classifier recipe (``blastseg classify train --config``)."""

    kind: Literal["classifier"] = "classifier"
    data: ClassifyData
    model: Literal["random_forest", "cnn"] = "random_forest"
    features: list[str] = Field(default_factory=lambda: list(FEATURES), description="cells-table columns the random forest reads")
    cell_diameter: int | None = Field(
        default=None,
        ge=8,
        le=512,
        description=(
            "random forest: measure every cell resampled to this equivalent diameter in pixels (cells.resampled_features), so that"
            " sources of other magnifications and sharpness look alike; null: each cell as the image has it"
        ),
    )
    random_forest: ForestParams = Field(default_factory=ForestParams)
    cnn: CnnTraining = Field(default_factory=CnnTraining)
    folds: int = Field(default=5, ge=2, description="stratified k-fold cross-validation, images kept whole")
    seed: Seed = 0
    device: DeviceName = Field(default="auto", description="for the segmentation model and the CNN: auto (CUDA when present), cpu, cuda")

    @model_validator(mode="after")
    def _diameter_for_the_forest(self) -> ClassifyConfig:
        if self.cell_diameter is not None and self.model != "random_forest":
            raise ValueError("cell_diameter sets how a random forest measures cells; a CNN's crops are scaled by data.crop_scale")
        return self

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FEATURES]
        if unknown or not value:
            raise ValueError(f"unknown feature(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(FEATURES)}")
        return value
