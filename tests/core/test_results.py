"""The reader of results: run folders as one tidy table, test predictions aligned by image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import results
from helpers.analysis.evaluation import save_run_results
from helpers.config import Layout
from helpers.data.imbalance import order as imbalance_order
from helpers.errors import UserError
from helpers.io import save_json


def write_run(layout: Layout, name: str, y: np.ndarray, prob: np.ndarray, *,
              framework: str = "pytorch", scenario: str = "baseline", seed: int = 42,
              split_protocol: str = "random", paths: list[str] | None = None,
              imbalance: str | float | None = None, imbalance_ratio: float | None = None
              ) -> Path:
    """A run folder as the training path writes it (save_run_results on given predictions);
    ``imbalance`` and ``imbalance_ratio`` go to config.json when given (None: an old run)."""
    paths = paths or [f"test/img{i:04d}.png" for i in range(len(y))]
    test = pd.DataFrame({"path": paths, "label_id": y, "probability": prob})
    val = test.assign(path=[f"val/{p}" for p in paths])
    history = pd.DataFrame({"epoch": [1, 2], "phase": 1, "loss": [0.7, 0.5],
                            "val_loss": [0.6, 0.55], "val_bce": [0.6, 0.55],
                            "val_auc": [0.8, 0.85]})
    config = {"run": name, "framework": framework, "scenario": scenario, "seed": seed,
              "protocol": "scratch", "split_protocol": split_protocol, "training_data": "original",
              "loss": "bce", "classes": {"well": 0, "sick": 1}, "profile": {"image_size": 32},
              "best_epoch": 2}
    config.update({k: v for k, v in (("imbalance", imbalance),
                                     ("imbalance_ratio", imbalance_ratio)) if v is not None})
    run_dir = layout.results(name)
    save_run_results(run_dir, test=test, val=val, history=history, config=config)
    return run_dir


@pytest.fixture()
def layout(tmp_path: Path) -> Layout:
    layout = Layout.of("toy", tmp_path)
    rng = np.random.default_rng(0)
    y = np.array([0] * 20 + [1] * 30)
    for seed in (1, 2):
        write_run(layout, f"pytorch-baseline-scratch-seed{seed}", y,
                  np.clip(0.3 * y + rng.uniform(0, 0.7, 50), 0, 1), seed=seed)
    write_run(layout, "sklearn-pixel_logreg-pixels32-seed42", y, rng.uniform(0, 1, 50),
              framework="sklearn", scenario="pixel_logreg")
    gan = layout.results("pytorch-wgan_gp-32px-seed42")
    save_json({"framework": "pytorch", "scenario": "wgan_gp", "seed": 42,
               "profile": {"image_size": 32}}, gan / "config.json")
    save_json({"classifier": {"synthetic": {"frechet_distance": 3.0, "precision": 0.9},
                              "real_halves": {"frechet_distance": 0.1, "precision": 0.95}}},
              gan / "metrics.json")
    (layout.runs_dir / "pytorch-focal-scratch-seed1").mkdir()  # unfinished: no files
    return layout


def test_every_finished_run_is_one_row_of_its_kind(layout: Layout,
                                                    capsys: pytest.CaptureFixture) -> None:
    runs = results.read_runs(layout)
    assert "Skipped pytorch-focal-scratch-seed1" in capsys.readouterr().out
    assert list(runs.columns[:len(results.KEYS)]) == results.KEYS
    assert dict(zip(runs["run"], runs["kind"])) == {
        "pytorch-baseline-scratch-seed1": "classifier", "pytorch-baseline-scratch-seed2":
        "classifier", "pytorch-wgan_gp-32px-seed42": "gan",
        "sklearn-pixel_logreg-pixels32-seed42": "reference"}
    base = runs.set_index("run").loc["pytorch-baseline-scratch-seed1"]
    metrics = json.loads((layout.results(base.name) / "metrics.json").read_text())
    assert base["youden_roc_auc"] == metrics["threshold_youden"]["roc_auc"]
    assert base["t05_tp"] == metrics["threshold_0.5"]["confusion_matrix"]["tp"]
    assert base["n_test"] == 50 and base["image_size"] == 32
    gan = runs.set_index("run").loc["pytorch-wgan_gp-32px-seed42"]
    assert (gan["frechet_distance"], gan["frechet_distance_real"]) == (3.0, 0.1)
    assert results.class_names_of(runs) == ["well", "sick"]
    youden = results.at_threshold(runs, "threshold_youden")  # the GAN's precision is not doubled
    assert youden.columns.is_unique
    assert youden.set_index("run").loc[base.name, "precision"] == base["youden_precision"]


def test_predictions_align_by_image_and_other_splits_stop(layout: Layout) -> None:
    runs = results.read_runs(layout)
    chosen = results.select(runs, framework="pytorch", scenarios=["baseline"])
    y, probs = results.aligned_test(chosen)
    assert probs.shape == (2, 50) and y.sum() == 30
    saved = pd.read_csv(layout.results(chosen["run"][1]) / "predictions.csv")
    test = saved[saved["split"] == "test"].sort_values("path")
    assert np.allclose(probs[1], test["probability"])
    y_other = np.array([0] * 25 + [1] * 25)
    write_run(layout, "pytorch-ros-scratch-seed1", y_other, np.full(50, 0.5), scenario="ros")
    runs = results.read_runs(layout)
    with pytest.raises(UserError, match="tested on other images"):
        results.aligned_test(results.select(runs, framework="pytorch"))


def test_an_empty_results_folder_says_which_notebooks_to_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="notebooks 03-06"):
        results.read_runs(Layout.of("toy", tmp_path))


def test_old_runs_are_natural_and_the_imbalance_is_one_string(layout: Layout) -> None:
    y = np.array([0] * 20 + [1] * 30)
    for imbalance, name in ((10, "r10"), (30.0, "r30"), (12.5, "r12.5"), ("natural", "new")):
        write_run(layout, f"pytorch-ros-scratch-seed1-{name}", y, np.full(50, 0.5),
                  scenario="ros", imbalance=imbalance,
                  imbalance_ratio=2.7 if imbalance == "natural" else float(imbalance))
    runs = results.read_runs(layout).set_index("run")
    assert results.KEYS[results.KEYS.index("loss") + 1] == "imbalance"
    old = runs.loc[["pytorch-baseline-scratch-seed1", "sklearn-pixel_logreg-pixels32-seed42",
                    "pytorch-wgan_gp-32px-seed42"]]
    assert (old["imbalance"] == "natural").all() and old["imbalance_ratio"].isna().all()
    new = runs.loc[[f"pytorch-ros-scratch-seed1-{n}" for n in ("r10", "r30", "r12.5", "new")]]
    assert new["imbalance"].tolist() == ["10", "30", "12.5", "natural"]
    assert new["imbalance_ratio"].tolist() == [10.0, 30.0, 12.5, 2.7]
    assert sorted(runs["imbalance"].unique(), key=imbalance_order) == [
        "natural", "10", "12.5", "30"]
    ten = results.select(runs.reset_index(), framework="pytorch", imbalance="10")
    assert ten["run"].tolist() == ["pytorch-ros-scratch-seed1-r10"]


@pytest.mark.parametrize("value", ["ten", -3, True, float("inf")])
def test_a_bad_imbalance_names_the_run(layout: Layout, value: object) -> None:
    write_run(layout, "pytorch-ros-scratch-seed1-bad", np.array([0, 1]), np.array([0.2, 0.8]),
              scenario="ros", imbalance=value)
    with pytest.raises(UserError, match="pytorch-ros-scratch-seed1-bad/config.json: IMBALANCE"):
        results.read_runs(layout)
