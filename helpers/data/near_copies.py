"""Near copies: one picture saved twice, re-encoded, resized, shifted, cropped a little,
brightened or marked in a corner, found by aligning small thumbnails (docs/splits.md).

Each image becomes a 64 x 64 grey thumbnail of the whole image (area averaging). Two
thumbnails, blurred (sigma 1.5 px), are aligned by the affine map that maximises their
correlation (OpenCV's ECC), once on the whole thumbnail and once on its centre only, so
that a corner mark cannot pull the alignment; their distance is the RMS difference of the
standardised centres (an eighth of the side left out on each side) after the better of the
two alignments: 0 for one picture, about 1.4 for unrelated ones. Written here because
perceptual hashes (imagehash) do not survive shifts and crops, and films of different
children hash as close as a copy does; no library aligns and compares image pairs.

Comparing every pair would cost hours on a large set, so each image is compared with its
``CANDIDATES`` nearest images by a coarse 16 x 16 standardised thumbnail (scikit-learn's
NearestNeighbors): on the full chest set the original of a copy is among its 4 nearest.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd
from joblib import Parallel, cpu_count, delayed
from PIL import Image
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.neighbors import NearestNeighbors
from tqdm import tqdm

SIZE = 64  # thumbnail side (px)
CANDIDATES = 8  # images compared with each image
_BLUR = 1.5
_BORDER = SIZE // 8
_CENTRE = np.zeros((SIZE, SIZE), np.uint8)
_CENTRE[_BORDER:-_BORDER, _BORDER:-_BORDER] = 1
# 30 iterations / 1e-3: the chest calibration of 100 / 1e-5, six times faster
_ECC_STOP = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-3)
_PAIRS_PER_TASK = 500
_MIN_PAIRS_FOR_PROCESSES = 4000  # starting workers (~2 s) costs what ~2,000 pairs take

# the copies the calibration makes of an image (make_copy), and what each one is
COPY_KINDS = {
    "jpeg": "re-encoded as JPEG, quality 50",
    "smaller": "resized to 90%",
    "larger": "resized to 110%",
    "shifted": "content shifted by 1.5% of the side (3 px at 224 px), edges repeated",
    "cropped": "2% cropped off each side",
    "brighter": "10% brighter",
    "marked": "a white mark in the top-left corner (2.5% x 7.5% of the side)",
}


# ---------------------------------------------------------------- the measure

def thumbnail(gray: np.ndarray) -> np.ndarray:
    """The whole grey image as SIZE x SIZE uint8 (area averaging; aspect not kept)."""
    return cv2.resize(gray, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _smooth(thumbs: np.ndarray) -> np.ndarray:
    """Blurred float32 thumbnails, the form every distance is computed on."""
    return np.stack([cv2.GaussianBlur(t.astype(np.float32), (0, 0), _BLUR) for t in thumbs])


def _standard_centre(image: np.ndarray) -> np.ndarray:
    centre = image[_BORDER:-_BORDER, _BORDER:-_BORDER].ravel()
    sd = centre.std()
    return (centre - centre.mean()) / (sd if sd > 0 else 1.0)


def _aligned(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> float:
    """RMS difference of the standardised centres after aligning b to a (ECC, affine)."""
    warp = np.eye(2, 3, dtype=np.float32)
    with contextlib.suppress(cv2.error):  # no alignment (a flat image, say): compare as they are
        _, warp = cv2.findTransformECC(a, b, warp, cv2.MOTION_AFFINE, _ECC_STOP, mask, 1)
    moved = cv2.warpAffine(b, warp, (SIZE, SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    return float(np.sqrt(np.mean((_standard_centre(a) - _standard_centre(moved)) ** 2)))


def _smooth_distance(a: np.ndarray, b: np.ndarray) -> float:
    return min(_aligned(a, b, None), _aligned(a, b, _CENTRE))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """The near-copy distance of two thumbnails (``thumbnail``): 0 for one picture."""
    sa, sb = _smooth(np.stack([a, b]))
    return _smooth_distance(sa, sb)


def _pair_chunk(smooth_a: np.ndarray, smooth_b: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.array([_smooth_distance(smooth_a[i], smooth_b[j]) for i, j in pairs])


def pair_distances(thumbs_a: np.ndarray, thumbs_b: np.ndarray, pairs: np.ndarray,
                   workers: int | None = None, desc: str = "near copies") -> np.ndarray:
    """``distance(thumbs_a[i], thumbs_b[j])`` for every row (i, j) of ``pairs``, on all cores
    when there are many, with a progress bar."""
    pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(0)
    smooth_a = _smooth(thumbs_a)
    smooth_b = smooth_a if thumbs_b is thumbs_a else _smooth(thumbs_b)
    chunks = [pairs[s:s + _PAIRS_PER_TASK] for s in range(0, len(pairs), _PAIRS_PER_TASK)]
    n_jobs = 1 if len(pairs) < _MIN_PAIRS_FOR_PROCESSES else (workers or cpu_count())
    results = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_pair_chunk)(smooth_a, smooth_b, c) for c in chunks)
    return np.concatenate(list(tqdm(results, total=len(chunks), desc=desc, unit="chunk")))


def _coarse(thumbs: np.ndarray) -> np.ndarray:
    """16 x 16 standardised thumbnails: the space candidates are looked up in."""
    small = np.stack([cv2.resize(cv2.GaussianBlur(t.astype(np.float32), (0, 0), 2.0), (16, 16),
                                 interpolation=cv2.INTER_AREA).ravel() for t in thumbs])
    small -= small.mean(axis=1, keepdims=True)
    sd = small.std(axis=1, keepdims=True)
    return small / np.where(sd > 0, sd, 1.0)


def _neighbours(query: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Indices into ``reference`` of each query's k nearest coarse thumbnails."""
    k = min(k, len(reference))
    return NearestNeighbors(n_neighbors=k).fit(_coarse(reference)).kneighbors(
        _coarse(query), return_distance=False)


# ---------------------------------------------------------------- within one set

def candidate_pairs(thumbs: np.ndarray, k: int = CANDIDATES, workers: int | None = None
                    ) -> pd.DataFrame:
    """Each image against its k nearest others: one row per pair (a < b), with distance."""
    if len(thumbs) < 2:
        return pd.DataFrame({"a": [], "b": [], "distance": []}).astype({"a": int, "b": int})
    near = _neighbours(thumbs, thumbs, k + 1)
    rows = np.repeat(np.arange(len(thumbs)), near.shape[1])
    pairs = np.unique(np.sort(np.column_stack([rows, near.ravel()]), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return pd.DataFrame({"a": pairs[:, 0], "b": pairs[:, 1],
                         "distance": pair_distances(thumbs, thumbs, pairs, workers)})


def connected_groups(n: int, rows: Sequence[int], cols: Sequence[int]) -> list[int]:
    """Group id per item 0..n-1 when the pairs (rows[i], cols[i]) link items: connected
    components, numbered in order of their first item (0, 1, ...)."""
    graph = sparse.coo_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(labels)[0].tolist()


def copy_groups(pairs: pd.DataFrame, n: int, threshold: float) -> list[int]:
    """Group id per image: images within ``threshold`` of each other (``candidate_pairs``)
    are linked, groups are the connected components."""
    close = pairs[pairs["distance"] <= threshold]
    return connected_groups(n, close["a"].to_numpy(), close["b"].to_numpy())


def nearest_other(pairs: pd.DataFrame, index_df: pd.DataFrame) -> np.ndarray:
    """Per image, the distance to its nearest candidate of another file (md5) and, where
    patients are known, of another patient; NaN when it has none."""
    md5, patient = index_df["md5"].to_numpy(), index_df["patient"].to_numpy()
    a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    other = (md5[a] != md5[b]) & ((patient[a] == "") | (patient[a] != patient[b]))
    both = pd.DataFrame({"image": np.concatenate([a, b])[np.tile(other, 2)],
                         "distance": np.tile(pairs["distance"].to_numpy()[other], 2)})
    return both.groupby("image")["distance"].min().reindex(range(len(index_df))).to_numpy()


# ---------------------------------------------------------------- the calibration

def make_copy(gray: np.ndarray, kind: str) -> np.ndarray:
    """A near copy of a grey image, as ``COPY_KINDS`` describes ``kind``."""
    h, w = gray.shape
    side = min(h, w)
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(gray).save(buffer, "JPEG", quality=50)
        return np.asarray(Image.open(buffer).convert("L"))
    if kind in ("smaller", "larger"):
        scale = 0.9 if kind == "smaller" else 1.1
        return cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    if kind == "shifted":
        s = max(2, round(0.015 * side))
        return cv2.copyMakeBorder(gray, s, 0, s, 0, cv2.BORDER_REPLICATE)[:h, :w]
    if kind == "cropped":
        c = max(1, round(0.02 * side))
        return gray[c:h - c, c:w - c]
    if kind == "brighter":
        return np.clip(gray.astype(np.float32) * 1.1, 0, 255).astype(np.uint8)
    if kind == "marked":
        out, m = gray.copy(), max(2, round(0.025 * side))
        out[3:3 + m, 3:3 + 3 * m] = 255
        return out
    raise ValueError(f"unknown copy kind {kind!r}: use one of {', '.join(COPY_KINDS)}")


def calibration(grays: Sequence[np.ndarray], nearest: np.ndarray) -> pd.DataFrame:
    """Distances of known copies against those of different images: one row per copy
    (``make_copy`` of each of ``grays``, kind = the copy kind) and one per image of the
    data set (kind "nearest other image", ``nearest_other``)."""
    rows = []
    for g in tqdm(grays, desc="calibration", unit="image"):
        original = thumbnail(g)
        rows += [(kind, distance(original, thumbnail(make_copy(g, kind)))) for kind in COPY_KINDS]
    rows += [("nearest other image", d) for d in nearest[np.isfinite(nearest)]]
    return pd.DataFrame(rows, columns=["kind", "distance"])


def calibration_table(calib: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per kind: how many, median and largest distance, and the share within the threshold."""
    table = calib.groupby("kind", sort=False)["distance"].agg(
        n="size", median="median", max="max", within=lambda d: 100 * float((d <= threshold).mean()))
    return table.rename(columns={"within": "within_threshold_%"}).round(3).reset_index()


# ---------------------------------------------------------------- after the split

class LeakageWarning(UserWarning):
    """A validation or test image lies within the near-copy threshold of a training image."""


def leakage_check(split: pd.DataFrame, index_df: pd.DataFrame, threshold: float,
                  workers: int | None = None) -> pd.DataFrame:
    """Each validation and test image's nearest training image (among its ``CANDIDATES``
    nearest by coarse thumbnail): path, split, label, nearest_train, nearest_label,
    distance, within_threshold; sorted by distance."""
    thumbs = dict(zip(index_df["path"], index_df["thumbnail"]))
    train = split[split["split"] == "train"].reset_index(drop=True)
    held = split[split["split"].isin(("val", "test"))].reset_index(drop=True)
    if held.empty or train.empty:
        raise ValueError("the leakage check needs training rows and validation or test rows")
    t_train = np.stack([thumbs[p] for p in train["path"]])
    t_held = np.stack([thumbs[p] for p in held["path"]])
    near = _neighbours(t_held, t_train, CANDIDATES)
    pairs = np.column_stack([np.repeat(np.arange(len(held)), near.shape[1]), near.ravel()])
    d = pair_distances(t_held, t_train, pairs, workers, desc="leakage check").reshape(near.shape)
    best = d.argmin(axis=1)
    nearest = train.iloc[near[np.arange(len(held)), best]].reset_index(drop=True)
    out = pd.DataFrame({"path": held["path"], "split": held["split"], "label": held["label"],
                        "nearest_train": nearest["path"], "nearest_label": nearest["label"],
                        "distance": d[np.arange(len(held)), best].round(4)})
    out["within_threshold"] = out["distance"] <= threshold
    return out.sort_values(["distance", "path"], ignore_index=True)


def check_summary(check: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per split: images, how many lie within the threshold of a training image, and the
    nearest distances (smallest, 1%, 5%, median)."""
    def row(d: pd.Series) -> dict[str, float | int]:
        return {"images": len(d), "within_threshold": int((d <= threshold).sum()),
                "min": d.min(), "q01": d.quantile(0.01), "q05": d.quantile(0.05),
                "median": d.median()}
    table = pd.DataFrame([{"split": s, "threshold": threshold, **row(g["distance"])}
                          for s, g in check.groupby("split")])
    return table.round(4)


def describe_check(summary: pd.DataFrame) -> str:
    """One sentence per split; warns (``LeakageWarning``) when any image is within the
    threshold of a training image."""
    lines = [f"{r.split}: {int(r.images)} images, nearest training image at {r.min:.3f} or more "
             f"(median {r.median:.3f}), {int(r.within_threshold)} within {r.threshold:g}"
             for r in summary.itertuples()]
    leaked = int(summary["within_threshold"].sum())
    if leaked:
        warnings.warn(f"{leaked} validation/test images are near copies of training images: "
                      "the split was made before they were grouped; delete the split file and its "
                      ".json and run notebook 02 again.", LeakageWarning, stacklevel=2)
    return "; ".join(lines) + "."


# ---------------------------------------------------------------- figures

def plot_calibration(calib: pd.DataFrame, threshold: float):
    """Histograms of the known copies' distances and of each image's nearest other image,
    with the threshold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.subplots()
    top = max(float(calib["distance"].max()), threshold) * 1.05
    bins = np.linspace(0, top, 60)
    copies = calib[calib["kind"] != "nearest other image"]["distance"]
    others = calib[calib["kind"] == "nearest other image"]["distance"]
    ax.hist(others, bins=bins, alpha=0.6, color="tab:blue",
            label=f"nearest other image, other patient where known (n={len(others)})")
    ax.hist(copies, bins=bins, alpha=0.7, color="tab:orange",
            label=f"made copies: {', '.join(COPY_KINDS)} (n={len(copies)})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    ax.set(xlabel="near-copy distance (aligned 64 px thumbnails)", ylabel="images", yscale="log",
           title="Near-copy threshold: known copies against different images")
    ax.legend(fontsize="small")
    return fig


def plot_leakage_check(check: pd.DataFrame, threshold: float):
    """Histogram of the validation and test images' distances to their nearest training
    image, with the threshold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.4), layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(0, max(float(check["distance"].max()), threshold) * 1.05, 50)
    for split, rows in check.groupby("split"):
        ax.hist(rows["distance"], bins=bins, alpha=0.6, label=f"{split} (n={len(rows)})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"near-copy threshold {threshold:g}")
    ax.set(xlabel="distance to the nearest training image", ylabel="images",
           title="Leakage check: each held-out image's nearest training image")
    ax.legend(fontsize="small")
    return fig
