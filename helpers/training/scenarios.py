"""The seven balancing scenarios (training rows and loss of each) and their losses defined
from the formulas in NumPy float64: the reference that ``helpers.keras.losses`` and
``helpers.torch.losses`` are tested against.

Every loss is a function of one logit ``z`` per image and a label ``y`` in {0, 1}, and is
the mean over the batch. The Keras model outputs ``sigmoid(z)``, the PyTorch model ``z``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from helpers.data.training_data import TrainingData
from helpers.errors import UserError

LossKind = Literal["bce", "focal", "weighted", "ldam"]

FOCAL_GAMMA = 2.0
FOCAL_ALPHA = 0.25  # the weight of the POSITIVE class (label 1); negatives get 1 - alpha
LDAM_MAX_MARGIN = 0.5
# Cao et al. use s = 30 on cosine logits in [-1, 1] (normalised linear layer); our head is a
# plain Dense layer whose raw logits already span many units, so no rescaling: s = 1.
LDAM_SCALE = 1.0


@dataclass(frozen=True)
class Scenario:
    """A balancing scenario: which training rows and which loss."""

    name: str
    training_data: TrainingData
    loss: LossKind
    description: str


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("baseline", "original", "bce", "original rows, binary cross-entropy"),
    Scenario("focal", "original", "focal",
             f"original rows, focal loss (gamma {FOCAL_GAMMA:g}, "
             f"alpha {FOCAL_ALPHA:g} on positives)"),
    Scenario("weighted", "original", "weighted",
             "original rows, class-weighted cross-entropy (w_c = N / (2 n_c))"),
    Scenario("ldam", "original", "ldam",
             f"original rows, LDAM loss (margins ~ n_c^-1/4, largest {LDAM_MAX_MARGIN:g})"),
    Scenario("wgan", "synthetic", "bce",
             "original rows + WGAN-GP minority images up to balance, binary cross-entropy"),
    Scenario("wgan_focal", "synthetic", "focal",
             "original rows + WGAN-GP minority images up to balance, focal loss"),
    Scenario("ros", "ros", "bce", "RandomOverSampler rows, binary cross-entropy"),
)}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``."""
    if name not in SCENARIOS:
        raise UserError(f"Unknown scenario {name!r}: use one of {', '.join(SCENARIOS)}.")
    return SCENARIOS[name]


def class_counts(labels: np.ndarray) -> tuple[int, int]:
    """(n0, n1): the rows of each class in 0/1 ``labels``; both must be present."""
    labels = np.asarray(labels).ravel()
    if not np.isin(labels, (0, 1)).all():
        raise UserError("Labels must be 0 or 1: pass the training rows' binary labels.")
    counts = (int((labels == 0).sum()), int((labels == 1).sum()))
    _check_counts(counts)
    return counts


def _check_counts(counts: tuple[int, int]) -> None:
    if len(counts) != 2 or min(counts) <= 0:
        raise UserError(f"Class counts {tuple(counts)} lack a class: the weighted and LDAM losses "
                        "need training rows of both classes.")


def class_weights(counts: tuple[int, int]) -> tuple[float, float]:
    """(w0, w1) with w_c = N / (2 n_c): each class weighs half of the total loss."""
    _check_counts(counts)
    total = sum(counts)
    return total / (2 * counts[0]), total / (2 * counts[1])


def ldam_margins(counts: tuple[int, int], max_margin: float = LDAM_MAX_MARGIN
                 ) -> tuple[float, float]:
    """(m0, m1) with m_c proportional to n_c^(-1/4), the largest (rarer class) ``max_margin``."""
    _check_counts(counts)
    raw = np.asarray(counts, dtype=np.float64) ** -0.25
    m0, m1 = raw * (max_margin / raw.max())
    return float(m0), float(m1)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), stable: -log sigmoid(-x)."""
    return np.logaddexp(0.0, x)


def reference_loss(loss: str, logits: np.ndarray, labels: np.ndarray,
                   counts: tuple[int, int], *, gamma: float = FOCAL_GAMMA,
                   alpha: float = FOCAL_ALPHA, scale: float = LDAM_SCALE,
                   max_margin: float = LDAM_MAX_MARGIN) -> float:
    """The batch mean of loss ``loss`` ("bce", "focal", "weighted", "ldam") on one logit
    per image, from its formula in float64 (``counts`` = (n0, n1) of the training rows)."""
    z = np.asarray(logits, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if z.shape != y.shape:
        raise ValueError(f"{z.size} logits but {y.size} labels")
    bce = y * _softplus(-z) + (1 - y) * _softplus(z)  # -log p_t
    if loss == "bce":
        values = bce
    elif loss == "focal":  # -alpha_t (1 - p_t)^gamma log p_t
        p_t = np.exp(-bce)
        values = (y * alpha + (1 - y) * (1 - alpha)) * (1 - p_t) ** gamma * bce
    elif loss == "weighted":
        w0, w1 = class_weights(counts)
        values = (y * w1 + (1 - y) * w0) * bce
    elif loss == "ldam":  # y=1: -log sigmoid(s (z - m1)); y=0: -log(1 - sigmoid(s (z + m0)))
        m0, m1 = ldam_margins(counts, max_margin)
        values = y * _softplus(-scale * (z - m1)) + (1 - y) * _softplus(scale * (z + m0))
    else:
        raise UserError(f"Unknown loss {loss!r}: use one of bce, focal, weighted, ldam.")
    return float(values.mean())
