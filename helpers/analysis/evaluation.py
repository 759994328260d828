"""Metrics of a binary classifier from arrays, and a run's results on disk.

Framework-agnostic: every model of the series passes labels and probabilities here.
Positive class = 1 = disease. An image is predicted positive when ``prob >= threshold``,
the convention of scikit-learn's ``roc_curve``, so a Youden threshold reproduces its ROC
point. A metric that is undefined for the input is None with a sentence in ``notes``;
invalid input (length mismatch, NaN, probabilities outside [0, 1]) is a ValueError.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from helpers.analysis import plots
from helpers.errors import UserError
from helpers.io import save_json
from helpers.training.run_folder import RunFolder

SCALAR_METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision",
                  "npv", "f1", "mcc", "roc_auc", "pr_auc", "brier_score", "log_loss")
CLASS_NAMES = ("negative", "positive")
PREDICTION_COLUMNS = ["split", "path", "label_id", "probability"]  # predictions.csv


@dataclass(frozen=True)
class ThresholdRule:
    """One way of turning probabilities into labels, named the same everywhere."""

    key: str  # its results in metrics.json
    name: str  # as notebook 07's THRESHOLDS parameter names it
    label: str  # in metric tables
    prefix: str  # of its columns in the run tables (helpers.analysis.results)
    description: str  # in the comparison's captions


THRESHOLD_RULES = (
    ThresholdRule("threshold_0.5", "0.5", "threshold 0.5", "t05", "threshold 0.5"),
    ThresholdRule("threshold_youden", "youden", "Youden threshold", "youden",
                  "each run's Youden threshold on its validation images"),
)
THRESHOLDS = {r.key: r.label for r in THRESHOLD_RULES}


def _column(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D float array; a (n, 1) column (Keras ``predict``) is flattened."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric: pass label_id (0/1) and probabilities.") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must hold one value per image (got shape {arr.shape}).")
    return arr


def _as_arrays(y_true: Any, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated labels (int, 0/1) and probabilities (float, [0, 1]) of the same length."""
    y, p = _column(y_true, "y_true"), _column(prob, "prob")
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} values but prob has {len(p)}: "
                        "pass one probability per label.")
    if np.isnan(p).any():
        raise ValueError(f"prob contains {int(np.isnan(p).sum())} NaN value(s): check the model's "
                        "outputs (a diverged training gives NaN).")
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"prob must be probabilities in [0, 1] (got {p.min():g} to {p.max():g}): "
                        "apply the sigmoid to logits before evaluating.")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 and 1: use label_id, with 1 = disease.")
    return y.astype(int), p


def _undefined(cm: np.ndarray, threshold: float) -> dict[str, str]:
    """Why each undefined metric is undefined for this confusion matrix (defined ones absent)."""
    if cm.sum() == 0:
        return dict.fromkeys(SCALAR_METRICS, "there are no samples")
    (tn, fp), (fn, tp) = cm
    no_pos, no_neg = "y_true has no positive sample", "y_true has no negative sample"
    at = f"at threshold {threshold:.4g}"
    one_class = no_pos if tp + fn == 0 else no_neg if tn + fp == 0 else None
    reasons = {
        "balanced_accuracy": one_class,
        "sensitivity": no_pos if tp + fn == 0 else None,
        "specificity": no_neg if tn + fp == 0 else None,
        "precision": f"no sample is predicted positive {at}" if tp + fp == 0 else None,
        "npv": f"no sample is predicted negative {at}" if tn + fn == 0 else None,
        "f1": f"there is no positive sample and none is predicted positive {at}"
              if tp + fp + fn == 0 else None,
        "mcc": ("a row or column of the confusion matrix is empty (one class only in y_true or in "
                "the predictions)") if min(tp + fp, tp + fn, tn + fp, tn + fn) == 0 else None,
        "roc_auc": one_class,
        "pr_auc": no_pos if tp + fn == 0 else None,
    }
    return {name: why for name, why in reasons.items() if why}


def _scorers(y: np.ndarray, p: np.ndarray, pred: np.ndarray) -> dict[str, Callable[[], float]]:
    """scikit-learn's computation of each scalar metric, called only where it is defined."""
    return {
        "accuracy": lambda: skm.accuracy_score(y, pred),
        "balanced_accuracy": lambda: skm.balanced_accuracy_score(y, pred),
        "sensitivity": lambda: skm.recall_score(y, pred, pos_label=1),
        "specificity": lambda: skm.recall_score(y, pred, pos_label=0),  # recall of the negatives
        "precision": lambda: skm.precision_score(y, pred, pos_label=1),
        "npv": lambda: skm.precision_score(y, pred, pos_label=0),  # precision of the negatives
        # 2tp / (2tp + fp + fn) with a non-zero denominator here: 0 is exact, not a fill-in.
        "f1": lambda: skm.f1_score(y, pred, zero_division=0.0),
        "mcc": lambda: skm.matthews_corrcoef(y, pred),
        "roc_auc": lambda: skm.roc_auc_score(y, p),
        "pr_auc": lambda: skm.average_precision_score(y, p),
        "brier_score": lambda: skm.brier_score_loss(y, p, pos_label=1),
        "log_loss": lambda: skm.log_loss(y, p, labels=[0, 1]),
    }


def _nan_to_none(obj: Any) -> Any:
    """The same nested dict with NaN as None and NumPy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    value = float(obj)
    return None if np.isnan(value) else value


def _notes(undefined: dict[str, str], p: np.ndarray, n_pos: int) -> list[str]:
    """One sentence per reason, naming the metrics it leaves undefined."""
    by_reason: dict[str, list[str]] = {}
    for name, why in undefined.items():
        by_reason.setdefault(why, []).append(name)
    notes = [f"{', '.join(names)} undefined: {why}." for why, names in by_reason.items()]
    if len(p) > 1 and p.min() == p.max() and 0 < n_pos < len(p):
        notes.append("All probabilities are equal: the model does not rank the images "
                     "(ROC-AUC 0.5 and PR-AUC = prevalence by construction).")
    return notes


def evaluate(y_true: Any, prob: Any, threshold: float = 0.5,
             class_names: Sequence[str] = CLASS_NAMES) -> dict[str, Any]:
    """Every metric of the series for ``prob`` against ``y_true`` at ``threshold``: accuracy,
    balanced accuracy, sensitivity, specificity, precision, NPV, F1, MCC, ROC-AUC, PR-AUC,
    Brier score and log-loss.

    Returns plain JSON types: the scalar metrics (None when undefined), ``n``, ``n_pos``,
    ``threshold``, ``confusion_matrix`` (tn, fp, fn, tp; ``counts`` and ``percent`` of all
    as [[tn, fp], [fn, tp]], rows = true class), ``classification_report`` (scikit-learn's
    dict, undefined entries None) and ``notes`` (why each None is None).
    """
    y, p = _as_arrays(y_true, prob)
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1] (got {threshold}).")
    pred = (p >= threshold).astype(int)
    n, n_pos = len(y), int(y.sum())
    cm = skm.confusion_matrix(y, pred, labels=[0, 1]) if n else np.zeros((2, 2), dtype=int)
    undefined = _undefined(cm, threshold)
    scores = {name: None if name in undefined else float(score())
              for name, score in _scorers(y, p, pred).items()}
    report = None if n == 0 else _nan_to_none(skm.classification_report(
        y, pred, labels=[0, 1], target_names=list(class_names), output_dict=True,
        zero_division=np.nan))
    (tn, fp), (fn, tp) = cm.tolist()
    return {
        "threshold": float(threshold), "n": n, "n_pos": n_pos, **scores,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp, "counts": cm.tolist(),
                             "percent": (100 * cm / n).tolist() if n else None},
        "classification_report": report,
        "notes": _notes(undefined, p, n_pos),
    }


def _youden(y: np.ndarray, p: np.ndarray) -> tuple[float, str | None]:
    """Youden threshold and None, or 0.5 and the reason it is undefined."""
    if len(np.unique(y)) < 2:
        return 0.5, ("Youden threshold undefined (the validation labels hold one class only): "
                     "0.5 used.")
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    j = (tpr - fpr)[1:]  # point 0 is roc_curve's "nothing positive" threshold (inf)
    best = int(np.argmax(j))  # ties: the highest threshold
    if j[best] <= 0:
        return 0.5, ("Youden threshold undefined (no validation threshold beats chance, "
                     "e.g. constant scores): 0.5 used.")
    return float(thresholds[1:][best]), None


def youden_threshold(y_true: Any, prob: Any) -> float:
    """Threshold maximising sensitivity + specificity - 1 on validation (scikit-learn's ROC).

    Where it is undefined (one class only, no threshold better than chance) it returns 0.5
    and warns with the reason (a UserWarning); ``save_run_results`` records that reason in
    metrics.json as ``youden_note``.
    """
    threshold, note = _youden(*_as_arrays(y_true, prob))
    if note:
        warnings.warn(note, UserWarning, stacklevel=2)
    return threshold


def _require(df: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"The {name} DataFrame lacks column(s) {missing}: it needs {list(columns)}.")


def class_names(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Class names by label_id from config["classes"] ({label: id}, as in the split config)."""
    classes = config.get("classes")
    if isinstance(classes, Mapping) and sorted(classes.values()) == [0, 1]:
        return tuple(sorted(classes, key=classes.get))
    return CLASS_NAMES


def _save_figures(run_dir: Path, y: np.ndarray, p: np.ndarray, metrics: dict[str, Any],
                  history: pd.DataFrame | None, names: Sequence[str]) -> list[str]:
    """Confusion matrices (both thresholds), ROC, PR and history as PNGs; their file names."""
    t = metrics["youden_threshold"]
    figures = {
        "confusion_matrix_threshold_0.5.png": plots.plot_confusion_matrix(
            metrics["threshold_0.5"]["confusion_matrix"]["counts"], names,
            "Test set, threshold 0.5"),
        "confusion_matrix_threshold_youden.png": plots.plot_confusion_matrix(
            metrics["threshold_youden"]["confusion_matrix"]["counts"], names,
            f"Test set, Youden threshold {t:.3f} (from validation)"),
        "roc.png": plots.plot_roc(y, p, title="ROC curve (test set)",
                                  points={"fixed": 0.5, "Youden (validation)": t}),
        "pr.png": plots.plot_pr(y, p, title="Precision-recall curve (test set)"),
    }
    if history is not None:
        figures["history.png"] = plots.plot_history(history)
    for name, fig in figures.items():
        plots.save_figure(fig, run_dir / name)
    return sorted(figures)


def save_run_results(run_dir: str | Path, *, test: pd.DataFrame, val: pd.DataFrame,
                     history: pd.DataFrame | None, config: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate a run on the test set and write its results (layout.results(run)).

    Metrics at 0.5 and at the Youden threshold of ``val``, side by side:
    {"threshold_0.5", "threshold_youden", "youden_threshold", "youden_note", "figures"}.
    Writes metrics.json, predictions.csv (split, path, label_id, probability: every test
    and validation image, for the statistics of notebook 07), history.csv (if
    given), config.json and the PNG figures; returns the metrics dict.
    """
    _require(test, ("path", "label_id", "probability"), "test")
    _require(val, ("path", "label_id", "probability"), "val")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = class_names(config)
    y, p = _as_arrays(test["label_id"], test["probability"])
    t, note = _youden(*_as_arrays(val["label_id"], val["probability"]))
    metrics: dict[str, Any] = {"threshold_0.5": evaluate(y, p, 0.5, names),
                               "threshold_youden": evaluate(y, p, t, names),
                               "youden_threshold": t, "youden_note": note}
    metrics["figures"] = _save_figures(run_dir, y, p, metrics, history, names)
    pd.concat([frame[["path", "label_id", "probability"]].assign(split=name)
               for name, frame in (("test", test), ("val", val))])[PREDICTION_COLUMNS].to_csv(
        run_dir / "predictions.csv", index=False)
    if history is not None:
        history.to_csv(run_dir / "history.csv", index=False)
    save_json(dict(config), run_dir / "config.json")
    save_json(metrics, run_dir / "metrics.json")
    return metrics


def _scalars(result: Mapping[str, Any]) -> dict[str, Any]:
    """Threshold, scalar metrics and confusion counts of one ``evaluate`` result."""
    cm = result["confusion_matrix"]
    return {"threshold": result["threshold"], **{k: result[k] for k in SCALAR_METRICS},
            **{k: cm[k] for k in ("tn", "fp", "fn", "tp")}}


def metrics_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Both thresholds of a ``save_run_results`` dict side by side (rows = metrics)."""
    return pd.DataFrame({label: _scalars(metrics[key]) for key, label in THRESHOLDS.items()})


def compare_runs(runs: Mapping[str, str | Path], threshold: str = "threshold_0.5") -> pd.DataFrame:
    """Saved runs side by side (rows = metrics, columns = run names) at one threshold key."""
    if threshold not in THRESHOLDS:
        raise UserError(f"threshold must be one of {list(THRESHOLDS)} (got {threshold!r}).")
    return pd.DataFrame({name: _scalars(RunFolder(path).metrics[threshold])
                         for name, path in runs.items()})
