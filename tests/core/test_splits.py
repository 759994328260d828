"""Leakage-safe split, label encoding, the split files and oversampling."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.analysis.plots import plot_split_counts
from helpers.config import Layout
from helpers.data.datasets import chest_patient_id, class_folder_of, find_files, get_spec
from helpers.data.splits import (
    COLUMNS,
    EXCLUDED,
    SPLITS,
    _near_duplicate_clusters,
    fit_label_encoder,
    leakage_groups,
    load_split,
    make_split,
    oversample_train,
    split_config,
    split_counts,
    write_oversampled,
    write_split,
)
from helpers.errors import UserError

# The real chest set (the Kaggle folder you pass as DATA_DIR), for the checks on real data;
# without it those tests are skipped and say so.
CHEST_XRAY_DIR = os.environ.get("CHEST_XRAY_DIR", "")


def synthetic_index(n_patients: int = 300, seed: int = 0) -> pd.DataFrame:
    """A chest-like index: 1-4 images per patient, 27% negatives (the minority), some
    unknown patients, exact duplicates and near duplicates that cross patients."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = "NORMAL" if rng.random() < 0.27 else "PNEUMONIA"
        patient = "" if p % 10 == 0 else f"person{p}"
        official = rng.choice(["train", "train", "train", "val", "test"])
        for i in range(int(rng.integers(1, 5))):
            rows.append({"path": f"chest_xray/{official}/{label}/p{p}_{i}.jpeg", "label": label,
                         "official_split": official, "patient": patient,
                         "md5": f"{rng.integers(2**63):032x}",
                         "phash": f"{rng.integers(2**63):016x}"})
    df = pd.DataFrame(rows)
    for k in range(0, len(df) - 40, 40):  # exact copy of an image under another patient's row
        df.loc[k + 1, "md5"] = df.loc[k, "md5"]
    for k in range(20, len(df) - 40, 40):  # near duplicate: two bits flipped
        df.loc[k + 7, "phash"] = f"{int(df.loc[k, 'phash'], 16) ^ 0b101:016x}"
    df["near_copy"] = range(len(df))
    for k in range(30, len(df) - 40, 40):  # near copy (aligned thumbnails) under another patient
        df.loc[k + 5, "near_copy"] = df.loc[k, "near_copy"]
    return df


def manifest_index() -> pd.DataFrame:
    """The index notebook 01 would write for the real chest set under ``CHEST_XRAY_DIR``,
    built from its file names and MD5s without decoding an image."""
    if not CHEST_XRAY_DIR:
        pytest.skip("set CHEST_XRAY_DIR to the Kaggle chest X-ray folder to run the checks "
                    "on the real set")
    scan = find_files(get_spec("chest_xray"), Path(CHEST_XRAY_DIR))
    folders = {f: class_folder_of(f, scan.class_folders) for f in scan.files}
    files = [f for f, folder in folders.items() if folder]
    return pd.DataFrame({"path": files, "label": [scan.class_folders[folders[f]] for f in files],
                         "official_split": [f.split("/")[-3] for f in files],
                         "patient": [chest_patient_id(f) or "" for f in files],
                         "md5": [hashlib.md5((scan.root / f).read_bytes()).hexdigest()
                                 for f in files], "phash": "", "near_copy": range(len(files))})


@pytest.fixture(scope="module")
def spec():
    return get_spec("chest_xray")


@pytest.fixture(scope="module")
def index() -> pd.DataFrame:
    return synthetic_index()


def assert_leakage_safe(df: pd.DataFrame) -> None:
    for key in ("group", "md5", "near_dup", "near_copy"):
        assert df.groupby(key)["split"].nunique().max() == 1, key
    known = df[df["patient"] != ""]
    assert known.groupby("patient")["split"].nunique().max() == 1


def assert_stratified(df: pd.DataFrame, tolerance: float = 0.02) -> None:
    whole = df["label_id"].mean()
    for split, part in df.groupby("split"):
        share = part["label_id"].mean()
        assert abs(share - whole) <= tolerance, (split, share, whole)


def test_label_encoder_puts_the_positive_class_at_one() -> None:
    labels = pd.Series(["Healthy", "Brain Tumor", "Healthy"])  # the positive is first a-z
    encoder = fit_label_encoder(labels, "Brain Tumor")
    assert list(encoder.transform(labels)) == [0, 1, 0]
    assert list(encoder.inverse_transform([1, 0])) == ["Brain Tumor", "Healthy"]
    assert list(fit_label_encoder(labels, "Healthy").transform(labels)) == [1, 0, 1]
    with pytest.raises(UserError, match="POSITIVE_CLASS"):
        fit_label_encoder(labels, "Tumour")
    with pytest.raises(UserError, match="binary"):
        fit_label_encoder(pd.Series(["a", "b", "c"]), "a")


def test_leakage_groups_join_patients_duplicates_near_duplicates_and_near_copies() -> None:
    patient = pd.Series(["p1", "p1", "", "", "", "", "", "p2", "p3"])
    md5 = pd.Series(["m1", "m2", "m2", "m3", "m4", "m5", "m6", "m7", "m8"])
    near = pd.Series(["a", "b", "c", "d", "d", "e", "f", "g", "h"])
    copy = pd.Series([0, 1, 2, 3, 4, 5, 6, 7, 7])
    groups = leakage_groups(patient, md5, near, copy)
    assert list(groups) == [0, 0, 0, 1, 1, 2, 3, 4, 4]  # rows 5, 6: unknown patient links nothing


def test_an_index_without_near_copy_groups_asks_for_notebook_01_again(index, spec) -> None:
    with pytest.raises(UserError, match="run notebook 01 again"):
        make_split(index.drop(columns="near_copy"), spec)


def test_random_split_is_leakage_safe_stratified_and_80_10_10(index: pd.DataFrame, spec) -> None:
    df = make_split(index, spec, protocol="random", seed=42)
    assert len(df) == len(index) and list(df["path"]) == sorted(index["path"])
    assert_leakage_safe(df)
    assert_stratified(df)
    share = df["split"].value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.8, abs=0.03)
    assert share["val"] == pytest.approx(0.1, abs=0.02)
    assert share["test"] == pytest.approx(0.1, abs=0.02)


def test_real_chest_split_is_leakage_safe_and_stratified(spec) -> None:
    df = make_split(manifest_index(), spec, protocol="random", seed=42)
    assert_leakage_safe(df)
    assert_stratified(df)
    assert df["split"].value_counts().to_dict() == pytest.approx(
        {"train": 0.8 * len(df), "val": 0.1 * len(df), "test": 0.1 * len(df)}, rel=0.02)
    groups = split_config(df, spec, data_dir="/data", protocol="random", seed=42)["groups"]
    assert groups["duplicate_md5"] == 30 and groups["crossing_official_splits"] > 0


def official_index(seed: int = 0) -> pd.DataFrame:
    """The synthetic index plus patients seen in both the official test and train folders
    (as Kermany's personN_bacteria / personN_virus images of one id can be)."""
    df = synthetic_index(seed=seed)
    test_patients = df.loc[(df["official_split"] == "test") & (df["patient"] != ""), "patient"]
    rows = []
    for i, patient in enumerate(test_patients.unique()[:12]):
        first = df[df["patient"] == patient].iloc[0]
        for j in range(1 + i % 3):
            rows.append({**first.to_dict(), "official_split": "train",
                         "path": f"chest_xray/train/{first['label']}/{patient}_virus_{j}.jpeg",
                         "md5": f"extra{i}_{j}", "phash": f"{(i * 7 + j) << 40:016x}"})
    return pd.concat([df, pd.DataFrame(rows)], ignore_index=True)


@pytest.fixture(scope="module")
def official(spec) -> pd.DataFrame:
    return make_split(official_index(), spec, protocol="official", seed=42)


def test_official_split_keeps_the_published_test_set_exactly(official: pd.DataFrame) -> None:
    index = official_index()
    published = sorted(index.loc[index["official_split"] == "test", "path"])
    assert list(official.loc[official["split"] == "test", "path"]) == published
    assert set(official["split"]) == {"train", "val", "test", EXCLUDED}


def test_official_split_excludes_groups_reaching_into_the_test_set(official: pd.DataFrame) -> None:
    kept = official[~official["excluded"]]
    assert_leakage_safe(kept)  # no group, patient, md5 or near-duplicate spans two splits
    test_groups = set(official.loc[official["split"] == "test", "group"])
    reaching = official["group"].isin(test_groups) & (official["official_split"] != "test")
    assert reaching.sum() >= 12  # the added patients, and duplicates crossing folders
    assert (official["excluded"] == reaching).all()
    assert (official.loc[official["excluded"], "split"] == EXCLUDED).all()
    train_val = official["split"].isin(["train", "val"])
    assert not official.loc[train_val, "group"].isin(test_groups).any()


def test_official_config_counts_the_excluded_images(official: pd.DataFrame, spec) -> None:
    config = split_config(official, spec, data_dir="/data", protocol="official", seed=42)
    excluded = official[official["excluded"]]
    groups = config["groups"]
    assert groups["excluded_images"] == len(excluded) > 0
    assert groups["excluded_groups"] == excluded["group"].nunique() > 0
    assert groups["excluded_images_per_class"] == {
        label: int((excluded["label"] == label).sum()) for label in ("NORMAL", "PNEUMONIA")}
    assert groups["excluded_groups_per_class"] == {
        label: excluded.loc[excluded["label"] == label, "group"].nunique()
        for label in ("NORMAL", "PNEUMONIA")}
    assert set(config["counts"]) == set(SPLITS)
    assert sum(n for part in config["counts"].values() for n in part.values()) == \
        config["n_images"] == len(official) - len(excluded)
    assert config["fractions"] == [0.8, 0.1, 0.1]
    assert groups["crossing_official_splits"] == \
        int((official.groupby("group")["official_split"].nunique() > 1).sum())
    table = split_counts(official)
    assert list(table.index) == ["train", "val", "test", EXCLUDED, "total"]
    assert table.loc[EXCLUDED, "total"] == len(excluded)
    assert table.loc["total", "total"] == len(official)


def test_official_moved_means_left_its_official_folder(official: pd.DataFrame) -> None:
    left = official["split"].isin(SPLITS) & (official["split"] != official["official_split"])
    assert (official["moved"] == left).all()
    assert not official.loc[official["excluded"], "moved"].any()
    assert official.loc[official["moved"], "official_split"].isin(["train", "val"]).all()
    assert (official["official_split"].eq("train") & official["split"].eq("val")).any()


def test_official_val_is_carved_grouped_and_stratified(official: pd.DataFrame) -> None:
    pool = official[official["split"].isin(["train", "val"])]
    val = pool[pool["split"] == "val"]
    assert pool.groupby("group")["split"].nunique().max() == 1
    assert len(val) == pytest.approx(len(pool) / 9, rel=0.25)  # 0.8 / 0.1: 1 fold of 9
    assert val["label_id"].mean() == pytest.approx(pool["label_id"].mean(), abs=0.03)


def test_official_split_is_deterministic_and_follows_seed_and_fractions(spec) -> None:
    index = official_index()
    first = make_split(index, spec, protocol="official", seed=42)
    shuffled = make_split(index.sample(frac=1, random_state=3), spec, protocol="official", seed=42)
    pd.testing.assert_frame_equal(first, shuffled)
    other_seed = make_split(index, spec, protocol="official", seed=7)
    assert (other_seed["split"] != first["split"]).any()
    assert (other_seed["split"] == "test").equals(first["split"] == "test")
    wider = make_split(index, spec, protocol="official", seed=42, fractions=(0.6, 0.3, 0.1))
    pool = wider["split"].isin(["train", "val"])
    assert (wider["split"] == "val").sum() == pytest.approx(pool.sum() / 3, rel=0.2)  # 2 : 1
    assert (wider["split"] == "val").sum() > 2 * (first["split"] == "val").sum()
    assert (wider["split"] == "test").equals(first["split"] == "test")
    assert wider["excluded"].equals(first["excluded"])


def test_official_split_files_leave_the_excluded_images_out(tmp_path: Path, official: pd.DataFrame,
                                                             spec) -> None:
    layout = Layout.of("chest_xray", tmp_path)
    config = split_config(official, spec, data_dir="/data", protocol="official", seed=42)
    write_split(layout, official, config)
    df, saved = load_split(layout)
    assert list(df.columns) == COLUMNS and set(df["split"]) == set(SPLITS)
    assert list(df["path"]) == list(official.loc[~official["excluded"], "path"])
    assert len(df) == saved["n_images"]
    wider = split_config(official, spec, data_dir="/data", protocol="official", seed=42,
                         fractions=(0.7, 0.2, 0.1))
    with pytest.raises(UserError, match="fractions"):
        write_split(layout, official, wider)  # the fractions define an official split too


def test_official_split_of_the_real_chest_set_keeps_the_624_test_images(spec) -> None:
    df = make_split(manifest_index(), spec, protocol="official", seed=42)
    test = df[df["split"] == "test"]
    assert test["label"].value_counts().to_dict() == {"PNEUMONIA": 390, "NORMAL": 234}
    assert_leakage_safe(df[~df["excluded"]])
    config = split_config(df, spec, data_dir="/data", protocol="official", seed=42)
    assert config["groups"]["excluded_images"] == df["excluded"].sum() > 0


def test_official_split_needs_an_official_split(index: pd.DataFrame, spec) -> None:
    with pytest.raises(UserError, match="PROTOCOL = 'random'"):
        make_split(index.assign(official_split=""), spec, protocol="official")
    with pytest.raises(UserError, match="protocol"):
        make_split(index, spec, protocol="kermany")
    tiny = pd.DataFrame({"path": [f"{s}/{label}/{i}.jpeg" for s, label, i in
                                  (("test", "NORMAL", 0), ("test", "PNEUMONIA", 1),
                                   ("train", "NORMAL", 2), ("train", "PNEUMONIA", 3))],
                         "label": ["NORMAL", "PNEUMONIA"] * 2,
                         "official_split": ["test", "test", "train", "train"],
                         "patient": "", "md5": list("abcd"), "phash": "", "near_copy": range(4)})
    with pytest.raises(UserError, match="too few for a 9-fold validation split"):
        make_split(tiny, spec, protocol="official")


def write(root: Path, index: pd.DataFrame, spec, seed: int = 42, data_dir: str = "/data") -> Layout:
    layout = Layout.of("chest_xray", root)
    df = make_split(index, spec, protocol="random", seed=seed)
    write_split(layout, df, split_config(df, spec, data_dir=data_dir, protocol="random", seed=seed))
    return layout


def test_split_files_follow_the_contract(tmp_path: Path, index: pd.DataFrame, spec) -> None:
    layout = write(tmp_path, index, spec)
    df, config = load_split(layout)
    assert list(df.columns) == COLUMNS
    assert list(df["path"]) == sorted(df["path"]) and len(df) == len(index)
    assert df["label_id"].dtype.kind == "i" and df["group"].dtype.kind == "i"
    assert config["classes"] == {"NORMAL": 0, "PNEUMONIA": 1}
    assert config["data_dir"] == str(Path("/data").resolve())
    assert config["counts"]["test"] == df[df["split"] == "test"]["label"].value_counts().to_dict()
    assert sum(n for split in config["counts"].values() for n in split.values()) == len(df)
    assert json.loads(layout.split_config.read_text()) == config


def test_same_parameters_give_identical_bytes(tmp_path: Path, index: pd.DataFrame, spec) -> None:
    first = write(tmp_path / "a", index, spec).split_csv.read_bytes()
    shuffled = index.sample(frac=1, random_state=1)  # index order must not matter
    assert write(tmp_path / "b", shuffled, spec).split_csv.read_bytes() == first
    assert write(tmp_path / "c", index, spec, seed=7).split_csv.read_bytes() != first


def test_existing_split_is_kept_or_guarded(tmp_path: Path, index: pd.DataFrame, spec) -> None:
    layout = write(tmp_path, index, spec)
    written = layout.split_csv.read_bytes(), layout.split_config.read_bytes()
    write(tmp_path, index, spec)  # same parameters: the files are left as they are
    assert (layout.split_csv.read_bytes(), layout.split_config.read_bytes()) == written
    layout.split_csv.write_bytes(written[0][: len(written[0]) // 2])
    with pytest.raises(UserError, match="does not match its record.*run notebook 02 again"):
        write(tmp_path, index, spec)  # a damaged CSV is never taken for the split
    layout.split_csv.write_bytes(written[0])
    with pytest.raises(UserError, match="seed.*delete it"):
        write(tmp_path, index, spec, seed=7)
    with pytest.raises(UserError, match="data_dir.*another ROOT"):
        write(tmp_path, index, spec, data_dir="/elsewhere")


def test_load_split_without_a_split_says_to_run_notebook_02(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run notebook 02"):
        load_split(Layout.of("chest_xray", tmp_path))


def test_oversampling_balances_train_only(tmp_path: Path, index: pd.DataFrame, spec) -> None:
    df = make_split(index, spec, seed=42)
    before = df.copy()
    ros = oversample_train(df, seed=42)
    pd.testing.assert_frame_equal(df, before)
    assert set(ros["split"]) == {"train"} and list(ros.columns) == COLUMNS
    counts = ros["label_id"].value_counts()
    assert counts[0] == counts[1] == df[df["split"] == "train"]["label_id"].value_counts().max()
    train = df[df["split"] == "train"]
    assert set(ros["path"]) == set(train["path"])  # every training image, no other
    assert ros["path"].value_counts()[lambda c: c > 1].index.isin(
        train.loc[train["label"] == "NORMAL", "path"]).all()  # only the minority repeats
    layout = Layout.of("chest_xray", tmp_path)
    pd.testing.assert_frame_equal(pd.read_csv(write_oversampled(layout, ros), keep_default_na=False,
                                              dtype={"md5": str}), ros, check_dtype=False)
    fig = plot_split_counts(df, ros)
    assert len(fig.axes) == 2 and len(fig.axes[1].patches) == 6


def test_near_duplicates_use_the_spec_distance_and_mirrored_copies() -> None:
    base, flipped = 0x0F0F_0F0F_0F0F_0F0F, 0xF0F0_F0F0_F0F0_F0F0
    index = pd.DataFrame({
        "path": ["a.png", "b.png", "c.png", "d.png"],
        "label": ["Healthy", "Healthy", "Tumor", "Tumor"],
        "official_split": "", "patient": "", "md5": ["1", "2", "3", "4"],
        "phash": [f"{base:016x}", f"{base ^ 0b11:016x}", f"{flipped:016x}", f"{0x1234:016x}"],
        "phash_mirror": [f"{flipped:016x}", f"{flipped ^ 0b11:016x}", f"{base:016x}",
                         f"{0x4321:016x}"]})
    near = get_spec("brain_tumor").near_duplicate_distance
    brain = _near_duplicate_clusters(index["phash"], index["phash_mirror"], near)
    assert brain[0] == brain[1] == brain[2] != brain[3]  # 2 bits apart, and a mirrored copy
    chest = _near_duplicate_clusters(index["phash"], None,
                                     get_spec("chest_xray").near_duplicate_distance)
    assert len(set(chest)) == 4  # chest X-rays: exact perceptual matches only
