"""Split rows decoded from the cache, and the training data of each kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.config import Layout
from helpers.data.arrays import load_arrays, read_split_rows, row_counts
from helpers.data.synthetic import minority_class, write_synthetic_set
from helpers.data.training_data import load_all_arrays
from helpers.errors import UserError


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


def test_synthetic_training_rows_balance_train_and_leave_val_test_real(fresh_layout: Layout) -> None:
    minority = minority_class(fresh_layout)
    images = np.full((minority.missing, 32, 32), 77, np.uint8)
    write_synthetic_set(fresh_layout, 32, [images], minority=minority, seed=1, iteration=2,
                        record={"run": "gan", "count": minority.missing})
    original = load_all_arrays(fresh_layout, 32, "original")
    mixed = load_all_arrays(fresh_layout, 32, "synthetic")
    train = mixed["train"]
    assert np.bincount(train.labels).tolist() == [minority.n_majority] * 2
    assert (train.images[len(original["train"]):] == 77).all()
    assert row_counts(train) == {"real": {"0": 32, "1": 16}, "synthetic": {"0": 0, "1": 16}}
    for split in ("val", "test"):  # synthetic rows are training rows only
        assert mixed[split].paths == original[split].paths
        assert not any(p.startswith("synthetic/") for p in mixed[split].paths)


def test_synthetic_rows_that_do_not_balance_the_split_stop_with_a_sentence(
        fresh_layout: Layout) -> None:
    with pytest.raises(UserError, match="run notebook 05"):
        load_all_arrays(fresh_layout, 32, "synthetic")
    minority = minority_class(fresh_layout)
    write_synthetic_set(fresh_layout, 32, [np.zeros((3, 32, 32), np.uint8)], minority=minority,
                        seed=1, iteration=2, record={"run": "gan", "count": 3})
    with pytest.raises(UserError, match="does not balance"):
        load_all_arrays(fresh_layout, 32, "synthetic")
