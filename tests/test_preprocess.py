import cv2
import numpy as np
import pytest

from blastseg.errors import ConfigError, UnknownNameError
from blastseg.preprocess import STEPS, Pipeline, build_step


def uniform(rgb, shape=(9, 9)):
    return np.full((*shape, 3), rgb, np.uint8)


def test_hsv_saturation_doubles_and_clips():
    # (200,150,150): V=200, S=50/200 → 64/255; doubled S=128 gives min = 200*(1-128/255) ≈ 100
    out = build_step("hsv_saturation")(uniform((200, 150, 150)))
    assert np.abs(out[0, 0].astype(int) - (200, 100, 100)).max() <= 1
    clipped = build_step({"name": "hsv_saturation", "factor": 10})(uniform((200, 150, 150)))
    assert clipped[0, 0].tolist() == [200, 0, 0]


def test_grayscale_uses_luminance_weights():
    assert build_step("grayscale")(uniform((255, 0, 0)))[0, 0].tolist() == [76, 76, 76]


def test_clahe_raises_contrast_of_a_flat_gradient():
    ramp = np.tile(np.linspace(100, 130, 64).astype(np.uint8)[None, :, None], (64, 1, 3))
    out = build_step({"name": "clahe", "clip_limit": 4.0, "tile_grid": 4})(ramp)
    assert out.std() > 1.5 * ramp.std()


def test_gaussian_impulse_response_matches_kernel():
    image = np.zeros((11, 11, 3), np.uint8)
    image[5, 5] = 255
    out = build_step({"name": "gaussian", "kernel": 5})(image)
    kernel = cv2.getGaussianKernel(5, 0)[:, 0]  # sigma = 0.3*((5-1)/2 - 1) + 0.8 = 1.1
    assert out[5, 5, 0] == round(255 * kernel[2] ** 2)
    assert out[5, 8, 0] == 0  # outside the 5x5 window
    with pytest.raises(ConfigError, match="step 'gaussian': kernel: must be a positive odd integer, got 4"):
        build_step({"name": "gaussian", "kernel": 4})


def test_median_removes_salt():
    image = uniform((100, 100, 100))
    image[4, 4] = 255
    assert np.all(build_step("median")(image) == 100)


def test_colour_spaces():
    assert build_step("lab")(uniform((255, 255, 255)))[0, 0].tolist() == [255, 128, 128]
    assert build_step("hsv")(uniform((255, 0, 0)))[0, 0].tolist() == [0, 255, 255]
    assert build_step("hsv")(uniform((0, 0, 255)))[0, 0, 0] == round(240 / 360 * 256)


def test_resize_and_normalize():
    out = build_step({"name": "resize", "width": 4, "height": 3})(uniform((10, 20, 30), (9, 12)))
    assert out.shape == (3, 4, 3) and out[1, 1].tolist() == [10, 20, 30]
    norm = build_step({"name": "normalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})
    assert norm(uniform((255, 0, 128)))[0, 0].tolist() == pytest.approx([2.0, -2.0, 0.00784], abs=1e-4)


def test_every_step_is_registered_and_tested_here():
    assert sorted(STEPS) == ["clahe", "gaussian", "grayscale", "hsv", "hsv_saturation", "lab", "median", "normalize", "reinhard", "resize"]


def test_reinhard_brings_any_stain_to_the_target_statistics():
    import cv2

    step = build_step({"name": "reinhard", "mean": [70, 10, -5], "std": [15, 8, 6]})
    rng = np.random.default_rng(0)
    for tint in ((200, 120, 160), (150, 160, 220)):  # a pink and a blue smear of the same pattern
        pattern = rng.normal(0, 25, (64, 64, 1))
        image = np.clip(np.array(tint) + pattern, 0, 255).astype(np.uint8)
        lab = cv2.cvtColor(step(image).astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)
        assert lab.mean(axis=0) == pytest.approx([70, 10, -5], abs=1.5)
        assert lab.std(axis=0) == pytest.approx([15, 8, 6], abs=1.5)


def test_pipeline_chains_and_round_trips_through_yaml():
    pipeline = Pipeline.from_config(["hsv_saturation", {"name": "median", "kernel": 3}, {"name": "resize", "width": 5, "height": 5}])
    again = Pipeline.from_yaml(pipeline.to_yaml())
    assert again == pipeline
    image = np.random.default_rng(0).integers(0, 255, (20, 20, 3), np.uint8)
    expected = build_step({"name": "resize", "width": 5, "height": 5})(build_step({"name": "median", "kernel": 3})(build_step("hsv_saturation")(image)))
    assert np.array_equal(again(image), expected)


def test_pipeline_errors_name_the_valid_choices():
    with pytest.raises(UnknownNameError, match="unknown preprocessing step 'sharpen'; valid: clahe, gaussian"):
        Pipeline.from_config(["sharpen"])
    with pytest.raises(ConfigError, match="step 'gaussian': unknown key 'size'; valid keys: kernel, sigma"):
        Pipeline.from_config([{"name": "gaussian", "size": 3}])
