"""The GAN's data and what it makes (notebook 05), framework-free: the training split's
minority class, and the synthetic set on disk with its manifest.

The WGAN-GP learns from the minority class of the training split only, read from the
preprocessing cache: no validation or test image ever reaches it. It learns in the
preprocessed space, so its images are written as they come out (8-bit grey PNGs at the
cache's size) and never preprocessed again. The synthetic set holds exactly
n_majority - n_minority images, so that the scenario phase's training rows are balanced.

    data/synthetic/<dataset>/<size>px/<label>/synthetic_00000.png
    data/synthetic/<dataset>/<size>px/manifest.csv   file, label, label_id, seed, iteration, md5
    data/synthetic/<dataset>/<size>px/manifest.json  the GAN run that made it, and its counts
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from helpers.config import Layout
from helpers.data.arrays import SplitArrays, load_arrays, read_split_rows
from helpers.data.imbalance import NATURAL
from helpers.errors import UserError
from helpers.io import read_json, remove_stale_temporaries, save_json, write_atomic

MANIFEST_COLUMNS = ["file", "label", "label_id", "seed", "iteration", "md5"]


@dataclass(frozen=True)
class Minority:
    """The training split's minority class (by count) and how many images balance it."""

    label: str
    label_id: int
    n_minority: int
    n_majority: int

    @property
    def missing(self) -> int:
        """Synthetic images that balance the training split: n_majority - n_minority."""
        return self.n_majority - self.n_minority


def minority_class(layout: Layout, imbalance: str = NATURAL) -> Minority:
    """The class with fewer training images at an imbalance setting (a tie: the negative
    class, label_id 0)."""
    train = read_split_rows(layout, "train", imbalance=imbalance)
    counts = train.groupby(["label_id", "label"]).size()
    if len(counts) != 2:
        raise UserError(f"The training split of {layout.dataset} has {len(counts)} class(es), "
                        f"not 2: run notebook 02 on a folder with two classes.")
    (id_min, label_min), n_min = min(counts.items(), key=lambda item: (item[1], item[0][0]))
    return Minority(label_min, int(id_min), int(n_min), int(counts.max()))


def gan_images(layout: Layout, size: int, imbalance: str = NATURAL
               ) -> tuple[SplitArrays, Minority]:
    """The minority class's training images at ``size`` px (uint8 grey, from the cache) at
    an imbalance setting: everything the GAN ever sees."""
    minority = minority_class(layout, imbalance)
    train = load_arrays(layout, "train", size, imbalance=imbalance)
    keep = np.flatnonzero(train.labels == minority.label_id)
    if len(keep) < 2:
        raise UserError(f"The minority class {minority.label!r} has {len(keep)} training "
                        f"image(s): a GAN needs at least 2; use a larger data set.")
    arrays = SplitArrays(train.images[keep], train.labels[keep], [train.paths[i] for i in keep])
    return arrays, minority


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] (N, s, s) or (N, 1, s, s) to 8-bit grey (N, s, s)."""
    images = np.asarray(images, dtype=np.float32).reshape(len(images), *images.shape[-2:])
    return np.clip(np.rint((images + 1) * 127.5), 0, 255).astype(np.uint8)


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV encodes any 2-D uint8 array
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def manifest_paths(layout: Layout, size: int, imbalance: str = NATURAL) -> tuple[Path, Path]:
    """The manifest CSV and its JSON record of the GAN run that wrote the set."""
    folder = layout.synthetic_dir(size, imbalance)
    return folder / "manifest.csv", folder / "manifest.json"


def synthetic_set_complete(layout: Layout, size: int, record: dict[str, Any],
                           imbalance: str = NATURAL) -> bool:
    """Whether the set on disk was written by this ``record`` (run, seed, iteration, count)
    and every file of its manifest is there: then it is not generated again."""
    csv, meta = manifest_paths(layout, size, imbalance)
    if not (csv.is_file() and meta.is_file()):
        return False
    try:
        if read_json(meta, "") != json.loads(json.dumps(record)):
            return False
        manifest = pd.read_csv(csv, dtype={"md5": str})
    except (UserError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return False  # a damaged manifest: the set is written again
    folder = layout.synthetic_dir(size, imbalance)
    return len(manifest) == record["count"] and all(
        _md5_of(folder / f) == md5 for f, md5 in zip(manifest["file"], manifest["md5"]))


def _md5_of(path: Path) -> str | None:
    """The md5 of a file's bytes (None when it is missing)."""
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else None


def write_synthetic_set(layout: Layout, size: int, batches: Iterable[np.ndarray], *,
                        minority: Minority, seed: int, iteration: int,
                        record: dict[str, Any], imbalance: str = NATURAL) -> pd.DataFrame:
    """Write uint8 images (batches of (B, s, s)) as PNGs and then the manifest (last, so an
    interrupted write is never taken for a complete set); return the manifest.

    ``record`` (the GAN run, its settings, ``count``) goes to manifest.json. Old files of
    another set are removed first.
    """
    folder = layout.synthetic_dir(size, imbalance)
    csv, meta = manifest_paths(layout, size, imbalance)
    csv.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)
    remove_stale_temporaries(folder)
    for old in folder.glob("*/synthetic_*.png"):
        old.unlink()
    (folder / minority.label).mkdir(parents=True, exist_ok=True)
    rows = []
    for batch in batches:
        for image in batch:
            rel = f"{minority.label}/synthetic_{len(rows):05d}.png"
            data = _png(image)
            write_atomic(folder / rel, data)
            rows.append({"file": rel, "label": minority.label, "label_id": minority.label_id,
                         "seed": seed, "iteration": iteration,
                         "md5": hashlib.md5(data).hexdigest()})
    if len(rows) != record["count"]:
        raise ValueError(f"wrote {len(rows)} synthetic images, expected {record['count']}")
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    write_atomic(csv, manifest.to_csv(index=False).encode())
    save_json(record, meta)
    return manifest


def read_synthetic(layout: Layout, size: int, imbalance: str = NATURAL) -> pd.DataFrame:
    """The synthetic set's manifest (extra training rows of the scenario phase), with each
    image's absolute ``path``; a missing set says which notebook writes it."""
    csv, _ = manifest_paths(layout, size, imbalance)
    if not csv.is_file():
        raise UserError(f"No synthetic set at {csv.parent}: run notebook 05 (WGAN-GP) with "
                        f"IMAGE_SIZE={size} and IMBALANCE including {imbalance} first.")
    manifest = pd.read_csv(csv)
    manifest["path"] = [str(csv.parent / f) for f in manifest["file"]]
    return manifest


def synthetic_arrays(layout: Layout, size: int, imbalance: str = NATURAL) -> SplitArrays:
    """The synthetic set of an imbalance setting as training rows (paths
    ``synthetic/<file>``), checked against that setting's training rows: it must add exactly
    the images that balance them."""
    manifest = read_synthetic(layout, size, imbalance)
    minority = minority_class(layout, imbalance)
    labels = set(manifest["label_id"])
    if len(manifest) != minority.missing or labels - {minority.label_id}:
        raise UserError(f"The synthetic set at {layout.synthetic_dir(size, imbalance)} "
                        f"({len(manifest)} images) does not balance the current training rows "
                        f"({minority.missing} {minority.label} images missing): run notebook "
                        f"05 again.")
    return SplitArrays(load_synthetic_images(layout, size, imbalance=imbalance),
                       manifest["label_id"].to_numpy(np.int64),
                       [f"synthetic/{f}" for f in manifest["file"]])


def load_synthetic_images(layout: Layout, size: int, limit: int | None = None,
                          imbalance: str = NATURAL) -> np.ndarray:
    """The synthetic images (uint8, (N, s, s)) in manifest order, the first ``limit`` only."""
    paths = read_synthetic(layout, size, imbalance)["path"][:limit]
    images = [cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in paths]
    if any(img is None for img in images):
        raise UserError(f"Synthetic images are missing under "
                        f"{layout.synthetic_dir(size, imbalance)}: "
                        f"delete its manifest.csv and run notebook 05 again.")
    return np.stack(images) if images else np.zeros((0, size, size), np.uint8)


def mosaic(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """uint8 images (N, s, s) tiled row by row into one image, 2 px black gaps."""
    n, size = len(images), images.shape[-1]
    rows = -(-n // columns)
    out = np.zeros((rows * (size + 2) - 2, min(n, columns) * (size + 2) - 2), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        out[r * (size + 2):r * (size + 2) + size, c * (size + 2):c * (size + 2) + size] = image
    return out
