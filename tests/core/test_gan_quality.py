"""Quality statistics of a synthetic set, on small Gaussian sets whose answers are known."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from helpers.analysis import gan_quality
from helpers.analysis.gan_quality import (
    describe_quality,
    frechet_distance,
    kernel_distance,
    memorisation,
    nearest,
    precision_recall,
    quality_report,
    quality_table,
    split_halves,
    two_sample_auc,
)


def gauss(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_importing_the_module_imports_no_framework() -> None:
    code = ("import sys, helpers, helpers.analysis.gan_quality; "
            "assert not {'torch', 'tensorflow'} & set(sys.modules), 'framework imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- Frechet distance ----------------------------------------------------------------------

def test_frechet_of_a_set_against_itself_is_zero() -> None:
    a = gauss(300, 16, 0) * 5.0
    assert abs(frechet_distance(a, a)) < 1e-6 * np.trace(np.cov(a, rowvar=False))


def test_frechet_grows_with_noise() -> None:
    a = gauss(400, 8, 0)
    noise = gauss(400, 8, 1)
    values = [frechet_distance(a, a + s * noise) for s in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert values[0] < 1e-8
    assert all(lo < hi for lo, hi in zip(values, values[1:])), values


def test_frechet_matches_closed_form_for_shifted_means() -> None:
    mix = np.random.default_rng(2).normal(size=(4, 4))
    delta = np.array([1.0, -0.5, 0.0, 2.0])
    a, b = gauss(20000, 4, 0) @ mix, gauss(20000, 4, 1) @ mix + delta
    assert frechet_distance(a, b) == pytest.approx(delta @ delta, abs=0.1)


def test_frechet_is_symmetric_and_a_float() -> None:
    a, b = gauss(200, 6, 0), gauss(150, 6, 1, shift=0.5) * 2.0
    ab, ba = frechet_distance(a, b), frechet_distance(b, a)
    assert type(ab) is float and ab == pytest.approx(ba, rel=1e-6)


def eig_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula, Tr sqrtm(S_a S_b) as the sum of root eigenvalues."""
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    roots = np.sqrt(np.clip(np.linalg.eigvals(s_a @ s_b).real, 0, None))
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2 * roots.sum())


@pytest.mark.parametrize("rows", [12, 200])  # fewer rows than features (singular), and more
def test_frechet_matches_the_textbook_formula(rows: int) -> None:
    a, b = gauss(rows, 32, 0), gauss(rows + 5, 32, 1, shift=0.2) * 1.5
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value == pytest.approx(eig_frechet(a, b), rel=1e-6)


def test_frechet_with_a_constant_feature() -> None:
    a, b = gauss(100, 6, 0), gauss(100, 6, 1, shift=0.3)
    a[:, 2] = b[:, 2] = 1.0  # a singular covariance product on the sqrtm path
    assert frechet_distance(a, b) == pytest.approx(eig_frechet(a, b), rel=1e-4)


def test_frechet_regularises_when_sqrtm_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_sqrtm = gan_quality.linalg.sqrtm

    def flaky(m: np.ndarray) -> np.ndarray:
        calls.append(m)
        return np.full_like(m, np.nan) if len(calls) == 1 else real_sqrtm(m)

    monkeypatch.setattr(gan_quality.linalg, "sqrtm", flaky)
    a, b = gauss(100, 6, 0), gauss(100, 6, 1, shift=0.3)
    assert frechet_distance(a, b) == pytest.approx(eig_frechet(a, b), rel=1e-4)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    np.testing.assert_allclose(calls[1], (s_a + 1e-6 * np.eye(6)) @ (s_b + 1e-6 * np.eye(6)))


def test_frechet_rejects_mistakes() -> None:
    with pytest.raises(ValueError, match="features"):
        frechet_distance(gauss(10, 4, 0), gauss(10, 5, 1))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(gauss(1, 4, 0), gauss(10, 4, 1))


# --- Kernel distance -----------------------------------------------------------------------

def test_kernel_distance_near_zero_for_one_distribution_and_positive_when_shifted() -> None:
    a, same, shifted = gauss(400, 16, 0), gauss(400, 16, 1), gauss(400, 16, 2, shift=0.5)
    near, _ = kernel_distance(a, same, subsets=10, subset_size=200)
    far, far_std = kernel_distance(a, shifted, subsets=10, subset_size=200)
    assert abs(near) < 0.02 and far > 0.2 and far > 10 * abs(near)
    assert type(far) is float and type(far_std) is float and far_std >= 0


def test_kernel_distance_is_deterministic_for_a_seed() -> None:
    a, b = gauss(300, 8, 0), gauss(300, 8, 1, shift=0.2)
    first = kernel_distance(a, b, subsets=5, subset_size=100, seed=3)
    assert kernel_distance(a, b, subsets=5, subset_size=100, seed=3) == first
    assert kernel_distance(a, b, subsets=5, subset_size=100, seed=4) != first


def test_kernel_distance_caps_the_subset_at_the_smaller_set() -> None:
    a, b = gauss(40, 8, 0), gauss(40, 8, 1)
    mean, std = kernel_distance(a, b, subsets=4)  # subset_size capped at 40: whole sets, no spread
    assert std < 1e-10 and kernel_distance(a, b, subsets=1, seed=9)[0] == pytest.approx(mean, rel=1e-9)
    _, std = kernel_distance(gauss(50, 8, 0), b, subsets=4)  # 40 of 50 rows: subsets differ
    assert std > 1e-6


# --- Precision / recall --------------------------------------------------------------------

def test_precision_recall_of_a_set_against_itself_is_one() -> None:
    a = gauss(200, 4, 0)
    assert precision_recall(a, a) == (1.0, 1.0)


def test_precision_recall_of_far_apart_clusters_is_zero() -> None:
    assert precision_recall(gauss(200, 4, 0), gauss(200, 4, 1, shift=50.0)) == (0.0, 0.0)


def test_precision_recall_when_fake_covers_half_the_modes() -> None:
    centres = np.array([[0, 0], [40, 0], [0, 40], [40, 40]], dtype=float)
    rng = np.random.default_rng(0)
    real = np.vstack([c + rng.normal(size=(150, 2)) for c in centres])
    fake = np.vstack([c + rng.normal(size=(300, 2)) for c in centres[:2]])
    precision, recall = precision_recall(real, fake)
    assert precision > 0.9
    assert recall == pytest.approx(0.5, abs=0.06)


def test_precision_recall_needs_more_rows_than_k() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        precision_recall(gauss(3, 2, 0), gauss(10, 2, 1), k=3)


# --- Two-sample AUC ------------------------------------------------------------------------

def test_two_sample_auc_near_half_for_halves_of_one_set() -> None:
    x = gauss(2000, 8, 0)
    first, second = split_halves(len(x), seed=1)
    assert two_sample_auc(x[first], x[second]) == pytest.approx(0.5, abs=0.1)


def test_two_sample_auc_near_one_for_different_sets() -> None:
    assert two_sample_auc(gauss(300, 8, 0), gauss(500, 8, 1, shift=1.5)) > 0.95


# --- Nearest neighbours, halves ------------------------------------------------------------

def test_nearest_finds_exact_copies() -> None:
    ref = gauss(50, 10, 0)
    picks = np.array([7, 0, 49, 7])
    dist, idx = nearest(ref[picks], ref)
    assert dist.tolist() == [0.0] * 4 and idx.tolist() == picks.tolist()


def test_nearest_excluding_self_never_returns_the_row() -> None:
    ref = gauss(60, 5, 0)
    ref[10] = ref[20]  # a duplicate: its nearest other row is at distance 0
    dist, idx = nearest(ref, ref, exclude_self=True)
    assert (idx != np.arange(len(ref))).all() and (dist[[10, 20]] == 0).all()
    brute = np.linalg.norm(ref[:, None] - ref[None], axis=-1) + np.diag(np.full(len(ref), np.inf))
    np.testing.assert_allclose(dist, brute.min(axis=1), atol=1e-12)
    with pytest.raises(ValueError, match="same array"):
        nearest(ref[:5], ref, exclude_self=True)


def test_split_halves_is_a_seeded_partition() -> None:
    a, b = split_halves(11, seed=5)
    assert (len(a), len(b)) == (5, 6)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(11))
    c, _ = split_halves(11, seed=5)
    d, _ = split_halves(11, seed=6)
    assert c.tolist() == a.tolist() and d.tolist() != a.tolist()


# --- Memorisation --------------------------------------------------------------------------

def test_memorisation_flags_copies() -> None:
    real = np.random.default_rng(0).uniform(0, 255, (80, 256))
    fake = real[[3, 5, 5, 70, 11]]
    out = memorisation(real, fake, pairs=3)
    assert out["share_closer_than_real_p05"] == 1.0
    assert out["synthetic_to_real"]["min"] == 0.0 and out["real_to_real"]["min"] > 0
    assert [p["real"] for p in out["closest_pairs"]] == [3, 5, 5]
    json.dumps(out)


def test_memorisation_of_fresh_samples() -> None:
    rng = np.random.default_rng(1)
    real, fake = rng.uniform(0, 1, (200, 64)), rng.uniform(0, 1, (300, 64))
    out = memorisation(real, fake, pairs=8)
    assert out["share_closer_than_real_p05"] < 0.2  # about 0.05 by construction (5th percentile)
    distances = [p["distance"] for p in out["closest_pairs"]]
    assert len(distances) == 8 and distances == sorted(distances)
    assert distances[0] == pytest.approx(out["synthetic_to_real"]["min"])
    assert len(out["synthetic_distances"]) == 300 and len(out["real_distances"]) == 200
    # RMS units: two uniform [0, 1] images differ by about sqrt(1/6) per pixel
    assert 0.2 < out["real_to_real"]["median"] < np.sqrt(1 / 6)


# --- Report and table ----------------------------------------------------------------------

KEYS = {"frechet_distance", "kid_mean", "kid_std", "precision", "recall", "two_sample_auc",
        "n_reference", "n_other"}


def test_quality_report_compares_equal_counts_and_serialises() -> None:
    real, fake = gauss(120, 8, 0), gauss(90, 8, 1, shift=1.0)
    report = quality_report(real, fake, seed=0)
    assert set(report) == {"synthetic", "real_halves"}
    for row in report.values():
        assert set(row) == KEYS and row["n_reference"] == row["n_other"] == 60
        assert all(type(v) in (int, float) for v in row.values())
    syn, floor = report["synthetic"], report["real_halves"]
    assert syn["frechet_distance"] > 3 * floor["frechet_distance"]
    assert syn["two_sample_auc"] > floor["two_sample_auc"]
    json.dumps(report)


def test_quality_report_with_fewer_fakes_than_a_half() -> None:
    report = quality_report(gauss(100, 4, 0), gauss(20, 4, 1))
    assert {r["n_other"] for r in report.values()} == {20}
    assert {r["n_reference"] for r in report.values()} == {50}


def test_quality_report_rejects_too_few_rows() -> None:
    with pytest.raises(ValueError, match="at least"):
        quality_report(gauss(5, 4, 0), gauss(50, 4, 1))
    with pytest.raises(ValueError, match="at least"):
        quality_report(gauss(50, 4, 0), gauss(2, 4, 1))
    with pytest.raises(ValueError, match="features"):
        quality_report(gauss(50, 4, 0), gauss(50, 3, 1))


def test_quality_table_reads_the_report() -> None:
    row = {"kid_std": 0.0, "n_reference": 10, "n_other": 10}
    report = {"synthetic": {**row, "frechet_distance": 30.0, "kid_mean": 0.05, "precision": 0.5,
                            "recall": 0.25, "two_sample_auc": 0.9},
              "real_halves": {**row, "frechet_distance": 10.0, "kid_mean": 0.01, "precision": 0.7,
                              "recall": 0.7, "two_sample_auc": 0.52}}
    table = quality_table(report)
    assert isinstance(table, pd.DataFrame) and table.shape == (5, 4)
    assert list(table.index) == ["frechet_distance", "kid_mean", "precision", "recall",
                                 "two_sample_auc"]
    assert list(table.columns) == ["synthetic vs real", "real vs real (floor)", "best", "reading"]
    assert table["best"].tolist() == [0.0, 0.0, 1.0, 1.0, 0.5]
    assert table.loc["recall", "synthetic vs real"] == 0.25
    assert table.loc["frechet_distance", "reading"] == "3.0x the floor"
    assert table.loc["kid_mean", "reading"] == "5.0x the floor"
    assert table.loc["precision", "reading"] == "-0.20 vs floor"
    assert table.loc["recall", "reading"] == "-0.45 vs floor"
    assert "0.90" in table.loc["two_sample_auc", "reading"]
    assert "0.50 is indistinguishable" in table.loc["two_sample_auc", "reading"]


def test_quality_table_of_a_computed_report() -> None:
    table = quality_table(quality_report(gauss(60, 4, 0), gauss(40, 4, 1, shift=2.0)))
    assert table.shape == (5, 4) and table["reading"].map(len).gt(0).all()
    assert np.isfinite(table[["synthetic vs real", "real vs real (floor)"]].to_numpy()).all()


def test_describe_quality_reads_the_numbers_it_is_given() -> None:
    rng = np.random.default_rng(0)
    real, far = rng.normal(size=(80, 6)), rng.normal(3.0, 1.0, size=(40, 6))
    report = quality_report(real, far, seed=0)
    memo = memorisation(real, real[:20])  # copies
    text = describe_quality({"classifier": {"status": "measured", **report},
                             "inception": {"status": "skipped", "reason": "offline"},
                             "memorisation": memo})
    assert f"{report['synthetic']['frechet_distance']:.3g}" in text
    assert "tells them apart almost always" in text and "inception" not in text
    assert "100% of synthetic images" in text and "closest pairs" in text
    assert describe_quality({}) == "No quality measured."
