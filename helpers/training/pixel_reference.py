"""The pixel reference: trivial baselines every CNN number is read against.

A logistic regression and a k-nearest-neighbours classifier (scikit-learn) on the cached
grey images, downsampled to 32x32 pixels and scaled to [0, 1]: fitted on the training
split, thresholded at the Youden point of the validation split and evaluated on the test
split by ``helpers.analysis.evaluation``, saved as runs of framework ``sklearn`` with the same files
as the CNN runs. A CNN that a logistic regression on 32x32 pixels beats has learned nothing
worth ranking.

The hyper-parameters are fixed (C=0.1, L2; k=15, uniform weights), never tuned on the
test split. Both models are deterministic: the seed only names the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import joblib
import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from helpers.analysis import evaluation
from helpers.config import Layout
from helpers.data.arrays import SplitArrays
from helpers.data.training_data import load_all_arrays
from helpers.errors import UserError
from helpers.training.runs import RunOutcome, RunSpec, finished, save_outcome, saved_outcome

PIXELS = 32  # side of the images the reference models see
MODELS: dict[str, tuple[str, Callable[[], ClassifierMixin]]] = {
    "logreg": (f"logistic regression (L2, C=0.1) on {PIXELS}x{PIXELS} pixels in [0, 1]",
               lambda: LogisticRegression(C=0.1, max_iter=5000)),
    "knn": (f"15-nearest neighbours (Euclidean) on {PIXELS}x{PIXELS} pixels in [0, 1]",
            lambda: KNeighborsClassifier(n_neighbors=15)),
}


def features(images: np.ndarray, pixels: int = PIXELS) -> np.ndarray:
    """Images (N, s, s) uint8 as rows (N, pixels * pixels) float32 in [0, 1]; a side other
    than ``pixels`` is area-downsampled (``cv2.INTER_AREA``) first."""
    if images.shape[1:] != (pixels, pixels):
        resized = np.empty((len(images), pixels, pixels), np.uint8)
        for i, image in enumerate(images):
            resized[i] = cv2.resize(image, (pixels, pixels), interpolation=cv2.INTER_AREA)
        images = resized
    return images.reshape(len(images), -1).astype(np.float32) / 255


def spec(dataset: str, model: str, seed: int = 42, imbalance: str = "natural") -> RunSpec:
    """The run of one reference model, e.g. ``sklearn-pixel_logreg-pixels32-seed42`` (and
    ``...-r10`` when fitted on an imbalance setting's training rows)."""
    return RunSpec(dataset, "sklearn", scenario=f"pixel_{model}", seed=seed,
                   protocol=f"pixels{PIXELS}", loss="log_loss", imbalance=imbalance)


def _predictions(estimator: ClassifierMixin, arrays: SplitArrays) -> pd.DataFrame:
    """path, label_id, probability of one split (the evaluation module's columns)."""
    return pd.DataFrame({"path": arrays.paths, "label_id": arrays.labels,
                         "probability": estimator.predict_proba(features(arrays.images))[:, 1]})


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    """``get_params()`` with every value that is not a JSON scalar as its repr."""
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
            for k, v in params.items()}


def run_reference(layout: Layout, size: int, model: str, *, seed: int = 42,
                  resume: bool = True, imbalance: str = "natural") -> RunOutcome:
    """Fit one reference model on the training split of the ``size`` px cache (the profile's
    image size; ``imbalance``: that setting's training rows), evaluate it and save it as a
    run; a run that finished with the same settings is read back instead (``resume=False``
    fits it again)."""
    if model not in MODELS:
        raise UserError(f"Unknown pixel reference model {model!r}: use one of {list(MODELS)}.")
    description, factory = MODELS[model]
    run = spec(layout.dataset, model, seed, imbalance)
    arrays = load_all_arrays(layout, size, run.training_data, run.imbalance)
    estimator = factory()
    settings = {"model": model, "params": _json_safe(estimator.get_params()), "pixels": PIXELS,
                "cache_size": size, "train_images": len(arrays["train"])}
    if resume and finished(layout, run, settings):
        return saved_outcome(layout, run)
    estimator.fit(features(arrays["train"].images), arrays["train"].labels)
    checkpoint = layout.checkpoints(run.name) / "model.joblib"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, checkpoint)
    return save_outcome(layout, run, test=_predictions(estimator, arrays["test"]),
                        val=_predictions(estimator, arrays["val"]), history=None,
                        checkpoint=checkpoint, config={"settings": settings, "model": description},
                        device="cpu")


def run_references(layout: Layout, size: int, *, seed: int = 42, resume: bool = True,
                   imbalance: str = "natural") -> dict[str, RunOutcome]:
    """Every reference model's run (keys: the model names) at an imbalance setting."""
    return {model: run_reference(layout, size, model, seed=seed, resume=resume,
                                 imbalance=imbalance)
            for model in MODELS}


BESIDE_METRICS = ("roc_auc", "pr_auc", "balanced_accuracy", "sensitivity", "specificity", "mcc",
                  "threshold")


def beside(outcome: RunOutcome, references: Mapping[str, RunOutcome],
           threshold: str = "threshold_youden") -> pd.DataFrame:
    """A run's test metrics beside the reference models' (rows: metrics; columns: the run's
    framework, then ``pixel <model>``), at the validation-chosen threshold by default."""
    runs = {outcome.spec.framework: outcome.results_dir,
            **{f"pixel {name}": ref.results_dir for name, ref in references.items()}}
    return evaluation.compare_runs(runs, threshold).loc[list(BESIDE_METRICS)]


def verdict(table: pd.DataFrame, column: str, reference: str = "pixel logreg") -> str:
    """One sentence: does the run beat the reference on ROC-AUC and balanced accuracy?"""
    parts = []
    for metric, label in (("roc_auc", "ROC-AUC"), ("balanced_accuracy", "balanced accuracy")):
        mine, theirs = table.loc[metric, column], table.loc[metric, reference]
        if mine is None or theirs is None or pd.isna(mine) or pd.isna(theirs):
            parts.append(f"{label} undefined")
        else:
            word = "above" if mine > theirs else "equal to" if mine == theirs else "BELOW"
            parts.append(f"{label} {mine:.4f} {word} {theirs:.4f}")
    return f"{column} vs {reference} on the test split: " + "; ".join(parts) + "."
