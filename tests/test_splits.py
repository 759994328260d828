"""Leakage-safe split, label encoding, the split files and oversampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.config import REPO_ROOT, Layout
from helpers.data import chest_patient_id, get_spec
from helpers.errors import UserError
from helpers.plots import plot_split_counts
from helpers.splits import (COLUMNS, _near_duplicate_clusters, fit_label_encoder,
                            leakage_groups, load_split, make_split, oversample_train, split_config, write_oversampled, write_split)

MANIFEST = REPO_ROOT.parent / "shared" / "datasets" / "chest_xray_224" / "manifest.csv"


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
    return df


def manifest_index() -> pd.DataFrame:
    """The index notebook 01 would write for the real chest set, built without reading images."""
    if not MANIFEST.exists():
        pytest.skip(f"real chest manifest not found at {MANIFEST}")
    m = pd.read_csv(MANIFEST)
    return pd.DataFrame({"path": m["file"], "label": m["label"], "official_split": m["split"],
                         "patient": [chest_patient_id(f) for f in m["file"]],
                         "md5": m["md5"], "phash": ""})


@pytest.fixture(scope="module")
def spec():
    return get_spec("chest_xray")


@pytest.fixture(scope="module")
def index() -> pd.DataFrame:
    return synthetic_index()


def assert_leakage_safe(df: pd.DataFrame) -> None:
    for key in ("group", "md5", "near_dup"):
        assert df.groupby(key)["split"].nunique().max() == 1, key
    known = df[df["patient"] != ""]
    assert known.groupby("patient")["split"].nunique().max() == 1


def assert_stratified(df: pd.DataFrame, tolerance: float = 0.02) -> None:
    whole = df["label_id"].mean()
    for split, part in df.groupby("split"):
        assert abs(part["label_id"].mean() - whole) <= tolerance, (split, part["label_id"].mean(), whole)


def test_label_encoder_puts_the_positive_class_at_one() -> None:
    labels = pd.Series(["Healthy", "Brain Tumor", "Healthy"])  # alphabetically the positive is first
    encoder = fit_label_encoder(labels, "Brain Tumor")
    assert list(encoder.transform(labels)) == [0, 1, 0]
    assert list(encoder.inverse_transform([1, 0])) == ["Brain Tumor", "Healthy"]
    assert list(fit_label_encoder(labels, "Healthy").transform(labels)) == [1, 0, 1]
    with pytest.raises(UserError, match="POSITIVE_CLASS"):
        fit_label_encoder(labels, "Tumour")
    with pytest.raises(UserError, match="binary"):
        fit_label_encoder(pd.Series(["a", "b", "c"]), "a")


def test_leakage_groups_join_patients_duplicates_and_near_duplicates() -> None:
    patient = pd.Series(["p1", "p1", "", "", "", "", ""])
    md5 = pd.Series(["m1", "m2", "m2", "m3", "m4", "m5", "m6"])
    near = pd.Series(["a", "b", "c", "d", "d", "e", "f"])
    groups = leakage_groups(patient, md5, near)
    assert list(groups) == [0, 0, 0, 1, 1, 2, 3]  # rows 5 and 6: unknown patient links nothing


def test_random_split_is_leakage_safe_stratified_and_80_10_10(index: pd.DataFrame, spec) -> None:
    df = make_split(index, spec, protocol="random", seed=42)
    assert len(df) == len(index) and list(df["path"]) == sorted(index["path"])
    assert_leakage_safe(df)
    assert_stratified(df)
    share = df["split"].value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.8, abs=0.03)
    assert share["val"] == pytest.approx(0.1, abs=0.02) and share["test"] == pytest.approx(0.1, abs=0.02)


def test_real_chest_split_is_leakage_safe_and_stratified(spec) -> None:
    df = make_split(manifest_index(), spec, protocol="random", seed=42)
    assert_leakage_safe(df)
    assert_stratified(df)
    assert df["split"].value_counts().to_dict() == pytest.approx(
        {"train": 0.8 * len(df), "val": 0.1 * len(df), "test": 0.1 * len(df)}, rel=0.02)
    groups = split_config(df, spec, data_dir="/data", protocol="random", seed=42)["groups"]
    assert groups["duplicate_md5"] == 30 and groups["crossing_official_splits"] > 0


def test_official_split_keeps_test_whole_and_moves_crossing_groups(index: pd.DataFrame, spec) -> None:
    df = make_split(index, spec, protocol="official")
    assert_leakage_safe(df)
    official_test = df["official_split"] == "test"
    assert (df.loc[official_test, "split"] == "test").all()
    crossing = df.groupby("group")["official_split"].nunique() > 1
    assert crossing.any()
    assert df["moved"].sum() == (df["split"] != df["official_split"]).sum() > 0
    config = split_config(df, spec, data_dir="/data", protocol="official", seed=42)
    assert config["groups"]["crossing_official_splits"] == crossing.sum()
    assert config["fractions"] is None


def test_official_split_needs_an_official_split(index: pd.DataFrame, spec) -> None:
    with pytest.raises(UserError, match="PROTOCOL = 'random'"):
        make_split(index.assign(official_split=""), spec, protocol="official")
    with pytest.raises(UserError, match="protocol"):
        make_split(index, spec, protocol="kermany")


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
    layout.split_csv.write_text("kept\n")
    write(tmp_path, index, spec)  # same parameters: the file is left as it is
    assert layout.split_csv.read_text() == "kept\n"
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
        "path": ["a.png", "b.png", "c.png", "d.png"], "label": ["Healthy", "Healthy", "Tumor", "Tumor"],
        "official_split": "", "patient": "", "md5": ["1", "2", "3", "4"],
        "phash": [f"{base:016x}", f"{base ^ 0b11:016x}", f"{flipped:016x}", f"{0x1234:016x}"],
        "phash_mirror": [f"{flipped:016x}", f"{flipped ^ 0b11:016x}", f"{base:016x}", f"{0x4321:016x}"]})
    near = get_spec("brain_tumor").near_duplicate_distance
    brain = _near_duplicate_clusters(index["phash"], index["phash_mirror"], near)
    assert brain[0] == brain[1] == brain[2] != brain[3]  # 2 bits apart, and a mirrored copy
    chest = _near_duplicate_clusters(index["phash"], None, get_spec("chest_xray").near_duplicate_distance)
    assert len(set(chest)) == 4  # chest X-rays: exact perceptual matches only
