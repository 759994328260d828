"""Scenarios across imbalance ratios (notebook 07): each scenario's gain over the baseline of
its own ratio, set against the ratio.

The imbalance sweep retrains every scenario with the training minority subsampled to
n_majority / r; validation and test stay the same, so every ratio is scored on the same test
images and each gain is the paired bootstrap's difference against the baseline of the same
ratio (``report.compare_framework(..., imbalance=...)``). The table, figure and findings
read those per-ratio bootstrap tables at the Youden threshold rule; nothing is recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from helpers.analysis import plots
from helpers.analysis.comparison import RULES, scale, setting_name
from helpers.analysis.report import Report, write_tables
from helpers.data import imbalance
from helpers.data.imbalance import NATURAL

GAIN_METRICS = ("balanced_accuracy", "sensitivity", "specificity", "roc_auc", "pr_auc")
THRESHOLD = "threshold_youden"  # the validation threshold rule
POINTS = {"baseline": "a", "value": "b", "gain": "diff", "gain_low": "diff_low",
          "gain_high": "diff_high", "mdd": "mdd"}  # column: bootstrap column, in points
COLUMNS = ["imbalance", "imbalance_ratio", "scenario", "metric", *POINTS, "p_boot"]


@dataclass
class Sweep:
    """The across-ratio comparison of one framework: table, figure and findings."""

    framework: str
    table: pd.DataFrame
    caption: str
    figure: Figure
    findings: str


def gain_by_ratio(reports: Sequence[Report]) -> pd.DataFrame:
    """One row per (imbalance setting, scenario, metric of GAIN_METRICS), from each report's
    bootstrap table: the baseline, the scenario and its gain over the baseline of the same
    setting with the 95% CI and MDD, in points; settings natural first, then by ratio."""
    frames = []
    for report in sorted(reports, key=lambda r: imbalance.order(r.comparison.imbalance)):
        boot = report.tables["bootstrap"][0]
        rows = boot[boot["metric"].isin(GAIN_METRICS)]
        k = rows["metric"].map(scale)
        frames.append(rows[["scenario", "metric", "p_boot"]].assign(
            imbalance=report.comparison.imbalance,
            imbalance_ratio=report.comparison.imbalance_ratio,
            **{new: rows[old] * k for new, old in POINTS.items()}))
    frames = [f for f in frames if len(f)]  # a baseline alone has no gain
    return (pd.concat(frames, ignore_index=True)[COLUMNS] if frames
            else pd.DataFrame(columns=COLUMNS))


def _short(imbalance: str, ratio: float) -> str:
    """A setting in a few words: "natural (2.70:1)", "10:1"."""
    if imbalance != NATURAL:
        return f"{imbalance}:1"
    return NATURAL if pd.isna(ratio) else f"{NATURAL} ({ratio:.2f}:1)"


def _excluding_zero(table: pd.DataFrame, metric: str) -> str:
    """Which scenarios' gains on ``metric`` exclude 0, at which settings."""
    rows = table[table["metric"] == metric]
    parts = []
    for side, chosen in (("above", rows[rows["gain_low"] > 0]),
                         ("below", rows[rows["gain_high"] < 0])):
        for scenario, at in chosen.groupby("scenario", sort=False):
            where = [_short(i, r) for i, r in zip(at["imbalance"], at["imbalance_ratio"])]
            parts.append(f"{scenario} {side} the baseline at {', '.join(where)}")
    name = metric.replace("_", " ")
    return (f"- {name}: {'; '.join(parts)}; no other gain excludes 0." if parts
            else f"- {name}: no gain excludes 0 at any setting.")


def _change(table: pd.DataFrame) -> list[str]:
    """Gains that differ between the lowest and the highest setting of their scenario, where
    the two 95% CIs do not overlap (a conservative check)."""
    lines = []
    for (scenario, metric), rows in table.groupby(["scenario", "metric"], sort=False):
        low, high = rows.iloc[0], rows.iloc[-1]
        if not (high["gain_low"] > low["gain_high"] or high["gain_high"] < low["gain_low"]):
            continue
        grows = "larger" if high["gain_low"] > low["gain_high"] else "smaller"
        lines.append(f"- {scenario} on {metric.replace('_', ' ')}: {low['gain']:+.2f} points at "
                     f"{_short(low['imbalance'], low['imbalance_ratio'])}, {high['gain']:+.2f} at "
                     f"{_short(high['imbalance'], high['imbalance_ratio'])}: {grows} at the "
                     f"higher ratio.")
    return lines


def findings(framework: str, table: pd.DataFrame) -> str:
    """The across-ratio findings, generated from the table (never written by hand)."""
    lines = [f"# Across imbalance ratios: {framework}, {RULES[THRESHOLD]}", ""]
    if table.empty:
        return "\n".join(lines + ["No imbalance setting has a scenario beside its baseline yet."]
                         ) + "\n"
    settings = table.drop_duplicates("imbalance")
    lines += ["Each scenario's gain over the baseline of its own setting, in points, on the same "
              "test images at every setting, with 95% paired-bootstrap CIs. Settings: "
              + "; ".join(setting_name(i, r) for i, r in
                          zip(settings["imbalance"], settings["imbalance_ratio"])) + ".", "",
              "Gains whose 95% CI excludes 0:"]
    lines += [_excluding_zero(table, m) for m in GAIN_METRICS]
    change = _change(table)
    lines += ["", *(["Lowest against highest setting (the two 95% CIs do not overlap):", *change]
                    if change else ["No gain differs between a scenario's lowest and highest "
                                    "setting beyond the overlap of their 95% CIs: these runs do "
                                    "not show the gain growing or shrinking with the ratio."])]
    lines += ["", f"The smallest gains these comparisons resolve with 80% power (MDD) range "
              f"from {table['mdd'].min():.2f} to {table['mdd'].max():.2f} points."]
    return "\n".join(lines) + "\n"


def _sweep(framework: str, reports: Sequence[Report]) -> Sweep:
    table = gain_by_ratio(reports)
    caption = (f"Gain over the baseline of the same imbalance setting, points, with 95% CI and "
               f"MDD (80% power) ({framework}). Threshold rule: {RULES[THRESHOLD]}.")
    figure = plots.plot_gain_by_ratio(table, GAIN_METRICS, f"Gain over the baseline of the "
                                      f"same ratio, 95% CI ({framework}, Youden threshold)")
    return Sweep(framework, table, caption, figure, findings(framework, table))


def compare_ratios(reports: Sequence[Report]) -> list[Sweep]:
    """One Sweep per framework whose reports at the Youden rule span more than one imbalance
    setting (``report.compare_framework``'s reports, one per setting)."""
    chosen: dict[str, list[Report]] = {}
    for report in reports:
        if report.comparison.threshold == THRESHOLD:
            chosen.setdefault(report.comparison.framework, []).append(report)
    return [_sweep(framework, rows) for framework, rows in chosen.items()
            if len({r.comparison.imbalance for r in rows}) > 1]


def write_sweep(sweep: Sweep, folder: Path) -> list[Path]:
    """The table (CSV, Markdown, LaTeX) and figure (PNG, PDF) as
    ``<framework>_gain_by_ratio.*`` under ``folder``, and the findings appended to its
    findings.md (write the per-setting findings first: ``report.write_findings``)."""
    name = f"{sweep.framework}_gain_by_ratio"
    written = write_tables(folder, {name: (sweep.table, sweep.caption)})
    written.append(plots.save_figure(sweep.figure, folder / f"{name}.png", pdf=True))
    with (folder / "findings.md").open("a") as out:
        out.write("\n" + sweep.findings)
    return written + [folder / "findings.md"]
