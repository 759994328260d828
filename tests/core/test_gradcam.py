"""Grad-CAM's framework-free part: run folders, uploads, region masks and scores, overlays,
the comparison's cases and figure; and notebook 07's section end to end on a toy run, its
maps computed by a torch process of its own (this process imports no framework)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.analysis import gradcam, results
from helpers.config import SAMPLE_DIR, Layout
from helpers.data.datasets import read_image
from helpers.data.preprocessing import preprocess
from helpers.errors import UserError


def png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def fake_run(root: Path, name: str, config: dict, metrics: dict | None = None,
             weights: bool = True) -> Path:
    """A run folder with config.json and metrics.json (and a weights file), nothing else."""
    run_dir = root / "results" / "chest_xray" / "runs" / name
    run_dir.mkdir(parents=True)
    checkpoint = root / "checkpoints" / "chest_xray" / "runs" / name / "best.pt"
    if weights:
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"weights")
    base = {"framework": "pytorch", "dataset": "chest_xray", "scenario": "baseline", "seed": 42,
            "profile": {"image_size": 64}, "classes": {"NORMAL": 0, "PNEUMONIA": 1},
            "positive_class": "PNEUMONIA", "checkpoint": str(checkpoint)}
    at = {"n": 10, "accuracy": 0.9, "balanced_accuracy": 0.85, "sensitivity": 0.95,
          "specificity": 0.75, "roc_auc": 0.97}
    metrics = metrics if metrics is not None else {
        "threshold_0.5": at, "threshold_youden": at, "youden_threshold": 0.7}
    (run_dir / "config.json").write_text(json.dumps({**base, **config}))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def test_find_runs_lists_classifiers_with_weights_and_reads_their_card(tmp_path: Path) -> None:
    fake_run(tmp_path, "pytorch-baseline-scratch-seed42", {})
    fake_run(tmp_path, "keras-focal-scratch-seed43", {"framework": "keras", "scenario": "focal",
                                                      "seed": 43})
    fake_run(tmp_path, "pytorch-ros-scratch-seed42", {}, weights=False)  # weights gone
    fake_run(tmp_path, "sklearn-pixel_logreg-pixels32-seed42", {"framework": "sklearn"})
    fake_run(tmp_path, "pytorch-wgan_gp-64px-seed42", {}, metrics={"classifier": {}})
    found = gradcam.find_runs(tmp_path)
    assert [r.name for r in found] == ["keras-focal-scratch-seed43",
                                       "pytorch-baseline-scratch-seed42"]
    card = found[0].card()
    assert card["scenario"] == "focal" and card["seed"] == 43 and card["framework"] == "keras"
    assert card["threshold (validation, Youden)"] == 0.7 and card["test roc_auc"] == 0.97
    assert card["image size"] == "64 px" and found[0].crop == "center"
    assert found[0].classes == ["NORMAL", "PNEUMONIA"]


def test_a_moved_root_still_finds_its_weights(tmp_path: Path) -> None:
    fake_run(tmp_path / "old", "pytorch-baseline-scratch-seed42", {})
    shutil.move(tmp_path / "old", tmp_path / "new")
    run = gradcam.find_runs(tmp_path / "new")[0]
    assert run.checkpoint == (tmp_path / "new" / "checkpoints" / "chest_xray" / "runs" /
                              run.name / "best.pt")


def test_a_folder_that_is_no_run_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="holds no finished run"):
        gradcam.load_run(tmp_path)


def test_uploads_of_any_format_decode_and_bad_ones_are_one_sentence() -> None:
    ramp = np.linspace(0, 65535, 40 * 30, dtype=np.uint16).reshape(30, 40)
    grey = gradcam.decode_upload(png(ramp))
    assert grey.dtype == np.uint8 and grey.shape == (30, 40)
    assert grey.min() == 0 and grey.max() == 255
    rgba = np.full((20, 20, 4), 200, np.uint8)
    assert gradcam.decode_upload(png(rgba, "TIFF")).shape == (20, 20)
    for data, message in ((b"", "empty file"), (b"hello", "not an image"),
                          (png(rgba)[:60], "truncated|corrupt")):
        with pytest.raises(UserError, match=message):
            gradcam.decode_upload(data)
    with pytest.raises(UserError, match=r"too large \(2.0 MB; at most 1 MB\)"):
        gradcam.decode_upload(bytes(2 * 2**20), max_mb=1)


def test_an_upload_gets_the_training_preprocessing(tmp_path: Path) -> None:
    path = SAMPLE_DIR / "chest_xray" / "test" / "NORMAL" / "IM-0039-0001.jpeg"
    run = gradcam.load_run(fake_run(tmp_path, "pytorch-baseline-scratch-seed42", {}))
    prepared = gradcam.prepare(gradcam.decode_upload(path.read_bytes()), run)
    assert np.array_equal(prepared, preprocess(read_image(path), "center", 64))


def test_the_lung_region_is_a_central_ellipse_without_corners() -> None:
    mask = gradcam.lung_region((64, 64))
    assert mask[32, 32] and not mask[0, 0] and not mask[0, 63] and not mask[63, 0]
    assert np.array_equal(mask, mask[:, ::-1]) and np.array_equal(mask, mask[::-1])
    assert mask.mean() == pytest.approx(np.pi * 0.40 * 0.36, abs=0.02)


def test_the_head_mask_is_the_filled_skull_of_an_mri_slice() -> None:
    image = np.full((64, 64), 5, np.uint8)
    cv2.circle(image, (32, 32), 24, 220, thickness=3)  # the skull ring
    cv2.circle(image, (32, 32), 20, 120, thickness=-1)  # the brain inside
    image[2:6, 2:6] = 255  # a speck of text outside
    mask = gradcam.head_mask(image)
    assert mask[32, 32] and mask[32, 10] and not mask[0, 0] and not mask[3, 3]
    yy, xx = np.mgrid[:64, :64]
    radius = np.hypot(yy - 32, xx - 32)
    assert mask[radius <= 25].all() and not mask[radius >= 28].any()  # the head, a blur wider
    assert gradcam.region_mask(image, "foreground").sum() == mask.sum()
    assert np.array_equal(gradcam.region_mask(image, "center"), gradcam.lung_region((64, 64)))


def test_the_region_score_is_the_share_of_the_map_inside() -> None:
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    assert gradcam.region_score(np.ones((10, 10)), mask) == pytest.approx(0.5)
    inside = np.where(mask, 0.8, 0.0)
    assert gradcam.region_score(inside, mask) == pytest.approx(1.0)
    assert np.isnan(gradcam.region_score(np.zeros((10, 10)), mask))
    border = np.zeros((64, 64))
    border[:6, :6] = 1  # where a marker sits
    image = np.zeros((64, 64), np.uint8)
    assert gradcam.region_scores(np.stack([border]), np.stack([image]), "center")[0] == 0


def test_the_overlay_is_the_grey_image_under_the_jet_colours() -> None:
    image = np.full((8, 8), 100, np.uint8)
    cam = np.zeros((8, 8))
    cam[4:, 4:] = 1
    out = gradcam.overlay(image, cam)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert out[6, 6, 0] > out[6, 6, 2] and out[0, 0, 2] > out[0, 0, 0]  # red hot, blue cold
    assert np.array_equal(gradcam.overlay(image, cam, alpha=0), np.full((8, 8, 3), 100))


def test_the_cases_are_true_positives_false_positives_false_negatives() -> None:
    predictions = pd.DataFrame({"path": list("abcdefgh"), "label_id": [1, 1, 1, 0, 0, 0, 1, 0],
                                "probability": [0.9, 0.8, 0.2, 0.7, 0.1, 0.6, 0.3, 0.2]})
    cases = gradcam.pick_cases(predictions, 0.5, per_case=2)
    assert cases.groupby("case")["path"].apply(sorted).to_dict() == {
        "TP": ["a", "b"], "FP": ["d", "f"], "FN": ["c", "g"]}
    one = gradcam.pick_cases(predictions, 0.95, per_case=1)  # nothing above: FN only
    assert list(one["case"]) == ["FN"]


def test_the_grid_has_a_row_per_image_and_a_column_per_scenario() -> None:
    images = np.zeros((3, 16, 16), np.uint8)
    maps = {s: (np.random.default_rng(0).random((3, 16, 16)), np.array([0.1, 0.5, 0.9]))
            for s in ("baseline", "wgan")}
    figure = gradcam.plot_gradcam_grid(images, ["TP", "FP", "FN"], maps, "title")
    assert len(figure.axes) == 9
    assert figure.axes[1].get_title() == "baseline\np=0.10"
    assert figure.axes[0].get_ylabel() == "TP"


def test_importing_the_framework_free_modules_loads_no_framework() -> None:
    code = ("import sys, helpers.analysis.gradcam, helpers.analysis.app; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def toy_comparison(toy_run_root: Path, tmp_path: Path) -> Layout:
    """The toy run and a copy as scenario ros, with the 32 px cache of their test images."""
    shutil.copytree(toy_run_root, tmp_path, dirs_exist_ok=True)
    layout = Layout.of("chest_xray", tmp_path)
    base = next(layout.runs_dir.iterdir())
    ros = layout.runs_dir / base.name.replace("baseline", "ros")
    shutil.copytree(base, ros)
    config = json.loads((ros / "config.json").read_text())
    (ros / "config.json").write_text(json.dumps({**config, "scenario": "ros", "run": ros.name}))
    for rel in pd.read_csv(base / "predictions.csv")["path"]:
        target = layout.cache_path(rel, 32)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), preprocess(read_image(SAMPLE_DIR / rel), "center", 32))
    return layout


def test_notebook_07s_section_writes_the_grid_and_the_region_table(toy_comparison: Layout
                                                                   ) -> None:
    runs = results.read_runs(toy_comparison)
    figure, table = gradcam.compare_scenarios(toy_comparison, runs, "pytorch", profile="smoke")
    assert list(table.index) == ["baseline", "ros"]
    assert table["seeds"].tolist() == [1, 1] and table["images"].tolist() == [8, 8]
    assert table["region_area"].tolist() == [gradcam.lung_region((32, 32)).mean()] * 2
    # the same weights under two names: the same maps, so the same score
    same = table["region_score_mean"].fillna(-1)
    assert same.iloc[0] == same.iloc[1]
    out = toy_comparison.reports("comparison")
    for name in ("gradcam_pytorch.png", "gradcam_pytorch.pdf", "gradcam_regions_pytorch.csv",
                 "gradcam_regions_pytorch.md"):
        assert (out / name).stat().st_size > 0, name
    assert len(figure.axes) % 3 == 0 and len(figure.axes) >= 3
