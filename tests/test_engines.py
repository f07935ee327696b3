"""The engines that run a network (PyTorch, ONNX Runtime), ONNX twins, and the network run only
where cells are."""

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from blastseg.artifacts import bundled, example_image_path
from blastseg.errors import ConfigError, ModelFileError, OutputExistsError
from blastseg.io import read_image
from blastseg.segment.checkpoint import ModelCard, save_checkpoint
from blastseg.segment.deep import DeepSegmenter
from blastseg.segment.engines import OnnxEngine, TorchEngine, load_engine, onnx_twin, twin_engine, twin_for, weights_digest
from blastseg.segment.export import constant_upsampling, export_int8, export_onnx
from blastseg.segment.inference import CONTEXT, predict_probabilities, predict_where_cells_are
from blastseg.segment.networks import ModelSpec, create_model
from tests.synthetic import synthetic_field

SMALL = ModelSpec(depth=3, decoder_channels=[32, 16, 8], classes=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small random U-Net saved as a checkpoint, with its ONNX twin."""
    torch.manual_seed(0)
    stem = tmp_path_factory.mktemp("model") / "small"
    save_checkpoint(stem, create_model(SMALL), ModelCard(model=SMALL, output="cell+nucleus"))
    export_onnx(stem)
    return stem


def test_the_onnx_twin_gives_the_torch_probabilities(checkpoint):
    image = synthetic_field((200, 300), [((60, 80), 30, 14), ((140, 220), 35, 16)])[0]
    torch_run = DeepSegmenter.load(checkpoint, engine="torch", device="cpu", regions=False)
    onnx_run = DeepSegmenter.load(checkpoint, engine="onnx", device="cpu", regions=False)
    assert (torch_run.engine.name, onnx_run.engine.name) == ("torch", "onnx")
    difference = np.abs(torch_run.probabilities(image) - onnx_run.probabilities(image)).max()
    assert difference < 1e-4
    batch = np.random.default_rng(0).normal(size=(5, 3, 64, 96)).astype(np.float32)  # a batch ONNX Runtime runs in parts
    np.testing.assert_allclose(onnx_run.engine(batch), torch_run.engine(batch), atol=1e-4)


def test_a_segmenter_sent_to_a_worker_process_runs_the_same_twin(checkpoint):
    segmenter = DeepSegmenter.load(checkpoint, engine="onnx", device="cpu")
    copy = pickle.loads(pickle.dumps(segmenter))  # what a batch's --workers get
    assert copy.engine.path == onnx_twin(checkpoint.with_suffix(".safetensors")) and copy.engine.session is not segmenter.engine.session
    batch = np.random.default_rng(1).normal(size=(2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(copy.engine(batch), segmenter.engine(batch))


def test_auto_runs_the_twin_on_the_cpu_and_torch_without_one(checkpoint, tmp_path):
    assert isinstance(load_engine(checkpoint, "auto", "cpu")[0], OnnxEngine)
    assert isinstance(load_engine(checkpoint, "torch", "cpu")[0], TorchEngine)
    lone = tmp_path / "lone"
    save_checkpoint(lone, create_model(SMALL), ModelCard(model=SMALL, output="cell+nucleus"))
    assert isinstance(load_engine(lone, "auto", "cpu")[0], TorchEngine)
    with pytest.raises(ModelFileError, match="no onnx twin.*blastseg export"):
        load_engine(lone, "onnx", "cpu")
    with pytest.raises(ModelFileError, match=r"no int8 twin \(lone.int8.onnx\).*--int8 --calibration IMAGES"):
        load_engine(lone, "int8", "cpu")
    with pytest.raises(ConfigError, match="runs on the CPU"):
        load_engine(checkpoint, "onnx", "cuda")
    with pytest.raises(ConfigError, match="valid: auto, torch, onnx"):
        load_engine(checkpoint, "tensorrt", "cpu")


def test_a_twin_made_from_other_weights_or_broken_is_refused(checkpoint, tmp_path):
    stem = tmp_path / "model"
    save_checkpoint(stem, create_model(SMALL), ModelCard(model=SMALL, output="cell+nucleus"))
    onnx_twin(stem.with_suffix(".safetensors")).write_bytes(onnx_twin(checkpoint.with_suffix(".safetensors")).read_bytes())
    with pytest.raises(ModelFileError, match="made from other weights.*--overwrite"):
        load_engine(stem, "auto", "cpu")
    onnx_twin(stem.with_suffix(".safetensors")).write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        load_engine(stem, "onnx", "cpu")


def test_export_never_overwrites_unasked(checkpoint):
    twin = onnx_twin(checkpoint.with_suffix(".safetensors"))
    before = twin.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_onnx(checkpoint)
    assert twin.read_bytes() == before
    assert export_onnx(checkpoint, overwrite=True) == twin


def test_export_from_the_command_line(checkpoint, tmp_path):
    from tests.test_cli import invoke

    result = invoke("export", "--checkpoint", checkpoint, "--out", tmp_path / "copy.onnx")
    assert result.returncode == 0 and OnnxEngine(tmp_path / "copy.onnx").made_from == weights_digest(checkpoint.with_suffix(".safetensors"))
    result = invoke("export", "--checkpoint", checkpoint, "--format", "tflite")
    assert result.returncode == 2 and "unknown export format 'tflite'; valid: onnx" in result.stderr


def upsampling_model(factor: int):
    """An ONNX model that resizes its input (nearest) to ``factor`` times its own height and
    width, computed from its shape at every run, as smp's decoder sizes its upsampling."""
    from onnx import TensorProto, helper, numpy_helper

    constants = {"starts": [0], "mid": [2], "ends": [4], "factor": [factor]}
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "starts", "mid"], ["batch_channels"]),
        helper.make_node("Slice", ["shape", "mid", "ends"], ["sides"]),
        helper.make_node("Mul", ["sides", "factor"], ["bigger"]),
        helper.make_node("Concat", ["batch_channels", "bigger"], ["sizes"], axis=0),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    ]
    graph = helper.make_graph(
        nodes, "upsample", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "H", "W"])],
        [numpy_helper.from_array(np.array(value, np.int64), name) for name, value in constants.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_doubling_computed_from_shapes_becomes_a_constant_scale_and_nothing_else_is_rewritten():
    doubling, tripling = upsampling_model(2), upsampling_model(3)
    rewritten = constant_upsampling(doubling)
    assert [node.op_type for node in rewritten.graph.node] == ["Resize"] and [node.op_type for node in doubling.graph.node][0] == "Shape"
    assert constant_upsampling(tripling) is tripling  # a scale of 2 would change its output: left alone


def test_the_twins_upsample_by_a_constant_scale(checkpoint):
    import onnx

    for twin in (onnx_twin(checkpoint.with_suffix(".safetensors")), bundled("models", "default.onnx"), bundled("models", "default.int8.onnx")):
        operators = {node.op_type for node in onnx.load(twin).graph.node}
        assert "Resize" in operators and "Shape" not in operators, twin


def test_the_bundled_twin_was_made_from_the_bundled_weights():
    weights = bundled("models", "default.safetensors")
    assert twin_engine(weights).made_from == weights_digest(weights) == twin_engine(weights, "int8").made_from


def test_an_int8_twin_is_calibrated_written_beside_the_weights_and_preferred_on_the_cpu(checkpoint, tmp_path):
    stem = tmp_path / "small"
    for suffix in (".safetensors", ".json", ".onnx"):
        stem.with_suffix(suffix).write_bytes(checkpoint.with_suffix(suffix).read_bytes())
    fields = [synthetic_field((200, 300), [((60, 80), 30, 14), ((140, 220), 35, 16)], seed=i)[0] for i in range(3)]
    with pytest.raises(ConfigError, match="an int8 twin needs calibration images"):
        export_int8(stem, [])
    twin = export_int8(stem, fields)
    assert twin == tmp_path / "small.int8.onnx"
    engine, _ = load_engine(stem, "auto", "cpu")
    assert (engine.name, engine.path, engine.made_from) == ("int8", twin, weights_digest(stem.with_suffix(".safetensors")))
    assert load_engine(stem, "onnx", "cpu")[0].name == "onnx" and twin_for(stem.with_suffix(".safetensors"), "auto", "cuda") is None
    fp32 = DeepSegmenter.load(stem, engine="onnx", device="cpu").probabilities(fields[0])
    int8 = DeepSegmenter.load(stem, engine="int8", device="cpu").probabilities(fields[0])
    assert np.abs(fp32 - int8).mean() < 0.01  # a random network, quantised on three fields
    with pytest.raises(OutputExistsError, match="small.int8.onnx exists"):
        export_int8(stem, fields)


def test_the_bundled_int8_twin_finds_what_the_fp32_twin_finds():
    image = read_image(example_image_path())
    fp32, int8 = (DeepSegmenter.load("default", engine=name, device="cpu").segment(image).labels for name in ("onnx", "int8"))
    assert (fp32 == int8).mean() > 0.995
    for inside in (lambda labels: labels > 0, lambda labels: labels == 2):  # the cell, its nucleus: IoU 0.972 and 0.981 when written
        both, either = (inside(fp32) & inside(int8)).sum(), (inside(fp32) | inside(int8)).sum()
        assert both / either > 0.96


def test_int8_export_from_the_command_line(checkpoint, tmp_path):
    from tests.test_cli import invoke

    (tmp_path / "calibration").mkdir()
    for i in range(2):
        Image.fromarray(synthetic_field((128, 128), [((64, 64), 30, 14)], seed=i)[0]).save(tmp_path / "calibration" / f"{i}.png")
    result = invoke("export", "--checkpoint", checkpoint, "--int8", "--calibration", tmp_path / "calibration", "--out", tmp_path / "q.onnx")
    assert result.returncode == 0, result.stderr
    assert "(calibrated on 2 images)" in result.stderr and OnnxEngine(tmp_path / "q.onnx").name == "int8"
    result = invoke("export", "--checkpoint", checkpoint, "--calibration", tmp_path / "calibration")
    assert result.returncode == 2 and "--calibration is for --int8" in result.stderr


def dark_pixels(batch: np.ndarray) -> np.ndarray:
    """An "engine" whose answer depends on each pixel alone: darker than the background is cell
    (grey level: background 0.88, cytoplasm 0.75, nucleus 0.38)."""
    logit = -20 * (batch.mean(axis=1, keepdims=True) - 0.8)
    return np.concatenate([logit, logit], axis=1)


class Counting:
    """Wraps an engine and counts the pixels it is asked to look at."""

    def __init__(self, engine):
        self.engine, self.pixels = engine, 0

    def __call__(self, batch):
        self.pixels += batch.shape[0] * batch.shape[2] * batch.shape[3]
        return self.engine(batch)


def normalised(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((image / 255.0).transpose(2, 0, 1), np.float32)


def test_cells_far_apart_are_found_by_looking_only_around_them():
    cells = [((150, 200), 40, 18), ((700, 900), 45, 20), ((1100, 300), 38, 15)]
    image, labels = synthetic_field((1200, 1400), cells)
    everywhere, around = Counting(dark_pixels), Counting(dark_pixels)
    full = predict_probabilities(everywhere, normalised(image), multiclass=False)
    fast, share = predict_where_cells_are(around, normalised(image), multiclass=False)
    assert share < 0.1 and around.pixels < everywhere.pixels / 2  # the half-resolution pass costs a third
    np.testing.assert_array_equal(fast > 0.5, full > 0.5)
    np.testing.assert_array_equal((fast[0] > 0.5), labels > 0)
    # each cell's box holds the cell and CONTEXT pixels more on every side
    assert (fast[0] > 0).sum() >= sum((2 * (r + CONTEXT)) ** 2 * 0.9 for _, r, _ in cells)


def test_a_crowded_field_is_tiled_whole_and_an_empty_one_is_background():
    centres = [(y, x) for y in range(60, 900, 120) for x in range(60, 900, 120)]
    image = synthetic_field((900, 900), [(c, 40, 15) for c in centres])[0]
    probabilities, share = predict_where_cells_are(dark_pixels, normalised(image), multiclass=False)
    assert share == 1.0
    np.testing.assert_allclose(probabilities, predict_probabilities(dark_pixels, normalised(image), multiclass=False), atol=1e-6)
    blank = synthetic_field((900, 900), [])[0]
    probabilities, share = predict_where_cells_are(dark_pixels, normalised(blank), multiclass=False)
    assert share == 0.0 and probabilities.max() == 0


def test_summary_names_the_engine_that_ran(tmp_path):
    from blastseg.batch import PredictOptions, predict_files
    from blastseg.io import write_png

    image = write_png(tmp_path / "field.png", synthetic_field((120, 160), [((60, 80), 30, 14)])[0])
    predict_files([image], tmp_path / "out", PredictOptions(engine="onnx", device="cpu"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["models"]["segmentation"]["engine"] == "onnx" and summary["models"]["segmentation"]["regions"] is True
