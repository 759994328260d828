"""Imbalance as a variable: the training split's minority class subsampled to a ratio.

``IMBALANCE = "natural"`` trains on the split as it is. A ratio ``r`` (10, 30, ...) keeps
n_majority / r minority training images, chosen by whole leakage groups (a patient's
images stay or go together) in an order drawn from the split's seed; every ratio takes a
prefix of the same order, so the images kept at 1 : 30 are a subset of those kept at
1 : 10. Validation and test are never touched: every ratio is scored on the same images.

The subsampled rows are written once, beside the split, like the oversampled rows:

    data/splits/<dataset>_train_r10.csv       the training rows kept (split CSV columns)
    data/splits/<dataset>_train_r10.json      ratio, seed, the split's md5, counts
    data/splits/<dataset>_train_r10_ros.csv   those rows after RandomOverSampler

Every scenario follows the ratio: class weights and LDAM margins come from the kept rows,
ROS and the WGAN-GP balance them, and the GAN learns from the kept minority images only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.config import Layout, list_items
from helpers.errors import UserError
from helpers.io import read_json, save_json, write_atomic

NATURAL = "natural"


def normalise(value: Any) -> str:
    """"natural" (None, "", "natural") or a ratio above 1 as its shortest text ("10", "12.5")."""
    if value is None or str(value).strip().lower() in ("", NATURAL):
        return NATURAL
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise UserError(f"IMBALANCE {value!r} is neither 'natural' nor a ratio: write e.g. "
                        f"'natural', 10 or 30 (the minority class kept at 1 : r).") from None
    if not np.isfinite(ratio) or ratio <= 1:
        raise UserError(f"IMBALANCE {value!r} must be a ratio above 1 (1 : r minority to "
                        f"majority), e.g. 10, or 'natural'.")
    return f"{ratio:g}"


def settings(values: Any) -> list[str]:
    """One setting or several ("natural,10,30", "[natural, 10]", a list, a number: a list
    parameter, ``config.list_items``) normalised, in order, without repeats; none: natural."""
    items = list_items(values) or [NATURAL]
    return list(dict.fromkeys(normalise(v) for v in items))


def order(imbalance: str) -> float:
    """Sort key of a setting: natural first, then the ratios ascending."""
    imbalance = normalise(imbalance)
    return 0.0 if imbalance == NATURAL else float(imbalance)


def suffix(imbalance: str) -> str:
    """What a run or folder name gets for a setting: "" for natural, "-r10" for 1 : 10."""
    imbalance = normalise(imbalance)
    return "" if imbalance == NATURAL else f"-r{imbalance}"


def ratio_of(labels: pd.Series | np.ndarray) -> float:
    """n_majority / n_minority of 0/1 labels (inf without a minority image)."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=2)
    return float(counts.max() / counts.min()) if counts.min() else float("inf")


def subsample_minority(train: pd.DataFrame, ratio: float, seed: int) -> pd.DataFrame:
    """The training rows with the minority class cut to about n_majority / ``ratio`` images,
    by whole groups in a seeded order; the kept count is the prefix sum closest to the
    target, so it is within one group of it. A group holding any minority image goes or
    stays whole (with its majority images, if it has any)."""
    counts = train["label_id"].value_counts()
    if len(counts) != 2:
        raise UserError("The training split lacks a class: subsampling needs both classes.")
    minority, n_majority = int(counts.idxmin()), int(counts.max())
    target = n_majority / ratio
    if target > counts.min():
        raise UserError(f"The training split is already 1 : {n_majority / counts.min():.2f}: "
                        f"IMBALANCE {ratio:g} would need more minority images than it has; "
                        f"use a ratio above {n_majority / counts.min():.2f} or 'natural'.")
    is_minority = train["label_id"] == minority
    groups = train.loc[is_minority, "group"].unique()  # row order: the split is path-sorted
    sizes = train[is_minority].groupby("group").size().reindex(groups).to_numpy()
    order = np.random.default_rng(seed).permutation(len(groups))
    totals = np.cumsum(sizes[order])
    take = max(1, int(np.argmin(np.abs(totals - target))) + 1)
    dropped = set(groups[order[take:]])
    return train[~train["group"].isin(dropped)].reset_index(drop=True)


def _counts(labels: pd.Series) -> dict[str, int]:
    """Images per class id, as the records write them ("0", "1")."""
    return {str(c): int((labels == c).sum()) for c in (0, 1)}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _record(layout: Layout, imbalance: str, kept: pd.DataFrame, seed: int) -> dict[str, Any]:
    labels = kept["label_id"]
    return {"imbalance": imbalance, "ratio": float(imbalance), "seed": int(seed),
            "split_md5": _md5(layout.split_csv),
            "counts": _counts(labels),
            "achieved_ratio": ratio_of(labels)}


def write_training_rows(layout: Layout, imbalance: str) -> dict[str, Any]:
    """Write the subsampled training rows of a setting and their oversampled copy, once;
    return the record (natural: the split's own training counts). The seed is the split's;
    rows written for another split or seed stop the run with a sentence."""
    from helpers.data.splits import COLUMNS, load_split, oversample_train  # sklearn: only here

    imbalance = normalise(imbalance)
    df, config = load_split(layout)
    train = df[df["split"] == "train"]
    if imbalance == NATURAL:
        return {"imbalance": NATURAL, "achieved_ratio": ratio_of(train["label_id"]),
                "counts": _counts(train["label_id"])}
    csv = layout.imbalanced_csv(imbalance)
    meta = csv.with_suffix(".json")
    seed = int(config.get("seed", 42))
    if csv.is_file() and meta.is_file():
        record = read_json(meta, f"delete it and {csv.name} to subsample again")
        if record.get("split_md5") != _md5(layout.split_csv) or record.get("seed") != seed:
            raise UserError(f"{csv} was subsampled from another split: delete it and its .json "
                            f"and .._ros.csv to subsample again.")
        return record
    kept = subsample_minority(train, float(imbalance), seed)
    ros = oversample_train(kept.assign(split="train"), seed)
    write_atomic(layout.imbalanced_csv(imbalance, ros=True),
                 ros[COLUMNS].to_csv(index=False, lineterminator="\n").encode())
    write_atomic(csv, kept[COLUMNS].to_csv(index=False, lineterminator="\n").encode())
    record = _record(layout, imbalance, kept, seed)
    save_json(record, meta)  # last: rows without their record are written again
    return record
