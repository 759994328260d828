"""The kinds of training data a scenario trains on, defined once: the split's own rows,
those plus the synthetic minority images, or the oversampled rows."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from helpers.config import Layout
from helpers.data.arrays import SPLITS, SplitArrays, load_arrays
from helpers.data.imbalance import NATURAL
from helpers.data.synthetic import synthetic_arrays
from helpers.errors import UserError

TrainingData = Literal["original", "synthetic", "ros"]  # the scenarios' training rows
TRAINING_DATA: tuple[str, ...] = get_args(TrainingData)


def load_all_arrays(layout: Layout, size: int, training_data: str = "original",
                    imbalance: str = NATURAL) -> dict[str, SplitArrays]:
    """Every split's arrays. ``training_data``: "original" (the split's training rows),
    "synthetic" (those plus notebook 05's synthetic minority images, which balance them) or
    "ros" (the oversampled rows); ``imbalance``: the training rows of that setting
    (``helpers.imbalance``). Validation and test are always the real split."""
    if training_data not in TRAINING_DATA:
        raise UserError(f"Unknown training data {training_data!r}: use one of {TRAINING_DATA}.")
    arrays = {s: load_arrays(layout, s, size, ros=training_data == "ros" and s == "train",
                             imbalance=imbalance)
              for s in SPLITS}
    if training_data == "synthetic":
        extra = synthetic_arrays(layout, size, imbalance)
        train = arrays["train"]
        arrays["train"] = SplitArrays(np.concatenate([train.images, extra.images]),
                                      np.concatenate([train.labels, extra.labels]),
                                      train.paths + extra.paths)
    return arrays
