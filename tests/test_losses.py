"""Every loss by name: hand-worked values on tiny tensors, and gradients that flow."""

import math

import pytest
import torch

from blastseg.errors import BlastsegError
from blastseg.segment.heads import UNKNOWN
from blastseg.training.losses import LOSSES, build_loss

# logits 0 → p = 0.5 on all four pixels; one of them is foreground
LOGITS = torch.zeros(1, 1, 2, 2)
TARGET = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
LN2 = math.log(2)
# soft Dice: 2 * sum(p t) / (sum p + sum t) = 2 * 0.5 / (2 + 1)
DICE_LOSS = 1 - 1 / 3


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("bce", LN2),
        ("dice", DICE_LOSS),
        ({"name": "bce_dice", "lam": 0.25}, 0.25 * LN2 + 0.75 * DICE_LOSS),
        # TP = 0.5, FP = 1.5, FN = 0.5: 1 - 0.5 / (0.5 + 0.3 * 1.5 + 0.7 * 0.5)
        ({"name": "tversky", "alpha": 0.3, "beta": 0.7}, 1 - 0.5 / 1.3),
        # every pixel: -(1 - 0.5)^2 * ln 0.5
        ({"name": "focal", "gamma": 2.0}, 0.25 * LN2),
        ([{"name": "bce", "weight": 2.0}, {"name": "dice", "weight": 0.5}], 2 * LN2 + 0.5 * DICE_LOSS),
    ],
)
def test_sigmoid_losses_match_hand_worked_values(spec, expected):
    assert float(build_loss(spec, multiclass=False)(LOGITS, TARGET)) == pytest.approx(expected, abs=1e-4)


def test_multiclass_losses_take_label_maps():
    logits = torch.zeros(1, 3, 1, 2)  # uniform over three classes
    labels = torch.tensor([[[0, 2]]])
    assert float(build_loss("bce", multiclass=True)(logits, labels)) == pytest.approx(math.log(3), abs=1e-5)
    # classes 0 and 2 present: Dice 2 * (1/3) / (2/3 + 1) = 0.4 each, loss 0.6; class 1 absent is masked out
    assert float(build_loss("dice", multiclass=True)(logits, labels)) == pytest.approx(2 * 0.6 / 3, abs=1e-4)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("multiclass", [False, True])
def test_every_loss_backpropagates(name, multiclass):
    torch.manual_seed(0)
    logits = torch.randn(2, 3 if multiclass else 2, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8)) if multiclass else torch.randint(0, 2, (2, 2, 8, 8)).float()
    loss = build_loss(name, multiclass)(logits, target)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and logits.grad.abs().sum() > 0


def test_bad_loss_specs_name_the_valid_choices():
    with pytest.raises(BlastsegError, match="valid: bce, bce_dice, dice, focal, tversky"):
        build_loss("dicee", multiclass=False)
    with pytest.raises(BlastsegError, match="loss 'tversky': unknown key 'alpah'; valid keys: alpha, beta"):
        build_loss({"name": "tversky", "alpah": 0.3}, multiclass=False)
    with pytest.raises(BlastsegError, match="loss .bce_dice.: lam: Input should be less than or equal to 1"):
        build_loss({"name": "bce_dice", "lam": 2}, multiclass=False)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_unknown_target_pixels_change_no_sigmoid_loss_and_get_no_gradient(name):
    torch.manual_seed(0)
    target = torch.randint(0, 2, (2, 2, 8, 8)).float()
    unknown = target.clone()
    unknown[:, 1, :4] = UNKNOWN  # half of the nucleus channel's rows
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    loss = build_loss(name, multiclass=False)(logits, unknown)
    loss.backward()
    other = logits.detach().clone()
    other[:, 1, :4] = 50 * torch.randn(2, 4, 8)  # any logit there gives the same loss
    assert float(build_loss(name, multiclass=False)(other, unknown)) == pytest.approx(loss.item(), rel=1e-5)
    assert logits.grad[:, 1, :4].abs().max() == 0 and logits.grad[:, 1, 4:].abs().sum() > 0


def test_unknown_pixels_add_nothing_to_the_dice_sum():
    # the known pixels are TARGET's first row, p = 0.5 each: Dice 2 * 0.5 / (1 + 1)
    target = TARGET.clone()
    target[..., 1, :] = UNKNOWN
    assert float(build_loss("dice", multiclass=False)(LOGITS, target)) == pytest.approx(1 - 0.5, abs=1e-4)
