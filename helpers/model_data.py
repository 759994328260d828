"""Framework-free model inputs: the split CSV's rows as arrays of cached images, the
order of each epoch's batches and the training augmentation.

Both the Keras and the PyTorch loaders start from here, so both frameworks see the same
images, in the same batches, augmented the same way; each process decodes the cache once,
never per epoch. A training batch depends only on (seed, epoch, batch), so an epoch can be
replayed on its own and a resumed run needs no loader state.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from .config import Layout
from .errors import UserError
from .imbalance import NATURAL, normalise

SPLITS = ("train", "val", "test")
HISTORY_COLUMNS = ["epoch", "phase", "loss", "val_loss", "val_bce", "lr", "accuracy",
                   "val_accuracy", "auc", "val_auc"]  # either framework's history (contract)


_BORDERS = {"nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT,
            "wrap": cv2.BORDER_WRAP, "constant": cv2.BORDER_CONSTANT}  # Keras fill modes
_STREAMS = {"shuffle": 0, "augment": 1}


def epoch_rng(seed: int, epoch: int, stream: str) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, stream): "shuffle" or "augment"."""
    return np.random.default_rng([seed, epoch, _STREAMS[stream]])


Batch = tuple[np.ndarray, int]  # the indices of one batch and its augmentation seed


def batch_count(n: int, batch_size: int, drop_last: bool) -> int:
    """Batches per epoch; ``drop_last`` drops a last incomplete batch unless it is the only one."""
    return n // batch_size if drop_last and n > batch_size else -(-n // batch_size)


def epoch_batches(n: int, batch_size: int, *, seed: int, epoch: int, shuffle: bool,
                  drop_last: bool = False) -> list[Batch]:
    """One epoch's batches over ``n`` rows, from (seed, epoch) alone.

    ``shuffle``: a fresh permutation each epoch; ``drop_last`` (training) drops a last
    incomplete batch, so BatchNorm never sees a single image, unless there is only one batch.
    """
    order = epoch_rng(seed, epoch, "shuffle").permutation(n) if shuffle else np.arange(n)
    seeds = epoch_rng(seed, epoch, "augment").integers(0, 2**62,
                                                       batch_count(n, batch_size, drop_last))
    return [(order[i * batch_size:(i + 1) * batch_size], int(s)) for i, s in enumerate(seeds)]


@dataclass(frozen=True)
class Augmentation:
    """The seeds' training augmentation, one implementation for both frameworks.

    ``rotation`` in degrees; ``shift`` and ``zoom`` as fractions of the side; ``shear`` as
    the x-shear coefficient (0.1 is about 5.7 degrees; the seeds'
    ``ImageDataGenerator(shear_range=0.1)`` meant 0.1 degree, a near no-op); ``fill_mode``
    as Keras names it ("nearest" repeats the border pixels). A factor of 0 turns that part off.

    Each image gets its own rotation, shift, shear, zoom and flip, composed into one affine
    map and applied in uint8 by ``cv2.warpAffine``. Hand-written because torchvision's v2
    transforms and Keras' random layers draw one parameter set per call on a batch, keep
    their random state outside the model (so a resumed run would see other images), and
    resample in float, several times slower than OpenCV.
    """

    rotation: float = 15.0
    shift: float = 0.1
    shear: float = 0.1
    zoom: float = 0.1
    flip: bool = True
    fill_mode: str = "nearest"

    def matrices(self, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 2, 3) maps from output to input pixel coordinates, about the image centre."""
        u = rng.uniform(-1, 1, (n, 6))
        angle = np.radians(u[:, 0] * self.rotation)
        scale = 1 + u[:, 1] * self.zoom
        mirror = np.where((u[:, 2] < 0) & self.flip, -1.0, 1.0)
        cos, sin, zero, one = np.cos(angle), np.sin(angle), np.zeros(n), np.ones(n)
        rotate = np.stack([cos, -sin, sin, cos], 1).reshape(n, 2, 2)
        shear = np.stack([one, u[:, 3] * self.shear, zero, one], 1).reshape(n, 2, 2)
        scaling = np.stack([scale * mirror, zero, zero, scale], 1).reshape(n, 2, 2)
        inverse = np.linalg.inv(rotate @ shear @ scaling)
        centre = np.full((n, 2, 1), (size - 1) / 2)
        shift = u[:, 4:6, None] * self.shift * size
        return np.concatenate([inverse, centre - inverse @ (centre + shift)], 2)

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augmented copies of uint8 images (B, s, s), parameters drawn from ``rng``."""
        return self.warp(images, self.matrices(len(images), images.shape[-1], rng))

    def warp(self, images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
        """Copies of uint8 images (B, s, s), each mapped by its (2, 3) matrix.

        Each image is padded by its fill mode as far as its map reaches and then warped with
        a constant border: 2x faster than warpAffine's own border modes, and within one
        grey level of them (fixed-point rounding).
        """
        size = images.shape[-1]
        out = np.empty(images.shape, np.uint8)
        corners = np.array([[0, size - 1, 0, size - 1], [0, 0, size - 1, size - 1], [1, 1, 1, 1]])
        reach = matrices @ corners  # where each output corner samples the input
        overshoot = np.maximum(-reach.min((1, 2)), reach.max((1, 2)) - (size - 1))
        margins = np.ceil(overshoot.clip(0)).astype(int) + 2  # + the interpolation neighbour
        for image, target, matrix, m in zip(images, out, matrices, margins.tolist()):
            padded = cv2.copyMakeBorder(image, m, m, m, m, _BORDERS[self.fill_mode], value=0)
            cv2.warpAffine(padded, matrix + [[0, 0, m], [0, 0, m]], (size, size), dst=target,
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT)
        return out


def gather_batches(images: np.ndarray, batches: Sequence[Batch],
                   augmentation: Augmentation | None) -> np.ndarray:
    """The images of consecutive ``batches`` (one gather), each batch augmented with its
    own seed, so a batch never depends on how many batches are gathered together."""
    indices = np.concatenate([idx for idx, _ in batches])
    out = images[indices]
    if augmentation is None:
        return out
    size = out.shape[-1]
    return augmentation.warp(out, np.concatenate([
        augmentation.matrices(len(idx), size, np.random.default_rng(seed))
        for idx, seed in batches]))


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
    else:
        csv = layout.ros_csv if ros else layout.split_csv
    if not csv.exists():
        raise UserError(f"No split file at {csv}: run notebook 02 (preprocessing) first.")
    df = pd.read_csv(csv)
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


TRAINING_DATA = ("original", "synthetic", "ros")  # the scenarios' training rows


def load_all_arrays(layout: Layout, size: int, training_data: str = "original",
                    imbalance: str = NATURAL) -> dict[str, SplitArrays]:
    """Every split's arrays. ``training_data``: "original" (the split's training rows),
    "synthetic" (those plus notebook 05's synthetic minority images, which balance them) or
    "ros" (the oversampled rows); ``imbalance``: the training rows of that setting
    (``helpers.imbalance``). Validation and test are always the real split."""
    if training_data not in TRAINING_DATA:
        raise UserError(f"Unknown training data {training_data!r}: use one of {TRAINING_DATA}.")
    arrays = {s: load_arrays(layout, s, size, ros=training_data == "ros" and s == "train",
                             imbalance=imbalance)
              for s in SPLITS}
    if training_data == "synthetic":
        from .synthetic import synthetic_arrays  # deferred: synthetic imports this module
        extra = synthetic_arrays(layout, size, imbalance)
        train = arrays["train"]
        arrays["train"] = SplitArrays(np.concatenate([train.images, extra.images]),
                                      np.concatenate([train.labels, extra.labels]),
                                      train.paths + extra.paths)
    return arrays


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
