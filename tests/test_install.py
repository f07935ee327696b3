"""The pinned torch/torchvision pair and segmentation-models-pytorch work together on CPU."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_deep_learning_stack_imports_and_runs_on_cpu():
    code = (
        "import torch, torchvision, segmentation_models_pytorch as smp\n"
        "boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])\n"
        "keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)\n"
        "assert keep.tolist() == [0, 2], keep\n"
        "model = smp.Unet('resnet18', encoder_weights=None, classes=1).eval()\n"
        "with torch.inference_mode():\n"
        "    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
