"""Offline quality statistics of a synthetic image set, from arrays the caller extracted.

Feature-space statistics take (n, d) feature vectors (a trained classifier's penultimate
layer); the memorisation check takes flattened grey pixels. One set of arrays feeds every
statistic, and each is read against a floor: the same statistic between two halves of the
real set (``quality_report``).

- Frechet distance: Heusel et al. 2017, "GANs trained by a two time-scale update rule
  converge to a local Nash equilibrium" (FID).
- Kernel distance: Binkowski et al. 2018, "Demystifying MMD GANs" (KID).
- Precision / recall: Kynkaanniemi et al. 2019, "Improved precision and recall metric for
  assessing generative models".
- Two-sample AUC: Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample tests".

Written here, not imported: torchmetrics' FID/KID classes take images and run a network on
every update, while here one set of feature arrays feeds every statistic (the tests check
both against torchmetrics given the same features); prdc, the reference precision/recall
package, is unmaintained since 2020, and the manifold test is a few lines on scikit-learn.
Framework-free: numpy, scipy, pandas and scikit-learn only.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import linalg
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import pairwise_distances_chunked, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

EPS = 1e-6  # added to both covariances when sqrtm fails, as pytorch-fid does
PR_K = 3
METRICS = {"frechet_distance": 0.0, "kid_mean": 0.0, "precision": 1.0, "recall": 1.0,
           "two_sample_auc": 0.5}  # metric -> what a perfect generator scores


def _rows(x: np.ndarray, name: str, min_rows: int) -> np.ndarray:
    """``x`` as a finite float64 (n, d) array with at least ``min_rows`` rows."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples, features): reshape it to (n, -1).")
    if len(arr) < min_rows:
        raise ValueError(f"{name} has {len(arr)} rows but needs at least {min_rows}: pass more samples.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values: check the feature extraction.")
    return arr


def _pair(a: np.ndarray, b: np.ndarray, min_rows: int, names: tuple[str, str] = ("a", "b")
          ) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays checked by ``_rows``, with the same number of columns."""
    a, b = _rows(a, names[0], min_rows), _rows(b, names[1], min_rows)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} has {a.shape[1]} features and {names[1]} {b.shape[1]}: "
                        "extract both with the same model and layer.")
    return a, b


def _trace_sqrt(prod: np.ndarray) -> float | None:
    """Trace of sqrtm(prod), or None when the root is not finite or clearly complex."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "matrix is singular": handled by the caller
        root = linalg.sqrtm(prod)
    if not np.isfinite(root).all() or np.abs(np.diagonal(root).imag).max() > 1e-3:
        return None
    return float(np.trace(root.real))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets: ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b)).

    With fewer rows than features (the usual case: a few hundred images, 512-2048
    features) the covariances are singular and a d x d sqrtm is slow (~50 s at d = 2048)
    and needs pytorch-fid's eps; there the same trace is computed exactly as the nuclear
    norm of the (n_a x n_b) cross-Gram matrix of the centred rows, since the nonzero
    eigenvalues of S_a S_b are the squared singular values of A B^T (S_a = A^T A).
    """
    a, b = _pair(a, b, 2)
    diff = a.mean(axis=0) - b.mean(axis=0)
    ca, cb = (a - a.mean(axis=0)) / np.sqrt(len(a) - 1), (b - b.mean(axis=0)) / np.sqrt(len(b) - 1)
    traces = float(np.sum(ca * ca) + np.sum(cb * cb))  # Tr(S_a) + Tr(S_b)
    if min(len(a), len(b)) <= a.shape[1]:
        tr = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum())
    else:
        s_a, s_b = ca.T @ ca, cb.T @ cb
        tr = _trace_sqrt(s_a @ s_b)
        if tr is None:  # singular product: regularise both covariances, as pytorch-fid does
            offset = np.eye(len(s_a)) * EPS
            tr = _trace_sqrt((s_a + offset) @ (s_b + offset))
        if tr is None:
            raise ValueError("The covariance square root failed even regularised: "
                            "pass more samples or fewer feature dimensions.")
    return max(float(diff @ diff + traces - 2.0 * tr), 0.0)


def _poly_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel (x.y / d + 1)^3 between two equal-size sets."""
    m, d = x.shape

    def kern(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (p @ q.T / d + 1.0) ** 3

    k_xx, k_yy, k_xy = kern(x, x), kern(y, y), kern(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / m**2)


def kernel_distance(a: np.ndarray, b: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """KID: mean and (population) std of the unbiased polynomial MMD^2 over random subsets."""
    a, b = _pair(a, b, 2)
    if subsets < 1 or subset_size < 2:
        raise ValueError("kernel_distance needs subsets >= 1 and subset_size >= 2.")
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    scores = [_poly_mmd(a[rng.choice(len(a), m, replace=False)],
                        b[rng.choice(len(b), m, replace=False)]) for _ in range(subsets)]
    return float(np.mean(scores)), float(np.std(scores))


def _radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (self excluded)."""
    dist, _ = NearestNeighbors(n_neighbors=k).fit(x).kneighbors()
    return dist[:, -1]


def _inside(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each query, whether it lies in some ball (centre, radius)."""
    def reduce(chunk: np.ndarray, start: int) -> np.ndarray:
        return (chunk <= radii).any(axis=1)

    return np.concatenate(list(pairwise_distances_chunked(queries, centres, reduce_func=reduce)))


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = PR_K) -> tuple[float, float]:
    """Kynkaanniemi precision (fake inside the real manifold) and recall (real inside fake)."""
    if k < 1:
        raise ValueError("precision_recall needs k >= 1.")
    real, fake = _pair(real, fake, k + 1, ("real", "fake"))
    precision = _inside(fake, real, _radii(real, k)).mean()
    recall = _inside(real, fake, _radii(fake, k)).mean()
    return float(precision), float(recall)


def two_sample_auc(a: np.ndarray, b: np.ndarray, *, seed: int = 0) -> float:
    """Held-out ROC AUC of a logistic regression telling ``a`` (0) from ``b`` (1); 0.5 = alike."""
    a, b = _pair(a, b, 2)
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    a, b = (x[np.sort(rng.choice(len(x), n, replace=False))] if len(x) > n else x for x in (a, b))
    x, y = np.vstack([a, b]), np.repeat([0, 1], n)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, y, cv=folds, method="decision_function")
    return float(roc_auc_score(y, scores))


def nearest(queries: np.ndarray, reference: np.ndarray, *, exclude_self: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest reference row, and its index.

    ``exclude_self=True``: ``queries`` is ``reference`` and each row's own entry is skipped.
    """
    queries, reference = _pair(queries, reference, 1, ("queries", "reference"))
    if exclude_self:
        if queries.shape != reference.shape or not np.array_equal(queries, reference):
            raise ValueError("exclude_self=True needs queries and reference to be the same array.")
        if len(reference) < 2:
            raise ValueError("exclude_self=True needs at least 2 rows.")
        _, idx = NearestNeighbors(n_neighbors=1).fit(reference).kneighbors()
    else:
        _, idx = NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(queries)
    idx = idx[:, 0]
    # exact distances (the search's dot-product shortcut leaves ~1e-7 on exact copies)
    return np.linalg.norm(queries - reference[idx], axis=1), idx


def split_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation of range(n) cut into halves of n // 2 and n - n // 2."""
    perm = np.random.default_rng(seed).permutation(n)
    return perm[: n // 2], perm[n // 2:]


def feature_scores(reference: np.ndarray, other: np.ndarray, *, seed: int = 0) -> dict[str, float]:
    """Every feature-space statistic of ``other`` against ``reference``."""
    reference, other = _pair(reference, other, PR_K + 1, ("reference", "other"))
    kid_mean, kid_std = kernel_distance(reference, other, seed=seed)
    precision, recall = precision_recall(reference, other)
    return {"frechet_distance": frechet_distance(reference, other), "kid_mean": kid_mean,
            "kid_std": kid_std, "precision": precision, "recall": recall,
            "two_sample_auc": two_sample_auc(reference, other, seed=seed),
            "n_reference": int(len(reference)), "n_other": int(len(other))}


def quality_report(real: np.ndarray, fake: np.ndarray, *, seed: int = 0) -> dict[str, dict]:
    """Synthetic vs real half A, beside the floor: real half B vs real half A, same sizes."""
    real, fake = _pair(real, fake, 1, ("real", "fake"))
    if len(real) < 2 * (PR_K + 1) or len(fake) < PR_K + 1:
        raise ValueError(f"quality_report needs at least {2 * (PR_K + 1)} real and {PR_K + 1} "
                        f"synthetic rows (got {len(real)} and {len(fake)}): pass more samples.")
    half_a, half_b = split_halves(len(real), seed)
    rng = np.random.default_rng(seed)
    n = min(len(half_b), len(fake))  # both rows compare n samples against the same half A
    half_b = half_b[:n]
    fake = fake[np.sort(rng.choice(len(fake), n, replace=False))]
    return {"synthetic": feature_scores(real[half_a], fake, seed=seed),
            "real_halves": feature_scores(real[half_a], real[half_b], seed=seed)}


def _spread(d: np.ndarray) -> dict[str, float]:
    return {"median": float(np.median(d)), "p05": float(np.percentile(d, 5)), "min": float(d.min())}


def memorisation(real_pixels: np.ndarray, fake_pixels: np.ndarray, *, pairs: int = 8) -> dict:
    """Nearest-real-image distances of the synthetic set beside the real leave-one-out floor.

    Distances are RMS pixel differences (Euclidean / sqrt(columns)), in the pixels' own unit.
    """
    real = np.asarray(real_pixels, dtype=np.float64)
    fake = np.asarray(fake_pixels, dtype=np.float64)
    real, fake = real.reshape(len(real), -1), fake.reshape(len(fake), -1)
    real, fake = _pair(real, fake, 1, ("real_pixels", "fake_pixels"))
    if len(real) < 2:
        raise ValueError("memorisation needs at least 2 real images for the real-to-real floor.")
    scale = np.sqrt(real.shape[1])
    syn_d, syn_i = nearest(fake, real)
    real_d, _ = nearest(real, real, exclude_self=True)
    syn_d, real_d = syn_d / scale, real_d / scale
    order = np.argsort(syn_d, kind="stable")[:pairs]
    return {"synthetic_to_real": _spread(syn_d), "real_to_real": _spread(real_d),
            "share_closer_than_real_p05": float((syn_d < np.percentile(real_d, 5)).mean()),
            "closest_pairs": [{"synthetic": int(i), "real": int(syn_i[i]),
                               "distance": float(syn_d[i])} for i in order],
            "synthetic_distances": syn_d.tolist(), "real_distances": real_d.tolist()}


def _reading(metric: str, syn: float, floor: float) -> str:
    """A short phrase that reads the synthetic number against the floor."""
    if metric in ("frechet_distance", "kid_mean"):
        if floor > 0:
            return f"{syn / floor:.1f}x the floor"
        return f"{syn - floor:+.3g} above the floor (floor <= 0)"
    if metric == "two_sample_auc":
        return f"{syn:.2f} vs floor {floor:.2f}; 0.50 is indistinguishable"
    return f"{syn - floor:+.2f} vs floor"


def quality_table(report: dict[str, dict]) -> pd.DataFrame:
    """One row per metric: synthetic vs real, the real-halves floor, the best score, a reading."""
    syn, floor = report["synthetic"], report["real_halves"]
    rows = {m: {"synthetic vs real": float(syn[m]), "real vs real (floor)": float(floor[m]),
                "best": best, "reading": _reading(m, float(syn[m]), float(floor[m]))}
            for m, best in METRICS.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("metric")


def describe_quality(metrics: dict) -> str:
    """Sentences read from a GAN run's metrics (``helpers.torch.gan_quality.measure_quality``): how far
    the synthetic images sit from the real-halves floor, whether a classifier tells them
    apart, and whether any look copied."""
    out = []
    for space, report in ((s, metrics.get(s, {})) for s in ("classifier", "inception")):
        if report.get("status") != "measured":
            continue
        syn, floor = report["synthetic"], report["real_halves"]
        ratio = syn["frechet_distance"] / floor["frechet_distance"] \
            if floor["frechet_distance"] > 0 else float("inf")
        auc = syn["two_sample_auc"]
        told = ("cannot tell them from real ones" if auc < 0.6 else
                "tells them apart in part" if auc < 0.9 else "tells them apart almost always")
        out.append(
            f"In {space} features, the Frechet distance of {syn['n_other']} synthetic images "
            f"to {syn['n_reference']} real ones is {syn['frechet_distance']:.3g}, {ratio:.1f}x "
            f"the floor of two real halves ({floor['frechet_distance']:.3g}); precision "
            f"{syn['precision']:.2f} and recall {syn['recall']:.2f} against the floor's "
            f"{floor['precision']:.2f} and {floor['recall']:.2f}; a classifier {told} "
            f"(two-sample ROC-AUC {auc:.2f}, 0.5 is indistinguishable, floor "
            f"{floor['two_sample_auc']:.2f}).")
    memo = metrics.get("memorisation")
    if memo:
        share = memo["share_closer_than_real_p05"]
        verdict = ("no sign of copying" if share <= 0.1 else
                   "some synthetic images sit closer to a training image than most real images "
                   "sit to each other: look at the closest pairs")
        out.append(
            f"Memorisation: the median synthetic image is {memo['synthetic_to_real']['median']:.1f}"
            f" grey levels (RMS) from its nearest training image, against "
            f"{memo['real_to_real']['median']:.1f} between real images; {100 * share:.0f}% of "
            f"synthetic images are closer than the real images' 5th percentile ({verdict}).")
    return " ".join(out) if out else "No quality measured."
