"""Keras inputs from the framework-free split arrays (the mirror of ``helpers.torch_data``).

Each split is decoded once (``helpers.model_data.load_arrays``) into a uint8 array; a
``keras.utils.PyDataset`` hands out one epoch's batches (``helpers.model_data.
epoch_batches``), the training ones augmented in uint8 with OpenCV exactly as the PyTorch
side does. Batches are grey (B, s, s, 1) in 0-255; the model turns them into the
backbone's input itself (its first layer, ``preprocess_input``), so real and synthetic
images and a reloaded model all see the same preprocessing. Which epoch a batch belongs
to is set by :class:`EpochSetter` at the start of every epoch, so a batch depends on
(seed, epoch, batch) alone and a resumed run replays the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pandas as pd

from .config import Layout
from .model_data import (Augmentation, SplitArrays, epoch_batches, gather_batches,
                         load_all_arrays, split_summary)


class EpochBatches(keras.utils.PyDataset):
    """One split's batches as (images (B, s, s, 1) float32 0-255, labels (B, 1) float32).

    ``shuffle`` (training): a fresh order every epoch and a last incomplete batch dropped,
    so BatchNorm never sees a single image. In-process (no Keras workers): a worker
    would fetch ahead of :meth:`set_epoch`, and the step, not the loader, is the bottleneck.
    """

    def __init__(self, arrays: SplitArrays, batch_size: int, *, seed: int, shuffle: bool,
                 augmentation: Augmentation | None = None) -> None:
        super().__init__()
        self.arrays, self.batch_size, self.seed = arrays, batch_size, seed
        self.shuffle, self.augmentation = shuffle, augmentation
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.plan = epoch_batches(len(self.arrays), self.batch_size, seed=self.seed,
                                  epoch=epoch, shuffle=self.shuffle, drop_last=self.shuffle)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        batch = self.plan[index]
        images = gather_batches(self.arrays.images, [batch], self.augmentation)
        labels = self.arrays.labels[batch[0]].astype(np.float32)[:, None]
        return images[..., None].astype(np.float32), labels


class EpochSetter(keras.callbacks.Callback):
    """Points the training batches at each epoch as it begins (0-based, as Keras counts)."""

    def __init__(self, batches: EpochBatches) -> None:
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches.set_epoch(epoch)


@dataclass(frozen=True)
class KerasData:
    """The three splits as arrays (paths and labels for the results) and as batches."""

    arrays: dict[str, SplitArrays]
    batches: dict[str, EpochBatches]
    augmentation: Augmentation | None

    def summary(self) -> pd.DataFrame:
        """Images, positives and negatives per split."""
        return split_summary(self.arrays)


def load_datasets(layout: Layout, size: int, batch_size: int, seed: int, *,
                  training_data: str = "original",
                  augmentation: Augmentation | None = Augmentation()) -> KerasData:
    """Train (shuffled and augmented with ``seed``), val and test; ``training_data``
    "ros" takes the oversampled training rows.

    ``augmentation=None`` trains on the images as they are.
    """
    arrays = load_all_arrays(layout, size, training_data)
    batches = {s: EpochBatches(a, batch_size, seed=seed, shuffle=s == "train",
                               augmentation=augmentation if s == "train" else None)
               for s, a in arrays.items()}
    return KerasData(arrays, batches, augmentation)
