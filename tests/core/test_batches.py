"""The batches of an epoch and the training augmentation, for both frameworks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from helpers.training.batches import _BORDERS, Augmentation, epoch_batches, gather_batches


def test_augmentation_defaults_are_the_seeds() -> None:
    params = Augmentation()
    got = (params.rotation, params.shift, params.shear, params.zoom, params.flip)
    assert got == (15.0, 0.1, 0.1, 0.1, True)


def test_epoch_batches_depend_on_seed_and_epoch_only() -> None:
    plan = epoch_batches(50, 8, seed=1, epoch=3, shuffle=True, drop_last=True)
    again = epoch_batches(50, 8, seed=1, epoch=3, shuffle=True, drop_last=True)
    assert [len(i) for i, _ in plan] == [8] * 6  # the last 2 rows dropped
    assert all(np.array_equal(a, b) and s == t for (a, s), (b, t) in zip(plan, again))
    other = epoch_batches(50, 8, seed=1, epoch=4, shuffle=True, drop_last=True)
    assert not np.array_equal(plan[0][0], other[0][0])
    ordered = epoch_batches(10, 4, seed=1, epoch=3, shuffle=False)
    assert [i.tolist() for i, _ in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(epoch_batches(5, 8, seed=0, epoch=0, shuffle=True, drop_last=True)) == 1


def test_gathered_batches_do_not_depend_on_their_grouping() -> None:
    images = np.random.default_rng(0).integers(0, 256, (40, 16, 16), dtype=np.uint8)
    plan = epoch_batches(40, 8, seed=2, epoch=0, shuffle=True)
    together = gather_batches(images, plan, Augmentation())
    apart = np.concatenate([gather_batches(images, [b], Augmentation()) for b in plan])
    assert np.array_equal(together, apart)
    plain = gather_batches(images, plan[:1], None)
    assert np.array_equal(plain, images[plan[0][0]])


def test_each_image_gets_its_own_augmentation() -> None:
    images = np.random.default_rng(9).integers(0, 256, (32, 16, 16), dtype=np.uint8)
    rng = np.random.default_rng(0)
    identity = Augmentation(rotation=0, shift=0, shear=0, zoom=0, flip=False)
    assert np.array_equal(identity(images, rng), images)
    flipped = Augmentation(rotation=0, shift=0, shear=0, zoom=0, flip=True)(images, rng)
    mirrored = np.array([np.array_equal(f, i[:, ::-1]) for f, i in zip(flipped, images)])
    kept = np.array([np.array_equal(f, i) for f, i in zip(flipped, images)])
    assert np.all(mirrored ^ kept) and 0 < int(mirrored.sum()) < 32
    augmented = Augmentation()(images, rng)
    assert augmented.dtype == np.uint8 and augmented.shape == images.shape
    assert len({a.tobytes() for a in augmented}) == 32


def test_augmentation_maps_keep_the_centre_and_shift_within_range() -> None:
    rng = np.random.default_rng(0)
    unshifted = Augmentation(shift=0).matrices(100, 9, rng)
    assert np.allclose(unshifted @ [4, 4, 1], 4)  # rotation, shear, zoom, flip about the centre
    shifted = Augmentation(rotation=0, shear=0, zoom=0, flip=False).matrices(100, 9, rng)
    assert np.allclose(shifted[:, :, :2], np.eye(2))
    assert np.abs(shifted[:, :, 2]).max() <= 0.9 and shifted[:, :, 2].std() > 0.3  # 0.1 x 9 px


@pytest.mark.parametrize("fill_mode, black_pixels", [("nearest", False), ("constant", True)])
def test_fill_mode_as_keras_names_it(fill_mode: str, black_pixels: bool) -> None:
    white = np.full((8, 16, 16), 255, dtype=np.uint8)
    moved = Augmentation(rotation=30, fill_mode=fill_mode)(white, np.random.default_rng(0))
    assert bool((moved == 0).any()) == black_pixels


@pytest.mark.parametrize("fill_mode", sorted(_BORDERS))
@pytest.mark.parametrize("size", [16, 64])
def test_padded_warp_matches_opencv_border_modes_within_one_grey_level(fill_mode: str,
                                                                       size: int) -> None:
    augmentation = Augmentation(rotation=30, shift=0.2, zoom=0.2, fill_mode=fill_mode)
    images = np.random.default_rng(size).integers(0, 256, (32, size, size), dtype=np.uint8)
    matrices = augmentation.matrices(32, size, np.random.default_rng(1))
    reference = np.stack([cv2.warpAffine(image, matrix, (size, size),
                                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=_BORDERS[fill_mode])
                          for image, matrix in zip(images, matrices)])
    difference = np.abs(augmentation.warp(images, matrices).astype(int) - reference)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01
