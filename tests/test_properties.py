"""Property-based tests: any image (0 to 2000 pixels a side, 1 to 4 channels, 8 or 16 bits,
constant or noise) and any value in any config field gives a result or a one-line
:class:`BlastsegError`, never another exception, within a time bound.

Examples are bounded so that CI stays within its budget; ``HYPOTHESIS_PROFILE=thorough`` runs more.
"""

import math
import os
import time

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from blastseg.batch import PredictOptions, segment_files
from blastseg.config import validate
from blastseg.errors import BlastsegError
from blastseg.io import read_image
from blastseg.postprocess import InstanceRules, cell_instances
from blastseg.segment.classical import SEGMENTERS, KMeansSegmenter, OtsuSegmenter
from blastseg.training.augment import AugmentConfig, build_augmentation
from blastseg.training.classifier_recipe import ClassifyConfig
from blastseg.training.cnn import CnnTraining
from blastseg.training.forest import ForestParams, fit_forest, forest_arrays
from blastseg.training.recipe import DataConfig, OptimConfig, TrainConfig

settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TIME_BOUND_S = 30


@st.composite
def image_arrays(draw):
    """An image array as a user's file may hold it."""
    height = draw(st.one_of(st.integers(0, 4), st.integers(0, 2000)))
    width = draw(st.one_of(st.integers(0, 4), st.integers(0, 2000)))
    channels = draw(st.sampled_from([1, 2, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    top = np.iinfo(dtype).max
    shape = (height, width) if channels == 1 else (height, width, channels)
    if draw(st.booleans()):
        return np.full(shape, draw(st.integers(0, top)), dtype)
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, top, shape, dtype=dtype, endpoint=True)


def save(array: np.ndarray, folder, name: str):
    """8-bit grey and RGB(A) as PNG, the rest (16-bit, two channels, empty) as TIFF."""
    png_ok = array.dtype == np.uint8 and array.size and (array.ndim == 2 or array.shape[2] in (3, 4))
    path = folder / f"{name}.{'png' if png_ok else 'tif'}"
    if png_ok:
        Image.fromarray(array).save(path)
    elif array.ndim == 2 or not array.size:
        tifffile.imwrite(path, array, photometric="minisblack")
    elif array.shape[2] == 2:
        tifffile.imwrite(path, array, photometric="minisblack", planarconfig="contig", extrasamples=["unassalpha"])
    else:
        tifffile.imwrite(path, array, photometric="rgb", planarconfig="contig")
    return path


@pytest.mark.slow  # up to 25 images of up to 2000 x 2000 pixels: 15 to 20 s on 2 cores
@pytest.mark.filterwarnings("ignore::UserWarning")  # tifffile on zero-size arrays
@given(array=image_arrays(), kmeans=st.booleans())
def test_any_image_gives_outputs_or_a_one_line_failure(tmp_path_factory, array, kmeans):
    folder = tmp_path_factory.mktemp("any")
    path = save(array, folder, "image")
    segmenter = KMeansSegmenter(target="cell") if kmeans else OtsuSegmenter(target="cell")
    started = time.perf_counter()
    result = segment_files([path], segmenter, folder / "out")
    assert time.perf_counter() - started < TIME_BOUND_S
    if result.failed:
        (failure,) = result.failed
        assert "\n" not in failure["error"] and "unexpected" not in failure["error"], failure
        assert 0 in array.shape[:2], failure  # only an image without pixels is refused
    else:
        image = read_image(path)
        assert image.shape == (*array.shape[:2], 3) and image.dtype == np.uint8
        mask = np.asarray(Image.open(folder / "out" / "image_mask.png"))
        assert mask.shape == array.shape[:2]
        assert result.summary["cells"] == result.summary["per_image"]["image.png" if path.suffix == ".png" else "image.tif"]["cells"]


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3),
)


def field_values(model):
    return st.dictionaries(st.sampled_from([*model.model_fields, "unknown_key"]), ANY_VALUE, max_size=4)


def valid_or_none(model, values, source):
    """``model`` built from ``values`` (every number in it finite), or ``None`` when refused,
    which must be one line naming ``source``."""
    try:
        built = validate(model, values, source)
    except BlastsegError as error:
        assert "\n" not in str(error) and str(error).startswith(f"{source}: "), error
        return None
    for value in built.model_dump().values():
        if isinstance(value, float):
            assert math.isfinite(value)
    return built


@given(values=field_values(InstanceRules))
def test_instance_rules_are_valid_or_refused_and_valid_ones_run(values):
    rules = valid_or_none(InstanceRules, values, "instances")
    if rules is None:
        return
    labels = np.zeros((64, 64), np.uint8)
    labels[10:40, 10:40], labels[20:30, 20:30] = 1, 2
    started = time.perf_counter()
    instances = cell_instances(labels, rules)
    assert instances.shape == labels.shape and time.perf_counter() - started < TIME_BOUND_S


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
@given(data=st.data())
def test_segmenter_parameters_are_valid_or_refused_and_valid_ones_run(name, data):
    values = data.draw(field_values(SEGMENTERS[name]).filter(lambda v: "target" not in v and "name" not in v))
    segmenter = valid_or_none(SEGMENTERS[name], values, f"segmenter {name!r}")
    if segmenter is None:
        return
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    started = time.perf_counter()
    assert segmenter.segment(image).labels.shape == (40, 50)
    assert time.perf_counter() - started < TIME_BOUND_S


@given(values=field_values(AugmentConfig))
def test_augmentation_settings_are_valid_or_refused_and_valid_ones_run(values):
    config = valid_or_none(AugmentConfig, values, "augment")
    if config is None:
        return
    image, labels = np.zeros((70, 80, 3), np.uint8), np.zeros((70, 80), np.uint8)
    assert build_augmentation(config, crop_size=64)(image=image, mask=labels)["image"].shape == (64, 64, 3)


@given(values=field_values(ForestParams))
def test_forest_settings_are_valid_or_refused_and_valid_ones_fit(values):
    params = valid_or_none(ForestParams, values, "random_forest")
    if params is None:
        return
    params = params.model_copy(update={"n_estimators": min(params.n_estimators, 5)})  # the count is bounded by time, not checked here
    features, labels = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    assert forest_arrays(fit_forest(features, labels, params), 2).predict_proba(features).shape == (20, 2)


@pytest.mark.parametrize("model", [OptimConfig, DataConfig, PredictOptions, CnnTraining, ClassifyConfig, TrainConfig])
@given(data=st.data())
def test_recipe_and_option_fields_are_valid_or_refused(model, data):
    options = valid_or_none(model, data.draw(field_values(model)), "recipe")
    if options is None:
        return
    for name in ("batch_size", "tile_size", "epochs", "crop_size", "input_size"):
        if hasattr(options, name):
            assert 1 <= getattr(options, name) <= 100_000
    if hasattr(options, "seed"):
        assert 0 <= options.seed < 2**32
