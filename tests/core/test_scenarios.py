"""The scenario registry and the float64 reference losses (no framework)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from helpers.errors import UserError
from helpers.training.scenarios import (
    FOCAL_ALPHA,
    LDAM_MAX_MARGIN,
    SCENARIOS,
    Scenario,
    class_counts,
    class_weights,
    get_scenario,
    ldam_margins,
    reference_loss,
)

TABLE = [  # name, training rows, loss: the thesis' table
    ("baseline", "original", "bce"),
    ("focal", "original", "focal"),
    ("weighted", "original", "weighted"),
    ("ldam", "original", "ldam"),
    ("wgan", "synthetic", "bce"),
    ("wgan_focal", "synthetic", "focal"),
    ("ros", "ros", "bce"),
]
COUNTS = (1341, 3875)  # the Kaggle chest X-ray training rows: NORMAL, PNEUMONIA


def _batch(n: int = 64, seed: int = 0, low: float = -6.0, high: float = 6.0
           ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, n), rng.integers(0, 2, n).astype(np.float64)


def test_registry_holds_the_seven_scenarios_in_order() -> None:
    assert [(s.name, s.training_data, s.loss) for s in SCENARIOS.values()] == TABLE
    assert all(isinstance(s, Scenario) and s.description for s in SCENARIOS.values())
    assert get_scenario("wgan_focal") is SCENARIOS["wgan_focal"]


def test_unknown_scenario_names_the_valid_ones() -> None:
    with pytest.raises(UserError, match="baseline, focal, weighted, ldam, wgan, wgan_focal, ros"):
        get_scenario("smote")


def test_importing_scenarios_loads_no_framework() -> None:
    code = ("import helpers.training.scenarios, sys; "
            "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_class_weights_give_each_class_half_the_total() -> None:
    w0, w1 = class_weights(COUNTS)
    assert w0 == pytest.approx(5216 / 2682) and w1 == pytest.approx(5216 / 7750)
    assert COUNTS[0] * w0 == pytest.approx(COUNTS[1] * w1) == pytest.approx(sum(COUNTS) / 2)
    assert class_weights((50, 50)) == (1.0, 1.0)


def test_ldam_margins_largest_on_the_rarer_class() -> None:
    m0, m1 = ldam_margins(COUNTS)
    assert m0 == LDAM_MAX_MARGIN and m1 < m0
    assert m1 / m0 == pytest.approx((COUNTS[0] / COUNTS[1]) ** 0.25)
    assert ldam_margins((100, 100)) == (0.5, 0.5)
    assert ldam_margins((10000, 100), max_margin=1.0) == pytest.approx((0.1 ** 0.5, 1.0))


def _two_class_ldam(z: np.ndarray, y: np.ndarray, margins: tuple[float, float],
                    scale: float) -> float:
    """Cao et al.'s LDAM as softmax cross-entropy on logits (0, z), the true class's logit
    lowered by its margin, times the scale."""
    labels = y.astype(int)
    logits = np.stack([np.zeros_like(z), z], axis=1)
    logits[np.arange(len(z)), labels] -= np.asarray(margins)[labels]
    logits *= scale
    top = logits.max(axis=1, keepdims=True)
    log_softmax = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    return float(-log_softmax[np.arange(len(z)), labels].mean())


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_binary_ldam_is_two_class_ldam_on_logits_0_and_z(scale: float) -> None:
    z, y = _batch(low=-3, high=3)
    margins = ldam_margins(COUNTS)
    assert reference_loss("ldam", z, y, COUNTS, scale=scale) == pytest.approx(
        _two_class_ldam(z, y, margins, scale), rel=1e-12)


def _bce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-z))
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_focal_with_gamma_0_is_alpha_weighted_bce() -> None:
    z, y = _batch()
    alpha_t = np.where(y == 1, FOCAL_ALPHA, 1 - FOCAL_ALPHA)
    assert reference_loss("focal", z, y, COUNTS, gamma=0.0) == pytest.approx(
        float((alpha_t * _bce(z, y)).mean()), rel=1e-12)


def test_reference_losses_follow_their_formulas() -> None:
    z, y = _batch()
    p = 1 / (1 + np.exp(-z))
    p_t = np.where(y == 1, p, 1 - p)
    alpha_t = np.where(y == 1, FOCAL_ALPHA, 1 - FOCAL_ALPHA)
    w0, w1 = class_weights(COUNTS)
    expected = {"bce": _bce(z, y).mean(),
                "focal": (-alpha_t * (1 - p_t) ** 2 * np.log(p_t)).mean(),
                "weighted": (np.where(y == 1, w1, w0) * _bce(z, y)).mean()}
    for loss, value in expected.items():
        assert reference_loss(loss, z, y, COUNTS) == pytest.approx(value, rel=1e-12), loss


def test_reference_losses_are_finite_at_large_logits() -> None:
    z, y = np.array([-800.0, 800.0, -800.0, 800.0]), np.array([0.0, 0.0, 1.0, 1.0])
    for loss in ("bce", "focal", "weighted", "ldam"):
        assert np.isfinite(reference_loss(loss, z, y, COUNTS)), loss


def test_reference_loss_rejects_unknown_losses_and_mismatched_batches() -> None:
    z, y = _batch(8)
    with pytest.raises(UserError, match="bce, focal, weighted, ldam"):
        reference_loss("hinge", z, y, COUNTS)
    with pytest.raises(ValueError):
        reference_loss("bce", z, y[:4], COUNTS)


def test_class_counts() -> None:
    assert class_counts(np.array([0, 1, 1, 0, 1])) == (2, 3)
    assert class_counts(np.array([[0.0], [1.0]])) == (1, 1)


@pytest.mark.parametrize("labels", [np.ones(5), np.zeros(3), np.array([], dtype=int)])
def test_class_counts_need_both_classes(labels: np.ndarray) -> None:
    with pytest.raises(UserError, match="both classes"):
        class_counts(labels)


def test_class_counts_need_binary_labels() -> None:
    with pytest.raises(UserError, match="0 or 1"):
        class_counts(np.array([0, 1, 2]))


@pytest.mark.parametrize("counts", [(0, 10), (10, 0)])
def test_weights_and_margins_need_both_classes(counts: tuple[int, int]) -> None:
    with pytest.raises(UserError, match="both classes"):
        class_weights(counts)
    with pytest.raises(UserError, match="both classes"):
        ldam_margins(counts)
