"""Statistics for comparing binary classifiers on the same test images.

Framework-free (NumPy, pandas, SciPy, scikit-learn, statsmodels). Positive class = 1; an
image is predicted positive when ``prob >= threshold`` (as in ``helpers.analysis.evaluation``).

- ``bootstrap_indices`` / ``metric_values`` / ``paired_bootstrap``: percentile CIs of every
  metric of two models and of their difference, on the same stratified resamples of the
  test images; a scenario with several seeds scores the mean over its seeds.
- ``mcnemar_exact``: exact McNemar test of the paired correctness at a threshold.
- ``delong_test`` / ``delong_ci``: DeLong's test and CI of ROC-AUCs (Sun & Xu 2014).
- ``holm``: Holm's correction across a family of tests.
- ``minimum_detectable_difference`` / ``images_needed``: the power of a comparison: the
  smallest true difference its test detects, and the test images a target difference needs.

Invalid input (code calling code wrongly) is a ValueError; a metric undefined for a resample
is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from helpers.analysis.evaluation import SCALAR_METRICS

METRICS = SCALAR_METRICS
BOOT_COLUMNS = ["a", "a_low", "a_high", "b", "b_low", "b_high", "diff", "diff_low", "diff_high",
                "diff_se", "mdd", "p_boot"]


def _labels(y: Any) -> np.ndarray:
    """``y`` as a 1-D int array of 0/1 holding both classes."""
    try:
        arr = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("y must be numeric: use label_id, with 1 = disease.") from None
    if arr.ndim != 1:
        raise ValueError(f"y must hold one label per image (got shape {arr.shape}).")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError("y must contain only 0 and 1: use label_id, with 1 = disease.")
    if arr.min(initial=1) == arr.max(initial=0):
        raise ValueError("y must hold both classes (ROC-AUC is undefined otherwise): "
                        "compare models on a test set with positive and negative images.")
    return arr.astype(int)


def _probs(values: Any, n: int, name: str, seeds: bool = False) -> np.ndarray:
    """Probabilities in [0, 1], one per image: shape (n,), or (n_seeds, n) when ``seeds``."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric probabilities.") from None
    if seeds and arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != (2 if seeds else 1) or arr.shape[-1] != n or arr.size == 0:
        raise ValueError(f"{name} has shape {arr.shape} but y has {n} labels: pass one "
                        f"probability per image{' (one row per seed)' if seeds else ''}.")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains {int(np.isnan(arr).sum())} NaN value(s): check the "
                        "model's outputs (a diverged training gives NaN).")
    if ((arr < 0) | (arr > 1)).any():
        raise ValueError(f"{name} must be probabilities in [0, 1] (got {arr.min():g} to "
                        f"{arr.max():g}): apply the sigmoid to logits first.")
    return arr


def _thresholds(values: Any, k: int, name: str) -> np.ndarray:
    """One threshold in [0, 1] per seed; a single number applies to all ``k`` seeds."""
    arr = np.asarray(values, dtype=float)
    arr = np.full(k, float(arr)) if arr.ndim == 0 else arr
    if arr.shape != (k,):
        raise ValueError(f"{name} has {arr.size} value(s) for {k} seed(s): pass one threshold "
                        "per seed, or one number for all.")
    if not ((arr >= 0) & (arr <= 1)).all():
        raise ValueError(f"{name} must be in [0, 1] (got {arr.tolist()}).")
    return arr


def _indices(idx: Any, n: int) -> np.ndarray:
    """Resampling indices as an (n_boot, m) int array with values in [0, n)."""
    arr = np.asarray(idx)
    if arr.ndim != 2 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("idx must be an (n_boot, n) integer array: use bootstrap_indices(y).")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"idx must index the {n} images (0 to {n - 1}): use bootstrap_indices(y).")
    return arr


def _check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, e.g. 2000 (got {n_boot}).")
    return int(n_boot)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, e.g. 0.95 (got {level}).")


def bootstrap_indices(y: np.ndarray, n_boot: int = 2000, seed: int = 42) -> np.ndarray:
    """(n_boot, n) int array of resampled image indices, stratified by class: column j of
    every replicate is drawn from image j's class, so each replicate keeps the test set's
    class counts and the class-based metrics (sensitivity, specificity, AUCs) are defined."""
    y, n_boot = _labels(y), _check_n_boot(n_boot)
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(y)), dtype=np.intp)
    for cls in (0, 1):
        members = np.flatnonzero(y == cls)
        out[:, members] = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (the metric is undefined there)."""
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _ranked_metrics(yb: np.ndarray, pb: np.ndarray) -> dict[str, np.ndarray]:
    """ROC-AUC and PR-AUC per row of (n_boot, n) labels and scores, from one sort per row.

    Written by hand because scikit-learn scores one sample at a time (2000 calls per model).
    """
    n = yb.shape[1]
    n_pos = yb.sum(axis=1)
    order = np.argsort(-pb, axis=1)
    s, ys = np.take_along_axis(pb, order, axis=1), np.take_along_axis(yb, order, axis=1)
    # Tied scores form a group; first and last sorted position of each image's group.
    place = np.broadcast_to(np.arange(n), s.shape)
    starts = np.ones(s.shape, dtype=bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    ends = np.ones(s.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, place, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, place, n)[:, ::-1], axis=1)[:, ::-1]
    cum_tp = np.cumsum(ys, axis=1)
    tp_above = np.take_along_axis(cum_tp - ys, first, axis=1)  # positives scoring higher
    tp_at_least = np.take_along_axis(cum_tp, last, axis=1)  # positives scoring >= (ties too)
    # Mann-Whitney: the share of (positive, negative) pairs ranked right, ties counted half.
    roc_auc = _ratio(((1 - ys) * (tp_above + tp_at_least) / 2).sum(axis=1), n_pos * (n - n_pos))
    # Average precision (scikit-learn's definition): the mean over the positives of the
    # precision at their score, every image with an equal score counted as predicted positive.
    pr_auc = _ratio((ys * tp_at_least / (last + 1)).sum(axis=1), n_pos)
    return {"roc_auc": roc_auc, "pr_auc": pr_auc}


def metric_values(y: Any, prob: Any, threshold: float, idx: Any = None) -> pd.DataFrame:
    """Every metric of METRICS for each row of ``idx`` ((n_boot, n) image indices; None = the
    images as given, one row), vectorised over the rows; NaN where a metric is undefined.

    On ``idx=None`` it equals ``helpers.analysis.evaluation.evaluate(y, prob, threshold)``.
    """
    y = _labels(y)
    p = _probs(prob, len(y), "prob")
    threshold = float(_thresholds(threshold, 1, "threshold")[0])
    idx = np.arange(len(y))[None] if idx is None else _indices(idx, len(y))
    yb, pb = y[idx], p[idx]
    pos, pred = yb == 1, pb >= threshold
    tp, fp = (pred & pos).sum(axis=1), (pred & ~pos).sum(axis=1)
    fn, tn = (~pred & pos).sum(axis=1), (~pred & ~pos).sum(axis=1)
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    marginals = np.prod([tp + fp, tp + fn, tn + fp, tn + fn], axis=0, dtype=float)
    eps = np.finfo(float).eps  # scikit-learn's log_loss clips each class's probability to this
    values = {
        "accuracy": (tp + tn) / yb.shape[1], "balanced_accuracy": (sens + spec) / 2,
        "sensitivity": sens, "specificity": spec,
        "precision": _ratio(tp, tp + fp), "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "mcc": _ratio(tp * tn - fp * fn, np.sqrt(marginals)),
        **_ranked_metrics(yb, pb),
        "brier_score": ((pb - yb) ** 2).mean(axis=1),
        "log_loss": -np.where(pos, np.log(np.clip(pb, eps, 1 - eps)),
                              np.log(np.clip(1 - pb, eps, 1 - eps))).mean(axis=1),
    }
    return pd.DataFrame({name: values[name] for name in METRICS})


def _seed_mean(y: np.ndarray, probs: np.ndarray, cuts: np.ndarray, idx: Any) -> np.ndarray:
    """(rows, metrics) metric values averaged over the seeds (rows of ``probs``)."""
    return np.mean([metric_values(y, p, t, idx).to_numpy() for p, t in zip(probs, cuts)], axis=0)


def _interval(values: np.ndarray, level: float) -> np.ndarray:
    """(2, metrics) percentile interval over the replicates, ignoring undefined ones."""
    out = np.full((2, values.shape[1]), np.nan)
    ok = ~np.isnan(values).all(axis=0)
    q = (1 - level) / 2
    out[:, ok] = np.nanquantile(values[:, ok], [q, 1 - q], axis=0)
    return out


def _spread(values: np.ndarray) -> np.ndarray:
    """Standard deviation over the replicates per metric, ignoring undefined ones; NaN where
    fewer than two are defined."""
    out = np.full(values.shape[1], np.nan)
    ok = (~np.isnan(values)).sum(axis=0) >= 2
    out[ok] = np.nanstd(values[:, ok], axis=0, ddof=1)
    return out


def _p_boot(diff: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-value of diff = 0 per metric: 2 * min(share <= 0, share >= 0)."""
    valid = ~np.isnan(diff)
    count = valid.sum(axis=0)
    below = _ratio(((diff <= 0) & valid).sum(axis=0), count)
    above = _ratio(((diff >= 0) & valid).sum(axis=0), count)
    return np.minimum(1.0, 2 * np.minimum(below, above))


def paired_bootstrap(y: Any, probs_a: Any, probs_b: Any, thresholds_a: Any, thresholds_b: Any,
                     *, n_boot: int = 2000, seed: int = 42, level: float = 0.95) -> pd.DataFrame:
    """Paired percentile bootstrap of every metric of model A, model B and B - A on the same
    stratified resamples of the test images.

    ``probs_a``: (n_seeds_a, n) probabilities, one row per seed of scenario A (1-D: one
    seed); ``thresholds_a``: one threshold per seed (a number applies to all); same for B.
    Per replicate each metric is computed per seed and averaged over the seeds (the CI is
    for what one run of the scenario scores on average), then B - A. The point estimates
    ``a``, ``b``, ``diff`` are on the original images. A replicate where a metric is
    undefined (e.g. precision with nothing predicted positive) is left out of its interval.

    Returns one row per metric (index) with columns a, a_low, a_high, b, b_low, b_high,
    diff, diff_low, diff_high, diff_se (standard deviation of the replicates of B - A), mdd
    (``minimum_detectable_difference(diff_se)``) and p_boot (two-sided bootstrap p-value of
    diff = 0).
    """
    y = _labels(y)
    _check_level(level)
    pa, pb = _probs(probs_a, len(y), "probs_a", True), _probs(probs_b, len(y), "probs_b", True)
    cuts_a = _thresholds(thresholds_a, len(pa), "thresholds_a")
    cuts_b = _thresholds(thresholds_b, len(pb), "thresholds_b")
    idx = bootstrap_indices(y, n_boot, seed)
    point_a, point_b = _seed_mean(y, pa, cuts_a, None)[0], _seed_mean(y, pb, cuts_b, None)[0]
    boot_a, boot_b = _seed_mean(y, pa, cuts_a, idx), _seed_mean(y, pb, cuts_b, idx)
    diff = boot_b - boot_a
    se = _spread(diff)
    columns = [point_a, *_interval(boot_a, level), point_b, *_interval(boot_b, level),
               point_b - point_a, *_interval(diff, level), se,
               minimum_detectable_difference(se), _p_boot(diff)]
    return pd.DataFrame(dict(zip(BOOT_COLUMNS, columns)), index=pd.Index(METRICS, name="metric"))


def mcnemar_exact(y: Any, pred_a: Any, pred_b: Any) -> dict[str, float]:
    """Exact McNemar test (statsmodels) on the paired correctness of two 0/1 predictions:
    ``a_only`` / ``b_only`` (correct by A only / by B only), ``both``, ``neither``,
    ``statistic`` (the smaller discordant count) and ``pvalue`` (two-sided binomial)."""
    y = _labels(y)
    correct = []
    for name, pred in (("pred_a", pred_a), ("pred_b", pred_b)):
        arr = np.asarray(pred, dtype=float)
        if arr.shape != y.shape or not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold one 0/1 prediction per label ({len(y)} values): "
                            "pass (prob >= threshold).astype(int).")
        correct.append(arr == y)
    a, b = correct
    counts = {"a_only": int((a & ~b).sum()), "b_only": int((~a & b).sum()),
              "both": int((a & b).sum()), "neither": int((~a & ~b).sum())}
    table = [[counts["both"], counts["a_only"]], [counts["b_only"], counts["neither"]]]
    result = mcnemar(table, exact=True)
    return {**counts, "statistic": float(result.statistic), "pvalue": float(result.pvalue)}


def _delong(y: Any, probs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUCs and their DeLong covariance matrix by the fast algorithm of Sun & Xu (2014).

    Written by hand: neither SciPy, scikit-learn nor statsmodels implement DeLong.
    """
    y = _labels(y)
    if min(y.sum(), len(y) - y.sum()) < 2:
        raise ValueError("DeLong's variance needs at least two images of each class: use a "
                        "larger test set.")
    scores = np.stack([_probs(p, len(y), name) for name, p in probs.items()])
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    mid = sps.rankdata(np.hstack([pos, neg]), axis=1)  # midranks: ties count half
    v10 = (mid[:, :m] - sps.rankdata(pos, axis=1)) / n  # share of negatives below each positive
    v01 = 1 - (mid[:, m:] - sps.rankdata(neg, axis=1)) / m  # share of positives above each negative
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return v10.mean(axis=1), cov


def delong_test(y: Any, prob_a: Any, prob_b: Any) -> dict[str, float]:
    """DeLong's test of two correlated ROC-AUCs (midranks; Sun & Xu 2014): ``auc_a``,
    ``auc_b``, ``diff`` (b - a), ``se``, ``z``, two-sided ``pvalue`` and the 95% normal CI
    of the difference (``diff_low``, ``diff_high``). Identical models give z 0, p 1."""
    auc, cov = _delong(y, {"prob_a": prob_a, "prob_b": prob_b})
    diff = float(auc[1] - auc[0])
    se = float(np.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)))
    z = 0.0 if diff == 0 else (diff / se if se > 0 else np.copysign(np.inf, diff))
    half = float(sps.norm.ppf(0.975)) * se
    return {"auc_a": float(auc[0]), "auc_b": float(auc[1]), "diff": diff, "se": se, "z": z,
            "pvalue": float(2 * sps.norm.sf(abs(z))), "diff_low": diff - half,
            "diff_high": diff + half}


def delong_ci(y: Any, prob: Any, level: float = 0.95) -> tuple[float, float, float]:
    """ROC-AUC and its DeLong normal CI (auc, low, high), clipped to [0, 1]."""
    _check_level(level)
    auc, cov = _delong(y, {"prob": prob})
    half = sps.norm.ppf((1 + level) / 2) * np.sqrt(cov[0, 0])
    return float(auc[0]), max(0.0, float(auc[0] - half)), min(1.0, float(auc[0] + half))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels ``multipletests``, method "holm"); NaN entries
    stay NaN and are not counted in the family."""
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be a flat list of p-values (got shape {p.shape}).")
    ok = ~np.isnan(p)
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("pvalues must be in [0, 1] (NaN for a test that was not run).")
    out = np.full(p.shape, np.nan)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def minimum_detectable_difference(se: Any, alpha: float = 0.05, power: float = 0.80) -> Any:
    """The smallest true difference a two-sided test at level ``alpha`` detects with
    probability ``power``, given the standard error ``se`` of the estimated difference:
    (z_{1 - alpha/2} + z_{power}) * se, about 2.80 * se at the defaults. NaN stays NaN;
    an array gives an array."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be between 0 and 1, e.g. 0.05 and 0.80 (got "
                        f"{alpha} and {power}).")
    arr = np.asarray(se, dtype=float)
    if (arr < 0).any():
        raise ValueError(f"se must be a standard error, 0 or more (got {arr.min():g}).")
    return (sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) * arr[()]


def images_needed(n: int, mdd: Any, target: Any) -> Any:
    """Test images that would bring the minimum detectable difference ``mdd`` of a test on
    ``n`` images down to ``target`` at the same variance per image (the standard error
    scales as 1 / sqrt(n)): n * (mdd / target)^2, rounded up. NaN stays NaN."""
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be the number of test images, a positive integer (got {n}).")
    mdd, target = np.asarray(mdd, dtype=float), np.asarray(target, dtype=float)
    if (mdd < 0).any() or (target <= 0).any():
        raise ValueError("mdd must be 0 or more and target above 0 (a difference to detect, in "
                        "the units of mdd).")
    return np.ceil(n * (mdd / target) ** 2)[()]
