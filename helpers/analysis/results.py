"""One reader of results: every run folder of a data set as one tidy table, and the test
predictions of chosen runs aligned image by image.

Notebook 07 reads through this module only; it trains nothing. A run folder
(``results/<dataset>/runs/<run>/``) holds ``config.json`` and ``metrics.json`` (and, for a
classifier, ``predictions.csv``); the WGAN-GP run of notebook 05 is a run too, with its
quality measures instead of test metrics. A run's imbalance setting (``imbalance`` in its
config: "natural", or the ratio its training minority was subsampled to) is a key; runs
older than the imbalance sweep are "natural".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.analysis import evaluation
from helpers.analysis.evaluation import SCALAR_METRICS, THRESHOLD_RULES, THRESHOLDS
from helpers.config import Layout
from helpers.data.imbalance import normalise
from helpers.errors import UserError
from helpers.training.run_folder import RunFolder

KEYS = ["run", "kind", "framework", "scenario", "protocol", "seed", "split_protocol",
        "training_data", "loss", "imbalance"]
KINDS = ("classifier", "reference", "gan")  # a model of 03/04/06, the pixel reference, the GAN
GAN_MEASURES = ("frechet_distance", "kid_mean", "precision", "recall", "two_sample_auc")
PREFIXES = {r.key: r.prefix for r in THRESHOLD_RULES}  # column prefix per threshold rule


def _kind(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    if config.get("framework") == "sklearn":
        return "reference"
    return "classifier" if "threshold_0.5" in metrics else "gan"


def _row(run_dir: Path) -> dict[str, Any] | None:
    """One run's row, or None (said in a line) when its folder lacks the files of a finished run."""
    folder = RunFolder(run_dir)
    if not folder.done:
        print(f"Skipped {run_dir.name}: no config.json and metrics.json (an unfinished run).")
        return None
    config, metrics = folder.config, folder.metrics
    kind = _kind(config, metrics)
    row: dict[str, Any] = {k: config.get(k) for k in KEYS[2:]}
    try:
        row["imbalance"] = normalise(config.get("imbalance"))
    except UserError as error:
        raise UserError(f"{run_dir.name}/config.json: {error}") from None
    ratio = config.get("imbalance_ratio")
    row.update(run=run_dir.name, kind=kind, results_dir=str(run_dir),
               imbalance_ratio=float("nan") if ratio is None else float(ratio),
               image_size=config.get("profile", {}).get("image_size"),
               best_epoch=config.get("best_epoch"))
    if kind == "gan":
        measured = metrics.get("classifier", {})
        row.update({m: measured.get("synthetic", {}).get(m) for m in GAN_MEASURES})
        row.update({f"{m}_real": measured.get("real_halves", {}).get(m) for m in GAN_MEASURES})
        return row
    row["youden_threshold"] = metrics["youden_threshold"]
    for key, prefix in PREFIXES.items():
        row.update({f"{prefix}_{m}": metrics[key][m] for m in SCALAR_METRICS})
        row.update({f"{prefix}_{c}": metrics[key]["confusion_matrix"][c]
                    for c in ("tn", "fp", "fn", "tp")})
    row["n_test"] = metrics["threshold_0.5"]["n"]
    return row


def read_runs(layout: Layout) -> pd.DataFrame:
    """Every finished run of the data set, one row each: its description (``KEYS``; the
    imbalance setting as ``imbalance.normalise`` writes it), kind, folder, ``imbalance_ratio``
    (the training split's n_majority / n_minority, NaN for old runs), image size, best
    epoch; for a classifier or reference its test metrics at 0.5 (``t05_<metric>``) and at
    the validation Youden threshold (``youden_<metric>``); for the GAN its quality measures
    (synthetic, and ``<measure>_real`` for the real-halves floor)."""
    if not layout.runs_dir.is_dir():
        raise UserError(f"No runs in {layout.runs_dir}: run notebooks 03-06 with this ROOT first.")
    rows = [row for d in sorted(layout.runs_dir.iterdir()) if d.is_dir() and (row := _row(d))]
    if not rows:
        raise UserError(f"No finished run in {layout.runs_dir}: run notebooks 03-06 first.")
    table = pd.DataFrame(rows)
    return table[KEYS + [c for c in table.columns if c not in KEYS]].reset_index(drop=True)


def at_threshold(runs: pd.DataFrame, threshold: str) -> pd.DataFrame:
    """The runs with one threshold rule's metric columns under the metrics' own names; the
    GAN's measures of the same name (precision, recall) are left out, never doubled."""
    columns = metric_columns(threshold)
    clash = [c for c in runs.columns if c in set(columns.values())]
    return runs.drop(columns=clash).rename(columns=columns)


def metric_columns(threshold: str) -> dict[str, str]:
    """{column of ``read_runs``: metric} at one threshold key of ``evaluation.THRESHOLDS``."""
    if threshold not in THRESHOLDS:
        raise UserError(f"threshold must be one of {list(THRESHOLDS)} (got {threshold!r}).")
    return {f"{PREFIXES[threshold]}_{m}": m for m in SCALAR_METRICS}


def read_predictions(run_dir: str | Path, split: str = "test") -> pd.DataFrame:
    """One run's predictions on ``split`` (path, label_id, probability), sorted by path."""
    path = Path(run_dir) / "predictions.csv"
    if not path.is_file():
        raise UserError(f"No predictions.csv in {path.parent}: run its notebook again to write it.")
    df = pd.read_csv(path, keep_default_na=False)
    if "split" not in df:  # runs written before validation rows were kept: test rows only
        df = df.assign(split="test")
    rows = df[df["split"] == split]
    if rows.empty:
        raise UserError(f"{path} has no {split} rows: run its notebook again to write them.")
    return rows[["path", "label_id", "probability"]].sort_values("path").reset_index(drop=True)


def aligned_test(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and test probabilities (len(runs), n) of ``runs`` on the same images in the
    same order; runs whose test images differ (another split) stop with a sentence."""
    if runs.empty:
        raise UserError("No runs to align: the selection is empty.")
    frames = [read_predictions(d) for d in runs["results_dir"]]
    first = frames[0]
    for name, frame in zip(runs["run"], frames):
        same = frame["path"].equals(first["path"]) and frame["label_id"].equals(first["label_id"])
        if not same:
            raise UserError(f"{name} was tested on other images than {runs['run'].iloc[0]}: "
                            "compare only runs of one split (one ROOT).")
    return first["label_id"].to_numpy(int), np.stack([f["probability"].to_numpy(float)
                                                       for f in frames])


def select(runs: pd.DataFrame, *, kind: str = "classifier", framework: str | None = None,
           scenarios: Sequence[str] | None = None, imbalance: str | None = None
           ) -> pd.DataFrame:
    """The rows of one kind (and framework, scenarios, imbalance setting), sorted by
    scenario order and seed."""
    out = runs[runs["kind"] == kind]
    if framework is not None:
        out = out[out["framework"] == framework]
    if imbalance is not None:
        out = out[out["imbalance"] == imbalance]
    if scenarios is not None:
        out = out[out["scenario"].isin(scenarios)]
        order = {s: i for i, s in enumerate(scenarios)}
        out = out.assign(_o=out["scenario"].map(order)).sort_values(["_o", "seed"])
        out = out.drop(columns="_o")
    return out.reset_index(drop=True)


def histories(runs: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """The runs' training histories, by scenario and then by "framework seed<N>"."""
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for row in runs.itertuples():
        path = Path(row.results_dir) / "history.csv"
        if path.is_file():
            out.setdefault(row.scenario, {})[f"{row.framework} seed{row.seed}"] = pd.read_csv(path)
    return out


def class_names_of(runs: pd.DataFrame) -> list[str]:
    """The class names by label_id (negative first), from the first classifier's config."""
    rows = runs[runs["kind"] != "gan"]
    config = {} if rows.empty else RunFolder(rows["results_dir"].iloc[0]).config
    return list(evaluation.class_names(config))
