"""What runs a segmentation network: PyTorch, or ONNX Runtime on the CPU.

An engine is a callable: a float32 batch N x C x H x W in, logits N x K x H x W out (NumPy both
ways), so tiling, flips and decoding (:mod:`~blastseg.segment.inference`) are the same whatever
runs the network.

A model may have an **ONNX twin**: ``NAME.onnx`` beside ``NAME.safetensors`` and ``NAME.json``,
written by :func:`~blastseg.segment.export.export_onnx`, and an **int8 twin** ``NAME.int8.onnx``,
the same network quantised (:func:`~blastseg.segment.export.export_int8`); each records the
SHA-256 of the weights it was made from. ``auto`` on the CPU runs the int8 twin when there is one,
else the ONNX twin, in ONNX Runtime, and PyTorch otherwise (no twin, a GPU, no onnxruntime).
``onnx`` and ``int8`` ask for one twin. A twin made from other weights is refused. Only the torch
engine imports torch.

>>> engine, card = load_engine("default", engine="onnx")  # doctest: +SKIP
>>> engine(np.zeros((1, 3, 64, 64), np.float32)).shape  # doctest: +SKIP
(1, 2, 64, 64)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from blastseg.config import checked_name
from blastseg.errors import ConfigError, ModelFileError, first_line
from blastseg.runtime import gpu_present, installed, resolve_device, thread_share

if TYPE_CHECKING:
    import onnxruntime
    import torch

    from blastseg.segment.checkpoint import ModelCard

ENGINES = ("auto", "torch", "onnx", "int8")
WEIGHTS_KEY = "blastseg.weights_sha256"  # ONNX metadata: the weights file the twin was made from
PRECISION_KEY = "blastseg.precision"  # ONNX metadata: "int8" in a quantised twin


def onnx_twin(weights: Path, engine: str = "onnx") -> Path:
    """Where the ONNX twin (``engine="int8"``: the int8 twin) of a ``.safetensors`` weights file lives.

    >>> onnx_twin(Path("runs/unet/best.safetensors"), "int8").name
    'best.int8.onnx'
    """
    return weights.with_suffix(".int8.onnx" if engine == "int8" else ".onnx")


def weights_digest(weights: Path) -> str:
    """SHA-256 of a weights file."""
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")
    return name


EngineName = checked_name(check_engine)


class TorchEngine:
    """A PyTorch module in inference mode and channels-last layout, which oneDNN convolves faster
    than the default layout (``scripts/bench_speed.py``: torch against eager).

    ``channels_last=False`` leaves the module's layout alone (training validates the network
    its optimiser is still updating)."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str = "auto", channels_last: bool = True):
        import torch

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model = self.model.to(memory_format=self.layout)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device).contiguous(memory_format=self.layout)
            return self.model(tensor).float().cpu().numpy()


def cpu_session(model: str | bytes, threads: int = 0, profile: bool = False) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on the CPU provider that logs errors only, for ``model`` (a file
    path, or a serialised model), with ``threads`` intra-op threads (0: ONNX Runtime's choice) and,
    with ``profile``, ONNX Runtime's profiler on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.enable_profiling = profile
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxEngine:
    """An ONNX model run by ONNX Runtime's CPU provider.

    A batch goes through in parts of at most ``RUN_PIXELS`` pixels (one 512 x 512 tile, four
    256 x 256 crops): on the CPU a bigger run is hardly faster per image, while ONNX Runtime
    keeps the memory of its largest run for the rest of the process. It pickles as its path (a
    batch's worker processes load their own session)."""

    RUN_PIXELS = 512 * 512

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.session = cpu_session(str(path), thread_share())
        except Exception as error:  # onnxruntime raises its own exception types for broken files
            raise ModelFileError(f"{path}: not a readable ONNX model ({first_line(error)})") from None
        self.input = self.session.get_inputs()[0].name
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.made_from = metadata.get(WEIGHTS_KEY)
        self.name = "int8" if metadata.get(PRECISION_KEY) == "int8" else "onnx"

    def __reduce__(self) -> tuple:
        return (OnnxEngine, (self.path,))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        step = max(1, self.RUN_PIXELS // (batch.shape[2] * batch.shape[3]))
        parts = [np.ascontiguousarray(batch[first : first + step], np.float32) for first in range(0, len(batch), step)]
        return np.concatenate([self.session.run(None, {self.input: part})[0] for part in parts])


def twin_engine(weights: Path, engine: str = "onnx") -> OnnxEngine:
    """The ONNX twin (``engine="int8"``: the int8 twin) of ``weights``, refused when it was made from other weights."""
    twin = onnx_twin(weights, engine)
    export = f"blastseg export --checkpoint {weights}{' --int8 --calibration IMAGES' if engine == 'int8' else ''}"
    if not twin.is_file():
        raise ModelFileError(f"{weights}: no {engine} twin ({twin.name}); write one with: {export}")
    if not installed("onnxruntime"):
        raise ConfigError(f"the {engine} engine needs onnxruntime: pip install onnxruntime")
    runner = OnnxEngine(twin)
    if runner.made_from != weights_digest(weights):
        raise ModelFileError(f"{twin}: made from other weights than {weights.name}; export it again ({export} --overwrite) or use --engine torch")
    return runner


def twin_for(weights: Path, engine: str, device: str) -> str | None:
    """Which twin ``engine`` (``auto``, ``torch``, ``onnx`` or ``int8``) on ``device`` runs:
    ``"int8"``, ``"onnx"``, or ``None`` for PyTorch."""
    if check_engine(engine) == "torch":
        return None
    on_cpu = device == "cpu" or (device == "auto" and not gpu_present())
    if engine != "auto":
        if not on_cpu:
            raise ConfigError(f"the {engine} engine runs on the CPU; use --device cpu, or --engine torch for {device}")
        return engine
    if not on_cpu or not installed("onnxruntime"):
        return None
    return next((kind for kind in ("int8", "onnx") if onnx_twin(weights, kind).is_file()), None)


def load_engine(checkpoint: str | Path, engine: str = "auto", device: str = "auto") -> tuple[TorchEngine | OnnxEngine, ModelCard]:
    """The engine that runs the network a checkpoint names, and its card (see the module docstring).

    A twin made from other weights is an error, not a silent fallback: the user re-exports it or
    asks for ``--engine torch``."""
    from blastseg.segment.checkpoint import load_checkpoint, read_checkpoint

    weights, card = read_checkpoint(checkpoint)
    twin = twin_for(weights, engine, device)
    if twin is not None:
        return twin_engine(weights, twin), card
    model, card = load_checkpoint(checkpoint)
    return TorchEngine(model, device), card
