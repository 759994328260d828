"""The torch input pipeline: shapes, augmentation on train only, seeded order."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.config import Layout
from helpers.data.arrays import read_split_rows
from helpers.torch.data import ImageArrayDataset, TorchData, load_datasets, make_batches
from helpers.training.batches import Augmentation, epoch_batches, gather_batches

pytestmark = pytest.mark.torch


def first_batch(data: TorchData, split: str, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iter(data.batches[split].epoch(epoch)))


def test_batches_are_the_cached_grey_uint8_images(prepared_layout: Layout) -> None:
    data = load_datasets(prepared_layout, 32, 8, seed=0)
    x, y = first_batch(data, "val")
    assert x.shape == (8, 1, 32, 32) and x.dtype == torch.uint8
    assert y.dtype == torch.float32 and set(y.tolist()) <= {0.0, 1.0}
    assert torch.equal(x[:, 0], torch.from_numpy(data.arrays["val"].images[:8]))
    assert torch.equal(y, torch.tensor(data.arrays["val"].labels[:8], dtype=torch.float32))
    assert [len(data.arrays[s]) for s in ("train", "val", "test")] == [48, 16, 16]


def test_augmentation_changes_training_images_only(prepared_layout: Layout) -> None:
    plain = load_datasets(prepared_layout, 32, 8, seed=3, augmentation=None)
    augmented = load_datasets(prepared_layout, 32, 8, seed=3)
    (xp, yp), (xa, ya) = first_batch(plain, "train"), first_batch(augmented, "train")
    assert torch.equal(yp, ya)  # same order, different pixels
    assert plain.augmentation is None and augmented.augmentation == Augmentation()
    assert not torch.allclose(xp, xa)
    for split in ("val", "test"):
        assert torch.equal(first_batch(plain, split)[0], first_batch(augmented, split, epoch=5)[0])


def test_seeded_order_is_reproducible_per_epoch_and_across_workers(prepared_layout: Layout) -> None:
    def epoch_of(data: TorchData, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(data.batches["train"].epoch(epoch))

    a = load_datasets(prepared_layout, 32, 8, seed=7)
    b = load_datasets(prepared_layout, 32, 8, seed=7, num_workers=2)
    assert len(a.batches["train"]) == 6
    for (xa, ya), (xb, yb) in zip(epoch_of(a, 3), epoch_of(b, 3), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    labels = [torch.cat([y for _, y in epoch_of(a, e)]) for e in (3, 4)]
    assert not torch.equal(*labels) and sorted(labels[0].tolist()) == sorted(labels[1].tolist())


def test_batches_do_not_depend_on_how_many_travel_together(monkeypatch: pytest.MonkeyPatch) -> None:
    images = np.random.default_rng(0).integers(0, 256, (50, 16, 16), dtype=np.uint8)
    dataset = ImageArrayDataset(images, np.arange(50) % 2, Augmentation())

    def batches(transfer: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        monkeypatch.setattr("helpers.torch.data.TRANSFER_IMAGES", transfer)
        made = make_batches(dataset, 8, seed=1, shuffle=True, device=torch.device("cpu"))
        assert len(made) == 6 and len(made.loader) == -(-6 // max(1, transfer // 8))
        return list(made.epoch(2))

    one, grouped = batches(8), batches(24)
    assert [len(y) for _, y in grouped] == [8] * 6
    for (xa, ya), (xb, yb) in zip(one, grouped, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_oversampled_training_rows(prepared_layout: Layout, tmp_path: Path) -> None:
    layout = Layout.of("toy", tmp_path)
    shutil.copytree(prepared_layout.root / "data", tmp_path / "data")
    rows = read_split_rows(layout, "train")
    pd.concat([rows, rows[rows["label_id"] == 1]]).to_csv(layout.ros_csv, index=False)
    data = load_datasets(layout, 32, 8, seed=0, training_data="ros")
    assert len(data.arrays["train"]) == 64 and int(data.arrays["train"].labels.sum()) == 32
    assert len(data.arrays["val"]) == 16
    assert len(data.batches["train"]) == 8


def test_batches_are_the_framework_free_epoch_plan(prepared_layout: Layout) -> None:
    data = load_datasets(prepared_layout, 32, 8, seed=5)
    images = data.arrays["train"].images
    plan = epoch_batches(len(images), 8, seed=5, epoch=2, shuffle=True, drop_last=True)
    for (x, y), batch in zip(data.batches["train"].epoch(2), plan, strict=True):
        expected = gather_batches(images, [batch], Augmentation())
        assert torch.equal(x[:, 0], torch.from_numpy(expected))
        assert y.tolist() == data.arrays["train"].labels[batch[0]].tolist()
