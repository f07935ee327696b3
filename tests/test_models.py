"""Networks by name, encoder weights from local files, checkpoints, and tiled inference."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from blastseg.errors import BlastsegError
from blastseg.metrics import dice
from blastseg.preprocess import Normalize
from blastseg.segment.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from blastseg.segment.engines import TorchEngine
from blastseg.segment.heads import OUTPUTS, decode_probabilities, encode_target
from blastseg.segment.inference import Tiling, predict_probabilities
from blastseg.segment.networks import MODELS, ModelSpec, create_model
from blastseg.tensors import to_array, to_tensor
from blastseg.training.losses import build_loss
from tests.synthetic import BACKGROUND_RGB, CYTOPLASM_RGB, NUCLEUS_RGB, disc, synthetic_cell

SMALL = {"depth": 3, "decoder_channels": [32, 16, 8]}


class ArchitectureTests:
    """Shared checks; one short subclass per registered architecture."""

    name = ""

    def spec(self, **extra) -> ModelSpec:
        return ModelSpec(name=self.name, **{**SMALL, **extra})

    @pytest.mark.parametrize("classes, in_channels", [(1, 3), (3, 1)])
    def test_forward_shape_and_backward(self, classes, in_channels):
        model = create_model(self.spec(classes=classes, in_channels=in_channels))
        x = torch.randn(2, in_channels, 64, 96)
        y = model(x)
        assert y.shape == (2, classes, 64, 96)
        y.mean().backward()
        first_conv = next(p for name, p in model.encoder.named_parameters() if p.ndim == 4)
        assert first_conv.grad.abs().sum() > 0 and model.segmentation_head[0].weight.grad.abs().sum() > 0

    def test_encoder_weights_load_from_local_files(self, tmp_path):
        donor = create_model(self.spec())
        state = {k: v + 0.5 for k, v in donor.encoder.state_dict().items() if v.is_floating_point()}
        save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "enc.safetensors")
        torch.save({f"encoder.{k}": v for k, v in state.items()}, tmp_path / "enc.pth")
        for path in ("enc.safetensors", "enc.pth"):
            model = create_model(self.spec(encoder_weights_path=str(tmp_path / path)))
            loaded = model.encoder.state_dict()
            assert all(torch.equal(loaded[k], v) for k, v in state.items())


class TestUnet(ArchitectureTests):
    name = "unet"


class TestUnetPlusPlus(ArchitectureTests):
    name = "unetplusplus"


class TestEffUnet(ArchitectureTests):
    name = "effunet"


def test_registry_and_defaults():
    assert sorted(MODELS) == ["effunet", "unet", "unetplusplus"]
    assert ModelSpec(name="effunet").resolved().encoder == "efficientnet-b0"
    assert ModelSpec(depth=3).resolved().decoder_channels == [64, 32, 16]
    with pytest.raises(BlastsegError, match="valid: effunet, unet, unetplusplus"):
        create_model({"name": "vnet"})
    with pytest.raises(BlastsegError, match="needs 3 values"):
        create_model({"depth": 3, "decoder_channels": [8, 8]})


def test_encoder_weights_of_another_encoder_are_refused(tmp_path):
    save_file({"conv1.weight": torch.zeros(3, 3)}, tmp_path / "other.safetensors")
    with pytest.raises(BlastsegError, match="holds weights of another architecture than this encoder"):
        create_model(ModelSpec(encoder_weights_path=str(tmp_path / "other.safetensors"), **SMALL))
    with pytest.raises(BlastsegError, match="no such file"):
        create_model(ModelSpec(encoder_weights_path=str(tmp_path / "missing.pth"), **SMALL))


@pytest.mark.parametrize("output", sorted(OUTPUTS))
def test_outputs_round_trip_label_maps(output):
    labels = np.array([[0, 1, 2, 2], [0, 0, 1, 2]], np.uint8)
    target = encode_target(labels, output)
    probabilities = np.eye(3, dtype=np.float32)[labels].transpose(2, 0, 1) if output == "multiclass" else target
    decoded = decode_probabilities(probabilities, output)
    expected = {"nucleus": np.where(labels == 2, 2, 0), "cell": (labels > 0).astype(np.uint8)}.get(output, labels)
    np.testing.assert_array_equal(decoded, expected)


def card_for(spec: ModelSpec, output="cell+nucleus") -> ModelCard:
    return ModelCard(model=spec.resolved(), output=output)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    spec = ModelSpec(classes=2, **SMALL)
    model = create_model(spec).eval()
    save_checkpoint(tmp_path / "best", model, card_for(spec))
    x = torch.randn(1, 3, 64, 64)
    for name in ("best", "best.json", "best.safetensors", tmp_path):
        loaded, card = load_checkpoint(tmp_path / name if isinstance(name, str) else name)
        with torch.no_grad():
            assert torch.equal(model(x), loaded(x))
        assert card.output == "cell+nucleus" and card.model.decoder_channels == [32, 16, 8]
    save_checkpoint(tmp_path / "half", model, card_for(spec), half=True)
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * (tmp_path / "best.safetensors").stat().st_size
    with torch.no_grad():
        assert torch.allclose(model(x), load_checkpoint(tmp_path / "half")[0](x), atol=5e-2)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    unet = ModelSpec(classes=2, **SMALL)
    save_checkpoint(tmp_path / "best", create_model(unet), card_for(unet))
    card = json.loads((tmp_path / "best.json").read_text())
    card["model"]["name"] = "unetplusplus"
    (tmp_path / "best.json").write_text(json.dumps(card))
    with pytest.raises(BlastsegError, match="weights of another architecture than unetplusplus"):
        load_checkpoint(tmp_path / "best")
    (tmp_path / "best.json").write_text(json.dumps({"format": "blastseg-classifier"}))
    with pytest.raises(BlastsegError, match="not a blastseg segmentation checkpoint"):
        load_checkpoint(tmp_path / "best")
    with pytest.raises(BlastsegError, match="not found"):
        load_checkpoint(tmp_path / "nothing")


@pytest.fixture(scope="module")
def small_model():
    """A small U-Net fitted for a few steps to synthetic cells, so its outputs mean something."""
    torch.manual_seed(0)
    model = create_model(ModelSpec(classes=2, **SMALL))
    pairs = [synthetic_cell((64, 64), (20 + 3 * i, 30 + 2 * i), 14, 7, seed=i) for i in range(8)]
    images = torch.stack([to_tensor(image, Normalize()) for image, _ in pairs])
    targets = torch.stack([torch.from_numpy(encode_target(labels, "cell+nucleus")) for _, labels in pairs])
    optimizer, loss = torch.optim.Adam(model.parameters(), 1e-2), build_loss("bce_dice", multiclass=False)
    for _ in range(40):
        optimizer.zero_grad()
        loss(model(images), targets).backward()
        optimizer.step()
    return model.eval()


def field_of_cells(shape=(200, 260), centres=((40, 50), (120, 200), (150, 60), (60, 180))):
    labels = np.zeros(shape, np.uint8)
    for centre in centres:
        labels[disc(shape, centre, 15)] = 1
        labels[disc(shape, centre, 7)] = 2
    palette = np.array([BACKGROUND_RGB, CYTOPLASM_RGB, NUCLEUS_RGB], np.float64)
    noisy = palette[labels] + np.random.default_rng(0).normal(0, 4, (*shape, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8), labels


def test_padding_gives_the_shape_back_and_matches_an_unpadded_pass(small_model):
    engine, image = TorchEngine(small_model, "cpu"), np.random.default_rng(0).normal(size=(3, 64, 96)).astype(np.float32)
    with torch.no_grad():
        direct = small_model(torch.from_numpy(image)[None]).sigmoid()[0].numpy()
    np.testing.assert_allclose(predict_probabilities(engine, image, multiclass=False), direct, atol=1e-6)
    odd = predict_probabilities(engine, np.zeros((3, 45, 71), np.float32), multiclass=False)
    assert odd.shape == (2, 45, 71) and np.isfinite(odd).all()
    tiny = predict_probabilities(engine, np.zeros((3, 1, 5), np.float32), multiclass=False)
    assert tiny.shape == (2, 1, 5)


def test_tiling_matches_a_whole_image_pass(small_model):
    engine, (image, labels) = TorchEngine(small_model, "cpu"), field_of_cells()
    array = to_array(image, Normalize())
    whole = predict_probabilities(engine, array, multiclass=False, tiling=Tiling(tile_size=512))
    tiled = predict_probabilities(engine, array, multiclass=False, tiling=Tiling(tile_size=96, overlap=0.5, batch_size=3))
    assert tiled.shape == whole.shape == (2, 200, 260)
    assert dice(whole[0] > 0.5, labels > 0) > 0.9  # the model found the cells...
    assert np.abs(tiled - whole).mean() < 1e-3  # ...and tiles blend into the same answer
    assert np.mean((tiled > 0.5) == (whole > 0.5)) > 0.999


def test_test_time_augmentation_is_flip_invariant(small_model):
    engine, image = TorchEngine(small_model, "cpu"), np.random.default_rng(1).normal(size=(3, 64, 64)).astype(np.float32)
    plain = predict_probabilities(engine, image, multiclass=False, tiling=Tiling(tta=True))
    flipped = predict_probabilities(engine, np.ascontiguousarray(image[:, :, ::-1]), multiclass=False, tiling=Tiling(tta=True))
    np.testing.assert_allclose(plain, flipped[:, :, ::-1], atol=1e-5)
