"""The comparison of notebook 07: scenarios against the baseline, with the uncertainty stated.

Reads runs through ``helpers.results`` and tests through ``helpers.stats``; trains nothing.
Every table names its threshold rule: 0.5, or each run's Youden threshold chosen on its own
validation predictions. Rate metrics are shown in percent and their differences in points
(ROC-AUC 0.9635 -> 96.35); a gain in percent is relative to the baseline.

Seeds: each scenario's metric is the mean over its seeds; the bootstrap resamples test
images, the same resample for every seed and scenario (``stats.paired_bootstrap``). The
pooled paired tests use the seed ensemble (each image's probability averaged over seeds),
so no image counts twice in one test.

Power: beside each paired difference stands its ``mdd``, the smallest true difference its
test detects with 80% power at two-sided 5% (``stats.minimum_detectable_difference``).
Imbalance: one comparison holds the runs of one imbalance setting (``results.read_runs``'s
``imbalance``); every setting is scored on the same test images. ``helpers.ratio_sweep``
sets the settings side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import plots, results, stats, synthetic
from .config import Layout
from .errors import UserError
from .evaluation import SCALAR_METRICS
from .imbalance import NATURAL, order as imbalance_order
from .scenarios import SCENARIOS

BASELINE = "baseline"
THESIS_METRICS = ("accuracy", "specificity", "roc_auc")
UNSCALED = ("brier_score", "log_loss")  # shown as they are; every other metric x 100
H1_GAIN = 3.0  # points: the thesis' "improves performance by at least 3%"
# Verdicts read it beside the METRIC: at strong imbalance accuracy rewards calling every
# image the majority class.
SECOND_METRIC = "balanced_accuracy"
REDUNDANT_MARGIN = 1.0  # points: the smallest gain from adding focal loss worth having
RULES = {"threshold_0.5": "threshold 0.5",
         "threshold_youden": "each run's Youden threshold on its validation images"}
# Reported elsewhere, labelled with where they come from (rates in percent).
LITERATURE = pd.DataFrame([
    ("thesis baseline (image-level split, leaky; 586 other test images: not comparable)",
     "random", 91.47, 84.81, 96.35),
    ("thesis wgan (image-level split, leaky; 586 other test images: not comparable)",
     "random", 94.37, 91.77, 98.37),
    ("thesis wgan_focal (image-level split, leaky; 586 other test images: not comparable)",
     "random", 93.17, 93.67, 98.13),
    ("Kermany et al. 2018 (official test, 624 images)", "official", 92.8, 90.1, 96.8),
    ("MedMNIST v2 ResNet-50 at 224 (PneumoniaMNIST official test)", "official", 88.4, None, 96.2),
    ("MedMNIST+ ResNet-18 at 224 (PneumoniaMNIST official test)", "official", 91.1, None, 98.0),
    ("every image called pneumonia (official test)", "official", 62.5, 0.0, 50.0),
], columns=["source", "split_protocol", "accuracy", "specificity", "roc_auc"])


def scale(metric: str) -> float:
    """100 for rates (shown in percent, differences in points), 1 for Brier and log-loss."""
    return 1.0 if metric in UNSCALED else 100.0


def setting_name(imbalance: str, ratio: float) -> str:
    """An imbalance setting in words, with the real training split's class ratio."""
    name = ("natural imbalance" if imbalance == NATURAL
            else f"imbalance ratio {imbalance}")
    counts = "not recorded" if np.isnan(ratio) else f"{ratio:.2f}:1"
    return f"{name} (training majority:minority {counts})"


@dataclass(frozen=True)
class Group:
    """One scenario's runs of one framework: seeds, test probabilities, thresholds."""

    scenario: str
    seeds: tuple[int, ...]
    probs: np.ndarray  # (n_seeds, n_test)
    thresholds: np.ndarray  # (n_seeds,) at the table's threshold rule


@dataclass(frozen=True)
class Comparison:
    """The scenarios of one framework and imbalance setting on one split, ready for the
    statistics."""

    framework: str
    threshold: str
    y: np.ndarray
    groups: dict[str, Group]  # by scenario, baseline first
    imbalance: str = NATURAL
    imbalance_ratio: float = float("nan")  # the training split's n_majority / n_minority

    @property
    def rule(self) -> str:
        return RULES[self.threshold]

    @property
    def setting(self) -> str:
        return setting_name(self.imbalance, self.imbalance_ratio)


def load_comparison(runs: pd.DataFrame, framework: str, threshold: str = "threshold_youden",
                    scenarios: Sequence[str] = tuple(SCENARIOS), *,
                    imbalance: str = NATURAL) -> Comparison:
    """The finished classifier runs of ``framework`` at one ``imbalance`` setting
    (``results.read_runs``), grouped by scenario, their test predictions aligned; a missing
    baseline stops with a sentence."""
    results.metric_columns(threshold)  # checks the key
    chosen = results.select(runs, framework=framework, scenarios=list(scenarios),
                            imbalance=imbalance)
    if BASELINE not in set(chosen["scenario"]):
        at = "" if imbalance == NATURAL else f" at imbalance ratio {imbalance}"
        raise UserError(f"No finished {framework} baseline run{at}: run notebook "
                        f"{'03' if framework == 'keras' else '04'} (or the grid's baseline) first.")
    y, probs = results.aligned_test(chosen)
    groups = {}
    for scenario, rows in chosen.groupby("scenario", sort=False):
        at = rows.index.to_numpy()
        cut = (np.full(len(at), 0.5) if threshold == "threshold_0.5"
               else rows["youden_threshold"].to_numpy(float))
        groups[scenario] = Group(scenario, tuple(rows["seed"].astype(int)), probs[at], cut)
    return Comparison(framework, threshold, y, groups, imbalance,
                      float(chosen["imbalance_ratio"].median()))


def seed_summary(runs: pd.DataFrame, threshold: str = "threshold_youden") -> pd.DataFrame:
    """Mean and standard deviation over seeds of every metric, per framework and scenario
    (classifiers and the pixel reference), with the number of seeds."""
    columns = results.metric_columns(threshold)
    rows = runs[runs["kind"] != "gan"].rename(columns=columns)
    stats_ = rows.groupby(["framework", "scenario"], sort=False)[list(columns.values())]
    out = stats_.mean().add_suffix("_mean").join(stats_.std(ddof=1).add_suffix("_sd"))
    out.insert(0, "seeds", rows.groupby(["framework", "scenario"], sort=False).size())
    return out[["seeds"] + [f"{m}_{s}" for m in SCALAR_METRICS for s in ("mean", "sd")]]


def bootstrap_vs_baseline(comp: Comparison, *, n_boot: int = 2000, seed: int = 42,
                          other: str = BASELINE) -> pd.DataFrame:
    """Each scenario against ``other`` (the baseline) on the same resampled test images:
    one row per scenario and metric with the paired bootstrap's estimates and 95% CIs
    (``stats.paired_bootstrap``; ``diff`` = scenario - other)."""
    base = comp.groups[other]
    frames = []
    for scenario, group in comp.groups.items():
        if scenario == other:
            continue
        table = stats.paired_bootstrap(comp.y, base.probs, group.probs, base.thresholds,
                                       group.thresholds, n_boot=n_boot, seed=seed)
        frames.append(table.rename_axis("metric").reset_index().assign(scenario=scenario,
                                                                       versus=other))
    if not frames:  # the baseline alone: nothing to compare it with yet
        return pd.DataFrame(columns=["scenario", "versus", "metric", *stats.BOOT_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    return out[["scenario", "versus", "metric"] + [c for c in out if c not in
                                                   ("scenario", "versus", "metric")]]


def _ensemble(group: Group) -> tuple[np.ndarray, float]:
    return group.probs.mean(axis=0), float(group.thresholds.mean())


def _pair(y: np.ndarray, prob_a: np.ndarray, cut_a: float, prob_b: np.ndarray,
          cut_b: float) -> dict[str, float]:
    mc = stats.mcnemar_exact(y, (prob_a >= cut_a).astype(int), (prob_b >= cut_b).astype(int))
    dl = stats.delong_test(y, prob_a, prob_b)
    return {"baseline_only": mc["a_only"], "scenario_only": mc["b_only"],
            "mcnemar_p": mc["pvalue"], "auc_diff": dl["diff"],
            "auc_mdd": float(stats.minimum_detectable_difference(dl["se"])),
            "delong_p": dl["pvalue"]}


def paired_tests(comp: Comparison) -> pd.DataFrame:
    """Exact McNemar (correct by the baseline only / by the scenario only, at the table's
    threshold rule) and DeLong (ROC-AUC, with the MDD of its DeLong SE) of each scenario
    against the baseline, per seed (same seed against same seed) and pooled (the seed
    ensembles); Holm's correction across scenarios within each seed and within the pooled
    tests."""
    base = comp.groups[BASELINE]
    rows = []
    for scenario, group in comp.groups.items():
        if scenario == BASELINE:
            continue
        for i, seed in enumerate(group.seeds):
            if seed in base.seeds:
                j = base.seeds.index(seed)
                rows.append({"scenario": scenario, "seed": str(seed),
                             **_pair(comp.y, base.probs[j], base.thresholds[j], group.probs[i],
                                     group.thresholds[i])})
        rows.append({"scenario": scenario, "seed": "pooled",
                     **_pair(comp.y, *_ensemble(base), *_ensemble(group))})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for test in ("mcnemar", "delong"):
        table[f"{test}_p_holm"] = table.groupby("seed")[f"{test}_p"].transform(
            lambda p: stats.holm(p.to_numpy()))
    return table.assign(threshold_rule=comp.rule)


def _interval(value: float, low: float, high: float, k: float, digits: int = 2) -> str:
    return f"{value * k:.{digits}f} [{low * k:.{digits}f}, {high * k:.{digits}f}]"


def thesis_table(comp: Comparison, boot: pd.DataFrame) -> pd.DataFrame:
    """The thesis' table answered: accuracy, specificity and ROC-AUC per scenario (percent,
    95% CI), the gain over the baseline in points (95% CI), its MDD (points; 80% power) and
    the gain in percent of the baseline."""
    rows = []
    for scenario in comp.groups:
        row: dict[str, str] = {"scenario": scenario, "seeds": str(len(comp.groups[scenario].seeds))}
        for metric in THESIS_METRICS:
            k = scale(metric)
            if scenario == BASELINE:
                ref = boot[boot["metric"] == metric].iloc[0] if len(boot) else None
                row[metric] = ("-" if ref is None else _interval(ref["a"], ref["a_low"],
                                                                   ref["a_high"], k))
                for column in ("gain (points)", "MDD (points)", "gain (%)"):
                    row[f"{metric} {column}"] = "-"
                continue
            r = boot[(boot["scenario"] == scenario) & (boot["metric"] == metric)].iloc[0]
            row[metric] = _interval(r["b"], r["b_low"], r["b_high"], k)
            row[f"{metric} gain (points)"] = _interval(r["diff"], r["diff_low"], r["diff_high"], k)
            row[f"{metric} MDD (points)"] = f"{r['mdd'] * k:.2f}"
            row[f"{metric} gain (%)"] = f"{100 * r['diff'] / r['a']:+.2f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("scenario")


def _verdict(supported: bool, refuted: bool) -> str:
    return "supported" if supported else "not supported" if refuted else "undecided"


def _verdicts(comp: Comparison, boot: pd.DataFrame, versus: pd.DataFrame | None,
              metric: str) -> list[dict[str, object]]:
    """The hypotheses' rows on one metric (points); ``versus``: every scenario against wgan."""
    k = scale(metric)
    rows = []
    for scenario, r in boot[boot["metric"] == metric].set_index("scenario").iterrows():
        lo, hi = r["diff_low"] * k, r["diff_high"] * k
        rows.append({"hypothesis": f"H1: {scenario} gains >= {H1_GAIN:g} points",
                     "verdict": _verdict(lo >= H1_GAIN, hi < H1_GAIN),
                     "estimate": r["diff"] * k, "ci_low": lo, "ci_high": hi,
                     "mdd": r["mdd"] * k, "target": H1_GAIN,
                     "criterion": f"supported if the CI's lower end >= {H1_GAIN:g}, "
                                  f"not supported if its upper end < {H1_GAIN:g}"})
    if versus is not None:
        diffs = versus[versus["metric"] == metric].reset_index(drop=True)  # other - wgan
        lows, highs = -diffs["diff_high"] * k, -diffs["diff_low"] * k  # wgan - other
        closest = int((-diffs["diff"]).idxmin())
        rows.append({"hypothesis": "WGAN-GP (wgan) is the best scenario",
                     "verdict": _verdict(bool((lows > 0).all()), bool((highs < 0).any())),
                     "estimate": -diffs["diff"][closest] * k, "ci_low": lows[closest],
                     "ci_high": highs[closest], "mdd": diffs["mdd"][closest] * k,
                     "target": H1_GAIN,
                     "criterion": f"wgan minus the closest other scenario "
                                  f"({diffs['scenario'][closest]}); supported if wgan is above "
                                  "every other with 95% confidence, not supported if one is "
                                  "above wgan with 95% confidence"})
    if versus is not None and "wgan_focal" in comp.groups:
        r = versus[(versus["scenario"] == "wgan_focal") & (versus["metric"] == metric)].iloc[0]
        lo, hi = r["diff_low"] * k, r["diff_high"] * k
        rows.append({"hypothesis": "WGAN-GP + focal (wgan_focal) is redundant next to wgan",
                     "verdict": _verdict(hi < REDUNDANT_MARGIN, lo > 0),
                     "estimate": r["diff"] * k, "ci_low": lo, "ci_high": hi,
                     "mdd": r["mdd"] * k, "target": REDUNDANT_MARGIN,
                     "criterion": f"wgan_focal minus wgan; supported if the CI's upper end < "
                                  f"{REDUNDANT_MARGIN:g} point, not supported if its lower "
                                  "end > 0"})
    return [{**row, "metric": metric} for row in rows]


def hypotheses(comp: Comparison, boot: pd.DataFrame, *,
               metrics: Sequence[str] = ("accuracy", SECOND_METRIC), n_boot: int = 2000,
               seed: int = 42) -> pd.DataFrame:
    """A verdict on each thesis hypothesis from 95% CIs of paired differences, per metric of
    ``metrics``: H1 (a balancing scenario gains >= 3 points over the baseline), "WGAN-GP is
    best" (wgan above every other scenario), "WGAN-GP + focal is redundant" (wgan_focal
    adds less than 1 point to wgan). Each is supported, not supported, or undecided at this
    sample size. Each row has the ``mdd`` of its difference (points) and the difference
    the hypothesis is about (``target``: 3 points, 1 for redundancy); an undecided row says
    whether the test set could resolve the target at all (``resolvable``: mdd <= target)
    and how many test images would at the observed variance (``images_needed``)."""
    versus = (bootstrap_vs_baseline(comp, n_boot=n_boot, seed=seed, other="wgan")
              if "wgan" in comp.groups and len(comp.groups) > 1 else None)
    table = pd.DataFrame([row for metric in metrics
                          for row in _verdicts(comp, boot, versus, metric)])
    undecided = table["verdict"] == "undecided"
    needed = stats.images_needed(len(comp.y), table["mdd"].to_numpy(float),
                                 table["target"].to_numpy(float))
    table.insert(7, "resolvable", (table["mdd"] <= table["target"]).where(undecided))
    table.insert(8, "images_needed", pd.Series(needed, index=table.index).where(undecided))
    return table.assign(threshold_rule=comp.rule)


def reference_rows(runs: pd.DataFrame, threshold: str = "threshold_youden", *,
                   imbalance: str = NATURAL) -> pd.DataFrame:
    """Rows to read the scenarios beside, each labelled with its source: the pixel
    reference on this split at the ``imbalance`` setting (measured), and the literature's
    reported numbers (the thesis always, marked not comparable; Kermany 2018 and MedMNIST
    on the official test only)."""
    columns = results.metric_columns(threshold)
    pixel = results.select(runs, kind="reference", imbalance=imbalance).rename(columns=columns)
    measured = pd.DataFrame({
        "source": [f"{s} on 32x32 pixels, this split ({RULES[threshold]}; measured)"
                   for s in pixel["scenario"]],
        **{m: pixel[m].to_numpy(float) * 100 for m in THESIS_METRICS}})
    official = "official" in set(runs["split_protocol"].dropna())
    reported = LITERATURE[(LITERATURE["split_protocol"] == "random") | official]
    return pd.concat([measured, reported.drop(columns="split_protocol")], ignore_index=True)


def findings(comp: Comparison, boot: pd.DataFrame, tests: pd.DataFrame,
             verdicts: pd.DataFrame, references: pd.DataFrame, *, metric: str = "accuracy"
             ) -> str:
    """findings.md: sentences generated from the numbers (never written by hand)."""
    k, name = scale(metric), metric.replace("_", " ")
    n, n_pos = len(comp.y), int(comp.y.sum())
    seeds = sorted({len(g.seeds) for g in comp.groups.values()})
    lines = [f"# Findings: {comp.framework}, {comp.rule}, {comp.setting}", "",
             f"{n} test images ({n_pos} positive, {n - n_pos} negative); threshold rule: "
             f"{comp.rule}; seeds per scenario: {', '.join(map(str, seeds))}; 95% CIs from a "
             f"paired bootstrap over test images; MDD: the smallest difference a comparison "
             f"detects with 80% power at two-sided 5%.", ""]
    rows = boot[boot["metric"] == metric]
    pooled = tests[tests["seed"] == "pooled"].set_index("scenario") if len(tests) else None
    better = rows[rows["diff_low"] > 0]["scenario"].tolist()
    worse = rows[rows["diff_high"] < 0]["scenario"].tolist()
    if rows.empty:
        lines.append("Only the baseline has finished runs: there is nothing to compare yet.")
    else:
        a = rows.iloc[0]
        lines.append(f"The baseline scores {name} {a['a'] * k:.2f} "
                     f"(95% CI {a['a_low'] * k:.2f} to {a['a_high'] * k:.2f}).")
        lines.append(("Scenarios above the baseline with 95% confidence: " + ", ".join(better) + "."
                      ) if better else f"No scenario beats the baseline on {name} with 95% "
                     "confidence.")
        if worse:
            lines.append(f"Below the baseline with 95% confidence: {', '.join(worse)}.")
        lines.append("")
        for r in rows.itertuples():
            test = "" if pooled is None else (
                f"; pooled McNemar p = {pooled.loc[r.scenario, 'mcnemar_p']:.3g} (Holm "
                f"{pooled.loc[r.scenario, 'mcnemar_p_holm']:.3g}), DeLong p = "
                f"{pooled.loc[r.scenario, 'delong_p']:.3g} (Holm "
                f"{pooled.loc[r.scenario, 'delong_p_holm']:.3g})")
            lines.append(f"- {r.scenario}: {name} {r.b * k:.2f}, {r.diff * k:+.2f} points against "
                         f"the baseline (95% CI {r.diff_low * k:+.2f} to {r.diff_high * k:+.2f}, "
                         f"MDD {r.mdd * k:.2f}){test}.")
    auc = boot[boot["metric"] == "roc_auc"]
    pixel = references[references["source"].str.contains("pixel_logreg")]
    if len(pixel) and len(auc):
        ref = float(pixel["roc_auc"].iloc[0])
        best = {s: v * 100 for s, v in zip(auc["scenario"], auc["b"])}
        best[BASELINE] = float(auc["a"].iloc[0]) * 100
        below = [s for s, v in best.items() if v < ref]
        lines += ["", f"The pixel logistic regression (32x32 pixels, same split) reaches ROC-AUC "
                  f"{ref:.2f}; " + (f"{', '.join(below)} score below it." if below else
                                    "every scenario scores above it.")]
    if len(verdicts):
        lines += ["", "Hypotheses:"] + [_verdict_line(v) for v in verdicts.itertuples()]
    return "\n".join(lines) + "\n"


def _verdict_line(v: Any) -> str:
    """One hypothesis' verdict with its CI and the smallest difference its test set resolves;
    when undecided, whether that is within the hypothesised difference, and if not, the test
    images it would take."""
    line = (f"- {v.hypothesis}: **{v.verdict}** ({v.metric}, {v.estimate:+.2f} points, 95% CI "
            f"{v.ci_low:+.2f} to {v.ci_high:+.2f}); the smallest difference this test set "
            f"resolves with 80% power is {v.mdd:.2f} points")
    if v.verdict != "undecided":
        return f"{line}."
    if v.resolvable:
        return f"{line}, within the hypothesised {v.target:g}, yet the 95% CI spans the criterion."
    return (f"{line}, above the hypothesised {v.target:g}; about {v.images_needed:,.0f} test "
            f"images would be needed at the observed variance.")


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (\\toprule, \\midrule, \\bottomrule) with names and cells escaped."""
    styler = table.style.format(escape="latex", precision=4, na_rep="-")
    styler = styler.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    return styler.to_latex(hrules=True, caption=caption, label=label, position="htbp",
                           position_float="centering")


def write_tables(folder: Path, tables: Mapping[str, tuple[pd.DataFrame, str]]) -> list[Path]:
    """Each table as CSV, Markdown and LaTeX (``tables[name] = (frame, caption)``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (frame, caption) in tables.items():
        frame.to_csv(folder / f"{name}.csv")
        (folder / f"{name}.md").write_text(f"{caption}\n\n{frame.to_markdown()}\n")
        (folder / f"{name}.tex").write_text(to_latex(frame, caption, f"tab:{name}"))
        written += [folder / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    return written



@dataclass
class Report:
    """Everything notebook 07 shows and writes for one framework."""

    comparison: Comparison
    tables: dict[str, tuple[pd.DataFrame, str]]  # name: (table, caption)
    figures: dict[str, Figure]
    findings: str


def _runs_of(runs: pd.DataFrame, comp: Comparison) -> pd.DataFrame:
    """The classifier runs ``comp`` was loaded from."""
    return results.select(runs, framework=comp.framework, scenarios=list(comp.groups),
                          imbalance=comp.imbalance)


def _seed_rows(runs: pd.DataFrame, comp: Comparison) -> pd.DataFrame:
    columns = results.metric_columns(comp.threshold)
    rows = _runs_of(runs, comp)
    rows = rows.rename(columns=columns)[["scenario", "seed", *columns.values()]]
    for metric in columns.values():
        rows[metric] = rows[metric] * scale(metric)
    return rows


def _bars(boot: pd.DataFrame) -> pd.DataFrame:
    base = boot.drop_duplicates("metric").assign(scenario=BASELINE, value=boot["a"],
                                                 low=boot["a_low"], high=boot["a_high"])
    out = pd.concat([base, boot.assign(value=boot["b"], low=boot["b_low"], high=boot["b_high"])])
    k = out["metric"].map(scale)
    return out.assign(value=out["value"] * k, low=out["low"] * k, high=out["high"] * k)


def _figures(runs: pd.DataFrame, comp: Comparison, boot: pd.DataFrame,
             labels: Sequence[str]) -> dict[str, Figure]:
    """ROC overlay, metric bars with CIs, confusion grid, per-seed dots, training curves."""
    prefix = results.PREFIXES[comp.threshold]
    rows = _runs_of(runs, comp)
    cells = [f"{prefix}_{c}" for c in ("tn", "fp", "fn", "tp")]
    counts = {s: r[cells].mean().to_numpy().reshape(2, 2) for s, r in
              rows.groupby("scenario", sort=False)}
    shown = ["accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc", "mcc"]
    name = f"{comp.framework}, {comp.rule}, {comp.setting}"
    return {
        "roc": plots.plot_roc_overlay(comp.y, {s: g.probs for s, g in comp.groups.items()},
                                      f"ROC curves on the test images ({comp.framework})"),
        "metric_bars": plots.plot_metric_bars(_bars(boot), shown, f"Seed mean and 95% bootstrap "
                                              f"CI ({name})") if len(boot) else
        plots.plot_seed_dots(_seed_rows(runs, comp), shown, name),
        "confusion_matrices": plots.plot_confusion_grid(counts, labels, f"Mean confusion "
                                                        f"matrix over seeds ({name})"),
        "seed_dots": plots.plot_seed_dots(_seed_rows(runs, comp), shown,
                                          f"Each seed (dots) and their mean ({name})"),
        "training_curves": plots.plot_history_grid(results.histories(rows)),
    }


def compare_framework(runs: pd.DataFrame, framework: str, *,
                      threshold: str = "threshold_youden", metric: str = "accuracy",
                      n_boot: int = 2000, seed: int = 42,
                      labels: Sequence[str] = ("negative", "positive"),
                      imbalance: str = NATURAL) -> Report:
    """The whole comparison of one framework's scenarios against its baseline at one
    imbalance setting: tables (seed summary, bootstrap CIs, paired tests, the thesis'
    table, hypotheses on ``metric`` and on SECOND_METRIC, reference rows), figures and
    findings."""
    comp = load_comparison(runs, framework, threshold, imbalance=imbalance)
    boot = bootstrap_vs_baseline(comp, n_boot=n_boot, seed=seed)
    tests = paired_tests(comp)
    metrics = tuple(dict.fromkeys((metric, SECOND_METRIC)))
    verdicts = (hypotheses(comp, boot, metrics=metrics, n_boot=n_boot, seed=seed) if len(boot)
                else pd.DataFrame())
    refs = reference_rows(runs, threshold, imbalance=imbalance)
    rule = f"Threshold rule: {comp.rule}; {comp.setting}."
    summary = seed_summary(_runs_of(runs, comp), threshold)
    tables = {
        "seed_summary": (summary, f"Test metrics per scenario, mean and sd over seeds "
                                  f"({framework}). {rule}"),
        "bootstrap": (boot, f"Paired bootstrap ({n_boot} resamples of the test images): each "
                            f"scenario (b) against the baseline (a), 95% CIs ({framework}). "
                            f"{rule}"),
        "paired_tests": (tests, f"Exact McNemar and DeLong tests against the baseline, per seed "
                                f"and pooled (seed ensemble), Holm-corrected across scenarios "
                                f"({framework}). {rule}"),
        "thesis_table": (thesis_table(comp, boot) if len(boot) else pd.DataFrame(),
                         f"The thesis' table: percent with 95% CI, gain over the baseline in "
                         f"points (95% CI), its MDD (80% power) and the gain in percent "
                         f"({framework}). {rule}"),
        "hypotheses": (verdicts, f"The thesis' hypotheses on {' and '.join(metrics)}, with the "
                                f"MDD (80% power, points) of each difference ({framework}). "
                                f"{rule}"),
        "references": (refs, "Reference rows (percent), each with its source."),
    }
    return Report(comp, tables, _figures(runs, comp, boot, labels),
                  findings(comp, boot, tests, verdicts, refs, metric=metric))


def write_report(report: Report, folder: Path) -> list[Path]:
    """Tables (CSV, Markdown, LaTeX) and figures (PNG, PDF) of one framework, threshold
    rule and imbalance setting under ``folder`` (``results/<dataset>/comparison/``), named
    ``<framework>_<rule>_*`` at the natural imbalance, ``<framework>_<rule>_r<ratio>_*``
    otherwise."""
    comp = report.comparison
    tag = "" if comp.imbalance == NATURAL else f"_r{comp.imbalance}"
    name = f"{comp.framework}_{results.PREFIXES[comp.threshold]}{tag}"
    written = write_tables(folder, {f"{name}_{k}": v for k, v in report.tables.items()})
    return written + [plots.save_figure(fig, folder / f"{name}_{k}.png", pdf=True)
                      for k, fig in report.figures.items()]


def write_findings(reports: Sequence[Report], folder: Path) -> Path:
    """findings.md: every report's generated sentences, one section each."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "findings.md"
    path.write_text("\n".join(r.findings for r in reports))
    return path


def gan_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The GAN runs' quality measures (synthetic) beside the real images' own floor."""
    gan = runs[runs["kind"] == "gan"].set_index("run")
    return pd.DataFrame({f"{m} ({side})": gan.get(col, pd.Series(dtype=float))
                         for m in results.GAN_MEASURES
                         for side, col in (("synthetic", m), ("real floor", f"{m}_real"))})


def gan_examples(layout: Layout, runs: pd.DataFrame, n: int = 8, seed: int = 42
                 ) -> Figure | None:
    """Real minority training images beside synthetic ones (notebook 05's set at the GAN
    run's size), or None when no GAN run finished."""
    gan = runs[runs["kind"] == "gan"]
    if gan.empty:
        return None
    size = int(gan["image_size"].iloc[0])
    real = synthetic.gan_images(layout, size)[0].images
    fake = synthetic.load_synthetic_images(layout, size)
    return plots.plot_real_vs_synthetic(real, fake, n, seed, f"Real training images (top) "
                                        f"beside synthetic ones (bottom), {size} px")


def imbalances(runs: pd.DataFrame, framework: str) -> list[str]:
    """The imbalance settings with a finished baseline of ``framework``, natural first, then
    by ratio."""
    rows = results.select(runs, framework=framework, scenarios=[BASELINE])
    return sorted(set(rows["imbalance"]), key=imbalance_order)


def plan(runs: pd.DataFrame, frameworks: str = "auto", thresholds: str = "youden,0.5"
         ) -> list[tuple[str, str, str]]:
    """(framework, threshold key, imbalance) to compare: ``frameworks`` "auto" = every
    framework with a finished baseline; ``thresholds`` of "youden" and "0.5"; every
    imbalance setting with a finished baseline of the framework (natural for a framework
    named without one, whose comparison then says what to run)."""
    keys = {"youden": "threshold_youden", "0.5": "threshold_0.5"}
    chosen_t = [t.strip() for t in thresholds.split(",") if t.strip()]
    if not chosen_t or set(chosen_t) - set(keys):
        raise UserError(f"THRESHOLDS {thresholds!r} must name youden and/or 0.5, e.g. "
                        f"'youden,0.5'.")
    with_baseline = list(dict.fromkeys(runs.loc[(runs["kind"] == "classifier")
                                                & (runs["scenario"] == BASELINE), "framework"]))
    chosen_f = (with_baseline if frameworks == "auto"
                else [f.strip() for f in frameworks.split(",") if f.strip()])
    if not chosen_f:
        raise UserError("No framework has a finished baseline run: run notebook 03 or 04 first.")
    return [(f, keys[t], i) for f in chosen_f for i in imbalances(runs, f) or [NATURAL]
            for t in chosen_t]
