"""The audit of the image index: duplicates (exact, near, mirrored), near copies and their
calibration, tables, figures, files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.analysis import plots
from helpers.config import SAMPLE_DIR, Layout
from helpers.data.audit import (
    audit,
    copy_calibration,
    describe_audit,
    duplicate_examples,
    example_images,
    near_duplicate_groups,
    save_audit,
)
from helpers.data.datasets import find_files, get_spec, index_images
from helpers.data.near_copies import COPY_KINDS, make_copy

SAMPLE_JPEGS = sorted((SAMPLE_DIR / "chest_xray" / "train" / "NORMAL").iterdir())[:3]
# Kaggle's brain tumor folder, for the check on real data; without it that test is skipped.
BRAIN_TUMOR_DIR = os.environ.get("BRAIN_TUMOR_DIR", "")


def test_near_duplicate_groups() -> None:
    base = 0x8F00FF00AA5533CC
    hashes = [f"{base:016x}", f"{base ^ 0b1111:016x}", f"{base ^ 0b1111 ^ 0b1111 << 20:016x}",
              f"{~base & (2**64 - 1):016x}", f"{base ^ 0b11111:016x}"]
    # 0-1 differ by 4 bits, 1-2 by 4 (a chain), 3 is far, 4 is 5 bits from 0 but 1 from 1
    assert near_duplicate_groups(hashes) == [0, 0, 0, 1, 0]
    assert near_duplicate_groups(hashes, max_distance=0) == [0, 1, 2, 3, 4]
    assert near_duplicate_groups([]) == []
    # a left-right flipped copy: its hash matches the other's mirrored hash
    assert near_duplicate_groups(["0" * 16, "f" * 16], 0, mirrored=["f" * 16, "0" * 16]) == [0, 0]


def test_mirrored_copies_are_grouped(tmp_path: Path) -> None:
    for label in ("sick", "well"):
        (tmp_path / label).mkdir()
    image = np.asarray(Image.open(SAMPLE_JPEGS[0]).convert("L"))
    Image.fromarray(image).save(tmp_path / "sick" / "a.png")
    Image.fromarray(image[:, ::-1]).save(tmp_path / "sick" / "a_flipped.png")
    shutil.copy(SAMPLE_JPEGS[1], tmp_path / "well" / "b.jpeg")
    index, skipped = index_images(get_spec("mine", "sick"), tmp_path)
    near = audit(index, skipped)["near_duplicates"]
    assert near["path"].tolist() == ["sick/a.png", "sick/a_flipped.png"]


def test_a_near_copy_is_grouped_and_the_threshold_calibrated(tmp_path: Path) -> None:
    for folder in ("sick", "well"):
        (tmp_path / folder).mkdir()
    image = np.asarray(Image.open(SAMPLE_JPEGS[0]).convert("L"))
    Image.fromarray(image).save(tmp_path / "sick" / "a.png")
    Image.fromarray(make_copy(image, "shifted")).save(tmp_path / "sick" / "a_shifted.jpeg", quality=70)
    for k in (1, 2):
        shutil.copy(SAMPLE_JPEGS[k], tmp_path / "well" / f"b{k}.jpeg")
    spec = get_spec("mine", "sick")
    index, skipped = index_images(spec, tmp_path)
    tables = audit(index, skipped, copy_distance=spec.near_copy_distance)
    assert tables["near_copies"]["path"].tolist() == ["sick/a.png", "sick/a_shifted.jpeg"]
    summary = dict(zip(tables["summary"]["item"], tables["summary"]["value"]))
    assert summary["near_copy_groups_of_different_files"] == 1 and summary["images"] == 4
    assert "1 groups of near copies of different files" in describe_audit(tables)
    calib = copy_calibration(index, tmp_path, n=2)
    assert (calib["kind"] == "nearest other image").sum() == 4 and len(calib) == 4 + 2 * len(COPY_KINDS)


def test_audit_tables_and_files(tiny_chest: Path, tmp_path: Path) -> None:
    spec, data_dir = get_spec("chest_xray"), tiny_chest
    index, skipped = index_images(spec, data_dir)
    copy = index.iloc[[0]].assign(path="chest_xray/train/NORMAL/zz-copy.jpeg", official_split="train")
    index = pd.concat([index, copy], ignore_index=True)  # a byte-identical copy, as the real set has 30
    tables = audit(index, skipped, max_distance=spec.near_duplicate_distance)
    summary = dict(zip(tables["summary"]["item"], tables["summary"]["value"]))
    assert summary["images"] == 65 and summary["class_NORMAL"] + summary["class_PNEUMONIA"] == 65
    assert summary["exact_duplicate_groups"] >= 1 and summary["exact_duplicate_extra_copies"] >= 1
    assert index.iloc[0]["path"] in set(tables["exact_duplicates"]["path"])
    classes = tables["classes"].set_index("label")
    assert classes.loc["NORMAL", ["train", "val", "test"]].tolist() == [17, 2, 6]
    assert "patients" in tables and summary["patients"] == tables["patients"]["patients"].sum()
    assert "byte-identical" in describe_audit(tables)
    figures = {"class_counts": plots.plot_class_counts(index),
               "image_sizes": plots.plot_image_sizes(index),
               "examples": plots.plot_image_grid(example_images(index.iloc[:-1], data_dir, 2)),
               "duplicates": plots.plot_image_grid(duplicate_examples(tables["exact_duplicates"].iloc[:0],
                                                                      data_dir))}
    layout = Layout.of("chest_xray", tmp_path)
    out = save_audit(layout, tables, figures)
    assert {p.name for p in out.iterdir()} >= {"summary.json", "classes.csv", "near_duplicates.csv",
                                               "examples.png", "duplicates.png", "near_copies.csv"}
    assert summary["near_copy_groups"] >= 1  # the copy shares its original's group


# ---------------------------------------------------------------- real data sets

@pytest.mark.skipif(not BRAIN_TUMOR_DIR, reason="set BRAIN_TUMOR_DIR to the Kaggle brain "
                    "tumor folder to run the check on the real set")
def test_the_real_brain_tumor_mess_is_indexed() -> None:
    spec = get_spec("brain_tumor")
    scan = find_files(spec, Path(BRAIN_TUMOR_DIR))  # .DS_Store and the like are not candidates
    index, skipped = index_images(spec, Path(BRAIN_TUMOR_DIR))
    assert len(index) + len(skipped) == len(scan.files) and len(index) > 0.99 * len(scan.files)
    assert set(index["label"]) == {"Brain Tumor", "Healthy"}
    assert {"JPEG", "PNG"} <= set(index["format"]) <= {"JPEG", "PNG", "TIFF"}
    assert set(index["mode"]) >= {"L", "P", "RGB", "RGBA"}
    named_jpg = index[index["path"].str.lower().str.endswith((".jpg", ".jpeg"))]
    assert (named_jpg["format"] == "PNG").any()  # PNG files named .jpg
    summary = audit(index, skipped)["summary"].set_index("item")["value"]
    assert summary["exact_duplicate_groups"] > 0
