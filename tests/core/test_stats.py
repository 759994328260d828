"""helpers.analysis.stats against helpers.analysis.evaluation, statsmodels, SciPy, pROC's published values and
simulations with a known truth; bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from helpers.analysis import stats
from helpers.analysis.evaluation import SCALAR_METRICS, evaluate

# Undefined metrics and divisions must be handled, not reported by NumPy or scikit-learn.
pytestmark = [pytest.mark.filterwarnings("error::sklearn.exceptions.UndefinedMetricWarning"),
              pytest.mark.filterwarnings("error::RuntimeWarning")]

# pROC's aSAH data set (R package pROC, data/aSAH.RData, 113 patients with an aneurysmal
# subarachnoid hemorrhage; Turck et al. 2010, Intensive Care Med 36:107-115), in row order:
# outcome (1 = Poor, the cases), wfns (1-5), s100b and ndka.
ASAH_POOR = np.array(list("00001101001011001011101000000000100110110000000001100010001010011101"
                          "101111000110100000010000000000001111110001000"), dtype=int)
ASAH_WFNS = np.array(list("11113254125255125225211112121134214541425511241125521251222151125214"
                          "524414121421232421451154221113125225552445111"), dtype=float)
ASAH_S100B = np.array("""
0.13 0.14 0.1 0.04 0.13 0.1 0.47 0.16 0.18 0.1 0.12 0.1 0.44 0.71 0.04 0.08 0.49 0.04
0.07 0.33 0.09 0.09 0.07 0.11 0.07 0.17 0.07 0.11 0.13 0.19 0.05 0.16 0.41 0.14 0.34
0.35 0.48 0.09 0.96 0.25 0.5 0.46 0.16 0.07 0.43 0.45 0.11 0.08 0.09 0.86 0.52 0.08 0.06
0.13 2.07 0.1 0.14 0.15 0.07 0.06 0.77 0.05 0.09 0.3 0.03 0.09 0.04 0.23 0.7 0.09 0.27
0.71 0.08 0.26 0.08 0.16 0.09 0.13 0.1 0.08 0.11 0.33 0.11 0.28 0.07 0.1 0.32 0.22 0.07
0.05 0.24 0.38 0.1 0.15 0.08 0.14 0.1 0.07 0.04 0.19 0.56 0.14 0.58 0.32 0.82 0.74 0.15
0.47 0.17 0.44 0.15 0.5 0.48
""".split(), dtype=float)
ASAH_NDKA = np.array("""
3.01 8.54 8.09 10.42 17.4 12.75 6 13.2 15.54 6.01 15.96 17.86 5.18 8.9 13.41 20.75 11.6
16.11 32.37 54.82 32.41 49.94 40.34 9.47 6.29 12.53 6.54 6.3 80.3 12.8 9.8 9.81 9.85
18.21 5.03 14.04 21.93 8.02 7.42 8.38 6.59 9.63 13.12 7.96 14.34 41.43 7.63 7.06 12.59
13.56 3.87 9.44 7.66 12.98 419.19 27.19 22.27 9.95 21.22 11.73 10.4 58.83 6.39 11.09
12.22 13.67 17.21 22.63 12.9 9.7 21.57 8.23 72.57 15.54 10.51 10.6 14.57 5.19 9.63 4.61
21.48 17.3 12.71 9.44 11.07 19.46 10.83 5.37 11.97 7.75 9.83 10.55 28.49 8.53 12.57 12.9
46.83 11.68 12.67 9.01 9.57 34.06 11.72 14.26 47.61 11.67 24.58 10.33 13.87 15.89 22.43
6.79 13.45
""".split(), dtype=float)


def _evaluated(y: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    r = evaluate(y, p, threshold)
    return np.array([np.nan if r[m] is None else r[m] for m in SCALAR_METRICS], dtype=float)


def _binormal(rng: np.random.Generator, y: np.ndarray, shifts: tuple[float, ...],
              rho: float) -> np.ndarray:
    """One row of probabilities per shift: sigmoid of N(shift * y, 1) scores whose noise has
    correlation ``rho`` between rows, so each row's true ROC-AUC is Phi(shift / sqrt(2))."""
    shared = rng.normal(size=len(y))
    rows = [shift * y + np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=len(y))
            for shift in shifts]
    return 1 / (1 + np.exp(-np.array(rows)))


def _prob(x: np.ndarray) -> np.ndarray:
    """aSAH scores as probabilities; x / (1 + x) keeps their order and ties, so every ROC
    statistic is unchanged."""
    return x / (1 + x)


@pytest.mark.parametrize("case", ["continuous", "ties", "extremes", "nothing_positive"])
def test_metric_values_equal_evaluate(case: str) -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(80) < 0.35).astype(int)
    y[:2] = [0, 1]
    p = rng.random(80)
    threshold = 0.5
    if case == "ties":  # tied probabilities, some equal to the threshold
        p = np.round(p, 1)
        assert (p == threshold).sum() >= 3
    elif case == "extremes":  # 0 and 1 (log-loss clipping), right and wrong
        p[:6] = [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
        threshold = 0.3
    elif case == "nothing_positive":  # precision, F1 and MCC undefined
        threshold = 1.0
    got = stats.metric_values(y, p, threshold)
    assert list(got.columns) == list(SCALAR_METRICS) == list(stats.METRICS) and len(got) == 1
    np.testing.assert_allclose(got.iloc[0].to_numpy(), _evaluated(y, p, threshold),
                               rtol=1e-12, atol=1e-15)
    if case == "nothing_positive":
        assert got[["precision", "mcc"]].isna().all(axis=None)


def test_metric_values_rows_equal_evaluate_of_each_resample() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(50) < 0.4).astype(int)
    p = np.round(rng.random(50), 2)
    idx = np.vstack([stats.bootstrap_indices(y, 5, seed=1),
                     rng.integers(0, 50, size=(5, 50)),  # unstratified: counts vary
                     np.sort(rng.integers(0, 50, size=(1, 50)))])
    got = stats.metric_values(y, p, 0.45, idx).to_numpy()
    expected = np.array([_evaluated(y[row], p[row], 0.45) for row in idx])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_bootstrap_indices_stratified_and_seeded() -> None:
    y = np.array([0] * 30 + [1] * 12)
    idx = stats.bootstrap_indices(y, n_boot=200, seed=7)
    assert idx.shape == (200, 42) and np.issubdtype(idx.dtype, np.integer)
    assert (y[idx].sum(axis=1) == 12).all()  # class counts kept in every replicate
    assert (y[idx] == y).all()  # each column drawn from its own image's class
    assert (np.array([len(np.unique(row)) for row in idx]) < 42).all()  # with replacement
    assert np.array_equal(np.unique(idx), np.arange(42))  # every image can be drawn
    assert np.array_equal(idx, stats.bootstrap_indices(y, n_boot=200, seed=7))
    assert not np.array_equal(idx, stats.bootstrap_indices(y, n_boot=200, seed=8))


def test_paired_bootstrap_covers_known_auc_difference() -> None:
    """200 test sets (60 positives, 120 negatives) where B's true AUC beats A's by a known
    amount: the 95% CI of the difference covers it in about 95% of them. The models'
    scores are correlated (as two models on the same images are): a bootstrap that does not
    pair the resamples covers every time here."""
    rng = np.random.default_rng(2024)
    y = np.repeat([0, 1], [120, 60])
    shift_a, shift_b = 1.0, 1.5
    truth = sps.norm.cdf(shift_b / np.sqrt(2)) - sps.norm.cdf(shift_a / np.sqrt(2))
    covered, estimates = [], []
    for sim in range(200):
        prob_a, prob_b = _binormal(rng, y, (shift_a, shift_b), rho=0.7)
        row = stats.paired_bootstrap(y, prob_a, prob_b, 0.5, 0.5, n_boot=300,
                                     seed=sim).loc["roc_auc"]
        covered.append(row["diff_low"] <= truth <= row["diff_high"])
        estimates.append(row["diff"])
    assert 0.88 <= np.mean(covered) <= 0.99
    assert abs(np.mean(estimates) - truth) < 0.01


def test_paired_bootstrap_identical_models_and_seed_means() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(120) < 0.4).astype(int)
    y[:2] = [0, 1]
    probs_a = rng.random((3, 120))
    probs_b = _binormal(rng, y, (1.0, 2.0), rho=0.3)
    same = stats.paired_bootstrap(y, probs_a, probs_a, [0.4, 0.5, 0.6], [0.4, 0.5, 0.6],
                                  n_boot=200)
    assert list(same.columns) == stats.BOOT_COLUMNS and list(same.index) == list(stats.METRICS)
    assert (same[["diff", "diff_low", "diff_high", "diff_se", "mdd"]] == 0).all(axis=None)
    assert (same["p_boot"] == 1).all()
    undefined = stats.paired_bootstrap(y, probs_a, probs_b, 1.0, 1.0, n_boot=50)
    assert undefined.loc["precision", ["diff_se", "mdd"]].isna().all()  # nothing positive
    table = stats.paired_bootstrap(y, probs_a, probs_b, [0.4, 0.5, 0.6], 0.5, n_boot=200)
    a = np.mean([_evaluated(y, p, t) for p, t in zip(probs_a, [0.4, 0.5, 0.6])], axis=0)
    b = np.mean([_evaluated(y, p, 0.5) for p in probs_b], axis=0)
    np.testing.assert_allclose(table["a"], a, rtol=1e-12)
    np.testing.assert_allclose(table["b"], b, rtol=1e-12)
    np.testing.assert_allclose(table["diff"], b - a, rtol=1e-12)
    assert (table["a_low"] <= table["a_high"]).all() and (table["b_low"] < table["b_high"]).all()
    assert table.loc["roc_auc", "diff_low"] > 0 and table.loc["roc_auc", "p_boot"] < 0.01
    assert table.loc["roc_auc", "a_low"] < 0.5 < table.loc["roc_auc", "a_high"]


def test_mdd_of_the_bootstrap_se_has_80_percent_power() -> None:
    """Two paired classifiers on 2000 images, discordant on 20% of them (10% right by A
    only, 10% by B only, in each class): the bootstrap SE of the accuracy difference is the
    analytic SE of a paired difference of proportions, sqrt((p10 + p01 - (p01 - p10)^2) / n).
    Where B's true accuracy beats A's by the MDD of that SE, a two-sided 5% test of the
    difference rejects in about 80% of 2000 simulated test sets."""
    n, shares = 2000, np.array([0.7, 0.1, 0.1, 0.1])  # both right, A only, B only, neither
    y = np.repeat([0, 1], [1200, 800])
    cells = np.concatenate([np.repeat(np.arange(4), np.round(shares * m).astype(int))
                            for m in (1200, 800)])
    prob_a, prob_b = (np.where(np.isin(cells, right) == (y == 1), 0.9, 0.1)
                      for right in ((0, 1), (0, 2)))
    row = stats.paired_bootstrap(y, prob_a, prob_b, 0.5, 0.5, n_boot=4000).loc["accuracy"]
    # 4000 replicates estimate an SD within about 1 / sqrt(2 * 4000) = 1.1%: 4% is 3.5 of those
    assert row["diff_se"] == pytest.approx(np.sqrt(0.2 / n), rel=0.04)
    assert row["mdd"] == pytest.approx(stats.minimum_detectable_difference(row["diff_se"]))
    true = np.array([0.7, (0.2 - row["mdd"]) / 2, (0.2 + row["mdd"]) / 2, 0.1])  # B - A = mdd
    counts = np.random.default_rng(7).multinomial(n, true, size=2000) / n
    diff = counts[:, 2] - counts[:, 1]
    se = np.sqrt((counts[:, 1] + counts[:, 2] - diff ** 2) / n)
    rejected = np.abs(diff) > sps.norm.ppf(0.975) * se
    # The rejection rate's SE over 2000 sets is sqrt(0.8 * 0.2 / 2000) = 0.009, and the MDD's
    # 1.1% bootstrap error moves the power by about 0.009: 0.04 is 3 of the two combined.
    assert abs(rejected.mean() - 0.80) < 0.04


def test_minimum_detectable_difference_and_images_needed() -> None:
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.80)
    assert z == pytest.approx(2.8016, abs=1e-4)
    assert stats.minimum_detectable_difference(0.01) == pytest.approx(z * 0.01, rel=1e-12)
    assert stats.minimum_detectable_difference(0.02, alpha=0.01, power=0.9) == pytest.approx(
        (sps.norm.ppf(0.995) + sps.norm.ppf(0.9)) * 0.02, rel=1e-12)
    got = stats.minimum_detectable_difference(np.array([0.0, 0.01, np.nan]))
    assert got[0] == 0 and got[1] == pytest.approx(z * 0.01) and np.isnan(got[2])
    assert stats.images_needed(400, 5.9, 3) == math.ceil(400 * (5.9 / 3) ** 2) == 1548
    assert stats.images_needed(400, 3.0, 3.0) == 400
    np.testing.assert_array_equal(stats.images_needed(400, np.array([6.0, np.nan]), 3.0),
                                  [1600, np.nan])
    # as many images as it says bring the MDD down to the target, one fewer does not
    n, se, target = 400, 0.021, 0.03
    needed = stats.images_needed(n, stats.minimum_detectable_difference(se), target)
    assert (stats.minimum_detectable_difference(se * np.sqrt(n / needed)) <= target
            < stats.minimum_detectable_difference(se * np.sqrt(n / (needed - 1))))


def _predictions(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, ...]:
    """Labels and two prediction vectors with the given paired-correctness counts."""
    y = np.tile([0, 1], both + a_only + b_only + neither)[: both + a_only + b_only + neither]
    correct_a = np.repeat([1, 1, 0, 0], [both, a_only, b_only, neither]).astype(bool)
    correct_b = np.repeat([1, 0, 1, 0], [both, a_only, b_only, neither]).astype(bool)
    return y, np.where(correct_a, y, 1 - y), np.where(correct_b, y, 1 - y)


def test_mcnemar_exact_known_values() -> None:
    # Discordant 1 vs 9: p = 2 * (C(10, 0) + C(10, 1)) / 2**10 = 22 / 1024.
    r = stats.mcnemar_exact(*_predictions(both=20, a_only=1, b_only=9, neither=5))
    assert (r["both"], r["a_only"], r["b_only"], r["neither"]) == (20, 1, 9, 5)
    assert r["statistic"] == 1 and r["pvalue"] == pytest.approx(0.021484375, rel=1e-12)
    r = stats.mcnemar_exact(*_predictions(both=40, a_only=7, b_only=18, neither=11))
    expected = sps.binomtest(7, 25, 0.5, alternative="two-sided").pvalue
    assert r["statistic"] == 7 and r["pvalue"] == pytest.approx(expected, rel=1e-12)
    y, pred, _ = _predictions(both=10, a_only=3, b_only=0, neither=4)
    assert stats.mcnemar_exact(y, pred, pred)["pvalue"] == 1.0


def test_delong_matches_proc_on_asah() -> None:
    """pROC's tests (tests/testthat/test-roc.test.R and test-ci.auc.R, pROC 1.18 on GitHub,
    xrobin/pROC) give roc.test(r.wfns, r.s100b) Z = 2.20898359144091, p = 0.0271757822291882,
    CI of wfns - s100b [0.0104061769564846, 0.174214419249478] (printed AUCs 0.8237 and
    0.7314), and ci.auc(r.ndka) = (0.501244999271703, 0.611957994579946, 0.722670989888189)."""
    y, s100b, wfns, ndka = ASAH_POOR, _prob(ASAH_S100B), _prob(ASAH_WFNS), _prob(ASAH_NDKA)
    assert len(y) == 113 and y.sum() == 41
    r = stats.delong_test(y, s100b, wfns)  # diff = wfns - s100b, as pROC's t1
    assert (round(r["auc_a"], 4), round(r["auc_b"], 4)) == (0.7314, 0.8237)
    expected = {"z": 2.20898359144091, "pvalue": 0.0271757822291882,
                "diff_low": 0.0104061769564846, "diff_high": 0.174214419249478}
    assert {k: r[k] for k in expected} == pytest.approx(expected, rel=1e-9)
    r = stats.delong_test(y, ndka, wfns)  # pROC's t2: roc.test(r.wfns, r.ndka)
    assert (r["z"], r["pvalue"], r["diff_low"], r["diff_high"]) == pytest.approx(
        (2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
        rel=1e-9)
    r = stats.delong_test(y, s100b, ndka)  # pROC's t3: roc.test(r.ndka, r.s100b)
    assert (r["z"], r["pvalue"]) == pytest.approx((-1.39077002573558, 0.164295175223054),
                                                  rel=1e-9)
    assert stats.delong_ci(y, ndka) == pytest.approx(
        (0.611957994579946, 0.501244999271703, 0.722670989888189), rel=1e-9)
    same = stats.delong_test(y, wfns, wfns)  # pROC: identical curves give Z = 0, p = 1
    assert (same["diff"], same["z"], same["pvalue"]) == (0.0, 0.0, 1.0)


def test_delong_agrees_with_bootstrap() -> None:
    rng = np.random.default_rng(11)
    y = np.repeat([0, 1], [250, 150])
    prob_a, prob_b = _binormal(rng, y, (1.0, 1.4), rho=0.6)
    idx = stats.bootstrap_indices(y, n_boot=2000, seed=0)
    auc_a = stats.metric_values(y, prob_a, 0.5, idx)["roc_auc"].to_numpy()
    auc_b = stats.metric_values(y, prob_b, 0.5, idx)["roc_auc"].to_numpy()
    r = stats.delong_test(y, prob_a, prob_b)
    assert r["se"] == pytest.approx(np.std(auc_b - auc_a, ddof=1), rel=0.10)
    assert r["diff_high"] - r["diff_low"] == pytest.approx(
        np.diff(np.quantile(auc_b - auc_a, [0.025, 0.975]))[0], rel=0.10)
    auc, low, high = stats.delong_ci(y, prob_a)
    assert auc == pytest.approx(r["auc_a"])
    assert high - low == pytest.approx(np.diff(np.quantile(auc_a, [0.025, 0.975]))[0], rel=0.10)


def test_holm() -> None:
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan, 0.2, 0.002])
    got = stats.holm(p)
    ok = ~np.isnan(p)
    assert np.isnan(got[~ok]).all()
    np.testing.assert_allclose(got[ok], multipletests(p[ok], method="holm")[1])
    assert np.isnan(stats.holm([np.nan, np.nan])).all() and stats.holm([]).size == 0


Y, P = np.array([0, 1, 0, 1, 1]), np.array([0.1, 0.8, 0.4, 0.6, 0.3])


@pytest.mark.parametrize(("call", "match"), [
    (lambda: stats.metric_values(Y, P[:4], 0.5), "one probability per image"),
    (lambda: stats.metric_values([0, 1, 2, 1, 0], P, 0.5), "only 0 and 1"),
    (lambda: stats.metric_values([1, 1, 1, 1, 1], P, 0.5), "both classes"),
    (lambda: stats.metric_values(Y, [0.1, np.nan, 0.4, 0.6, 0.3], 0.5), "NaN"),
    (lambda: stats.metric_values(Y, P * 3, 0.5), r"\[0, 1\]"),
    (lambda: stats.metric_values(Y, P, 1.5), "threshold"),
    (lambda: stats.metric_values(Y, P, 0.5, np.array([[0, 1, 5]])), "idx"),
    (lambda: stats.bootstrap_indices(Y, n_boot=0), "n_boot"),
    (lambda: stats.paired_bootstrap(Y, P, np.vstack([P, P]), 0.5, [0.5, 0.5, 0.5]),
     "thresholds_b"),
    (lambda: stats.paired_bootstrap(Y, P, P[:3], 0.5, 0.5), "probs_b"),
    (lambda: stats.paired_bootstrap(Y, P, P, 0.5, 0.5, level=95), "level"),
    (lambda: stats.mcnemar_exact(Y, [0, 1, 1, 0, 2], Y), "pred_a"),
    (lambda: stats.delong_test(Y, P, P[:3]), "prob_b"),
    (lambda: stats.delong_test([0, 1, 1, 1, 1], P, P), "two images of each class"),
    (lambda: stats.delong_ci(Y, P, level=0), "level"),
    (lambda: stats.holm([0.5, 1.2]), r"\[0, 1\]"),
    (lambda: stats.minimum_detectable_difference(-0.1), "se must"),
    (lambda: stats.minimum_detectable_difference(0.1, alpha=0), "alpha"),
    (lambda: stats.minimum_detectable_difference(0.1, power=1.2), "power"),
    (lambda: stats.images_needed(0, 5.9, 3), "n must"),
    (lambda: stats.images_needed(400.5, 5.9, 3), "n must"),
    (lambda: stats.images_needed(400, 5.9, 0), "target"),
    (lambda: stats.images_needed(400, -1.0, 3), "mdd"),
])
def test_bad_input_is_a_value_error_of_one_sentence(call, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value) and str(info.value).endswith(".")
