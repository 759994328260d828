"""The pixel reference: scikit-learn models on 32 px images, saved as runs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from helpers.config import Layout
from helpers.data.training_data import load_all_arrays
from helpers.errors import UserError
from helpers.training.pixel_reference import (
    MODELS,
    PIXELS,
    beside,
    features,
    run_reference,
    run_references,
    spec,
    verdict,
)


def test_features_area_downsample_and_scale() -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64), dtype=np.uint8)
    rows = features(images)
    assert rows.shape == (5, PIXELS * PIXELS) and rows.dtype == np.float32
    assert rows.min() >= 0 and rows.max() <= 1
    expected = cv2.resize(images[3], (PIXELS, PIXELS), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(rows[3], expected.reshape(-1).astype(np.float32) / 255)
    small = images[:, :PIXELS, :PIXELS]
    np.testing.assert_array_equal(features(small), small.reshape(5, -1).astype(np.float32) / 255)


def test_logreg_run_holds_scikit_learns_metrics(fresh_layout: Layout) -> None:
    layout = fresh_layout
    outcome = run_reference(layout, 32, "logreg")
    assert outcome.trained and outcome.results_dir == layout.results(spec("toy", "logreg").name)
    assert outcome.results_dir.name == "sklearn-pixel_logreg-pixels32-seed42"
    assert {"metrics.json", "predictions.csv", "config.json"} <= \
        {p.name for p in outcome.results_dir.iterdir()}
    assert outcome.checkpoint == layout.checkpoints(outcome.spec.name) / "model.joblib"
    assert outcome.checkpoint.is_file()
    config = json.loads((outcome.results_dir / "config.json").read_text())
    assert config["framework"] == "sklearn" and config["settings"]["params"]["C"] == 0.1
    arrays = load_all_arrays(layout, 32)
    independent = LogisticRegression(C=0.1, max_iter=5000).fit(
        features(arrays["train"].images), arrays["train"].labels)
    auc = roc_auc_score(arrays["test"].labels,
                        independent.predict_proba(features(arrays["test"].images))[:, 1])
    saved = json.loads((outcome.results_dir / "metrics.json").read_text())
    assert saved["threshold_youden"]["roc_auc"] == pytest.approx(auc)
    assert saved["threshold_0.5"]["roc_auc"] == pytest.approx(auc) and auc > 0.9


def test_every_model_predicts_every_test_image_once(fresh_layout: Layout) -> None:
    layout = fresh_layout
    outcomes = run_references(layout, 32)
    assert list(outcomes) == list(MODELS) == ["logreg", "knn"]
    split = pd.read_csv(layout.split_csv)
    test_paths = sorted(split.loc[split["split"] == "test", "path"])
    for outcome in outcomes.values():
        predictions = pd.read_csv(outcome.results_dir / "predictions.csv")
        assert sorted(predictions.loc[predictions["split"] == "test", "path"]) == test_paths
        assert predictions["probability"].between(0, 1).all()
    assert outcomes["knn"].metrics["threshold_0.5"]["roc_auc"] > 0.9


def test_finished_run_is_skipped_unless_resume_is_false(fresh_layout: Layout) -> None:
    layout = fresh_layout
    first = run_reference(layout, 32, "knn")
    again = run_reference(layout, 32, "knn")
    assert first.trained and not again.trained and again.metrics == first.metrics
    assert again.checkpoint == first.checkpoint
    assert run_reference(layout, 32, "knn", resume=False).trained


def test_the_environment_is_recorded_but_never_decides_a_rerun(fresh_layout: Layout) -> None:
    first = run_reference(fresh_layout, 32, "logreg")
    path = first.results_dir / "config.json"
    config = json.loads(path.read_text())
    environment = config.pop("environment")
    assert environment["versions"]["scikit-learn"] == sklearn.__version__
    assert environment["device"] == "cpu" and isinstance(environment["cpu_bf16"], bool)
    path.write_text(json.dumps(config))  # a run written before the environment was recorded
    assert not run_reference(fresh_layout, 32, "logreg").trained
    other = {**environment, "versions": {"scikit-learn": "0.1"}, "cpu_bf16": True, "cpu": "?"}
    path.write_text(json.dumps({**config, "environment": other}))  # another machine's run
    assert not run_reference(fresh_layout, 32, "logreg").trained
    path.write_text(json.dumps({**config, "settings": {**config["settings"], "pixels": 16}}))
    assert run_reference(fresh_layout, 32, "logreg").trained  # other settings: fitted again


def test_unknown_model_is_a_user_error(fresh_layout: Layout) -> None:
    layout = fresh_layout
    with pytest.raises(UserError, match="logreg"):
        run_reference(layout, 32, "svm")


def test_a_run_is_shown_beside_the_references_with_a_verdict(fresh_layout: Layout) -> None:
    references = run_references(fresh_layout, 32)
    table = beside(references["knn"], references)  # any run: here the kNN itself
    assert list(table.columns) == ["sklearn", "pixel logreg", "pixel knn"]
    assert table.loc["roc_auc", "sklearn"] == table.loc["roc_auc", "pixel knn"]
    sentence = verdict(table, "pixel knn", reference="pixel knn")
    assert sentence.count("equal to") == 2
    logreg = table["pixel logreg"]
    table.loc["roc_auc", "sklearn"] = logreg["roc_auc"] - 0.01
    table.loc["balanced_accuracy", "sklearn"] = logreg["balanced_accuracy"] + 0.01
    sentence = verdict(table, "sklearn")
    assert "ROC-AUC" in sentence and "BELOW" in sentence and "balanced accuracy" in sentence
    assert " above " in sentence
