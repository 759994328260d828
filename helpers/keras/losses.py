"""The scenarios' losses for the Keras model (the mirror of ``helpers.torch.losses``).

The Keras model outputs PROBABILITIES (a sigmoid Dense layer), so each loss takes
``(y_true, y_pred)`` with ``y_pred = sigmoid(z)`` of shape (B, 1) and 0/1 labels of the
same shape, and returns the batch mean; its ``get_config`` (which the run's settings
record) holds its parameters. The values equal ``helpers.training.scenarios.reference_loss`` on z.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from helpers.training.scenarios import (
    FOCAL_ALPHA,
    FOCAL_GAMMA,
    LDAM_MAX_MARGIN,
    LDAM_SCALE,
    class_weights,
    get_scenario,
    ldam_margins,
)


def _same_shape(y_true: Any, y_pred: Any) -> Any:
    """``y_true`` in the shape of ``y_pred`` (never broadcast (B,) against (B, 1))."""
    return ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))


@keras.saving.register_keras_serializable(package="helpers")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """w_y * binary cross-entropy, batch mean (sum over the batch / B, as ``class_weight``).

    By hand: ``fit(class_weight=...)`` leaves the validation loss unweighted, and the closest
    library loss (focal with gamma 0) has class weights alpha, 1 - alpha that sum to 1.
    """

    def __init__(self, w0: float, w1: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.w0, self.w1 = float(w0), float(w1)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = _same_shape(y_true, y_pred)
        weight = self.w0 + (self.w1 - self.w0) * y_true
        # From the sigmoid's own logits inside a compiled model, as BinaryCrossentropy.
        return ops.mean(weight * ops.binary_crossentropy(y_true, y_pred), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "w0": self.w0, "w1": self.w1}


@keras.saving.register_keras_serializable(package="helpers")
class LDAMLoss(keras.losses.Loss):
    """Binary LDAM (Cao et al. 2019) on one logit z: two-class LDAM on logits (0, z), i.e.
    BCE with logits on s (z - m1) for positives and s (z + m0) for negatives.

    By hand: Keras has no LDAM. z is recovered from the probability, clipped to
    [eps, 1 - eps] (``keras.config.epsilon()``), as log(p) - log1p(-p): |z| <= ~16.
    """

    def __init__(self, m0: float, m1: float, scale: float = LDAM_SCALE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.m0, self.m1, self.scale = float(m0), float(m1), float(scale)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = _same_shape(y_true, y_pred)
        eps = keras.config.epsilon()
        p = ops.clip(y_pred, eps, 1.0 - eps)
        logits = ops.log(p) - ops.log1p(-p)
        shift = self.m0 - (self.m0 + self.m1) * y_true  # +m0 for y=0, -m1 for y=1
        values = ops.binary_crossentropy(y_true, self.scale * (logits + shift), from_logits=True)
        return ops.mean(values, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "m0": self.m0, "m1": self.m1, "scale": self.scale}


def make_loss(scenario: str, counts: tuple[int, int]) -> keras.losses.Loss:
    """The loss of ``scenario``; ``counts`` = (n0, n1) of its training rows (used by the
    weighted and LDAM losses).

    Focal is Keras' ``BinaryFocalCrossentropy(apply_class_balancing=True)``: its alpha
    weighs the positive class (label 1), 1 - alpha the negatives, as the scenarios mean.
    """
    kind = get_scenario(scenario).loss
    if kind == "focal":
        return keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True,
                                                    alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA)
    if kind == "weighted":
        return WeightedBinaryCrossentropy(*class_weights(counts))
    if kind == "ldam":
        return LDAMLoss(*ldam_margins(counts, LDAM_MAX_MARGIN), scale=LDAM_SCALE)
    return keras.losses.BinaryCrossentropy()
