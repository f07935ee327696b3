"""Write a segmentation checkpoint's ONNX twin and int8 twin, for the ONNX Runtime engines.

The twin holds the network alone (image in, logits out, any batch size, any image whose sides are
multiples of the encoder's stride, as blastseg pads them); preprocessing, tiling and decoding stay
in blastseg, so every engine shares them. Its decoder upsamples by a constant factor of 2
(:func:`constant_upsampling`), not to sizes computed from other tensors' shapes at every run. It records the
SHA-256 of the weights it was made from (:data:`~blastseg.segment.engines.WEIGHTS_KEY`), so a
twin left beside other weights is refused rather than trusted. The int8 twin is the ONNX twin
quantised by ONNX Runtime (static, QDQ: weights int8 per channel, activations uint8 with min-max
ranges) on what the network is fed while it segments a user's calibration images. Needs torch
and onnx (the training extra).

>>> export_onnx("runs/unet")  # writes runs/unet/best.onnx  # doctest: +SKIP
>>> export_int8("runs/unet", [blastseg.read_image(p) for p in training_images])  # best.int8.onnx  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from blastseg.artifacts import DEFAULT
from blastseg.errors import ConfigError
from blastseg.folders import find_images, refuse_existing
from blastseg.io import atomic_path, read_image
from blastseg.segment.checkpoint import checkpoint_files, load_checkpoint, read_checkpoint
from blastseg.segment.deep import DeepSegmenter
from blastseg.segment.engines import PRECISION_KEY, WEIGHTS_KEY, OnnxEngine, cpu_session, onnx_twin, twin_engine, weights_digest

if TYPE_CHECKING:
    import onnx

OPSET = 17
SAMPLE_SIDE = 256  # the traced example; height, width and batch stay dynamic


def export_onnx(checkpoint: str | Path = DEFAULT, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write the ONNX twin of ``checkpoint`` (beside its weights, or at ``out``) and return its path."""
    import onnx
    import torch

    weights, _ = checkpoint_files(checkpoint)
    target = Path(out) if out is not None else onnx_twin(weights)
    refuse_existing([target], overwrite)
    model, card = load_checkpoint(checkpoint)
    sample = torch.zeros(1, card.model.in_channels, SAMPLE_SIDE, SAMPLE_SIDE)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(target) as tmp, warnings.catch_warnings():
        # the TorchScript exporter: torch's newer one needs onnxscript and has nothing to add here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (sample,), str(tmp), dynamo=False, opset_version=OPSET,
            input_names=["image"], output_names=["logits"], dynamic_axes={"image": dynamic, "logits": dynamic},
        )  # fmt: skip
        graph = onnx.load(str(tmp))
        graph.metadata_props.add(key=WEIGHTS_KEY, value=weights_digest(weights))
        onnx.save(constant_upsampling(graph), str(tmp))
    return target


def constant_upsampling(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each Resize that is given an output size (smp's U-Net decoder sizes every
    upsampling by its skip connection's shape) given the scale 2 instead, and
    the shape arithmetic that computed the sizes removed. On inputs blastseg pads, every decoder
    step doubles, so the logits are the same bit for bit: the rewritten model is returned only when
    ONNX Runtime gives identical logits on two test inputs, else ``model`` unchanged. Computing
    the sizes made the int8 twin dequantise (and transpose) every skip connection only to read
    its shape."""
    import onnx
    from onnx import numpy_helper

    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = rewritten.graph
    sized = [node for node in graph.node if node.op_type == "Resize" and len(node.input) == 4 and node.input[3]]
    if not sized:
        return model
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "blastseg.upsampling_scales")
    graph.initializer.append(scales)
    for node in sized:
        node.input[2] = scales.name
        del node.input[3]
    drop_unused(graph)
    return rewritten if same_logits(model, rewritten) else model


def drop_unused(graph: onnx.GraphProto) -> None:
    """Remove the nodes and initialisers no output of ``graph`` depends on."""
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initializers = [tensor for tensor in graph.initializer if tensor.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def same_logits(model: onnx.ModelProto, other: onnx.ModelProto) -> bool:
    """Whether ONNX Runtime gives the two models' identical outputs on random inputs of two sizes."""
    channels = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    return largest_logit_difference(model, other, ((1, channels, SAMPLE_SIDE, SAMPLE_SIDE), (2, channels, 64, 160))) == 0


def largest_logit_difference(model: onnx.ModelProto, other: onnx.ModelProto, shapes: Sequence[tuple[int, ...]]) -> float:
    """The largest absolute difference between the two models' outputs in ONNX Runtime over random
    inputs of ``shapes``; infinite when either fails to run one (a rewrite that broke the graph) or
    their outputs differ in shape."""
    sessions = [cpu_session(m.SerializeToString()) for m in (model, other)]
    name = sessions[0].get_inputs()[0].name
    rng = np.random.default_rng(0)
    largest = 0.0
    for shape in shapes:
        batch = rng.normal(size=shape).astype(np.float32)
        try:
            first, second = (session.run(None, {name: batch})[0] for session in sessions)
        except Exception:  # onnxruntime's own error types: shapes that no longer meet
            return float("inf")
        if first.shape != second.shape:
            return float("inf")
        largest = max(largest, float(np.abs(first - second).max()))
    return largest


def calibration_set(paths: Sequence[str | Path], count: int = 64) -> list[np.ndarray]:
    """At most ``count`` images of those ``paths`` name (files, or folders searched as
    :func:`~blastseg.folders.find_images` does), evenly spread over them in sorted order."""
    found = find_images(paths) if paths else []
    step = len(found) / min(count, len(found)) if found else 1
    return [read_image(found[int(i * step)].path) for i in range(min(count, len(found)))]


class Recorder:
    """An engine that runs ``engine`` and keeps each image of every batch it is given (calibration data)."""

    def __init__(self, engine: OnnxEngine):
        self.engine, self.inputs = engine, []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.inputs += [np.ascontiguousarray(image[None], np.float32) for image in batch]
        return self.engine(batch)


def export_int8(checkpoint: str | Path, calibration: Sequence[np.ndarray], out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write the int8 twin of ``checkpoint`` (``NAME.int8.onnx`` beside its weights, or ``out``),
    calibrated on ``calibration`` (RGB images like those it will segment, as
    :class:`~blastseg.segment.deep.DeepSegmenter` feeds them to the network); the ONNX twin is
    written first when it is missing. Returns its path."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    weights, card = read_checkpoint(checkpoint)
    target = Path(out) if out is not None else onnx_twin(weights, "int8")
    refuse_existing([target], overwrite)
    if not calibration:
        raise ConfigError("an int8 twin needs calibration images: give some of the images the model was trained on (--calibration)")
    if not onnx_twin(weights).is_file():
        export_onnx(checkpoint)
    recorder = Recorder(twin_engine(weights))
    segmenter = DeepSegmenter(recorder, card)
    for image in calibration:
        segmenter.segment(image)
    feed = iter([{recorder.engine.input: array} for array in recorder.inputs])

    class Feed(CalibrationDataReader):
        def get_next(self) -> dict | None:
            return next(feed, None)

    with tempfile.TemporaryDirectory() as scratch, atomic_path(target) as tmp:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(onnx_twin(weights)), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(tmp), Feed(),
            quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
        )  # fmt: skip
        graph = onnx.load(str(tmp))
        entries = {entry.key: entry.value for entry in graph.metadata_props} | {WEIGHTS_KEY: weights_digest(weights), PRECISION_KEY: "int8"}
        del graph.metadata_props[:]
        for key, value in entries.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))
    return target
