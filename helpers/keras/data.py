"""Keras inputs from the framework-free split arrays (the mirror of ``helpers.torch.data``).

Each split is decoded once (``helpers.data.arrays.load_arrays``) into a uint8 array. At the
start of every epoch :class:`EpochSetter` computes that epoch's batches
(``helpers.training.batches.epoch_batches``), the training ones augmented in uint8 with OpenCV exactly as
the PyTorch side does, into a variable that a ``tf.data`` pipeline slices batch by batch;
so a batch depends on (seed, epoch, batch) alone and a resumed run replays the same
batches. Batches are grey (B, s, s, 1) in 0-255; the model turns them into the backbone's
input itself (its first layer, ``preprocess_input``), so real and synthetic images and a
reloaded model all see the same preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from helpers.config import Layout
from helpers.data.arrays import SplitArrays, split_summary
from helpers.data.training_data import load_all_arrays
from helpers.training.batches import Augmentation, epoch_batches, gather_batches


class EpochBatches:
    """One split's batches as (images (B, s, s, 1) float32 0-255, labels (B, 1) float32);
    ``dataset`` is one epoch's (what ``predict`` and validation take), ``stream`` every
    epoch's (what ``fit`` trains on).

    ``shuffle`` (training): a fresh order every epoch and a last incomplete batch dropped,
    so BatchNorm never sees a single image. Not a ``keras.utils.PyDataset``: Keras feeds
    one through ``tf.data.Dataset.from_generator``, and a Python function inside the
    pipeline doubled the step time of ResNet50 on one 2-core machine (4.7 against 2.4 s
    per step of 32 images at 64 px; 8% on another); slicing a variable costs nothing.
    """

    def __init__(self, arrays: SplitArrays, batch_size: int, *, seed: int, shuffle: bool,
                 augmentation: Augmentation | None = None) -> None:
        self.arrays, self.batch_size, self.seed = arrays, batch_size, seed
        self.shuffle, self.augmentation = shuffle, augmentation
        images, labels = self._epoch(0)
        sizes = np.array([len(idx) for idx, _ in self.plan])
        bounds = np.stack([np.cumsum(sizes) - sizes, np.cumsum(sizes)], axis=1)
        with tf.device("/CPU:0"):  # tf.data runs on the host: the batches live there too
            self._images = tf.Variable(images, trainable=False)
            self._labels = tf.Variable(labels, trainable=False)
        self.dataset = tf.data.Dataset.from_tensor_slices(bounds).map(self._slice)

    @cached_property
    def stream(self) -> tf.data.Dataset:
        """Every epoch's batches one after another, for ``fit(steps_per_epoch=len(self))``:
        Keras then keeps one iterator for the run instead of making one per epoch (that
        stalled 1 in 10 epochs for 4-9 s at 64 px, docs/results.md). Nothing may read ahead,
        or a batch would be sliced before ``set_epoch`` filled its epoch: no prefetch."""
        options = tf.data.Options()
        options.autotune.enabled = False
        options.experimental_optimization.inject_prefetch = False
        options.experimental_optimization.map_parallelization = False
        return self.dataset.repeat().with_options(options)

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``epoch``'s batches, concatenated: images (N, s, s, 1) uint8, labels (N, 1)."""
        self.plan = epoch_batches(len(self.arrays), self.batch_size, seed=self.seed,
                                  epoch=epoch, shuffle=self.shuffle, drop_last=self.shuffle)
        images = gather_batches(self.arrays.images, self.plan, self.augmentation)
        labels = self.arrays.labels[np.concatenate([idx for idx, _ in self.plan])]
        return images[..., None], labels.astype(np.float32)[:, None]

    def _slice(self, bound: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images = tf.cast(self._images[bound[0]:bound[1]], tf.float32)
        return images, self._labels[bound[0]:bound[1]]

    def set_epoch(self, epoch: int) -> None:
        """Compute ``epoch``'s batches; the dataset hands them out from now on."""
        images, labels = self._epoch(epoch)
        self._images.assign(images)
        self._labels.assign(labels)

    def __len__(self) -> int:
        return len(self.plan)


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
                  training_data: str = "original", imbalance: str = "natural",
                  augmentation: Augmentation | None = Augmentation()) -> KerasData:
    """Train (shuffled and augmented with ``seed``), val and test; ``training_data``
    "ros" takes the oversampled training rows, ``imbalance`` a setting's training rows
    (``helpers.data.imbalance``).

    ``augmentation=None`` trains on the images as they are.
    """
    arrays = load_all_arrays(layout, size, training_data, imbalance)
    batches = {s: EpochBatches(a, batch_size, seed=seed, shuffle=s == "train",
                               augmentation=augmentation if s == "train" else None)
               for s, a in arrays.items()}
    return KerasData(arrays, batches, augmentation)
