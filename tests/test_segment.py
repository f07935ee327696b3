import numpy as np
import pytest

from blastseg.errors import BlastsegError, ConfigError, UnknownNameError
from blastseg.labels import target_mask
from blastseg.metrics import dice
from blastseg.segment import SEGMENTERS, create_segmenter
from blastseg.segment.recipe import SegmentConfig
from tests.synthetic import disc, synthetic_cell


def score(name, target, image, labels, **params):
    result = create_segmenter(name, target=target, **params).segment(image)
    assert result.labels.dtype == np.uint8 and result.labels.shape == labels.shape
    return dice(target_mask(result.labels, target), target_mask(labels, target))


@pytest.mark.parametrize("name", ["otsu", "adaptive", "hsv", "kmeans", "watershed"])
def test_every_segmenter_finds_the_nucleus(cell, name):
    image, labels = cell
    assert score(name, "nucleus", image, labels) > 0.95


@pytest.mark.parametrize("name", ["otsu", "hsv", "kmeans"])
def test_whole_cell_target(name):
    image, labels = synthetic_cell(nucleus_radius=8)
    assert score(name, "cell", image, labels) > 0.95


def test_thresholders_label_the_target_class(cell):
    image, _ = cell
    assert set(np.unique(create_segmenter("otsu", target="nucleus").segment(image).labels)) == {0, 2}
    cell_labels = create_segmenter("hsv", target="cell").segment(image).labels
    assert set(np.unique(cell_labels)) == {0, 1}


def test_kmeans_multiclass_recovers_both_regions(cell):
    image, labels = cell
    result = create_segmenter("kmeans", target="multiclass").segment(image)
    assert np.mean(result.labels == labels) > 0.98
    assert result.info["k"] == 3 and result.info["cell_rule"] == "non-background clusters"


def test_kmeans_cell_stops_at_a_touching_red_cell():
    image, labels = synthetic_cell(shape=(120, 120), centre=(60, 50))
    red = disc((120, 120), (60, 100), 22) & (labels == 0)  # a red cell touching the white cell and the border
    image[red] = (205, 120, 130)
    result = create_segmenter("kmeans", target="cell").segment(image)
    assert result.info["cell_rule"] == "stain direction (leak to border)"
    found = target_mask(result.labels, "cell")
    assert dice(found, labels > 0) > 0.95
    assert found[red].mean() < 0.05


def test_kmeans_sweep_with_ground_truth_reports_every_k(cell):
    image, labels = cell
    seg = create_segmenter("kmeans", target="nucleus", k_range=[2, 4])
    result = seg.sweep(image, labels == 2)
    assert [row["k"] for row in result.info["sweep"]] == [2, 3, 4]
    assert result.info["best"]["dice"] > 0.97
    assert result.info["best"]["score"] == max(row["score"] for row in result.info["sweep"])
    assert dice(result.labels == 2, labels == 2) == pytest.approx(result.info["best"]["dice"])


def test_kmeans_is_seeded(cell):
    image, _ = cell
    first = create_segmenter("kmeans", target="multiclass", seed=3).segment(image).labels
    assert np.array_equal(first, create_segmenter("kmeans", target="multiclass", seed=3).segment(image).labels)


def test_watershed_splits_two_touching_discs():
    shape = (60, 90)
    image = np.full((*shape, 3), 230, np.uint8)
    both = disc(shape, (30, 30), 16) | disc(shape, (30, 58), 16)
    image[both] = (80, 40, 140)
    result = create_segmenter("watershed", target="nucleus").segment(image)
    assert result.instances.max() == 2
    left, right = result.instances[30, 30], result.instances[30, 58]
    assert {left, right} == {1, 2}
    assert set(np.unique(result.labels)) == {0, 2}


def test_registry_and_parameter_errors():
    assert sorted(SEGMENTERS) == ["adaptive", "hsv", "kmeans", "magenta", "otsu", "watershed"]
    with pytest.raises(UnknownNameError, match="unknown segmenter 'unet'; valid: adaptive, hsv, kmeans, magenta, otsu, watershed"):
        create_segmenter("unet")
    with pytest.raises(ConfigError, match="segmenter 'kmeans': unknown key 'clusters'; valid keys: target, k, k_range"):
        create_segmenter("kmeans", clusters=4)
    with pytest.raises(ConfigError, match="segmenter 'otsu': target: Input should be 'nucleus' or 'cell'"):
        create_segmenter("otsu", target="multiclass")
    with pytest.raises(ConfigError, match="block_size: must be an odd integer"):  # refused when built, before any image
        create_segmenter("adaptive", block_size=4)
    with pytest.raises(ConfigError, match="k_range: needs 2 <= lo <= hi"):
        create_segmenter("kmeans", k_range=[5, 3])
    with pytest.raises(ConfigError, match="segmenter 'watershed': segmenter 'otsu': unknown key 'k'"):
        create_segmenter("watershed", base="otsu", base_params={"k": 3})


def test_a_method_named_without_a_target_finds_its_own():
    assert SegmentConfig.from_options(method="magenta").target == "multiclass"  # the only target it has
    assert SegmentConfig.from_options(method="otsu").target == "nucleus"
    assert SegmentConfig.from_options(method="otsu", target="cell").target == "cell"
    with pytest.raises(BlastsegError, match="segmenter 'magenta': target: Input should be 'multiclass'"):
        SegmentConfig.from_options(method="magenta", target="cell")
