"""Networks trained at one red-cell size see every image rescaled to it, and answer in its pixels."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from blastseg.batch import segment_files
from blastseg.labels import target_mask
from blastseg.metrics import dice
from blastseg.scale import Scale
from blastseg.segment.checkpoint import ModelCard
from blastseg.segment.deep import WHITE_TO_RED, DeepSegmenter
from blastseg.segment.networks import ModelSpec
from blastseg.training.augment import AugmentConfig, build_augmentation
from tests.synthetic import synthetic_cell, synthetic_smear


def dark_pixel_network() -> torch.nn.Module:
    """A 1x1 convolution that calls darker-than-background pixels cell and dark violet ones nucleus:
    its answer does not depend on the scale, so a rescaled pass must give the same masks back."""
    conv = torch.nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.fill_(-10 / 3)
        conv.bias.copy_(torch.tensor([15.0, 3.0]))  # ImageNet-normalised mean: background 1.9, cytoplasm 1.1, nucleus -0.6
    return conv


def segmenter(red_cell_px: float | None) -> DeepSegmenter:
    card = ModelCard(model=ModelSpec(), output="cell+nucleus", red_cell_px=red_cell_px)
    return DeepSegmenter.from_model(dark_pixel_network(), card, "cpu")


def test_a_given_scale_sets_the_factor_and_masks_come_back_in_the_image_pixels():
    image, labels = synthetic_cell((120, 150), (60, 70), 40, 20)
    result = segmenter(40).segment(image, Scale(80.0, "given: --cell-diameter"))
    assert result.info["rescale"] == {"factor": 0.5, "source": "given: --cell-diameter"}
    assert result.labels.shape == labels.shape and result.info["probabilities"].shape == (2, 120, 150)
    for target in ("cell", "nucleus"):
        assert dice(target_mask(result.labels, target), target_mask(labels, target)) > 0.97


def test_a_network_without_a_training_scale_never_rescales():
    image, _ = synthetic_cell()
    result = segmenter(None).segment(image, Scale(80.0, "given"))
    assert "rescale" not in result.info


def test_without_red_cells_the_white_cell_sets_the_factor():
    image, labels = synthetic_cell((150, 150), (75, 75), 30, 15)
    result = segmenter(40).segment(image)
    diameter = 2 * np.sqrt((labels > 0).sum() / np.pi)
    assert result.info["scale"].source == "unknown"
    assert result.info["rescale"]["source"] == "white cell"
    assert result.info["rescale"]["factor"] == pytest.approx(WHITE_TO_RED * 40 / diameter, rel=0.03)
    assert dice(target_mask(result.labels, "cell"), target_mask(labels, "cell")) > 0.97


def test_red_cells_set_the_factor_and_batches_match_single_images():
    smear = synthetic_smear((300, 400), 30, seed=4)
    crop, _ = synthetic_cell((96, 96))
    network = segmenter(60)
    together = network.segment_many([smear, crop, smear])
    for image, answer in zip([smear, crop, smear], together):
        alone = network.segment(image)
        np.testing.assert_array_equal(answer.labels, alone.labels)
        assert answer.info["rescale"] == alone.info["rescale"]
    assert together[0].info["rescale"]["source"] == "red cells"
    assert together[0].info["rescale"]["factor"] == pytest.approx(2.0, rel=0.1)


def test_the_batch_summary_records_scale_and_network_rescale(tmp_path):
    path = tmp_path / "smear.png"
    Image.fromarray(synthetic_smear((300, 400), 30, seed=4)).save(path)
    segment_files([path], segmenter(60), tmp_path / "out")
    image = json.loads((tmp_path / "out" / "summary.json").read_text())["per_image"]["smear.png"]
    assert image["scale"]["source"] == "red cells"
    assert image["network_rescale"]["source"] == "red cells"
    assert image["network_rescale"]["factor"] == pytest.approx(60 / image["scale"]["red_cell_px"], abs=1e-3)


def test_rescale_augmentation_shrinks_and_enlarges_the_cell():
    image, labels = synthetic_cell((100, 100), (50, 50), 30, 20)
    config = AugmentConfig(flip=False, rotate90=False, rotate=0, scale=0, brightness=0, hue=0, saturation=0, rescale=(0.25, 2.0))
    transform = build_augmentation(config, crop_size=256, seed=0)
    areas = []
    for _ in range(40):
        out = transform(image=image, mask=labels)
        assert out["image"].shape == (256, 256, 3) and set(np.unique(out["mask"])) <= {0, 1, 2}
        count, _, stats, _ = cv2.connectedComponentsWithStats((out["mask"] == 2).astype(np.uint8))
        areas.append(stats[1:, cv2.CC_STAT_AREA].max() / (np.pi * 20**2))  # nucleus area over the original's
    assert min(areas) < 0.25 and max(areas) > 2.0  # linear factors below 0.5 and above 1.4 were drawn
    assert 10 <= sum(0.97 < area < 1.03 for area in areas) <= 30  # about half the draws (probability 0.5) keep the size


def test_recipe_scale_fields_go_together_and_name_every_group():
    from blastseg.config import validate
    from blastseg.errors import ConfigError, DatasetError
    from blastseg.training.recipe import TrainConfig

    with pytest.raises(ConfigError, match="red_cell_px and scale_to go together"):
        validate(TrainConfig, {"data": {"path": "d", "scale_to": 40}}, "recipe")
    config = validate(TrainConfig, {"data": {"path": "d", "red_cell_px": {"Dataset1": 33.4}, "scale_to": 40}}, "recipe")
    assert config.data.rescale_factor("Dataset1") == pytest.approx(40 / 33.4)
    with pytest.raises(DatasetError, match="no size for the images of 'Dataset2'; it names Dataset1"):
        config.data.rescale_factor("Dataset2")
    assert validate(TrainConfig, {"data": {"path": "d"}}, "recipe").data.rescale_factor("any") == 1.0
