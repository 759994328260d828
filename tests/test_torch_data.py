"""The torch input pipeline: shapes, augmentation on train only, seeded order."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from helpers.config import Layout
from helpers.model_data import read_split_rows
from helpers.torch_data import (_BORDERS, Augmentation, ImageArrayDataset, TorchData,
                                load_datasets, make_batches)

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


def test_each_image_gets_its_own_augmentation() -> None:
    images = torch.randint(0, 256, (32, 1, 16, 16), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    identity = Augmentation(rotation=0, shift=0, shear=0, zoom=0, flip=False)
    assert torch.equal(identity(images, generator), images)
    flipped = Augmentation(rotation=0, shift=0, shear=0, zoom=0, flip=True)(images, generator)
    mirrored = torch.tensor([torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images)])
    kept = torch.tensor([torch.equal(f, i) for f, i in zip(flipped, images)])
    assert torch.all(mirrored ^ kept) and 0 < int(mirrored.sum()) < 32
    augmented = Augmentation()(images, generator)
    assert augmented.dtype == torch.uint8 and augmented.shape == images.shape
    assert len({a.numpy().tobytes() for a in augmented}) == 32


def test_augmentation_maps_keep_the_centre_and_shift_within_range() -> None:
    generator = torch.Generator().manual_seed(0)
    unshifted = Augmentation(shift=0).matrices(100, 9, generator)
    assert np.allclose(unshifted @ [4, 4, 1], 4)  # rotation, shear, zoom, flip about the centre
    shifted = Augmentation(rotation=0, shear=0, zoom=0, flip=False).matrices(100, 9, generator)
    assert np.allclose(shifted[:, :, :2], np.eye(2))
    assert np.abs(shifted[:, :, 2]).max() <= 0.9 and shifted[:, :, 2].std() > 0.3  # 0.1 x 9 px


@pytest.mark.parametrize("fill_mode, black_pixels", [("nearest", False), ("constant", True)])
def test_fill_mode_as_keras_names_it(fill_mode: str, black_pixels: bool) -> None:
    white = torch.full((8, 1, 16, 16), 255, dtype=torch.uint8)
    moved = Augmentation(rotation=30, fill_mode=fill_mode)(white, torch.Generator().manual_seed(0))
    assert bool((moved == 0).any()) == black_pixels


@pytest.mark.parametrize("fill_mode", sorted(_BORDERS))
@pytest.mark.parametrize("size", [16, 64])
def test_padded_warp_matches_opencv_border_modes_within_one_grey_level(fill_mode: str,
                                                                       size: int) -> None:
    augmentation = Augmentation(rotation=30, shift=0.2, zoom=0.2, fill_mode=fill_mode)
    images = torch.randint(0, 256, (32, 1, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(size))
    matrices = augmentation.matrices(32, size, torch.Generator().manual_seed(1))
    reference = np.stack([cv2.warpAffine(image[0], matrix, (size, size),
                                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=_BORDERS[fill_mode])
                          for image, matrix in zip(images.numpy(), matrices)])
    difference = np.abs(augmentation.warp(images, matrices)[:, 0].numpy().astype(int) - reference)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


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
        monkeypatch.setattr("helpers.torch_data.TRANSFER_IMAGES", transfer)
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
    data = load_datasets(layout, 32, 8, seed=0, ros=True)
    assert len(data.arrays["train"]) == 64 and int(data.arrays["train"].labels.sum()) == 32
    assert len(data.arrays["val"]) == 16
    assert len(data.batches["train"]) == 8
