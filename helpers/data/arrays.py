"""A split's rows as arrays of cached images, and the training rows of each kind of
training data.

Each process decodes the cache once, never per epoch; both frameworks' loaders start here.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from helpers.config import Layout
from helpers.data.imbalance import NATURAL, normalise, ratio_of
from helpers.data.split_file import SPLITS, checked_rows, read_split_file
from helpers.errors import UserError


@dataclass(frozen=True)
class SplitArrays:
    """Images (N, size, size) uint8 grayscale, labels (N,) int64 and their relative paths."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def read_split_rows(layout: Layout, split: str, ros: bool = False,
                    imbalance: str = NATURAL) -> pd.DataFrame:
    """Rows of one split from the split CSVs: ``ros`` takes the oversampled training rows,
    ``imbalance`` (a ratio, ``helpers.imbalance``) the subsampled ones; validation and test
    are the same at every setting."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if ros and split != "train":
        raise ValueError("Only the training split is oversampled.")
    imbalance = normalise(imbalance)
    if split == "train" and imbalance != NATURAL:
        csv = layout.imbalanced_csv(imbalance, ros)
        if not csv.exists():
            raise UserError(f"No training rows at IMBALANCE {imbalance} ({csv}): run notebook "
                            f"02 with IMBALANCE including {imbalance} first.")
    elif not ros:
        df, _ = read_split_file(layout)
        return df[df["split"] == split].reset_index(drop=True)
    else:
        csv = layout.ros_csv
    if not csv.exists():
        raise UserError(f"No split file at {csv}: run notebook 02 (preprocessing) first.")
    df = checked_rows(csv, f"delete {csv.name} and run notebook 02 again")
    return df[df["split"] == split].reset_index(drop=True)


def _read_png(path: str) -> np.ndarray | None:
    return cv2.imread(path, cv2.IMREAD_GRAYSCALE)


def load_arrays(layout: Layout, split: str, size: int, ros: bool = False,
                workers: int = 8, imbalance: str = NATURAL) -> SplitArrays:
    """Decode the cached PNGs of one split into memory (threads: OpenCV releases the GIL);
    ``ros`` and ``imbalance`` as in ``read_split_rows``."""
    rows = read_split_rows(layout, split, ros, imbalance)
    files = [str(layout.cache_path(p, size)) for p in rows["path"]]
    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(_read_png, files))
    unread = [f for f, img in zip(files, images) if img is None]
    damaged = [f for f in unread if Path(f).is_file()]
    for f in damaged:  # removed, so that notebook 02 writes them again
        Path(f).unlink()
    if damaged:
        raise UserError(f"{len(damaged)} cached image(s) of the {split} split could not be read "
                        f"(first: {damaged[0]}) and were removed: run notebook 02 with "
                        f"IMAGE_SIZE={size} again to rebuild them.")
    if unread:
        raise UserError(f"{len(unread)} cached image(s) of the {split} split are missing at "
                        f"{size} px (first: {unread[0]}): run notebook 02 with IMAGE_SIZE={size}.")
    bad = [f for f, img in zip(files, images) if img.shape != (size, size)]
    if bad:
        raise UserError(f"Cached image {bad[0]} is not {size}x{size}: delete "
                        f"{layout.processed_dir(size)} and run notebook 02 again.")
    stack = np.stack(images) if images else np.zeros((0, size, size), np.uint8)
    return SplitArrays(stack, rows["label_id"].to_numpy(np.int64), rows["path"].tolist())


def row_counts(arrays: SplitArrays) -> dict[str, dict[str, int]]:
    """Rows per class id, real and synthetic (paths ``synthetic/...``), as config.json
    records them."""
    synthetic = np.array([p.startswith("synthetic/") for p in arrays.paths], dtype=bool)
    return {kind: {str(c): int(((arrays.labels == c) & (synthetic == flag)).sum())
                   for c in (0, 1)}
            for kind, flag in (("real", False), ("synthetic", True))}


def split_summary(arrays: dict[str, SplitArrays]) -> pd.DataFrame:
    """Images, positives and negatives per split (rows)."""
    rows = {name: {"images": len(a), "positive": int(a.labels.sum()),
                   "negative": int(len(a) - a.labels.sum())} for name, a in arrays.items()}
    return pd.DataFrame(rows).T


def training_ratio(layout: Layout, imbalance: str) -> float:
    """n_majority / n_minority of a setting's real training rows (before any balancing)."""
    return ratio_of(read_split_rows(layout, "train", imbalance=imbalance)["label_id"])


def counts_table(layout: Layout, imbalances: Sequence[str]) -> pd.DataFrame:
    """Training images per class and the ratio, one row per setting (notebook 02's table)."""
    rows = {}
    for imbalance in imbalances:
        train = read_split_rows(layout, "train", imbalance=imbalance)
        counts = train["label"].value_counts()
        rows[imbalance] = {**counts.to_dict(), "images": len(train),
                           "groups": train["group"].nunique(),
                           "ratio": round(ratio_of(train["label_id"]), 2)}
    table = pd.DataFrame(rows).T.rename_axis("imbalance")
    return table.astype({c: int for c in table.columns if c != "ratio"})
