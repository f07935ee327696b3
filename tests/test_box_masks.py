"""Cells grown in detection boxes, and training on sources whose images only train."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pydantic import ValidationError

from blastseg.annotations import Box
from blastseg.config import load_config
from blastseg.datasets.box_masks import cell_from_box, masks_from_boxes, nucleus_in
from blastseg.errors import DatasetError
from blastseg.labels import BACKGROUND, UNSURE
from blastseg.metrics import dice
from blastseg.preprocess import Normalize, Pipeline
from blastseg.segment.heads import UNKNOWN
from blastseg.training.dataset import SegmentationDataset
from blastseg.training.recipe import TrainConfig
from blastseg.training.segmentation import annotated_samples, train, train_only_samples, with_train_only
from tests.synthetic import BACKGROUND_RGB, disc, synthetic_field
from tests.test_train import recipe

CELLS = [((40, 50), 22, 11), ((80, 140), 16, 8)]  # (centre row, col), cell and nucleus radius


def box_around(centre: tuple[int, int], radius: int, label: str = "WBC", slack: int = 6) -> Box:
    row, col = centre
    return Box(label, col - radius - slack, row - radius - slack, col + radius + slack, row + radius + slack)


def test_cells_and_nuclei_grow_to_their_drawn_outlines():
    image, truth = synthetic_field((120, 180), CELLS, seed=1)
    labels = masks_from_boxes(image, [box_around(c, r) for c, r, _ in CELLS])
    assert dice(labels > 0, truth > 0) > 0.97
    assert dice(labels == 2, truth == 2) > 0.95


def test_only_white_cell_boxes_become_cells():
    image, truth = synthetic_field((120, 180), CELLS, seed=2)
    (centre, radius, _), other = CELLS
    labels = masks_from_boxes(image, [box_around(centre, radius), box_around(other[0], other[1], "Platelets")])
    first_cell = truth > 0
    first_cell[:, 100:] = False  # the second cell lies right of column 100
    assert dice(labels > 0, first_cell) > 0.97
    assert not labels[:, 100:].any()


def test_a_cell_never_leaves_its_box():
    image, _ = synthetic_field((120, 180), CELLS, seed=3)
    centre, radius, _ = CELLS[0]
    tight = Box("WBC", centre[1] - 10, centre[0] - 10, centre[1] + 10, centre[0] + 10)  # a box smaller than the cell
    cell = cell_from_box(image, tight)
    rows, cols = np.nonzero(cell)
    assert cell.sum() > 200
    assert rows.min() >= 30 and rows.max() < 50 and cols.min() >= 40 and cols.max() < 60


def test_degenerate_boxes_and_flat_cells_give_nothing():
    image, _ = synthetic_field((120, 180), CELLS, seed=4)
    assert not cell_from_box(image, Box("WBC", 10, 10, 12, 40)).any()  # 2 pixels wide
    assert not cell_from_box(image, Box("WBC", 500, 500, 600, 600)).any()  # outside the image
    flat = np.full((40, 40, 3), 200, np.uint8)
    assert not nucleus_in(flat, np.ones((40, 40), bool)).any()


def pale_neutrophil(shape=(120, 120), centre=(60, 60), radius=30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dark nucleus in a cytoplasm nearly as pale as the background, red cells above and below:
    (image, cell, nucleus)."""
    image = np.empty((*shape, 3), np.float64)
    image[:] = BACKGROUND_RGB
    for row in (10, 110):
        for col in (15, 60, 105):
            image[disc(shape, (row, col), 14)] = (215, 170, 175)
    cell, nucleus = disc(shape, centre, radius), disc(shape, centre, radius // 2)
    image[cell] = (225, 205, 205)
    image[nucleus] = (90, 50, 150)
    image += np.random.default_rng(0).normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), cell, nucleus


def test_a_pale_cytoplasm_is_left_unsure_instead_of_taught_as_background():
    image, cell, nucleus = pale_neutrophil()
    box = Box("WBC", 28, 28, 93, 93)
    grown = masks_from_boxes(image, [box])
    assert (grown[cell & ~nucleus] == BACKGROUND).mean() > 0.9  # GrabCut stops at the nucleus
    labels = masks_from_boxes(image, [box], edge_known=False)
    assert np.isin(labels[nucleus], (1, 2)).all()  # the stained core is surely cell
    assert not (labels[cell] == BACKGROUND).any()  # the cytoplasm is unknown, never background
    inside_box = np.zeros(cell.shape, bool)
    inside_box[28:93, 28:93] = True
    assert (labels[~inside_box] == BACKGROUND).all()
    assert (labels[28:34, 28:34] == BACKGROUND).all()  # the box's corners lie outside its ellipse
    assert (labels[cell & (labels != UNSURE)] > BACKGROUND).all() and (labels == UNSURE).sum() > 0


def test_a_box_cut_by_the_image_edge_leaves_its_whole_ellipse_unsure():
    image, _, _ = pale_neutrophil(centre=(10, 60))
    labels = masks_from_boxes(image, [Box("WBC", 28, -22, 93, 43)], edge_known=False)
    assert (labels[0, 40:80] != BACKGROUND).all()  # the ellipse of the whole box reaches the top row


def test_unsure_pixels_teach_neither_cell_nor_nucleus(cells_dataset, fields):
    (sample, *_) = train_only_samples(with_fields(cells_dataset, fields, learn_edge=False), set())
    labels = sample.load()[1]
    target = SegmentationDataset([sample], "cell+nucleus", Pipeline(), Normalize())[0][1].numpy()
    unsure = labels == UNSURE
    assert unsure.sum() > 100
    assert (target[:, unsure] == UNKNOWN).all() and not (target[:, ~unsure] == UNKNOWN).any()


def test_an_unsure_edge_needs_boxes_and_sigmoid_outputs(cells_dataset, fields):
    with pytest.raises(ValidationError, match="learn_edge: false .* needs masks_from: boxes, not colour"):
        with_fields(cells_dataset, fields, masks_from="colour", learn_edge=False)
    config = with_fields(cells_dataset, fields, learn_edge=False).model_dump(mode="json")
    config["output"] = "multiclass"
    with pytest.raises(ValidationError, match="learn_edge: false needs sigmoid outputs"):
        TrainConfig.model_validate(config)


def write_bccd(root: Path, fields: dict[str, list[tuple]], listed: list[str]) -> None:
    """A BCCD-layout folder: one field per name with WBC boxes around its cells (none when empty)."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for i, (name, cells) in enumerate(fields.items()):
        image, _ = synthetic_field((120, 180), cells or [((60, 90), 5, 2)], seed=10 + i)
        Image.fromarray(image).save(root / "JPEGImages" / f"{name}.png")
        objects = "".join(
            f"<object><name>{b.label}</name><bndbox><xmin>{b.xmin}</xmin><ymin>{b.ymin}</ymin><xmax>{b.xmax}</xmax><ymax>{b.ymax}</ymax></bndbox></object>"
            for b in (box_around(c, r) for c, r, _ in cells)
        )
        (root / "Annotations" / f"{name}.xml").write_text(f"<annotation>{objects}</annotation>")
    (root / "trainval.txt").write_text("\n".join(listed))


@pytest.fixture
def fields(tmp_path) -> Path:
    root = tmp_path / "fields"
    write_bccd(root, {"f1": CELLS, "f2": CELLS[:1], "f3": [], "f4": CELLS[1:]}, listed=["f1", "f2", "f3"])
    return root


def with_fields(cells_dataset: Path, fields: Path, **source) -> TrainConfig:
    config = recipe(cells_dataset)
    config["data"]["train_also"] = [{"path": str(fields), "masks_from": "boxes", **source}]
    return TrainConfig.model_validate(config)


def test_listed_fields_with_a_white_cell_box_train(cells_dataset, fields):
    config = with_fields(cells_dataset, fields, image_list=str(fields / "trainval.txt"))
    samples = train_only_samples(config, {s.group for s in annotated_samples(config)})
    # f3 has no white-cell box (a box may be missing), f4 is not listed
    assert [s.name for s in samples] == ["f1", "f2"]
    image, labels = samples[0].load()
    assert labels.shape == image.shape[:2] and set(np.unique(labels)) == {0, 1, 2}


def test_train_only_sources_are_refused_when_they_cannot_train(cells_dataset, fields, tmp_path):
    unlisted = tmp_path / "none.txt"
    unlisted.write_text("other\n")
    with pytest.raises(DatasetError, match="no listed image has a mask or a white-cell box"):
        train_only_samples(with_fields(cells_dataset, fields, image_list=str(unlisted)), set())
    with pytest.raises(DatasetError, match="no image has a mask; data.train_also"):
        train_only_samples(with_fields(cells_dataset, fields, masks_from=None), set())
    with pytest.raises(DatasetError, match="group 'fields' is also a group of data.path"):
        train_only_samples(with_fields(cells_dataset, fields), {"fields"})
    with pytest.raises(DatasetError, match="cannot read the image list"):
        train_only_samples(with_fields(cells_dataset, fields, image_list=str(tmp_path / "missing.txt")), set())


def test_train_only_images_join_the_training_part_once():
    split = {"train": ["a", "fields/f1"], "val": ["b"], "test": ["c"]}
    extra = [type("S", (), {"group": "fields", "name": n})() for n in ("f1", "f2")]
    assert with_train_only(split, extra) == {"train": ["a", "fields/f1", "fields/f2"], "val": ["b"], "test": ["c"]}


@pytest.mark.slow  # a short training run: about 5 s on 2 cores, kept out of the one-minute fast set
def test_a_run_trains_on_the_fields_and_validates_on_the_crops_only(cells_dataset, fields, tmp_path):
    recipe_file = tmp_path / "recipe.yaml"
    config = with_fields(cells_dataset, fields).model_dump(mode="json")
    recipe_file.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    train(load_config(recipe_file, TrainConfig), run)
    split = json.loads((run / "split.json").read_text())
    assert sorted(i for i in split["train"] if i.startswith("fields/")) == ["fields/f1", "fields/f2", "fields/f4"]
    assert not [i for part in ("val", "test") for i in split[part] if i.startswith("fields/")]
    card = json.loads((run / "best.json").read_text())
    assert card["trained_on"] == f"{cells_dataset} + {fields}"
    train(None, run, resume=True)  # the saved split finds the fields again
