"""The GAN's data (the training split's minority class only) and the synthetic set on disk."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pandas as pd
import pytest

from helpers.config import Layout
from helpers.data.arrays import read_split_rows
from helpers.data.synthetic import (
    MANIFEST_COLUMNS,
    gan_images,
    load_synthetic_images,
    minority_class,
    mosaic,
    read_synthetic,
    synthetic_set_complete,
    to_uint8,
    write_synthetic_set,
)
from helpers.errors import UserError


def test_minority_is_the_smaller_training_class_and_the_gap_balances_it(
        prepared_layout: Layout) -> None:
    minority = minority_class(prepared_layout)
    train = read_split_rows(prepared_layout, "train")
    assert (minority.label, minority.label_id) == ("sick", 1)
    assert minority.n_minority == (train["label_id"] == 1).sum() == 16
    assert minority.n_majority == (train["label_id"] == 0).sum() == 32
    assert minority.missing == 16


def test_gan_sees_only_minority_training_images(prepared_layout: Layout) -> None:
    arrays, minority = gan_images(prepared_layout, 32)
    split = pd.read_csv(prepared_layout.split_csv).set_index("path")
    assert len(arrays) == minority.n_minority and arrays.images.shape == (16, 32, 32)
    assert set(split.loc[arrays.paths, "split"]) == {"train"}
    assert set(split.loc[arrays.paths, "label_id"]) == {minority.label_id}
    held_out = set(split.index[split["split"] != "train"])
    assert held_out and not held_out & set(arrays.paths)
    for path, image in zip(arrays.paths, arrays.images):  # the cached pixels, unchanged
        cached = cv2.imread(str(prepared_layout.cache_path(path, 32)), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(cached, image)


def test_to_uint8_maps_minus_one_to_black_and_one_to_white() -> None:
    out = to_uint8(np.array([[[[-1.0, 0.0, 1.0, 3.0]]]]))
    assert out.dtype == np.uint8 and out.tolist() == [[[0, 128, 255, 255]]]


def write(layout: Layout, images: np.ndarray, record: dict) -> pd.DataFrame:
    minority = minority_class(layout)
    return write_synthetic_set(layout, 32, [images[:10], images[10:]], minority=minority,
                               seed=7, iteration=4, record=record)


def test_synthetic_set_has_exact_count_manifest_and_checksums(fresh_layout: Layout) -> None:
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32), dtype=np.uint8)
    record = {"run": "gan", "count": 16}
    manifest = write(fresh_layout, images, record)
    assert list(manifest.columns) == MANIFEST_COLUMNS and len(manifest) == 16
    assert set(manifest["label"]) == {"sick"} and set(manifest["label_id"]) == {1}
    assert set(manifest["seed"]) == {7} and set(manifest["iteration"]) == {4}
    folder = fresh_layout.synthetic_dir(32)
    for row in manifest.itertuples():
        assert hashlib.md5((folder / row.file).read_bytes()).hexdigest() == row.md5
    assert np.array_equal(load_synthetic_images(fresh_layout, 32), images)  # lossless PNG
    rows = read_synthetic(fresh_layout, 32)
    assert all(p.startswith(str(folder)) for p in rows["path"])
    assert synthetic_set_complete(fresh_layout, 32, record)
    assert not synthetic_set_complete(fresh_layout, 32, {**record, "run": "other"})
    image = folder / manifest["file"][3]
    whole = image.read_bytes()
    image.write_bytes(whole[:40])  # cut short: its checksum no longer matches
    assert not synthetic_set_complete(fresh_layout, 32, record)
    image.unlink()
    assert not synthetic_set_complete(fresh_layout, 32, record)
    image.write_bytes(whole)
    assert synthetic_set_complete(fresh_layout, 32, record)
    (folder / "manifest.json").write_text("{garbage")
    assert not synthetic_set_complete(fresh_layout, 32, record)  # written again, not trusted


def test_a_wrong_count_leaves_no_manifest(fresh_layout: Layout) -> None:
    images = np.zeros((5, 32, 32), np.uint8)
    with pytest.raises(ValueError, match="expected 16"):
        write(fresh_layout, images, {"run": "gan", "count": 16})
    assert not (fresh_layout.synthetic_dir(32) / "manifest.csv").exists()


def test_missing_synthetic_set_names_notebook_05(fresh_layout: Layout) -> None:
    with pytest.raises(UserError, match="notebook 05"):
        read_synthetic(fresh_layout, 32)


def test_mosaic_tiles_images_with_gaps() -> None:
    images = np.full((10, 4, 4), 200, np.uint8)
    out = mosaic(images, columns=4)
    assert out.shape == (3 * 6 - 2, 4 * 6 - 2)
    assert out[0, 4] == 0 and out[0, 0] == 200 and out[-1, -1] == 0  # gap, image, empty slot
