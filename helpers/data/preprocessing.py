"""The thesis preprocessing (docs/preprocessing.md) and the cache of preprocessed PNGs.

``preprocess`` is a pure function of a grayscale image: crop to a square, resize to the
intermediate size, CLAHE (clip 2.0, 8x8 tiles), Gaussian blur 3x3, resize to the target.
The thesis resized to 256 before CLAHE and to 224 after; other targets keep that ratio
(intermediate = size * 256 / 224). Real and synthetic (GAN) images both go through it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm  # plain text bar: works in papermill without ipywidgets

from helpers.config import Layout
from helpers.data.datasets import read_image
from helpers.errors import UserError
from helpers.io import remove_stale_temporaries, write_atomic

CROP_FRACTION = 0.95  # centre crop: side of the square / shorter side
FOREGROUND_MARGIN = 0.05  # foreground crop: margin on each side / box side
INTERMEDIATE_RATIO = 256 / 224
CLAHE_CLIP = 2.0
CLAHE_TILES = (8, 8)
BLUR_KERNEL = (3, 3)
CHUNK = 32  # images per parallel task


def _square(img: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """The side x side window at (top, left); parts outside the image are black."""
    h, w = img.shape
    pad = max(0, -top, -left, top + side - h, left + side - w)
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    return img[top + pad: top + pad + side, left + pad: left + pad + side]


def center_crop(img: np.ndarray, fraction: float = CROP_FRACTION) -> np.ndarray:
    """Centred square of ``fraction`` x the shorter side."""
    h, w = img.shape
    side = max(1, round(fraction * min(h, w)))
    return _square(img, (h - side) // 2, (w - side) // 2, side)


def foreground_crop(img: np.ndarray, margin: float = FOREGROUND_MARGIN) -> np.ndarray:
    """Square around the head of an MRI slice (the bright objects), with a margin.

    Otsu threshold, an opening scaled to the image against specks and text, then the
    bounding box of every component at least a tenth the size of the largest (the skull
    ring and the brain inside it). When nothing stands out (the objects cover under 1% or
    over 99% of the image, as in a blank one) the centre crop is used.
    """
    mask = cv2.threshold(cv2.GaussianBlur(img, (5, 5), 0), 0, 255,
                         cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
    k = max(3, min(img.shape) // 100) | 1
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if n < 2 or not 0.01 <= areas.sum() / img.size <= 0.99:
        return center_crop(img)
    boxes = stats[1:][areas >= areas.max() / 10]
    top, left = boxes[:, cv2.CC_STAT_TOP].min(), boxes[:, cv2.CC_STAT_LEFT].min()
    bottom = (boxes[:, cv2.CC_STAT_TOP] + boxes[:, cv2.CC_STAT_HEIGHT]).max()
    right = (boxes[:, cv2.CC_STAT_LEFT] + boxes[:, cv2.CC_STAT_WIDTH]).max()
    side = round(max(bottom - top, right - left) * (1 + 2 * margin))
    return _square(img, round((top + bottom - side) / 2), round((left + right - side) / 2), side)


CROPS = {"center": center_crop, "foreground": foreground_crop}


def _resize(img: np.ndarray, side: int) -> np.ndarray:
    """Square resize: area averaging when shrinking, bilinear when enlarging."""
    interpolation = cv2.INTER_AREA if side < img.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(img, (side, side), interpolation=interpolation)


def preprocess(img: np.ndarray, crop_mode: str = "center", size: int = 224) -> np.ndarray:
    """Crop, resize, CLAHE, blur, resize: uint8 grayscale HxW in, uint8 size x size out."""
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 grayscale image, got {img.dtype} {img.shape}")
    if crop_mode not in CROPS:
        raise ValueError(f"crop_mode must be one of {sorted(CROPS)}, not {crop_mode!r}")
    out = _resize(CROPS[crop_mode](img), round(size * INTERMEDIATE_RATIO))
    out = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=CLAHE_TILES).apply(out)
    out = cv2.GaussianBlur(out, BLUR_KERNEL, 0)
    return _resize(out, size)


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last chunk of every complete PNG


def complete_png(path: str | Path) -> bool:
    """Whether the file ends as a complete PNG does (its IEND chunk): a file cut short by a
    crash or a full disk does not. Reads 12 bytes."""
    try:
        with open(path, "rb") as f:
            f.seek(-len(_PNG_END), os.SEEK_END)
            return f.read() == _PNG_END
    except OSError:  # missing, or shorter than the chunk
        return False


def _cache_one(src: str, dst: str, crop_mode: str, size: int) -> str | None:
    """Preprocess ``src`` into the PNG ``dst``; None, or the reason it failed."""
    try:
        ok, png = cv2.imencode(".png", preprocess(read_image(src), crop_mode, size))
        if not ok:
            return "PNG encoding failed"
        write_atomic(dst, png.tobytes())
    except Exception as exc:  # noqa: BLE001 - any unreadable image is reported, not fatal
        return f"{type(exc).__name__}: {exc}"
    return None


def _cache_chunk(jobs: list[tuple[str, str, str]], crop_mode: str, size: int
                 ) -> list[tuple[str, str | None]]:
    """Worker task: (relpath, failure reason or None) for each (relpath, src, dst)."""
    cv2.setNumThreads(1)  # the parallelism is across processes
    return [(rel, _cache_one(src, dst, crop_mode, size)) for rel, src, dst in jobs]


@dataclass
class CacheReport:
    """What ``build_cache`` did."""

    written: int = 0
    skipped: int = 0  # already in the cache
    failed: list[tuple[str, str]] = field(default_factory=list)  # (relpath, reason)
    seconds: float = 0.0

    def __str__(self) -> str:
        lines = [f"{self.written} written, {self.skipped} already cached, "
                 f"{len(self.failed)} failed, in {self.seconds:.1f} s"]
        lines += [f"  failed: {rel}: {reason}" for rel, reason in self.failed[:10]]
        return "\n".join(lines)


def build_cache(layout: Layout, df: pd.DataFrame, data_dir: str | Path, size: int,
                crop_mode: str, workers: int | None = None) -> CacheReport:
    """Preprocess every ``df.path`` under ``data_dir`` into ``layout.cache_path(path, size)``.

    Files already in the cache are skipped when they end as a complete PNG (12 bytes read;
    a damaged one is written again); the rest are processed in chunks over ``workers``
    processes (default: all cores) and written atomically. Temporary files an interrupted
    run left in the cache are removed first.
    """
    start = time.perf_counter()
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"Data folder {data_dir} not found: run notebook 01 or set DATA_DIR.")
    report = CacheReport()
    remove_stale_temporaries(layout.processed_dir(size))
    jobs = []
    for rel in pd.unique(df["path"]):
        dst = str(layout.cache_path(rel, size))
        if complete_png(dst):
            report.skipped += 1
        else:
            jobs.append((rel, str(data_dir / rel), dst))
    for folder in {os.path.dirname(dst) for _, _, dst in jobs}:
        os.makedirs(folder, exist_ok=True)
    chunks = [jobs[i: i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    n_jobs = max(1, min(workers or len(os.sched_getaffinity(0)), len(chunks)))
    tasks = (delayed(_cache_chunk)(chunk, crop_mode, size) for chunk in chunks)
    with tqdm(total=len(jobs), desc=f"cache {size}px", unit="img", mininterval=1,
              disable=not jobs) as bar:
        for results in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
            bar.update(len(results))
            report.failed += [(rel, reason) for rel, reason in results if reason]
    report.failed.sort()
    report.written = len(jobs) - len(report.failed)
    report.seconds = time.perf_counter() - start
    return report


def preview_pairs(df: pd.DataFrame, data_dir: str | Path, layout: Layout, size: int,
                  per_class: int = 2, seed: int = 42
                  ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, raw image, cached image) for ``per_class`` random cached images of each class."""
    picks = df.sample(frac=1, random_state=seed).groupby("label").head(per_class)
    picks = picks.sort_values(["label", "path"])
    out = []
    for rel, label in zip(picks["path"], picks["label"]):
        cached = cv2.imread(str(layout.cache_path(rel, size)), cv2.IMREAD_GRAYSCALE)
        if cached is not None:
            out.append((f"{label}\n{Path(rel).name}", read_image(Path(data_dir) / rel), cached))
    return out
