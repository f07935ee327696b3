"""Cell instances and the cells table, on synthetic shapes with hand-worked answers."""

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from blastseg.cells import COLUMNS, cell_crops, cell_rows, crop_window, glcm_features
from blastseg.postprocess import InstanceRules, cell_instances, euclidean_distance, filter_areas, nucleus_instances, split_by_depth, split_by_size
from tests.reference import split_by_depth_whole_field
from tests.synthetic import disc


def test_two_touching_discs_split_into_two_cells_each_with_its_nucleus():
    shape = (80, 120)
    labels = np.zeros(shape, np.uint8)
    for centre in ((40, 40), (40, 78)):  # radius 22, centres 38 apart: they overlap
        labels[disc(shape, centre, 22)] = 1
    for centre in ((40, 40), (40, 78)):
        labels[disc(shape, centre, 8)] = 2
    cells = cell_instances(labels)
    assert cells.max() == 2
    assert cells[40, 40] != cells[40, 78] and cells[40, 40] > 0 and cells[40, 78] > 0
    nuclei = nucleus_instances(labels, cells)
    assert set(np.unique(nuclei[labels == 2])) == {1, 2}
    assert cell_instances(labels, InstanceRules(split=False)).max() == 1


def test_split_depth_is_scale_free_and_keeps_an_oval_whole():
    for scale in (1, 3):  # the same two overlapping discs, and three times larger
        shape = (80 * scale, 120 * scale)
        mask = disc(shape, (40 * scale, 40 * scale), 22 * scale) | disc(shape, (40 * scale, 78 * scale), 22 * scale)
        assert split_by_depth(mask).max() == 2
    # centres 26 apart, radius 22: the neck's half-width is 0.93 of the radius, one cell
    mask = disc((80, 120), (40, 47), 22) | disc((80, 120), (40, 73), 22)
    assert split_by_depth(mask).max() == 1
    yy, xx = np.mgrid[:80, :160]
    oval = ((xx - 80) / 60.0) ** 2 + ((yy - 40) / 30.0) ** 2 <= 1
    assert split_by_depth(oval).max() == 1


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 30, 31, 32])
def test_split_by_depth_box_by_box_equals_the_whole_field_formulation(seed):
    """Random overlapping discs and ellipses (touching pairs and chains, large clumps with many
    ridge tops, objects at the border, objects inside another's box) give the very labels of the
    whole-image reconstruction. Seed 30 holds pixels equally far from two markers, which a flood
    box by box would give the other cell."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((160, 220), np.uint8)
    for _ in range(14):
        centre = (int(rng.integers(0, 220)), int(rng.integers(0, 160)))
        if seed > 30:
            axes = (int(rng.integers(2, 50)), int(rng.integers(2, 30)))
            cv2.ellipse(mask, centre, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
        else:
            cv2.circle(mask, centre, int(rng.integers(3, 26)), 1, -1)
    for depth in (0.1, 0.15, 0.3, 0.5, 0.7):
        np.testing.assert_array_equal(split_by_depth(mask, depth), split_by_depth_whole_field(mask, depth))
    assert split_by_depth(np.zeros_like(mask)).max() == 0
    full = np.ones((9, 12), bool)  # no background pixel at all
    np.testing.assert_array_equal(split_by_depth(full), split_by_depth_whole_field(full))


def test_euclidean_distance_is_scipys_exact_transform():
    rng = np.random.default_rng(5)
    mask = rng.random((120, 150)) < 0.97  # many holes, objects at the border
    mask[20:100, 30:130] = True  # and a large object
    np.testing.assert_array_equal(euclidean_distance(mask), ndi.distance_transform_edt(mask))


def pressed_pair(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    """Two discs pressed together: centres 1.2 radii apart, so the neck is 0.8 of the radius
    wide and no split depth separates them, as in a dense smear."""
    y, x = centre
    return disc(shape, (y, x - int(0.6 * radius)), radius) | disc(shape, (y, x + int(0.6 * radius)), radius)


def test_cells_pressed_together_are_cut_by_size_and_a_large_round_cell_is_kept_whole():
    shape = (60, 260)
    labels = np.zeros(shape, np.uint8)
    for x in (15, 45, 75):  # three single cells of radius 10 give the typical area
        labels[disc(shape, (20, x), 10)] = 1
    labels[pressed_pair(shape, (20, 120), 10)] = 1
    labels[disc(shape, (25, 200), 22)] = 1  # one large round cell: 4.8 typical areas, convex
    rules = InstanceRules(open_size=1, close_size=1, min_nucleus_fraction=0)
    assert cell_instances(labels, rules.model_copy(update={"size_split": None})).max() == 5
    cells = cell_instances(labels, rules)
    assert cells.max() == 6
    assert cells[20, 120 - 9] != cells[20, 120 + 9]  # the pair's two halves
    assert len(np.unique(cells[disc(shape, (25, 200), 20)])) == 1


def test_an_object_is_cut_into_no_more_cells_than_the_nuclei_it_holds():
    shape = (60, 200)
    labels = np.zeros(shape, np.uint8)
    for x in (15, 45, 75):
        labels[disc(shape, (20, x), 10)] = 1
        labels[disc(shape, (20, x), 4)] = 2
    labels[pressed_pair(shape, (20, 140), 10)] = 1  # one cell whose outline leaks: a single nucleus
    labels[disc(shape, (20, 134), 4)] = 2
    rules = InstanceRules(open_size=1, close_size=1)
    assert cell_instances(labels, rules).max() == 4
    labels[disc(shape, (20, 146), 4)] = 2  # two nuclei: two cells pressed together
    cells = cell_instances(labels, rules)
    assert cells.max() == 5 and cells[20, 134] != cells[20, 146]


def test_size_split_needs_three_cells_to_know_the_typical_one():
    shape = (40, 80)
    pair = pressed_pair(shape, (20, 25), 10)
    alone = filter_areas(pair.astype(np.int32), 1)
    assert split_by_size(alone).max() == 1
    with_one_more = alone.copy()
    with_one_more[disc(shape, (20, 65), 10)] = 2
    assert split_by_size(with_one_more).max() == 2  # typical is the 35th percentile: between the two
    three = np.pad(alone, ((0, 0), (0, 40)))
    three[disc(three.shape, (20, 65), 10)] = 2
    three[disc(three.shape, (20, 95), 10)] = 3
    assert split_by_size(three).max() == 4  # the pair has 1.7 single cells' area


def test_opening_breaks_a_thin_bridge_and_areas_filter_specks_and_clumps():
    labels = np.zeros((60, 100), np.uint8)
    labels[disc((60, 100), (30, 25), 15)] = 1
    labels[disc((60, 100), (30, 75), 15)] = 1
    labels[29:31, 25:75] = 1  # a 2-pixel bridge
    labels[5:8, 90:93] = 1  # a 9-pixel speck
    cells = cell_instances(labels, InstanceRules(split=False, min_area=50))
    assert cells.max() == 2
    assert cell_instances(labels, InstanceRules(split=False, min_area=50, max_area=500)).max() == 0
    np.testing.assert_array_equal(filter_areas(np.array([[1, 1, 2, 3, 3, 3]]), 2, 2), [[1, 1, 0, 0, 0, 0]])


def test_the_rules_pixel_sizes_follow_the_image_magnification():
    rules = InstanceRules()  # pixel sizes for red cells 86 pixels across (BCCD)
    half = rules.at_scale(43)
    assert (half.open_size, half.close_size, half.min_area, half.red_cell_px) == (3, 3, 25, 43)  # 2.5 rounds up; areas by the square
    assert rules.at_scale(None) is rules and InstanceRules(red_cell_px=None).at_scale(43) == InstanceRules(red_cell_px=None)
    labels = np.zeros((40, 40), np.uint8)
    labels[disc(labels.shape, (20, 20), 5)] = 1  # 81 pixels: a speck at BCCD's magnification, a lymphocyte at a fifth of it
    labels[disc(labels.shape, (20, 20), 3)] = 2
    assert cell_instances(labels).max() == 0 and cell_instances(labels, red_cell_px=86).max() == 0
    assert cell_instances(labels, red_cell_px=17).max() == 1


def test_cells_without_enough_nucleus_are_dropped():
    labels = np.zeros((40, 80), np.uint8)
    labels[disc((40, 80), (20, 20), 12)] = 1
    labels[disc((40, 80), (20, 20), 5)] = 2  # 81 nucleus pixels
    labels[disc((40, 80), (20, 60), 12)] = 1  # no nucleus: a red cell taken for cytoplasm
    cells = cell_instances(labels, InstanceRules(min_nucleus_area=50))
    assert cells.max() == 1 and cells[20, 20] == 1 and cells[20, 60] == 0
    assert cell_instances(labels, InstanceRules(min_nucleus_area=100)).max() == 0


def test_a_nucleus_small_beside_the_largest_in_the_image_is_dropped():
    labels = np.zeros((40, 80), np.uint8)
    labels[disc((40, 80), (20, 20), 12)] = 1
    labels[disc((40, 80), (20, 20), 10)] = 2  # 317 pixels
    labels[disc((40, 80), (20, 60), 12)] = 1
    labels[disc((40, 80), (20, 60), 3)] = 2  # 29 pixels: under 0.2 of 317
    assert cell_instances(labels).max() == 1
    assert cell_instances(labels, InstanceRules(min_nucleus_fraction=0.05)).max() == 2


def test_features_of_a_disc_with_a_nucleus():
    shape = (101, 101)
    labels = np.zeros(shape, np.uint8)
    labels[disc(shape, (50, 50), 30)] = 1
    labels[disc(shape, (50, 50), 15)] = 2
    image = np.zeros((*shape, 3), np.uint8)
    image[labels == 1] = (200, 100, 50)
    image[labels == 2] = (100, 50, 150)
    [row] = cell_rows("disc.png", image, labels, (labels > 0).astype(np.int32))
    assert list(row) == list(COLUMNS)
    assert (row["x"], row["y"]) == (50.0, 50.0)
    assert row["area"] == pytest.approx(np.pi * 30**2, rel=0.01)
    assert row["circularity"] == pytest.approx(1.0, abs=0.06)
    assert row["solidity"] > 0.97 and row["eccentricity"] < 0.05
    assert row["nc_ratio"] == pytest.approx(0.25, abs=0.01)  # (15 / 30)^2
    share = row["nucleus_area"] / row["area"]
    assert row["r"] == pytest.approx(200 * (1 - share) + 100 * share)
    assert row["touches_border"] is False


def test_glcm_of_stripes_matches_hand_worked_contrast():
    stripes = np.zeros((16, 16), np.uint8)
    stripes[:, 1::2] = 255  # quantised to levels 1 and 31
    features = glcm_features(stripes, np.ones_like(stripes, bool))
    # neighbours differ by 30 levels across (0 degrees) and diagonally, never down (90 degrees)
    assert features["glcm_contrast"] == pytest.approx(3 * 30**2 / 4)
    assert features["glcm_dissimilarity"] == pytest.approx(3 * 30 / 4)
    outside = glcm_features(stripes, np.zeros_like(stripes, bool))
    assert outside["glcm_contrast"] == 0.0


def test_border_crops_are_shifted_inward_never_padded():
    image = np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)
    instances = np.zeros((100, 120), np.int32)
    instances[0:10, 110:120] = 1  # a cell in the top-right corner
    instances[45:55, 55:65] = 2  # one in the middle
    assert crop_window((4.5, 114.5), 40, (100, 120)) == (0, 80, 40, 120)
    crops = cell_crops(image, instances, 40)
    np.testing.assert_array_equal(crops[1], image[0:40, 80:120])
    np.testing.assert_array_equal(crops[2], image[30:70, 40:80])
    small = cell_crops(image[:30], instances[:30], 40)  # image shorter than the crop
    assert small[1].shape == (40, 40, 3)


def test_scaled_crops_fit_the_cell_whatever_its_size():
    for scale in (1, 4):  # the same field at two magnifications gives the same crops
        shape = (100 * scale, 120 * scale)
        instances = np.zeros(shape, np.int32)
        instances[disc(shape, (50 * scale, 60 * scale), 16 * scale)] = 1
        instances[disc(shape, (8 * scale, 110 * scale), 8 * scale)] = 2  # at the top-right border
        image = np.where(instances[..., None] > 0, 200, 30).astype(np.uint8).repeat(3, axis=2)
        crops = cell_crops(image, instances, 32, scale=1.25)
        assert crops[1].shape == (32, 32, 3)
        # a window 1.25 x the cell's diameter: cell in the middle, background in the corners
        assert crops[1][16, 16, 0] == 200 and crops[1][0, 0, 0] == 30 and crops[1][31, 31, 0] == 30
        # the border cell's window is shifted inward (not padded): the cell reaches the crop's top
        assert crops[2].shape == (32, 32, 3) and crops[2][3, 16, 0] == 200 and crops[2][31, 16, 0] == 30
