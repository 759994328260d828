"""Imbalance as a variable: the minority training images subsampled to a ratio, by whole
groups, seeded and written once; validation and test untouched; every scenario follows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers.config import Layout, get_profile
from helpers.data import imbalance
from helpers.data.arrays import read_split_rows
from helpers.data.split_file import write_split_file
from helpers.data.splits import load_split
from helpers.data.synthetic import gan_images, minority_class, write_synthetic_set
from helpers.data.training_data import load_all_arrays
from helpers.errors import UserError
from helpers.training.grid import GridJob, plan_grid
from helpers.training.runs import RunSpec
from helpers.training.scenarios import class_counts, class_weights, ldam_margins


@pytest.mark.parametrize("value, expected", [(None, "natural"), ("", "natural"),
                                             ("Natural", "natural"), (10, "10"), ("30", "30"),
                                             (12.5, "12.5"), ("10.0", "10")])
def test_settings_are_normalised(value: object, expected: str) -> None:
    assert imbalance.normalise(value) == expected


@pytest.mark.parametrize("value", ["ten", 1, 0.5, -3, "inf"])
def test_a_bad_setting_is_one_sentence(value: object) -> None:
    with pytest.raises(UserError, match="IMBALANCE"):
        imbalance.normalise(value)


def test_several_settings_keep_their_order_without_repeats() -> None:
    assert imbalance.settings("natural, 10,30,10") == ["natural", "10", "30"]
    assert imbalance.settings(["natural", 10.0, 30]) == ["natural", "10", "30"]
    assert imbalance.settings(30) == ["30"] and imbalance.settings("") == ["natural"]
    assert imbalance.settings("[natural, 10]") == ["natural", "10"]  # as -p writes a list


def grouped_train(seed: int = 0) -> pd.DataFrame:
    """Training rows with groups of 1-5 images: 400 majority (label 1), about 200 minority."""
    rng = np.random.default_rng(seed)
    rows, group = [], 0
    for label, total in ((1, 400), (0, 200)):
        made = 0
        while made < total:
            size = int(rng.integers(1, 6))
            rows += [{"path": f"{label}/{group}/{i}.png", "label": str(label), "label_id": label,
                      "split": "train", "group": group, "md5": f"{group}-{i}"}
                     for i in range(size)]
            made, group = made + size, group + 1
    return pd.DataFrame(rows).sort_values("path").reset_index(drop=True)


@pytest.mark.parametrize("ratio", [4.0, 10.0, 30.0])
def test_subsample_keeps_whole_groups_and_the_ratio_within_one_group(ratio: float) -> None:
    train = grouped_train()
    kept = imbalance.subsample_minority(train, ratio, seed=42)
    sizes = train.groupby("group").size()
    kept_sizes = kept.groupby("group").size()
    assert (kept_sizes == sizes[kept_sizes.index]).all()  # every kept group whole
    majority = train[train["label_id"] == 1]
    assert kept[kept["label_id"] == 1]["path"].tolist() == majority["path"].tolist()
    n_minority = int((kept["label_id"] == 0).sum())
    assert abs(n_minority - len(majority) / ratio) <= sizes.max()
    assert set(kept["path"]) <= set(train["path"])


def test_subsample_is_seeded_deterministic_and_nested_across_ratios() -> None:
    train = grouped_train()
    again = imbalance.subsample_minority(train, 10, seed=42)
    assert again.equals(imbalance.subsample_minority(train, 10, seed=42))
    assert not again.equals(imbalance.subsample_minority(train, 10, seed=43))
    stronger = imbalance.subsample_minority(train, 30, seed=42)
    assert set(stronger["path"]) <= set(again["path"])


def test_a_ratio_below_the_natural_one_says_what_to_use() -> None:
    with pytest.raises(UserError, match=r"already 1 : 1\.\d\d: IMBALANCE 1.5"):
        imbalance.subsample_minority(grouped_train(), 1.5, seed=42)


def test_rows_are_written_once_and_validation_and_test_never_change(
        fresh_layout: Layout) -> None:
    record = imbalance.write_training_rows(fresh_layout, 4)
    csv = fresh_layout.imbalanced_csv("4")
    assert record["counts"] == {"0": 32, "1": 8} and record["achieved_ratio"] == 4.0
    assert json.loads(csv.with_suffix(".json").read_text()) == record
    stamp = csv.stat().st_mtime_ns
    assert imbalance.write_training_rows(fresh_layout, "4.0") == record
    assert csv.stat().st_mtime_ns == stamp
    natural = read_split_rows(fresh_layout, "train")
    kept = read_split_rows(fresh_layout, "train", imbalance="4")
    assert set(kept["path"]) < set(natural["path"])
    assert kept[kept["label_id"] == 0]["path"].tolist() == \
        natural[natural["label_id"] == 0]["path"].tolist()
    for split in ("val", "test"):
        assert read_split_rows(fresh_layout, split, imbalance="4").equals(
            read_split_rows(fresh_layout, split))
    ros = read_split_rows(fresh_layout, "train", ros=True, imbalance="4")
    assert ros["label_id"].value_counts().to_dict() == {0: 32, 1: 32}
    assert set(ros["path"]) == set(kept["path"])


def test_rows_of_another_split_stop_the_run(fresh_layout: Layout) -> None:
    imbalance.write_training_rows(fresh_layout, 4)
    split, record = load_split(fresh_layout)
    split.loc[0, "md5"] = "changed"
    write_split_file(fresh_layout, split, record)  # another split, written as notebook 02 does
    with pytest.raises(UserError, match="another split"):
        imbalance.write_training_rows(fresh_layout, 4)


def test_a_setting_not_written_names_notebook_02(fresh_layout: Layout) -> None:
    with pytest.raises(UserError, match="notebook 02 with IMBALANCE"):
        read_split_rows(fresh_layout, "train", imbalance="8")


def test_every_scenario_trains_on_the_ratio(fresh_layout: Layout) -> None:
    imbalance.write_training_rows(fresh_layout, 4)
    original = load_all_arrays(fresh_layout, 32, "original", "4")
    counts = class_counts(original["train"].labels)
    assert counts == (32, 8)  # the loss weights and LDAM margins come from these
    assert class_weights(counts) == (40 / 64, 40 / 16)
    assert ldam_margins(counts)[1] == 0.5 and ldam_margins(counts)[0] < 0.5
    assert class_counts(load_all_arrays(fresh_layout, 32, "ros", "4")["train"].labels) == (32, 32)
    arrays, minority = gan_images(fresh_layout, 32, "4")  # the GAN sees the kept images only
    assert minority == minority_class(fresh_layout, "4") and minority.missing == 24
    assert set(arrays.paths) == set(original["train"].paths[i]
                                     for i in np.flatnonzero(original["train"].labels == 1))
    fake = np.zeros((24, 32, 32), np.uint8)
    write_synthetic_set(fresh_layout, 32, [fake], minority=minority, seed=1, iteration=1,
                        record={"count": 24}, imbalance="4")
    synthetic = load_all_arrays(fresh_layout, 32, "synthetic", "4")
    assert class_counts(synthetic["train"].labels) == (32, 32)
    assert sum(p.startswith("synthetic/") for p in synthetic["train"].paths) == 24
    for split in ("val", "test"):
        assert original[split].paths == load_all_arrays(fresh_layout, 32)[split].paths


def test_the_ratio_names_runs_and_grid_jobs() -> None:
    profile = get_profile("smoke")
    natural = RunSpec.for_profile("toy", "pytorch", profile, scenario="focal")
    strong = RunSpec.for_profile("toy", "pytorch", profile, scenario="focal", imbalance=10.0)
    assert natural.name == "pytorch-focal-scratch-seed42"
    assert strong.name == "pytorch-focal-scratch-seed42-r10" and strong.imbalance == "10"
    jobs = plan_grid("toy", "smoke", frameworks="pytorch", scenarios="baseline,ros",
                     seeds=[1, 2], imbalance="natural,10")
    assert [(j.seed, j.imbalance, j.scenario) for j in jobs] == [
        (s, r, sc) for s in (1, 2) for r in ("natural", "10") for sc in ("baseline", "ros")]
    assert GridJob.from_json(jobs[3].to_json()) == jobs[3]
    assert jobs[3].name.endswith("-r10")
