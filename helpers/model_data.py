"""Framework-free model inputs: the split CSV's rows as arrays of cached images.

Both the Keras and the PyTorch loaders start from here, so both frameworks see the same
images in the same order; each process decodes the cache once, never per epoch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from .config import Layout
from .errors import UserError

SPLITS = ("train", "val", "test")
HISTORY_COLUMNS = ["epoch", "phase", "loss", "val_loss", "lr", "accuracy", "val_accuracy",
                   "auc", "val_auc"]  # a training history, either framework (contract)


@dataclass(frozen=True)
class AugmentationParams:
    """The seeds' training augmentation (DESIGN.md section 7), one set for both frameworks.

    ``rotation`` in degrees; ``shift`` and ``zoom`` as fractions of the side; ``shear`` as
    the x-shear coefficient (Keras ``RandomShear``: 0.1 is about 5.7 degrees; the seeds'
    ``ImageDataGenerator(shear_range=0.1)`` meant 0.1 degree, a near no-op); ``fill_mode``
    as Keras names it ("nearest" repeats the border pixels). A factor of 0 turns that part off.
    """

    rotation: float = 15.0
    shift: float = 0.1
    shear: float = 0.1
    zoom: float = 0.1
    flip: bool = True
    fill_mode: str = "nearest"


@dataclass(frozen=True)
class SplitArrays:
    """Images (N, size, size) uint8 grayscale, labels (N,) int64 and their relative paths."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def read_split_rows(layout: Layout, split: str, ros: bool = False) -> pd.DataFrame:
    """Rows of one split (``ros``: the oversampled training rows) from the split CSVs."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    csv = layout.ros_csv if ros else layout.split_csv
    if ros and split != "train":
        raise ValueError("Only the training split is oversampled.")
    if not csv.exists():
        raise UserError(f"No split file at {csv}: run notebook 02 (preprocessing) first.")
    df = pd.read_csv(csv)
    return df[df["split"] == split].reset_index(drop=True)


def _read_png(path: str) -> np.ndarray | None:
    return cv2.imread(path, cv2.IMREAD_GRAYSCALE)


def load_arrays(layout: Layout, split: str, size: int, ros: bool = False,
               workers: int = 8) -> SplitArrays:
    """Decode the cached PNGs of one split into memory (threads: OpenCV releases the GIL)."""
    rows = read_split_rows(layout, split, ros)
    files = [str(layout.cache_path(p, size)) for p in rows["path"]]
    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(_read_png, files))
    missing = [f for f, img in zip(files, images) if img is None]
    if missing:
        raise UserError(f"{len(missing)} cached image(s) of the {split} split are missing at "
                        f"{size} px (first: {missing[0]}): run notebook 02 with IMAGE_SIZE={size}.")
    bad = [f for f, img in zip(files, images) if img.shape != (size, size)]
    if bad:
        raise UserError(f"Cached image {bad[0]} is not {size}x{size}: delete "
                        f"{layout.processed_dir(size)} and run notebook 02 again.")
    stack = np.stack(images) if images else np.zeros((0, size, size), np.uint8)
    return SplitArrays(stack, rows["label_id"].to_numpy(np.int64), rows["path"].tolist())


def load_all_arrays(layout: Layout, size: int, ros: bool = False) -> dict[str, SplitArrays]:
    """Every split's arrays; ``ros`` swaps the training rows for the oversampled ones."""
    return {s: load_arrays(layout, s, size, ros=ros and s == "train") for s in SPLITS}


def split_summary(arrays: dict[str, SplitArrays]) -> pd.DataFrame:
    """Images, positives and negatives per split (rows)."""
    rows = {name: {"images": len(a), "positive": int(a.labels.sum()),
                   "negative": int(len(a) - a.labels.sum())} for name, a in arrays.items()}
    return pd.DataFrame(rows).T
