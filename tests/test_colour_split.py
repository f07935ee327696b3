"""Cells a segmenter merged, cut where the stain shows the border between them."""

import cv2
import numpy as np
from skimage.measure import regionprops

from blastseg.datasets.colour_masks import magenta_mask
from blastseg.labels import CYTOPLASM
from blastseg.postprocess import InstanceRules, cell_instances, split_at_markers
from blastseg.segment.base import image_cells

BACKGROUND, VIOLET = (236, 236, 242), (150, 90, 190)
RULES = InstanceRules(red_cell_px=None)  # the pixel sizes as written


def disc(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    return cv2.circle(np.zeros(shape, np.uint8), centre, radius, 1, -1) > 0


def pressed_pair() -> tuple[np.ndarray, np.ndarray]:
    """Two violet cells pressed together, a pale line between them, and a segmenter's label map
    that merges them into one object with no neck (the gap between them filled)."""
    image = np.full((80, 110, 3), BACKGROUND, np.uint8)
    labels = np.zeros((80, 110), np.uint8)
    for centre in ((38, 40), (70, 40)):
        image[disc(labels.shape, centre, 15)] = VIOLET
        labels[disc(labels.shape, centre, 16)] = 1
    image[:, 54] = BACKGROUND
    labels[29:52, 38:71] = 1
    for centre in ((38, 40), (70, 40)):
        labels[disc(labels.shape, centre, 8)] = 2
    return image, labels


def test_a_merged_pair_is_cut_along_the_pale_line_between_the_stained_cells():
    image, labels = pressed_pair()
    merged = cell_instances(labels, RULES)
    assert merged.max() == 1 and regionprops(merged)[0].solidity < 0.92  # no neck, not convex
    cells = image_cells(image, labels, RULES)
    assert cells.max() == 2
    assert np.unique(cells[:, 30:54]).tolist() == [0, 1] and np.unique(cells[:, 56:80]).tolist() == [0, 2]
    assert image_cells(image, labels, RULES.model_copy(update={"colour_split": False})).max() == 1


def test_stain_that_runs_on_outside_the_cells_cuts_nothing():
    # red cells that take the stain: an L-shaped stained field around the white cell, which the
    # size split cuts into cell-sized pieces (three round stained cells elsewhere set the size)
    image = np.full((130, 230, 3), BACKGROUND, np.uint8)
    for centre in ((200, 30), (200, 95), (140, 105)):
        image[disc(image.shape[:2], centre, 20)] = VIOLET
    image[5:75, 5:125] = VIOLET
    image[5:125, 5:45] = VIOLET
    _, pair = pressed_pair()
    labels = np.zeros(image.shape[:2], np.uint8)
    labels[8:88, 10:120] = pair[:, :110][:80]
    merged = cell_instances(labels, RULES)
    stained = cell_instances(np.where(magenta_mask(image), CYTOPLASM, 0).astype(np.uint8), RULES)
    assert merged.max() == 1 and split_at_markers(merged, stained).max() >= 2  # the pieces would cut it
    assert image_cells(image, labels, RULES).max() == 1  # but their stained object lies mostly outside


def test_a_round_cell_stays_whole_whatever_the_stain_holds():
    image, _ = pressed_pair()
    labels = disc((80, 110), (54, 40), 34).astype(np.uint8)  # one convex cell over both
    assert image_cells(image, labels, RULES).max() == 1


def test_stained_red_cells_do_not_set_the_size_a_white_cell_is_cut_by():
    # one large kidney-shaped white cell, wholly stained, beside four small stained red cells: the
    # size split of the stained objects must not take the red cells as the typical cell (it would
    # cut the white cell into red-cell-sized wedges, each a seed)
    image = np.full((100, 200, 3), BACKGROUND, np.uint8)
    kidney = disc(image.shape[:2], (50, 50), 32) & ~disc(image.shape[:2], (50, 88), 26)
    image[kidney] = VIOLET
    for centre in ((120, 25), (160, 25), (120, 75), (160, 75)):
        image[disc(image.shape[:2], centre, 14)] = VIOLET
    labels = np.where(kidney, CYTOPLASM, 0).astype(np.uint8)
    assert regionprops(cell_instances(labels, RULES))[0].solidity < 0.92
    assert image_cells(image, labels, RULES).max() == 1
