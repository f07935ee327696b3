"""Write a segmentation checkpoint's ONNX twin, for the ONNX Runtime engine.

The twin holds the network alone (image in, logits out, any batch size and image size);
preprocessing, tiling and decoding stay in blastseg, so both engines share them. It records the
SHA-256 of the weights it was made from (:data:`~blastseg.segment.engines.WEIGHTS_KEY`), so a
twin left beside other weights is refused rather than trusted. Needs torch and onnx.

>>> export_onnx("runs/unet")  # writes runs/unet/best.onnx  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from pathlib import Path

from blastseg.artifacts import DEFAULT
from blastseg.folders import refuse_existing
from blastseg.io import atomic_path
from blastseg.segment.checkpoint import checkpoint_files, load_checkpoint
from blastseg.segment.engines import WEIGHTS_KEY, onnx_twin, weights_digest

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
        onnx.save(graph, str(tmp))
    return target
