"""Keras inputs: what the model sees, in which batches, augmented where, per epoch.

Runs in a process of its own (TensorFlow and torch never share one): ``pytest
tests/keras/``.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.config import Layout
from helpers.data.arrays import SplitArrays
from helpers.keras.data import EpochBatches, load_datasets
from helpers.training.batches import Augmentation, epoch_batches, gather_batches

pytestmark = [pytest.mark.tensorflow, pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")]


def toy_arrays(n: int = 20) -> SplitArrays:
    images = np.random.default_rng(0).integers(0, 256, (n, 16, 16), dtype=np.uint8)
    return SplitArrays(images, np.arange(n) % 2, [f"img{i}.png" for i in range(n)])


def epoch_parts(batches: EpochBatches, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """What ``fit`` and ``predict`` read from the dataset once ``epoch`` has begun."""
    batches.set_epoch(epoch)
    return list(batches.dataset.as_numpy_iterator())


def whole_epoch(batches: EpochBatches, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    parts = epoch_parts(batches, epoch)
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def test_unshuffled_batches_are_the_grey_images_in_order() -> None:
    arrays = toy_arrays()
    batches = EpochBatches(arrays, 8, seed=0, shuffle=False)
    parts = epoch_parts(batches, 0)
    assert len(batches) == 3 and [len(y) for _, y in parts] == [8, 8, 4]
    x, y = parts[0]
    assert x.dtype == "float32" and x.shape == (8, 16, 16, 1) and y.shape == (8, 1)
    images, labels = whole_epoch(batches, 3)
    np.testing.assert_array_equal(images[..., 0], arrays.images.astype(np.float32))
    np.testing.assert_array_equal(labels[:, 0], arrays.labels)


def test_training_batches_are_the_framework_free_epoch_plan() -> None:
    arrays = toy_arrays()
    batches = EpochBatches(arrays, 8, seed=3, shuffle=True, augmentation=Augmentation())
    assert len(batches) == 2  # the last incomplete batch is dropped
    plan = epoch_batches(20, 8, seed=3, epoch=4, shuffle=True, drop_last=True)
    images, labels = whole_epoch(batches, 4)
    expected = np.concatenate([gather_batches(arrays.images, [b], Augmentation()) for b in plan])
    np.testing.assert_array_equal(images[..., 0], expected)
    np.testing.assert_array_equal(labels[:, 0], arrays.labels[np.concatenate([i for i, _ in plan])])
    assert not np.array_equal(whole_epoch(batches, 5)[0], images)  # another epoch, other images
    np.testing.assert_array_equal(whole_epoch(batches, 4)[0], images)  # replayable


def test_the_training_stream_reads_each_epoch_only_once_it_has_begun() -> None:
    """One iterator for the whole run (what ``fit`` keeps): the batches after ``set_epoch``
    are that epoch's, so nothing was read ahead from the epoch before."""
    arrays = toy_arrays(40)
    batches = EpochBatches(arrays, 8, seed=3, shuffle=True, augmentation=Augmentation())
    expected = {e: whole_epoch(batches, e)[0] for e in (0, 1, 2)}
    stream = iter(batches.stream)
    for epoch in (0, 1, 2):
        batches.set_epoch(epoch)
        images = np.concatenate([next(stream)[0].numpy() for _ in range(len(batches))])
        np.testing.assert_array_equal(images, expected[epoch])


def test_only_the_training_split_is_augmented(prepared_layout: Layout) -> None:
    data = load_datasets(prepared_layout, 32, 8, seed=7)
    assert data.summary().loc["train"].tolist() == [48, 16, 32]
    for split in ("val", "test"):
        images, _ = whole_epoch(data.batches[split], 5)
        np.testing.assert_array_equal(images[..., 0], data.arrays[split].images)
    plain = load_datasets(prepared_layout, 32, 8, seed=7, augmentation=None)
    augmented = whole_epoch(data.batches["train"], 0)[0]
    assert not np.array_equal(augmented, whole_epoch(plain.batches["train"], 0)[0])
    assert augmented.min() >= 0 and augmented.max() <= 255
