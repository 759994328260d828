"""Scenarios across imbalance ratios: the gain table from the per-ratio bootstraps, its
figure, findings and files, on run folders of three settings scored on the same images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_comparison import N_BOOT, grid

from helpers.analysis import plots, ratio_sweep
from helpers.analysis.report import Report, compare_framework, plan, write_findings

SCENARIOS = ["wgan", "ros"]  # the grid's order (helpers.training.scenarios.SCENARIOS)
SETTINGS = {"natural": 2.7, "10": 10.0, "30": 30.0}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[Report]:
    """The Youden reports of natural (2.7:1), 10:1 and 30:1, wgan stronger as the ratio
    grows; and natural at threshold 0.5."""
    root = tmp_path_factory.mktemp("sweep")
    for (imbalance, ratio), wgan in zip(SETTINGS.items(), (1.2, 2.5, 4.0)):
        runs = grid(root, {"baseline": 1.0, "wgan": wgan, "ros": 1.0}, n=600, seeds=(1,),
                    imbalance=imbalance, imbalance_ratio=ratio)
    chosen = plan(runs, thresholds="youden") + [("pytorch", "threshold_0.5", "natural")]
    return [compare_framework(runs, f, threshold=t, imbalance=i, n_boot=N_BOOT)
            for f, t, i in chosen]


@pytest.fixture(scope="module")
def sweep(reports: list[Report]) -> ratio_sweep.Sweep:
    sweeps = ratio_sweep.compare_ratios(reports)
    assert [s.framework for s in sweeps] == ["pytorch"]
    return sweeps[0]


def test_the_gain_table_has_a_row_per_setting_scenario_and_metric_with_the_bootstraps_cis(
        reports: list[Report], sweep: ratio_sweep.Sweep) -> None:
    table = sweep.table
    assert list(table.columns) == ratio_sweep.COLUMNS
    assert list(zip(table["imbalance"], table["scenario"], table["metric"])) == [
        (i, s, m) for i in SETTINGS for s in SCENARIOS for m in ratio_sweep.GAIN_METRICS]
    assert table.drop_duplicates("imbalance")["imbalance_ratio"].tolist() == list(
        SETTINGS.values())
    for report in reports[:3]:  # the Youden ones
        boot = report.tables["bootstrap"][0]
        boot = boot[boot["metric"].isin(ratio_sweep.GAIN_METRICS)]
        rows = table[table["imbalance"] == report.comparison.imbalance]
        for new, old in ratio_sweep.POINTS.items():
            np.testing.assert_allclose(rows[new], boot[old] * 100, rtol=1e-12)


def test_one_setting_or_the_05_rule_alone_gives_no_sweep(reports: list[Report]) -> None:
    assert ratio_sweep.compare_ratios([reports[0], reports[3]]) == []
    assert ratio_sweep.compare_ratios(reports[3:]) == []


def test_the_figure_has_a_panel_per_metric_and_a_line_per_scenario(
        sweep: ratio_sweep.Sweep) -> None:
    panels = [ax for ax in sweep.figure.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == [m.replace("_", " ")
                                                 for m in ratio_sweep.GAIN_METRICS]
    for ax in panels:
        assert ax.get_legend_handles_labels()[1] == SCENARIOS
        assert len(ax.containers) == len(SCENARIOS) and ax.get_xscale() == "log"
        np.testing.assert_allclose(ax.get_xticks(), list(SETTINGS.values()))
        x = np.asarray(ax.containers[0].lines[0].get_xdata(), dtype=float)
        np.testing.assert_allclose(x, list(SETTINGS.values()), rtol=0.05)  # nudged only
        assert any(np.all(np.asarray(line.get_ydata()) == 0) for line in ax.lines)  # at 0


def test_a_setting_without_its_ratio_is_left_out_of_the_figure_and_said(
        sweep: ratio_sweep.Sweep) -> None:
    table = sweep.table.assign(imbalance_ratio=sweep.table["imbalance_ratio"].where(
        sweep.table["imbalance"] != "natural"))
    fig = plots.plot_gain_by_ratio(table, ratio_sweep.GAIN_METRICS, "gains")
    np.testing.assert_allclose(fig.axes[0].get_xticks(), [10.0, 30.0])
    assert "natural left out: training ratio not recorded" in fig.get_suptitle()


def test_findings_across_ratios_are_generated_from_the_table(sweep: ratio_sweep.Sweep) -> None:
    table = sweep.table
    text = sweep.findings
    assert text.startswith("# Across imbalance ratios: pytorch, each run's Youden threshold")
    assert "natural imbalance (training majority:minority 2.70:1)" in text
    above = table[(table["scenario"] == "wgan") & (table["metric"] == "roc_auc")
                  & (table["gain_low"] > 0)]
    assert len(above)  # the grid makes wgan far stronger at 30:1
    assert f"wgan above the baseline at {', '.join(f'{i}:1' for i in above['imbalance'])}" \
        .replace("natural:1", "natural (2.70:1)") in text
    assert (f"range from {table['mdd'].min():.2f} to {table['mdd'].max():.2f} points"
            in text)


def _table(low: tuple[float, float], high: tuple[float, float]) -> pd.DataFrame:
    """wgan's roc_auc gain at natural (2.7:1) and 30:1 with the given 95% CIs."""
    rows = [("natural", 2.7, *low), ("30", 30.0, *high)]
    return pd.DataFrame([{"imbalance": i, "imbalance_ratio": r, "scenario": "wgan",
                          "metric": "roc_auc", "baseline": 80.0, "value": 80 + (a + b) / 2,
                          "gain": (a + b) / 2, "gain_low": a, "gain_high": b, "mdd": 2.5,
                          "p_boot": 0.5} for i, r, a, b in rows], columns=ratio_sweep.COLUMNS)


def test_a_change_with_the_ratio_is_said_only_where_the_cis_do_not_overlap() -> None:
    grows = ratio_sweep.findings("pytorch", _table((-1.0, 2.0), (6.0, 12.0)))
    assert ("- wgan on roc auc: +0.50 points at natural (2.70:1), +9.00 at 30:1: larger at the "
            "higher ratio.") in grows
    assert "- roc auc: wgan above the baseline at 30:1; no other gain excludes 0." in grows
    overlap = ratio_sweep.findings("pytorch", _table((-1.0, 2.0), (1.0, 12.0)))
    assert "these runs do not show the gain growing or shrinking with the ratio" in overlap
    assert "larger" not in overlap and "smaller" not in overlap
    assert "- balanced accuracy: no gain excludes 0 at any setting." in overlap


def test_write_sweep_writes_the_table_and_figure_and_appends_the_findings(
        reports: list[Report], sweep: ratio_sweep.Sweep, tmp_path: Path) -> None:
    write_findings(reports, tmp_path)
    written = ratio_sweep.write_sweep(sweep, tmp_path)
    assert {p.name for p in written} == {f"pytorch_gain_by_ratio.{e}" for e in
                                        ("csv", "md", "tex", "png")} | {"findings.md"}
    assert (tmp_path / "pytorch_gain_by_ratio.pdf").is_file()
    text = (tmp_path / "findings.md").read_text()
    assert text.index("# Findings: pytorch") < text.index("# Across imbalance ratios: pytorch")
    assert text.endswith(sweep.findings)
    assert "imbalance ratio 30 (training majority:minority 30.00:1)" in text
