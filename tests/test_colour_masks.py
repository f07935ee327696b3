"""White cells found by colour in unannotated fields, and training on them."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from blastseg.datasets.colour_masks import white_cells_by_colour
from blastseg.metrics import dice
from blastseg.preprocess import Normalize, Pipeline
from blastseg.segment.heads import UNKNOWN
from blastseg.training.dataset import SegmentationDataset
from blastseg.training.recipe import TrainConfig
from blastseg.training.segmentation import annotated_samples, train_only_samples
from tests.test_train import recipe

BACKGROUND, RED_CELL, CYTOPLASM, NUCLEUS = (236, 236, 242), (188, 194, 216), (176, 128, 206), (104, 58, 158)
WHITE_CELLS = [((40, 45), 16, 10), ((70, 130), 14, 9)]  # (centre row, col), cell and nucleus radius
RED_CELLS = [(20, 100), (95, 40), (100, 90), (30, 150)]


def smear(shape=(120, 180), smudge=False, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A field of grey-blue red cells and violet white cells (optionally a magenta smudge): the
    image and its true label map."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = np.full((*shape, 3), BACKGROUND, dtype=float)
    truth = np.zeros(shape, np.uint8)
    for centre in RED_CELLS:
        image[(rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < 11**2] = RED_CELL
    for (row, col), cell, nucleus in WHITE_CELLS:
        distance = (rows - row) ** 2 + (cols - col) ** 2
        image[distance < cell**2], truth[distance < cell**2] = CYTOPLASM, 1
        image[distance < nucleus**2], truth[distance < nucleus**2] = NUCLEUS, 2
    if smudge:  # a thin, branching magenta streak: no cell is shaped like this
        image[100:104, 110:170] = CYTOPLASM
        image[80:118, 138:142] = CYTOPLASM
    noisy = image + np.random.default_rng(seed).normal(0, 3, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8), truth


def test_violet_cells_are_found_and_grey_blue_red_cells_are_not():
    image, truth = smear()
    labels = white_cells_by_colour(image)
    assert dice(labels > 0, truth > 0) > 0.95
    assert dice(labels == 2, truth == 2) > 0.9
    for row, col in RED_CELLS:
        assert labels[row, col] == 0


def test_fields_with_an_object_that_is_no_cell_or_no_colour_are_not_trusted():
    assert white_cells_by_colour(smear(smudge=True)[0]) is None
    assert white_cells_by_colour(np.full((60, 60, 3), 200, np.uint8)) is None


def test_only_fields_the_colour_rule_trusts_train(cells_dataset, tmp_path):
    fields = tmp_path / "fields"
    fields.mkdir()
    for name, smudge in (("clean", False), ("smudged", True), ("unlisted", False)):
        Image.fromarray(smear(smudge=smudge)[0]).save(fields / f"{name}.png")
    listing = Path(tmp_path / "list.txt")
    listing.write_text("# fields to train on\nclean\nsmudged\n")
    config = recipe(cells_dataset)
    config["data"]["train_also"] = [{"path": str(fields), "layout": "folder", "masks_from": "colour", "image_list": str(listing)}]
    config = TrainConfig.model_validate(config)
    samples = train_only_samples(config, {s.group for s in annotated_samples(config)})
    assert [s.name for s in samples] == ["clean"]
    image, labels = samples[0].load()
    assert dice(labels > 0, smear()[1] > 0) > 0.95
    assert samples[0].nucleus_known


def test_a_source_can_leave_its_rough_nuclei_unknown_to_the_loss(cells_dataset, tmp_path):
    fields = tmp_path / "fields"
    fields.mkdir()
    Image.fromarray(smear()[0]).save(fields / "clean.png")
    config = recipe(cells_dataset)
    config["data"]["train_also"] = [{"path": str(fields), "layout": "folder", "masks_from": "colour", "learn_nucleus": False}]
    (sample,) = train_only_samples(TrainConfig.model_validate(config), set())
    target = SegmentationDataset([sample], "cell+nucleus", Pipeline(), Normalize())[0][1].numpy()
    cells = target[0] == 1
    assert dice(cells, smear()[1] > 0) > 0.95  # the cells still train
    assert (target[1][cells] == UNKNOWN).all() and (target[1][~cells] == 0).all()
    config["output"] = "multiclass"
    with pytest.raises(ValidationError, match="learn_nucleus: false needs an output with a sigmoid nucleus channel"):
        TrainConfig.model_validate(config)
