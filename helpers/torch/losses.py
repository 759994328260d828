"""The scenarios' losses for the PyTorch model (the mirror of ``helpers.keras.losses``).

Each loss takes ``(logits, labels)`` like ``nn.BCEWithLogitsLoss``: one logit per image
(the model's output), float 0/1 labels of the same shape, and returns the batch mean; its
``repr`` (which the run's settings record) holds its parameters. The values equal
``helpers.training.scenarios.reference_loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from helpers.training.scenarios import (
    FOCAL_ALPHA,
    FOCAL_GAMMA,
    LDAM_MAX_MARGIN,
    LDAM_SCALE,
    class_weights,
    get_scenario,
    ldam_margins,
)


def _same_shape(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``labels`` in the logits' dtype; a shape mismatch fails (as BCEWithLogitsLoss does)
    instead of broadcasting (B,) against (B, 1) into (B, B)."""
    if labels.shape != logits.shape:
        raise ValueError(f"Target size ({tuple(labels.shape)}) must be the same as input size "
                         f"({tuple(logits.shape)})")
    return labels.to(logits.dtype)


class FocalLoss(nn.Module):
    """torchvision's ``sigmoid_focal_loss``, batch mean; its alpha weighs the positive class
    (label 1) and 1 - alpha the negatives, as the scenarios mean."""

    def __init__(self, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA) -> None:
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(logits, _same_shape(logits, labels), alpha=self.alpha,
                                  gamma=self.gamma, reduction="mean")

    def extra_repr(self) -> str:
        return f"alpha={self.alpha!r}, gamma={self.gamma!r}"


class WeightedBCEWithLogitsLoss(nn.Module):
    """w_y * BCE, batch mean (sum over the batch / B, as Keras' class weights).

    By hand: ``BCEWithLogitsLoss(pos_weight)`` weighs only the positives (negatives keep
    weight 1) and its ``weight`` is fixed per element, not per class.
    """

    def __init__(self, w0: float, w1: float) -> None:
        super().__init__()
        self.w0, self.w1 = w0, w1

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = _same_shape(logits, labels)
        weight = self.w0 + (self.w1 - self.w0) * labels
        return F.binary_cross_entropy_with_logits(logits, labels, weight=weight)

    def extra_repr(self) -> str:
        return f"w0={self.w0!r}, w1={self.w1!r}"


class LDAMLoss(nn.Module):
    """Binary LDAM (Cao et al. 2019) on one logit z: two-class LDAM on logits (0, z), i.e.
    BCE with logits on s (z - m1) for positives and s (z + m0) for negatives.

    By hand: neither torch nor torchvision has LDAM.
    """

    def __init__(self, m0: float, m1: float, scale: float = LDAM_SCALE) -> None:
        super().__init__()
        self.m0, self.m1, self.scale = m0, m1, scale

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = _same_shape(logits, labels)
        shift = self.m0 - (self.m0 + self.m1) * labels  # +m0 for y=0, -m1 for y=1
        return F.binary_cross_entropy_with_logits(self.scale * (logits + shift), labels)

    def extra_repr(self) -> str:
        return f"m0={self.m0!r}, m1={self.m1!r}, scale={self.scale!r}"


def make_loss(scenario: str, counts: tuple[int, int]) -> nn.Module:
    """The loss of ``scenario``; ``counts`` = (n0, n1) of its training rows (used by the
    weighted and LDAM losses)."""
    kind = get_scenario(scenario).loss
    if kind == "focal":
        return FocalLoss(FOCAL_ALPHA, FOCAL_GAMMA)
    if kind == "weighted":
        return WeightedBCEWithLogitsLoss(*class_weights(counts))
    if kind == "ldam":
        return LDAMLoss(*ldam_margins(counts, LDAM_MAX_MARGIN), scale=LDAM_SCALE)
    return nn.BCEWithLogitsLoss()
