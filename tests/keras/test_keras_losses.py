"""The scenarios' Keras losses equal the float64 references of ``helpers.training.scenarios`` on the
logits behind the model's probabilities, as the PyTorch losses do on the logits themselves
(``test_torch_losses.py``): the same logits and labels give the same loss in both.

Runs in a process of its own (TensorFlow and torch never share one).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from helpers.errors import UserError
from helpers.keras.losses import LDAMLoss, WeightedBinaryCrossentropy, make_loss
from helpers.keras.training import loss_name
from helpers.training.scenarios import LDAM_SCALE, SCENARIOS, class_weights, ldam_margins, reference_loss

pytestmark = [pytest.mark.tensorflow, pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")]

COUNTS = (1341, 3875)


def _batch(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits in [-6, 6] (where the probability clip is inactive) and labels, (n, 1) float32."""
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-6, 6, (n, 1)).astype(np.float32)
    return logits, rng.integers(0, 2, (n, 1)).astype(np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-z.astype(np.float64)))).astype(np.float32)


def test_make_loss_maps_each_scenario_to_its_loss() -> None:
    kinds = {name: type(make_loss(name, COUNTS)) for name in SCENARIOS}
    bce, focal = keras.losses.BinaryCrossentropy, keras.losses.BinaryFocalCrossentropy
    assert kinds == {"baseline": bce, "focal": focal, "weighted": WeightedBinaryCrossentropy,
                     "ldam": LDAMLoss, "wgan": bce, "wgan_focal": focal, "ros": bce}
    with pytest.raises(UserError, match="Unknown scenario"):
        make_loss("smote", COUNTS)
    with pytest.raises(UserError, match="both classes"):
        make_loss("weighted", (10, 0))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_loss_on_probabilities_equals_the_reference_on_logits(name: str) -> None:
    logits, labels = _batch()
    value = make_loss(name, COUNTS)(labels, _sigmoid(logits))
    expected = reference_loss(SCENARIOS[name].loss, logits, labels, COUNTS)
    assert float(value) == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", ["weighted", "ldam"])
def test_labels_of_shape_b_are_not_broadcast(name: str) -> None:
    logits, labels = _batch(8)
    loss = make_loss(name, COUNTS)
    assert float(loss(labels[:, 0], _sigmoid(logits))) == pytest.approx(
        float(loss(labels, _sigmoid(logits))), rel=1e-6)


@pytest.mark.parametrize("name", ["weighted", "ldam"])
def test_loss_survives_saturated_probabilities(name: str) -> None:
    probabilities = np.array([[0.0], [1.0], [0.0], [1.0]], dtype=np.float32)
    labels = np.array([[0.0], [0.0], [1.0], [1.0]], dtype=np.float32)
    assert np.isfinite(float(make_loss(name, COUNTS)(labels, probabilities)))


@pytest.mark.parametrize("name", ["focal", "weighted", "ldam"])
def test_compiled_model_fits_and_evaluates_to_the_reference(name: str) -> None:
    """A tiny sigmoid model trains one epoch with the loss, and its evaluated loss equals
    the reference on its own logits."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (rng.random((32, 1)) < 0.3).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss=make_loss(name, COUNTS), jit_compile=False)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    kernel, bias = model.layers[-1].get_weights()
    expected = reference_loss(SCENARIOS[name].loss, x @ kernel + bias, y, COUNTS)
    assert model.evaluate(x, y, batch_size=32, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_loss_name_records_each_loss_and_its_parameters() -> None:
    names = {name: loss_name(make_loss(name, COUNTS)) for name in SCENARIOS}
    assert len({names[n] for n in ("baseline", "focal", "weighted", "ldam")}) == 4
    assert names["wgan"] == names["ros"] == names["baseline"]
    assert names["wgan_focal"] == names["focal"]
    assert "alpha=0.25" in names["focal"] and "gamma=2.0" in names["focal"]
    assert "apply_class_balancing=True" in names["focal"]
    w0, w1 = class_weights(COUNTS)
    assert names["weighted"].startswith("WeightedBinaryCrossentropy(")
    assert f"w0={w0!r}" in names["weighted"] and f"w1={w1!r}" in names["weighted"]
    m0, m1 = ldam_margins(COUNTS)
    assert names["ldam"].startswith("LDAMLoss(")
    assert all(s in names["ldam"] for s in (f"m0={m0!r}", f"m1={m1!r}", f"scale={LDAM_SCALE!r}"))


@pytest.mark.parametrize("name", ["weighted", "ldam"])
def test_hand_written_losses_round_trip_through_their_config(name: str) -> None:
    loss = make_loss(name, COUNTS)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
