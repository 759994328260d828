"""tf.data pipelines of the Keras side: what the model sees, in which order, augmented where.

Runs in a process of its own (DESIGN.md section 4): ``pytest tests/test_keras_*.py``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from helpers.config import Layout
from helpers.keras_data import Augmentation, load_datasets, to_dataset
from helpers.model_data import SplitArrays

pytestmark = [pytest.mark.tensorflow, pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")]


def toy_arrays(n: int = 20) -> SplitArrays:
    images = np.random.default_rng(0).integers(0, 256, (n, 16, 16), dtype=np.uint8)
    return SplitArrays(images, np.arange(n) % 2, [f"img{i}.png" for i in range(n)])


def epochs(ds, n: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` passes over ``ds``, each as (all images, all labels)."""
    passes = [[(x.numpy(), y.numpy()) for x, y in ds] for _ in range(n)]
    return [tuple(np.concatenate(part) for part in zip(*batches)) for batches in passes]


def test_unshuffled_batches_are_the_images_as_three_channel_floats() -> None:
    arrays = toy_arrays()
    batches = list(to_dataset(arrays, 8))
    assert [len(y) for _, y in batches] == [8, 8, 4]
    x, y = batches[0]
    assert x.dtype == "float32" and x.shape == (8, 16, 16, 3) and y.shape == (8, 1)
    images = np.concatenate([b[0].numpy() for b in batches])
    for channel in range(3):
        np.testing.assert_array_equal(images[..., channel], arrays.images.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches])[:, 0], arrays.labels)


def test_training_order_is_seeded_and_reshuffled_every_epoch() -> None:
    arrays = toy_arrays()
    first, second = epochs(to_dataset(arrays, 8, shuffle_seed=3))
    again = epochs(to_dataset(arrays, 8, shuffle_seed=3))[0]
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], second[0])
    # Each epoch holds every image exactly once, with its own label.
    index = {img.tobytes(): i for i, img in enumerate(arrays.images.astype(np.float32))}
    order = [index[img[..., 0].tobytes()] for img in first[0]]
    assert sorted(order) == list(range(len(arrays)))
    np.testing.assert_array_equal(first[1][:, 0], arrays.labels[order])


def test_augmentation_layers_follow_the_thesis_settings() -> None:
    layers = Augmentation().layers(seed=1).layers
    assert [type(layer).__name__ for layer in layers] == [
        "RandomRotation", "RandomTranslation", "RandomShear", "RandomZoom", "RandomFlip"]
    rotation, shift, shear, zoom, flip = layers
    assert rotation.factor == pytest.approx((-15 / 360, 15 / 360))
    assert shift.height_factor == shift.width_factor == 0.1
    assert shear.x_factor == pytest.approx((-0.1, 0.1)) and shear.y_factor == (0.0, 0.0)
    assert zoom.height_factor == 0.1 and flip.mode == "horizontal"
    assert [type(layer).__name__ for layer in Augmentation(shear=0, flip=False).layers().layers] == [
        "RandomRotation", "RandomTranslation", "RandomZoom"]
    assert Augmentation(0, 0, 0, 0, False).layers() is None


def test_only_the_training_split_is_augmented_reproducibly(prepared_layout: Layout) -> None:
    keras.utils.set_random_seed(0)
    data = load_datasets(prepared_layout, 32, 8, seed=7)
    assert data.summary().loc["train"].tolist() == [48, 16, 32]
    for split in ("val", "test"):
        x = np.concatenate([b.numpy() for b, _ in data.datasets[split]])
        np.testing.assert_array_equal(x[..., 0], data.arrays[split].images)
    plain = load_datasets(prepared_layout, 32, 8, seed=7, augmentation=None)
    augmented = epochs(data.datasets["train"], 1)[0][0]
    assert not np.array_equal(augmented, epochs(plain.datasets["train"], 1)[0][0])
    assert augmented.min() >= 0 and augmented.max() <= 255
    again = load_datasets(prepared_layout, 32, 8, seed=7)
    np.testing.assert_array_equal(augmented, epochs(again.datasets["train"], 1)[0][0])
