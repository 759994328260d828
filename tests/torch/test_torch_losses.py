"""The scenarios' PyTorch losses equal the float64 references of ``helpers.training.scenarios``
(``test_keras_losses.py`` checks the Keras side against the same references)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers.errors import UserError
from helpers.torch.losses import FocalLoss, LDAMLoss, WeightedBCEWithLogitsLoss, make_loss
from helpers.training.scenarios import (
    FOCAL_ALPHA,
    FOCAL_GAMMA,
    LDAM_SCALE,
    SCENARIOS,
    class_weights,
    ldam_margins,
    reference_loss,
)

pytestmark = pytest.mark.torch

COUNTS = (1341, 3875)


def _batch(n: int = 64, seed: int = 0, scale: float = 6.0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-scale, scale, n).astype(np.float32)
    labels = rng.integers(0, 2, n).astype(np.float32)
    return torch.from_numpy(logits), torch.from_numpy(labels)


def test_make_loss_maps_each_scenario_to_its_loss() -> None:
    kinds = {name: type(make_loss(name, COUNTS)) for name in SCENARIOS}
    assert kinds == {"baseline": nn.BCEWithLogitsLoss, "focal": FocalLoss,
                     "weighted": WeightedBCEWithLogitsLoss, "ldam": LDAMLoss,
                     "wgan": nn.BCEWithLogitsLoss, "wgan_focal": FocalLoss,
                     "ros": nn.BCEWithLogitsLoss}
    with pytest.raises(UserError, match="Unknown scenario"):
        make_loss("smote", COUNTS)
    with pytest.raises(UserError, match="both classes"):
        make_loss("ldam", (0, 10))


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("shape", [(64,), (64, 1)])
def test_loss_equals_the_reference(name: str, shape: tuple[int, ...]) -> None:
    logits, labels = _batch(scale=20.0)
    value = make_loss(name, COUNTS)(logits.reshape(shape), labels.reshape(shape))
    assert value.dtype == torch.float32 and value.shape == ()
    expected = reference_loss(SCENARIOS[name].loss, logits.numpy(), labels.numpy(), COUNTS)
    assert float(value) == pytest.approx(expected, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_gradients_are_finite_at_large_logits(name: str) -> None:
    logits = torch.tensor([-50.0, 50.0, -50.0, 50.0, -1e4, 1e4], requires_grad=True)
    labels = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    value = make_loss(name, COUNTS)(logits, labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    assert float(value.detach()) == pytest.approx(
        reference_loss(SCENARIOS[name].loss, logits.detach().numpy(), labels.numpy(), COUNTS),
        rel=1e-6)


@pytest.mark.parametrize("name", ["focal", "weighted", "ldam"])
def test_mismatched_shapes_fail_instead_of_broadcasting(name: str) -> None:
    logits, labels = _batch(8)
    with pytest.raises(ValueError, match="same as input size"):
        make_loss(name, COUNTS)(logits, labels[:, None])


def test_repr_records_each_loss_and_its_parameters() -> None:
    names = {name: repr(make_loss(name, COUNTS)) for name in ("baseline", "focal", "weighted",
                                                                "ldam")}
    assert len(set(names.values())) == 4
    assert names["focal"] == f"FocalLoss(alpha={FOCAL_ALPHA!r}, gamma={FOCAL_GAMMA!r})"
    w0, w1 = class_weights(COUNTS)
    assert names["weighted"] == f"WeightedBCEWithLogitsLoss(w0={w0!r}, w1={w1!r})"
    m0, m1 = ldam_margins(COUNTS)
    assert names["ldam"] == f"LDAMLoss(m0={m0!r}, m1={m1!r}, scale={LDAM_SCALE!r})"
