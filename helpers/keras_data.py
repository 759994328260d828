"""tf.data pipelines for the Keras models, from the framework-free split arrays.

Images enter the model as 3-channel float32 in 0-255; the backbone's own
``preprocess_input`` is the model's first layer (``helpers.keras_models``), so real and
synthetic images, and a reloaded ``.keras`` file, all see the same preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .config import Layout
from .model_data import AugmentationParams, SplitArrays, load_all_arrays, split_summary


class Augmentation(AugmentationParams):
    """The shared augmentation parameters as Keras preprocessing layers (a factor of 0
    leaves its layer out)."""

    def layers(self, seed: int | None = None) -> keras.Sequential | None:
        """The layers, each seeded from ``seed``; None when every factor is 0."""
        def seeded(i: int) -> int | None:
            return None if seed is None else seed + i

        fill = self.fill_mode
        layers: list[keras.Layer] = []
        if self.rotation:
            layers.append(keras.layers.RandomRotation(self.rotation / 360.0, fill_mode=fill,
                                                      seed=seeded(1)))
        if self.shift:
            layers.append(keras.layers.RandomTranslation(self.shift, self.shift, fill_mode=fill,
                                                         seed=seeded(2)))
        if self.shear:
            layers.append(keras.layers.RandomShear(x_factor=self.shear, fill_mode=fill,
                                                   seed=seeded(3)))
        if self.zoom:
            layers.append(keras.layers.RandomZoom(self.zoom, fill_mode=fill, seed=seeded(4)))
        if self.flip:
            layers.append(keras.layers.RandomFlip("horizontal", seed=seeded(5)))
        return keras.Sequential(layers, name="augmentation") if layers else None


def to_dataset(arrays: SplitArrays, batch_size: int, *, shuffle_seed: int | None = None,
               augment: keras.Layer | None = None) -> tf.data.Dataset:
    """Batches of (images (B, s, s, 3) float32 0-255, labels (B, 1) float32).

    Shuffles (``shuffle_seed`` given: training) by index and gathers from the uint8 arrays
    held once in memory, so no ``.cache()`` is needed: caching the float copies would cost
    12 times the memory and save only a cast. ``augment`` runs on whole batches in
    training mode, sequentially so that its seeded random stream is reproducible.
    """
    images = tf.constant(arrays.images)
    labels = tf.constant(arrays.labels.astype(np.float32)[:, None])
    ds = tf.data.Dataset.range(len(arrays))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(arrays), seed=shuffle_seed, reshuffle_each_iteration=True)

    def gather(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(tf.gather(images, idx), tf.float32)
        return tf.repeat(x[..., None], 3, axis=-1), tf.gather(labels, idx)

    ds = ds.batch(batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y))
    return ds.prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class KerasData:
    """The three splits as arrays (paths and labels for the results) and as datasets."""

    arrays: dict[str, SplitArrays]
    datasets: dict[str, tf.data.Dataset]
    augmentation: Augmentation | None

    def summary(self) -> pd.DataFrame:
        """Images, positives and negatives per split."""
        return split_summary(self.arrays)


def load_datasets(layout: Layout, size: int, batch_size: int, seed: int, *, ros: bool = False,
                  augmentation: Augmentation | None = Augmentation()) -> KerasData:
    """Train (shuffled and augmented with ``seed``; ``ros``: oversampled rows), val and test.

    ``augmentation=None`` trains on the images as they are.
    """
    arrays = load_all_arrays(layout, size, ros)
    augment = augmentation.layers(seed) if augmentation is not None else None
    datasets = {s: to_dataset(a, batch_size, shuffle_seed=seed if s == "train" else None,
                              augment=augment if s == "train" else None)
                for s, a in arrays.items()}
    return KerasData(arrays, datasets, augmentation)
