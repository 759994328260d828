"""Framework-free model inputs: split rows decoded from the cache."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.config import Layout
from helpers.errors import UserError
from helpers.model_data import AugmentationParams, load_arrays, read_split_rows


def test_load_arrays_follows_the_split_csv(prepared_layout: Layout) -> None:
    rows = pd.read_csv(prepared_layout.split_csv)
    for split in ("train", "val", "test"):
        arrays = load_arrays(prepared_layout, split, 32)
        expected = rows[rows["split"] == split]
        assert arrays.images.shape == (len(expected), 32, 32) and arrays.images.dtype == "uint8"
        assert arrays.paths == expected["path"].tolist()
        assert arrays.labels.tolist() == expected["label_id"].tolist()
    positive = load_arrays(prepared_layout, "test", 32)
    bright = positive.images[:, 12:20, 12:20].mean(axis=(1, 2))
    assert (bright[positive.labels == 1] > 200).all() and (bright[positive.labels == 0] < 130).all()


def test_missing_cache_size_and_split_file_are_one_sentence(prepared_layout: Layout, tmp_path) -> None:
    with pytest.raises(UserError, match="run notebook 02 with IMAGE_SIZE=64"):
        load_arrays(prepared_layout, "train", 64)
    with pytest.raises(UserError, match="run notebook 02"):
        read_split_rows(Layout.of("toy", tmp_path), "train")
    with pytest.raises(ValueError, match="Only the training split"):
        read_split_rows(prepared_layout, "val", ros=True)


def test_augmentation_defaults_are_the_seeds() -> None:
    params = AugmentationParams()
    got = (params.rotation, params.shift, params.shear, params.zoom, params.flip)
    assert got == (15.0, 0.1, 0.1, 0.1, True)
