"""The comparison of notebook 07: tables, verdicts, reference rows, LaTeX and findings, on
run folders written by the training path's own results writer."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_results import write_run

from helpers.analysis import comparison, results, stats
from helpers.analysis.report import compare_framework, gan_table, plan, write_report
from helpers.config import Layout
from helpers.errors import UserError

N_BOOT = 300


def scores(y: np.ndarray, separation: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities whose positives sit ``separation`` standard deviations above negatives."""
    return 1 / (1 + np.exp(-(rng.normal(0, 1, len(y)) + separation * (y - 0.5))))


def grid(tmp_path: Path, separations: dict[str, float], *, n: int = 1200, seeds=(1, 2),
         split_protocol: str = "random", imbalance: str | float | None = None,
         imbalance_ratio: float | None = None) -> pd.DataFrame:
    """A data set root with one run per scenario and seed, its scores as strong as given; at
    an ``imbalance`` other than natural the runs are named ``-r<ratio>`` (None: old runs
    without the imbalance keys). Every call on one root adds to the same test images."""
    layout = Layout.of("toy", tmp_path)
    y = (np.arange(n) % 3 != 0).astype(int)  # two in three positive
    tag = "" if imbalance in (None, "natural") else f"-r{imbalance}"
    keys = {"imbalance": imbalance, "imbalance_ratio": imbalance_ratio}
    for scenario, separation in separations.items():
        for seed in seeds:
            rng = np.random.default_rng(seed * 100 + len(scenario))
            write_run(layout, f"pytorch-{scenario}-scratch-seed{seed}{tag}", y,
                      scores(y, separation, rng), scenario=scenario, seed=seed,
                      split_protocol=split_protocol, **keys)
    write_run(layout, f"sklearn-pixel_logreg-pixels32-seed42{tag}", y,
              scores(y, 2.0, np.random.default_rng(7)), framework="sklearn",
              scenario="pixel_logreg", split_protocol=split_protocol, **keys)
    return results.read_runs(layout)


def test_a_clearly_better_scenario_wins_and_a_copy_of_the_baseline_does_not(
        tmp_path: Path) -> None:
    runs = grid(tmp_path, {"baseline": 1.0, "wgan": 4.0, "ros": 1.0})
    report = compare_framework(runs, "pytorch", n_boot=N_BOOT)
    boot = report.tables["bootstrap"][0].set_index(["scenario", "metric"])
    assert boot.loc[("wgan", "roc_auc"), "diff_low"] > 0.05  # far above the baseline
    assert boot.loc[("ros", "roc_auc"), "diff_low"] < 0 < boot.loc[("ros", "roc_auc"), "diff_high"]
    tests = report.tables["paired_tests"][0].set_index(["scenario", "seed"])
    assert set(tests.index) == {(s, k) for s in ("wgan", "ros") for k in ("1", "2", "pooled")}
    assert tests.loc[("wgan", "pooled"), "delong_p"] < 1e-6
    assert (tests["delong_p_holm"] >= tests["delong_p"]).all()
    verdicts = report.tables["hypotheses"][0].query("metric == 'accuracy'")
    verdicts = verdicts.set_index("hypothesis")["verdict"]
    assert verdicts["H1: wgan gains >= 3 points"] == "supported"
    assert verdicts["H1: ros gains >= 3 points"] == "not supported"
    assert verdicts["WGAN-GP (wgan) is the best scenario"] == "supported"
    table = report.tables["thesis_table"][0]
    assert list(table.index) == ["baseline", "wgan", "ros"]
    assert table.loc["baseline", "accuracy gain (points)"] == "-"
    assert re.fullmatch(r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]", table.loc["wgan", "accuracy"])
    assert "Threshold rule: each run's Youden threshold" in report.tables["thesis_table"][1]


def test_findings_are_generated_from_the_numbers(tmp_path: Path) -> None:
    weak = compare_framework(grid(tmp_path / "a", {"baseline": 1.5, "wgan": 1.5}),
                                        "pytorch", n_boot=N_BOOT)
    strong = compare_framework(grid(tmp_path / "b", {"baseline": 1.5, "wgan": 4.0}),
                                          "pytorch", n_boot=N_BOOT)
    assert "No scenario beats the baseline on accuracy with 95% confidence." in weak.findings
    assert "Scenarios above the baseline with 95% confidence: wgan." in strong.findings
    assert weak.findings != strong.findings
    boot = strong.tables["bootstrap"][0].set_index(["scenario", "metric"])
    gain = boot.loc[("wgan", "accuracy"), "diff"] * 100
    assert f"{gain:+.2f} points against the baseline" in strong.findings
    assert "pixel logistic regression" in strong.findings
    verdicts = strong.tables["hypotheses"][0].set_index(["metric", "hypothesis"])
    h1 = verdicts.loc[("accuracy", "H1: wgan gains >= 3 points")]
    assert h1["verdict"] == "supported" and pd.isna(h1["images_needed"])
    assert (f"**supported** (accuracy, {h1['estimate']:+.2f} points, 95% CI {h1['ci_low']:+.2f} "
            f"to {h1['ci_high']:+.2f}); the smallest difference this test set resolves with 80% "
            f"power is {h1['mdd']:.2f} points.") in strong.findings


def test_every_difference_has_its_mdd_and_an_undecided_verdict_says_what_would_resolve_it(
        tmp_path: Path) -> None:
    # 150 test images and one seed: far too few to resolve 3 points of accuracy
    runs = grid(tmp_path, {"baseline": 1.0, "wgan": 1.4}, n=150, seeds=(1,))
    report = compare_framework(runs, "pytorch", n_boot=N_BOOT)
    boot = report.tables["bootstrap"][0]
    assert list(boot.columns) == ["scenario", "versus", "metric", *stats.BOOT_COLUMNS]
    np.testing.assert_allclose(boot["mdd"], stats.minimum_detectable_difference(boot["diff_se"]))
    accuracy = boot.set_index(["scenario", "metric"]).loc[("wgan", "accuracy")]
    table = report.tables["thesis_table"][0]
    assert table.loc["wgan", "accuracy MDD (points)"] == f"{accuracy['mdd'] * 100:.2f}"
    assert table.loc["baseline", "roc_auc MDD (points)"] == "-"
    assert (report.tables["paired_tests"][0]["auc_mdd"] > 0).all()
    verdicts = report.tables["hypotheses"][0]
    assert list(dict.fromkeys(verdicts["metric"])) == ["accuracy", "balanced_accuracy"]
    h1 = verdicts.set_index(["metric", "hypothesis"]).loc[
        ("accuracy", "H1: wgan gains >= 3 points")]
    assert h1["verdict"] == "undecided" and h1["mdd"] == pytest.approx(accuracy["mdd"] * 100)
    assert h1["mdd"] > comparison.H1_GAIN and not h1["resolvable"]
    assert h1["images_needed"] == math.ceil(150 * (h1["mdd"] / comparison.H1_GAIN) ** 2)
    assert (f"**undecided** (accuracy, {h1['estimate']:+.2f} points, 95% CI {h1['ci_low']:+.2f} "
            f"to {h1['ci_high']:+.2f}); the smallest difference this test set resolves with 80% "
            f"power is {h1['mdd']:.2f} points, above the hypothesised 3; about "
            f"{h1['images_needed']:,.0f} test images would be needed at the observed variance."
            ) in report.findings
    balanced = compare_framework(runs, "pytorch", metric="balanced_accuracy",
                                            n_boot=N_BOOT).tables["hypotheses"][0]
    assert set(balanced["metric"]) == {"balanced_accuracy"}


def test_redundancy_of_focal_next_to_wgan(tmp_path: Path) -> None:
    runs = grid(tmp_path, {"baseline": 1.0, "wgan": 3.0, "wgan_focal": 3.0})
    verdicts = compare_framework(runs, "pytorch", n_boot=N_BOOT).tables["hypotheses"][0]
    row = verdicts.query("metric == 'accuracy'").set_index("hypothesis").loc[
        "WGAN-GP + focal (wgan_focal) is redundant next to wgan"]
    assert row["verdict"] in ("supported", "undecided")
    assert row["verdict"] == ("supported" if row["ci_high"] < 1.0 else "undecided")


def test_latex_tables_are_booktabs_with_escaped_names(tmp_path: Path) -> None:
    runs = grid(tmp_path, {"baseline": 1.0, "wgan_focal": 2.0})
    report = compare_framework(runs, "pytorch", n_boot=N_BOOT)
    written = write_report(report, tmp_path / "out")
    tex = (tmp_path / "out" / "pytorch_youden_thesis_table.tex").read_text()
    lines = tex.splitlines()
    rules = [line.strip() for line in lines if line.strip() in ("\\toprule", "\\midrule",
                                                               "\\bottomrule")]
    assert rules == ["\\toprule", "\\midrule", "\\bottomrule"]
    assert "wgan\\_focal" in tex and "wgan_focal" not in tex.replace("wgan\\_focal", "")
    assert "\\%" in tex  # "gain (%)" escaped
    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1)
    body = tex[tex.index("\\toprule"):tex.index("\\bottomrule")]
    rows = [r for r in body.split("\\\\")[:-1]]
    assert all(r.count("&") == len(spec) - 1 for r in rows)  # every row fills every column
    assert tex.count("\\begin{") == tex.count("\\end{")
    assert {p.suffix for p in written} == {".csv", ".md", ".tex", ".png"}
    assert (tmp_path / "out" / "pytorch_youden_roc.pdf").is_file()


def test_reference_rows_name_their_source_and_the_literature_only_on_the_official_test(
        tmp_path: Path) -> None:
    random_refs = comparison.reference_rows(grid(tmp_path / "r", {"baseline": 1.0}))
    official = comparison.reference_rows(grid(tmp_path / "o", {"baseline": 1.0},
                                              split_protocol="official"))
    assert random_refs["source"].str.contains("pixel_logreg on 32x32 pixels, this split").any()
    assert random_refs["source"].str.contains("thesis .* not comparable").any()
    assert not random_refs["source"].str.contains("Kermany").any()
    assert official["source"].str.contains("Kermany et al. 2018").any()


def test_each_imbalance_ratio_is_compared_on_its_own_runs(tmp_path: Path) -> None:
    grid(tmp_path, {"baseline": 2.0, "wgan": 2.0}, n=600)  # old runs: natural, no keys
    runs = grid(tmp_path, {"baseline": 1.0, "wgan": 3.0}, n=600, seeds=(3,), imbalance=10,
                imbalance_ratio=10.0)
    assert plan(runs, thresholds="youden") == [
        ("pytorch", "threshold_youden", "natural"), ("pytorch", "threshold_youden", "10")]
    natural = compare_framework(runs, "pytorch", n_boot=N_BOOT)
    ten = compare_framework(runs, "pytorch", imbalance="10", n_boot=N_BOOT)
    assert {g.seeds for g in natural.comparison.groups.values()} == {(1, 2)}
    assert {g.seeds for g in ten.comparison.groups.values()} == {(3,)}
    assert np.isnan(natural.comparison.imbalance_ratio) and ten.comparison.imbalance_ratio == 10
    for report, tag in ((natural, ""), (ten, "-r10")):
        baseline = runs[runs["run"].str.fullmatch(rf"pytorch-baseline-scratch-seed\d{tag}")]
        boot = report.tables["bootstrap"][0].query("metric == 'roc_auc'")
        assert boot["a"].iloc[0] == pytest.approx(baseline["youden_roc_auc"].mean(), rel=1e-12)
        assert report.tables["seed_summary"][0]["seeds"].tolist() == [len(baseline)] * 2
        assert report.tables["references"][0]["source"].str.contains("pixel_logreg").sum() == 1
    assert ("# Findings: pytorch, each run's Youden threshold on its validation images, "
            "imbalance ratio 10 (training majority:minority 10.00:1)") in ten.findings
    assert "natural imbalance (training majority:minority not recorded)" in natural.findings
    out = tmp_path / "out"
    assert {p.name for p in write_report(natural, out)} >= {
        "pytorch_youden_bootstrap.csv", "pytorch_youden_thesis_table.tex", "pytorch_youden_roc.png"}
    assert {p.name for p in write_report(ten, out)} >= {
        "pytorch_youden_r10_bootstrap.csv", "pytorch_youden_r10_thesis_table.tex",
        "pytorch_youden_r10_roc.png"}
    with pytest.raises(UserError, match="No finished pytorch baseline run at imbalance ratio 30"):
        comparison.load_comparison(runs, "pytorch", imbalance="30")


def test_plan_and_missing_baseline_say_what_to_do(tmp_path: Path) -> None:
    runs = grid(tmp_path, {"baseline": 1.0, "ros": 1.0})
    assert plan(runs) == [("pytorch", "threshold_youden", "natural"),
                                     ("pytorch", "threshold_0.5", "natural")]
    with pytest.raises(UserError, match="THRESHOLDS"):
        plan(runs, thresholds="median")
    with pytest.raises(UserError, match="N_BOOT must be a positive integer"):
        compare_framework(runs, "pytorch", n_boot=0)
    assert plan(runs, "keras", "youden") == [("keras", "threshold_youden", "natural")]
    assert plan(runs, "[pytorch]", 0.5) == [("pytorch", "threshold_0.5", "natural")]  # -p's types
    with pytest.raises(UserError, match="No finished keras baseline run: run notebook 03"):
        comparison.load_comparison(runs, "keras")


def test_a_baseline_alone_is_reported_not_a_crash(tmp_path: Path) -> None:
    # 01-04 then 07 (no grid yet): the baseline has nothing to be compared with
    report = compare_framework(grid(tmp_path, {"baseline": 1.0}), "pytorch",
                                          n_boot=N_BOOT)
    assert "Only the baseline has finished runs" in report.findings
    assert write_report(report, tmp_path / "comparison")


def test_no_gan_run_gives_an_empty_gan_table(tmp_path: Path) -> None:
    table = gan_table(grid(tmp_path, {"baseline": 1.0}))
    assert table.empty and "frechet_distance (synthetic)" in table.columns


def test_the_baseline_is_set_against_the_pixel_reference_with_a_paired_ci(
        tmp_path: Path) -> None:
    made = {}
    for name, separation in (("weak", 1.0), ("strong", 4.0)):  # the pixel run has 2.0
        runs = grid(tmp_path / name, {"baseline": separation})
        made[name] = compare_framework(runs, "pytorch", n_boot=N_BOOT)
        table = made[name].tables["pixel_reference"][0].set_index("metric")
        pixel = results.select(runs, kind="reference").iloc[0]
        base = results.select(runs, framework="pytorch", scenarios=["baseline"])
        for metric in ("balanced_accuracy", "roc_auc"):  # each at its own Youden threshold
            assert table.loc[metric, "a"] == pytest.approx(pixel[f"youden_{metric}"])
            assert table.loc[metric, "b"] == pytest.approx(base[f"youden_{metric}"].mean())
    weak = made["weak"].tables["pixel_reference"][0].set_index("metric")
    strong = made["strong"].tables["pixel_reference"][0].set_index("metric")
    assert weak.loc["roc_auc", "diff_high"] < 0 < strong.loc["roc_auc", "diff_low"]
    assert "does not clear it on roc auc and balanced accuracy" in made["weak"].findings
    assert "it clears it on both" in made["strong"].findings
    assert "MDD" in made["strong"].findings.split("pixel logistic regression fitted")[1]
