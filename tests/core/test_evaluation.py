"""Evaluation metrics against scikit-learn and hand counts; degenerate input; a run on disk."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn import metrics as skm

from helpers.analysis.evaluation import (
    SCALAR_METRICS,
    compare_runs,
    evaluate,
    metrics_table,
    save_run_results,
    youden_threshold,
)
from helpers.analysis.plots import plot_history, plot_pr, plot_roc
from helpers.errors import UserError
from helpers.training.run_folder import RunFolder

# Degenerate cases must be handled, not reported by scikit-learn or NumPy.
pytestmark = [pytest.mark.filterwarnings("error::sklearn.exceptions.UndefinedMetricWarning"),
              pytest.mark.filterwarnings("error::RuntimeWarning")]

# 10 images, 4 positive. At 0.5: tn 4 (0.1 0.2 0.3 0.4), fp 2 (0.6 0.7), fn 1 (0.45), tp 3.
Y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
P = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.45, 0.8, 0.9, 0.5])


def test_metrics_match_hand_counts_and_sklearn() -> None:
    r = evaluate(Y, P)
    pred = (P >= 0.5).astype(int)
    assert {k: r["confusion_matrix"][k] for k in ("tn", "fp", "fn", "tp")} == \
        {"tn": 4, "fp": 2, "fn": 1, "tp": 3}
    assert r["confusion_matrix"]["counts"] == [[4, 2], [1, 3]]
    assert np.allclose(r["confusion_matrix"]["percent"], [[40, 20], [10, 30]])
    expected = {
        "accuracy": 7 / 10, "balanced_accuracy": (3 / 4 + 4 / 6) / 2, "sensitivity": 3 / 4,
        "specificity": 4 / 6, "precision": 3 / 5, "npv": 4 / 5, "f1": 6 / 9,
        "mcc": (3 * 4 - 2 * 1) / np.sqrt(5 * 4 * 6 * 5),
        "roc_auc": skm.roc_auc_score(Y, P), "pr_auc": skm.average_precision_score(Y, P),
        "brier_score": np.mean((P - Y) ** 2), "log_loss": skm.log_loss(Y, P),
    }
    assert {k: r[k] for k in SCALAR_METRICS} == pytest.approx(expected)
    assert r["mcc"] == pytest.approx(skm.matthews_corrcoef(Y, pred))
    assert r["roc_auc"] == pytest.approx(20 / 24)  # 20 of the 24 (positive, negative) pairs ranked right
    assert (r["n"], r["n_pos"], r["threshold"], r["notes"]) == (10, 4, 0.5, [])
    report = skm.classification_report(Y, pred, target_names=["negative", "positive"],
                                       output_dict=True)
    assert r["classification_report"].keys() == report.keys()
    for key, value in report.items():
        assert r["classification_report"][key] == pytest.approx(value)


def test_output_is_plain_json() -> None:
    r = evaluate(Y.tolist(), P.reshape(-1, 1))  # lists and Keras-style (n, 1) columns accepted
    assert json.loads(json.dumps(r, allow_nan=False)) == r
    assert all(type(r[k]) is float for k in SCALAR_METRICS)
    assert type(r["n"]) is int and type(r["confusion_matrix"]["tp"]) is int


def test_threshold_moves_the_operating_point() -> None:
    assert evaluate(Y, P, threshold=0.75)["confusion_matrix"]["counts"] == [[6, 0], [2, 2]]
    assert evaluate(Y, P, threshold=0.45)["sensitivity"] == 1.0  # prob >= threshold is positive
    everyone = evaluate(Y, P, threshold=0.0)
    assert everyone["specificity"] == 0.0 and everyone["npv"] is None and everyone["mcc"] is None
    assert any(n.startswith("npv undefined: no sample is predicted negative") for n in everyone["notes"])
    assert everyone["roc_auc"] == pytest.approx(20 / 24)  # threshold-free metrics do not move


@pytest.mark.parametrize(("y", "p", "undefined", "in_notes"), [
    ([0, 0, 0], [0.1, 0.6, 0.3], {"sensitivity", "balanced_accuracy", "roc_auc", "pr_auc", "mcc"},
     "no positive sample"),
    ([1, 1, 1], [0.9, 0.2, 0.7], {"specificity", "balanced_accuracy", "roc_auc", "mcc"},
     "no negative sample"),
    ([0, 0, 0], [0.1, 0.2, 0.3], {"sensitivity", "balanced_accuracy", "roc_auc", "pr_auc", "mcc",
                                  "precision", "f1"}, "none is predicted positive"),
    ([0, 1, 0, 1], [0.3] * 4, {"precision", "mcc"}, "All probabilities are equal"),
    ([], [], set(SCALAR_METRICS), "there are no samples"),
])
def test_degenerate_input_gives_none_with_a_note(y: list, p: list, undefined: set[str],
                                                 in_notes: str) -> None:
    r = evaluate(y, p)
    assert {k for k in SCALAR_METRICS if r[k] is None} == undefined
    notes = " ".join(r["notes"])
    assert in_notes in notes and all(name in notes for name in undefined)
    json.dumps(r, allow_nan=False)  # no NaN anywhere, the classification report included


def test_degenerate_defined_values() -> None:
    const = evaluate([0, 1, 0, 1], [0.3] * 4)
    assert (const["roc_auc"], const["pr_auc"], const["sensitivity"]) == (0.5, 0.5, 0.0)
    pos_only = evaluate([1, 1, 1], [0.9, 0.2, 0.7])
    assert pos_only["pr_auc"] == 1.0 and pos_only["sensitivity"] == pytest.approx(2 / 3)
    assert pos_only["log_loss"] == pytest.approx(skm.log_loss([1, 1, 1], [0.9, 0.2, 0.7], labels=[0, 1]))
    assert pos_only["classification_report"]["negative"]["recall"] is None


@pytest.mark.parametrize(("y", "p", "message"), [
    ([0, 1, 1], [0.2, 0.8], "y_true has 3 values but prob has 2"),
    ([0, 1], [0.2, np.nan], "NaN"),
    ([0, 1], [-0.1, 1.2], r"in \[0, 1\]"),
    ([0, 2], [0.1, 0.9], "only 0 and 1"),
    (["NORMAL", "PNEUMONIA"], [0.1, 0.9], "numeric"),
    ([0, 1], [[0.9, 0.1], [0.2, 0.8]], "one value per image"),
])
def test_invalid_input_is_a_value_error(y: list, p: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(y, p)


def test_invalid_threshold_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="threshold"):
        evaluate(Y, P, threshold=1.5)


def test_youden_threshold_maximises_j() -> None:
    t = youden_threshold(Y, P)
    j = {c: np.mean(P[Y == 1] >= c) - np.mean(P[Y == 0] >= c) for c in P}
    assert t in P and j[t] == max(j.values())
    assert t == 0.45  # J = 1 - 2/6: every positive, two negatives above it
    r = evaluate(Y, P, threshold=t)
    assert r["sensitivity"] - (1 - r["specificity"]) == pytest.approx(j[t])


@pytest.mark.parametrize(("y", "p"), [([1, 1, 1], [0.2, 0.4, 0.9]), ([0, 1, 0, 1], [0.3] * 4)])
def test_youden_falls_back_to_half_with_a_warning(y: list, p: list) -> None:
    with pytest.warns(UserWarning, match="Youden threshold undefined"):
        assert youden_threshold(y, p) == 0.5


def _run(tmp_path, history: pd.DataFrame | None, name: str = "run", shift: float = 0.0) -> dict:
    test = pd.DataFrame({"path": [f"test/{i}.png" for i in range(len(Y))], "label_id": Y,
                         "probability": np.clip(P + shift, 0, 1)})
    val = pd.DataFrame({"path": [f"val/{i}.png" for i in range(6)], "label_id": [0, 0, 1, 1, 0, 1],
                        "probability": [0.1, 0.7, 0.8, 0.6, 0.3, 0.65]})
    return save_run_results(tmp_path / name, test=test, val=val, history=history,
                            config={"profile": "smoke", "classes": {"NORMAL": 0, "PNEUMONIA": 1}})


def _history() -> pd.DataFrame:
    epoch = np.arange(1, 6)
    return pd.DataFrame({"epoch": epoch, "phase": [1, 1, 1, 2, 2], "loss": 1 / epoch,
                         "val_loss": 1.1 / epoch, "accuracy": 1 - 0.3 / epoch,
                         "val_accuracy": 1 - 0.4 / epoch, "lr": [1e-4, 1e-4, 5e-5, 1e-5, 1e-5]})


def test_save_run_results_writes_every_file(tmp_path) -> None:
    metrics = _run(tmp_path, _history())
    run = tmp_path / "run"
    assert metrics["youden_threshold"] == 0.6 and metrics["youden_note"] is None
    assert metrics["threshold_0.5"] == evaluate(Y, P, 0.5, ["NORMAL", "PNEUMONIA"])
    assert metrics["threshold_youden"]["threshold"] == 0.6
    assert RunFolder(run).metrics == metrics  # metrics.json round-trips
    predictions = pd.read_csv(run / "predictions.csv")
    assert list(predictions.columns) == ["split", "path", "label_id", "probability"]
    assert predictions["split"].value_counts().to_dict() == {"test": len(Y), "val": 6}
    assert pd.read_csv(run / "history.csv").equals(_history())
    assert json.loads((run / "config.json").read_text())["profile"] == "smoke"
    assert metrics["figures"] == ["confusion_matrix_threshold_0.5.png",
                                  "confusion_matrix_threshold_youden.png", "history.png",
                                  "pr.png", "roc.png"]
    for name in metrics["figures"]:
        with Image.open(run / name) as img:
            assert img.format == "PNG" and min(img.size) > 200


def test_save_run_results_without_history_and_degenerate_val(tmp_path) -> None:
    test = pd.DataFrame({"path": ["a.png", "b.png"], "label_id": [0, 1], "probability": [0.2, 0.9]})
    val = pd.DataFrame({"path": ["c.png", "d.png"], "label_id": [1, 1], "probability": [0.4, 0.9]})
    metrics = save_run_results(tmp_path, test=test, val=val, history=None, config={})
    assert metrics["youden_threshold"] == 0.5 and "one class" in metrics["youden_note"]
    assert not (tmp_path / "history.csv").exists() and "history.png" not in metrics["figures"]
    with pytest.raises(UserError, match="lacks column"):
        save_run_results(tmp_path, test=test.drop(columns="path"), val=val, history=None, config={})


def test_tables(tmp_path) -> None:
    metrics = _run(tmp_path, None, "a")
    table = metrics_table(metrics)
    assert list(table.columns) == ["threshold 0.5", "Youden threshold"]
    assert table.loc["threshold"].tolist() == [0.5, 0.6]
    assert table.loc["sensitivity", "threshold 0.5"] == 3 / 4
    _run(tmp_path, None, "b", shift=0.1)
    both = compare_runs({"keras": tmp_path / "a", "torch": tmp_path / "b"})
    assert list(both.columns) == ["keras", "torch"] and set(SCALAR_METRICS) <= set(both.index)
    assert both.loc["tp", "keras"] == 3 and both.loc["tp", "torch"] == 4
    with pytest.raises(UserError, match="No metrics.json"):
        compare_runs({"missing": tmp_path / "missing"})


def test_history_plot_marks_the_phase_boundary() -> None:
    fig = plot_history(_history())
    axes = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy", "learning rate"]
    for ax in axes:
        assert any(list(line.get_xdata()) == [3.5, 3.5] for line in ax.lines)  # after epoch 3
    assert axes[-1].get_yscale() == "log"
    one_phase = plot_history(_history().assign(phase=1))
    assert all(len(ax.lines) == 2 for ax in one_phase.axes[:2])


def test_undefined_curves_say_so() -> None:
    for fig in (plot_roc([1, 1], [0.2, 0.8]), plot_pr([0, 0], [0.2, 0.8])):
        assert "undefined" in fig.axes[0].texts[0].get_text()


def test_no_framework_is_imported() -> None:
    code = ("import sys, helpers.analysis.evaluation, helpers.analysis.plots; "
            "print([m for m in ('tensorflow', 'torch', 'keras') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
