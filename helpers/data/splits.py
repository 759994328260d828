"""Label encoding, leakage groups and the train/val/test split every later phase reads.

Images that share a patient, a byte-identical file (md5), a near-duplicate cluster
(perceptual hash) or a near-copy group (aligned thumbnails, ``helpers.data.near_copies``) form
one leakage group, and a group never spans two splits
(docs/splits.md). Two protocols:

- ``random`` (default, the seeds' protocol made leakage-safe): a stratified group split
  with scikit-learn's ``StratifiedGroupKFold``; the fractions are read as whole folds
  (80/10/10 -> 10 folds: 1 test, 1 val, 8 train), which keeps each split's class ratio
  within a fraction of a point of the whole.
- ``official`` (Kermany): the test split is the official test folder exactly as published
  (624 images on the full chest set), so accuracy and specificity on it stay comparable
  with Kermany 2018 and MedMNIST. Images outside it whose leakage group reaches into it
  are excluded: they are in no split (split ``"excluded"`` here, absent from the split
  CSV) and counted in the split config. The rest of official train + val is pooled and a
  grouped, stratified validation split is carved out of it with ``StratifiedGroupKFold``,
  val : train = fractions[1] : fractions[0] read as whole folds (0.8/0.1 -> 9 folds, 1 to
  val); the test fraction is not used. The official val folder (16 images) is too small to
  select models on, so it is only part of that pool.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import RandomOverSampler
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import LabelEncoder

from helpers.config import Layout
from helpers.data.audit import near_duplicate_groups
from helpers.data.datasets import DatasetSpec, read_image
from helpers.data.split_file import COLUMNS, SPLITS, read_record, read_split_file, write_split_file
from helpers.errors import UserError
from helpers.io import save_json, write_atomic

EXCLUDED = "excluded"  # official protocol: in no split (never written to the split CSV)
PROTOCOLS = ("random", "official")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
# What defines a split: an existing split file made with other values is never overwritten.
PARAMETER_KEYS = ("dataset", "data_dir", "positive_class", "protocol", "seed", "fractions")
_INDEX_COLUMNS = ("path", "label", "official_split", "patient", "md5", "phash", "near_copy")


def fit_label_encoder(labels: pd.Series, positive_class: str) -> LabelEncoder:
    """A LabelEncoder over the two class names whose ``classes_`` put the positive class at 1."""
    encoder = LabelEncoder().fit(labels)
    classes = [str(c) for c in encoder.classes_]
    if len(classes) != 2:
        raise UserError(f"Found {len(classes)} classes ({', '.join(classes)}) but the series is "
                        "binary: give a data folder with exactly two class folders.")
    if positive_class not in classes:
        raise UserError(f"The positive class {positive_class!r} is not one of the classes "
                        f"{classes}: set POSITIVE_CLASS to the disease class.")
    encoder.classes_ = np.array(sorted(classes, key=lambda c: c == positive_class), dtype=object)
    return encoder


def leakage_groups(patient: pd.Series, md5: pd.Series, near_dup: pd.Series,
                   near_copy: pd.Series) -> np.ndarray:
    """Group id per row: connected components of 'same patient', 'same md5', 'same
    near-duplicate cluster', 'same near-copy group'.

    Empty patient ids are unknown and link nothing. Ids number the groups in row order.
    """
    keys = pd.concat([("p:" + patient)[patient != ""], "m:" + md5, "n:" + near_dup.astype(str),
                      "c:" + near_copy.astype(str)])
    codes, uniques = pd.factorize(keys)
    n = len(patient)
    rows = keys.index.to_numpy()
    graph = coo_matrix((np.ones(len(rows)), (rows, n + codes)), shape=(n + len(uniques),) * 2)
    _, component = connected_components(graph, directed=False)
    return pd.factorize(component[:n])[0]


def _near_duplicate_clusters(phash: pd.Series, mirror: pd.Series | None,
                             max_distance: int) -> pd.Series:
    """Near-duplicate cluster per row (mirrored copies included when their hashes are known);
    rows without a perceptual hash are clusters of one."""
    clusters = pd.Series([f"row{i}" for i in range(len(phash))], index=phash.index)
    known = phash != ""
    if mirror is not None:
        known &= mirror != ""
    if known.any():
        mirrored = None if mirror is None else mirror[known].tolist()
        groups = near_duplicate_groups(phash[known].tolist(), max_distance, mirrored=mirrored)
        clusters[known] = [str(c) for c in groups]
    return clusters


def _folds_per_split(fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Whole folds for (train, val, test): the smallest fold count that gives the fractions."""
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise UserError(f"fractions {fractions} must be three positive numbers (train, val, test) "
                        "summing to 1, e.g. (0.8, 0.1, 0.1).")
    parts = [Fraction(f).limit_denominator(100) for f in fractions]
    k = int(np.lcm.reduce([p.denominator for p in parts]))
    return tuple(int(p * k) for p in parts)  # type: ignore[return-value]


def _random_split(y: np.ndarray, groups: np.ndarray, seed: int,
                  fractions: tuple[float, float, float]) -> np.ndarray:
    """Stratified group split: folds 0.. go to test, then val, the rest to train."""
    n_train, n_val, n_test = _folds_per_split(fractions)
    k = n_train + n_val + n_test
    if len(np.unique(groups)) < k:
        raise UserError(f"Only {len(np.unique(groups))} independent image groups: too few for "
                        f"a {k}-fold split; use more images.")
    fold_split = np.array(["test"] * n_test + ["val"] * n_val + ["train"] * n_train)
    out = np.empty(len(y), dtype=object)
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, rows) in enumerate(folds.split(np.zeros(len(y)), y, groups)):
        out[rows] = fold_split[fold]
    return out


def _official_val_folds(fractions: tuple[float, float, float]) -> tuple[int, int]:
    """Whole folds (train, val) of the official pool: fractions[0] : fractions[1] reduced,
    e.g. 0.8/0.1 -> (8, 1), 9 folds; the test fraction is checked but not used."""
    n_train, n_val, _ = _folds_per_split(fractions)
    common = int(np.gcd(n_train, n_val))
    return n_train // common, n_val // common


def _official_split(official: pd.Series, y: np.ndarray, groups: np.ndarray, seed: int,
                    fractions: tuple[float, float, float]) -> np.ndarray:
    """Official test as published; groups reaching into it excluded elsewhere; val carved
    out of the pooled official train + val by a stratified group split."""
    if (official == "").any() or not official.isin(SPLITS).all():
        raise UserError("This data set has no official train/val/test split for every image: "
                        "use PROTOCOL = 'random'.")
    test = (official == "test").to_numpy()
    excluded = ~test & np.isin(groups, groups[test])
    pool = ~test & ~excluded
    out = np.where(test, "test", EXCLUDED).astype(object)
    n_train, n_val = _official_val_folds(fractions)
    k = n_train + n_val
    n_groups = len(np.unique(groups[pool]))
    if n_groups < k:
        raise UserError(f"Only {n_groups} independent image groups in the official train and "
                        f"val folders (after excluding those that share a group with the test "
                        f"folder): too few for a {k}-fold validation split; use more images.")
    fold_split = np.array(["val"] * n_val + ["train"] * n_train, dtype=object)
    rows = np.flatnonzero(pool)
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, part) in enumerate(folds.split(np.zeros(len(rows)), y[rows], groups[rows])):
        out[rows[part]] = fold_split[fold]
    return out


def make_split(index_df: pd.DataFrame, spec: DatasetSpec, *, protocol: str = "random",
               seed: int = 42, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
               ) -> pd.DataFrame:
    """One row per image, sorted by path: the contract columns plus the group sources.

    Extra columns: patient, near_dup (cluster id), near_copy (group id), official_split,
    moved (the image is in a split other than its official one: official train images carved
    into val, official val images pooled into train; official protocol only) and excluded
    (official protocol: the image shares a leakage group with the official test set but is
    not in it, so it is in no split; its ``split`` is ``"excluded"``). ``write_split`` keeps
    the contract columns of the train, val and test rows only.
    """
    if protocol not in PROTOCOLS:
        raise UserError(f"Unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}.")
    missing = [c for c in _INDEX_COLUMNS if c not in index_df]
    if missing:
        raise UserError(f"The index lacks column(s) {', '.join(missing)} (an older version made "
                        "it): run notebook 01 again with the same DATASET and ROOT.")
    if index_df.empty:
        raise UserError("The index has no images: run notebook 01 on a folder with images.")
    df = index_df.sort_values("path", kind="mergesort").reset_index(drop=True)
    text = ["label", "official_split", "patient", "md5", "phash"]
    df[text] = df[text].fillna("").astype(str)
    df["label_id"] = fit_label_encoder(df["label"], spec.positive_class).transform(df["label"])
    mirror = df["phash_mirror"].fillna("").astype(str) if "phash_mirror" in df else None
    df["near_dup"] = _near_duplicate_clusters(df["phash"], mirror, spec.near_duplicate_distance)
    df["group"] = leakage_groups(df["patient"], df["md5"], df["near_dup"], df["near_copy"])
    if protocol == "random":
        df["split"] = _random_split(df["label_id"].to_numpy(), df["group"].to_numpy(), seed,
                                    tuple(fractions))
    else:
        df["split"] = _official_split(df["official_split"], df["label_id"].to_numpy(),
                                      df["group"].to_numpy(), seed, tuple(fractions))
    df["excluded"] = df["split"] == EXCLUDED
    left = ~df["excluded"] & (df["split"] != df["official_split"])
    df["moved"] = left if protocol == "official" else False
    return df[COLUMNS + ["patient", "near_dup", "near_copy", "official_split", "moved", "excluded"]]


def _multi_image(keys: pd.Series) -> int:
    """How many non-empty keys occur on more than one row."""
    counts = keys[keys != ""].value_counts()
    return int((counts > 1).sum())


def split_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Images per split (rows, train/val/test, then excluded if any) and class (columns),
    with totals."""
    table = pd.crosstab(df["split"], df["label"], margins=True, margins_name="total")
    return table.reindex([s for s in SPLITS + (EXCLUDED,) if s in table.index] + ["total"])


def split_config(df: pd.DataFrame, spec: DatasetSpec, *, data_dir: str | Path, protocol: str,
                 seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
                 ) -> dict[str, Any]:
    """The split's JSON config: where the data is, label mapping, parameters, counts, groups.

    ``counts`` and ``n_images`` cover the train, val and test rows (the split CSV); images
    the official protocol excludes are counted under ``groups``.
    """
    table = split_counts(df).drop(columns="total")
    counts = table.reindex([s for s in SPLITS if s in table.index])
    labels = sorted(df["label"].unique())
    out = df[df["split"] == EXCLUDED]
    crossing = df[df["official_split"] != ""].groupby("group")["official_split"].nunique()
    return {
        "dataset": spec.name,
        "data_dir": str(Path(data_dir).expanduser().resolve()),
        "positive_class": spec.positive_class,
        "classes": {str(k): int(v) for k, v in
                    df.drop_duplicates("label").set_index("label")["label_id"].items()},
        "protocol": protocol,
        "seed": int(seed),
        "fractions": [float(f) for f in fractions],
        "near_copy_distance": spec.near_copy_distance,
        "counts": {s: {str(k): int(v) for k, v in row.items()} for s, row in counts.iterrows()},
        "n_images": int(df["split"].isin(SPLITS).sum()),
        "groups": {
            "total": int(df["group"].nunique()),
            "multi_image": int((df["group"].value_counts() > 1).sum()),
            "patients_multi_image": _multi_image(df["patient"]),
            "duplicate_md5": _multi_image(df["md5"]),
            "near_duplicate": _multi_image(df["near_dup"]),
            "near_copy": _multi_image(df["near_copy"].astype(str)),
            "crossing_official_splits": int((crossing > 1).sum()),
            "images_moved": int(df["moved"].sum()),
            "excluded_images": len(out),
            "excluded_groups": int(out["group"].nunique()),
            "excluded_images_per_class": {str(c): int((out["label"] == c).sum()) for c in labels},
            "excluded_groups_per_class": {
                str(c): int(out.loc[out["label"] == c, "group"].nunique()) for c in labels},
        },
    }


def _check_existing(layout: Layout, config: dict[str, Any]) -> bool:
    """True when a split with the same parameters exists; raise if one with others does."""
    if not layout.split_csv.exists() and not layout.split_config.exists():
        return False
    old = read_record(layout)
    changed = [k for k in PARAMETER_KEYS if old.get(k) != config[k]]
    if changed:
        raise UserError(f"{layout.split_csv} already exists with another {', '.join(changed)}: "
                        "delete it (and its .json) to split again, or use another ROOT.")
    read_split_file(layout)  # the same parameters: the CSV must still be the one written
    return True


def write_split(layout: Layout, df: pd.DataFrame, config: dict[str, Any]) -> Path:
    """Write the split CSV (contract columns of the train, val and test rows, sorted by
    path; excluded images are left out) and its JSON config, once.

    The same parameters give the same bytes; an existing split with the same parameters is
    left as it is, one with other parameters stops the run.
    """
    if not _check_existing(layout, config):
        out = df.loc[df["split"].isin(SPLITS), COLUMNS].sort_values("path", kind="mergesort")
        write_split_file(layout, out, config)
    return layout.split_csv


def load_split(layout: Layout) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The split CSV and its config, as notebook 02 wrote them (checked against each other:
    ``helpers.data.split_file``)."""
    return read_split_file(layout)


def oversample_train(df: pd.DataFrame, seed: int = 42) -> pd.DataFrame:
    """The training rows after RandomOverSampler: minority rows repeated up to balance."""
    train = df[df["split"] == "train"].reset_index(drop=True)
    sampler = RandomOverSampler(random_state=seed)
    sampler.fit_resample(train[["path"]], train["label_id"])
    return train.iloc[sampler.sample_indices_][COLUMNS].reset_index(drop=True)


def write_oversampled(layout: Layout, ros: pd.DataFrame) -> Path:
    """Write the oversampled training rows to ``layout.ros_csv`` (contract columns)."""
    layout.ros_csv.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(layout.ros_csv, ros[COLUMNS].to_csv(index=False, lineterminator="\n").encode())
    return layout.ros_csv


def closest_pairs(check: pd.DataFrame, data_dir: str | Path, n: int = 6
                  ) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The ``n`` held-out images nearest to a training image (``near_copies.leakage_check``)
    beside that training image, for ``plots.plot_image_grid``."""
    rows = {}
    for r in check.head(n).itertuples():
        rows[f"{r.split} {r.distance:.3f}"] = [
            (f"{r.split}: {Path(r.path).name}\n{r.label}", read_image(Path(data_dir) / r.path)),
            (f"train: {Path(r.nearest_train).name}\n{r.nearest_label}",
             read_image(Path(data_dir) / r.nearest_train))]
    return rows


def write_leakage_check(layout: Layout, check: pd.DataFrame, summary: pd.DataFrame) -> Path:
    """Write the leakage check (``near_copies.leakage_check``) as leakage_check.csv and its
    per-split summary as leakage_check.json beside the split's figures; returns the CSV."""
    out = layout.reports("preprocessing")
    out.mkdir(parents=True, exist_ok=True)
    check.to_csv(out / "leakage_check.csv", index=False)
    save_json({"splits": summary.to_dict(orient="records")}, out / "leakage_check.json")
    return out / "leakage_check.csv"
