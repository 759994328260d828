"""The comparison of notebook 07: scenarios against the baseline, with the uncertainty stated.

Reads runs through ``helpers.analysis.results`` and tests through ``helpers.analysis.stats``; trains nothing.
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
``imbalance``); every setting is scored on the same test images. ``helpers.analysis.report``
assembles a comparison's tables, figures and files; ``helpers.analysis.ratio_sweep`` sets the
settings side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from helpers.analysis import results, stats
from helpers.analysis.evaluation import SCALAR_METRICS, THRESHOLD_RULES
from helpers.data.imbalance import NATURAL
from helpers.errors import UserError
from helpers.training.scenarios import SCENARIOS

BASELINE = "baseline"
PIXEL_REFERENCE = "pixel_logreg"  # the trivial model every CNN is read beside
THESIS_METRICS = ("accuracy", "specificity", "roc_auc")
UNSCALED = ("brier_score", "log_loss")  # shown as they are; every other metric x 100
H1_GAIN = 3.0  # points: the thesis' "improves performance by at least 3%"
# Verdicts read it beside the METRIC: at strong imbalance accuracy rewards calling every
# image the majority class.
SECOND_METRIC = "balanced_accuracy"
REDUNDANT_MARGIN = 1.0  # points: the smallest gain from adding focal loss worth having
RULES = {r.key: r.description for r in THRESHOLD_RULES}
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
    rows = results.at_threshold(runs[runs["kind"] != "gan"], threshold)
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


def baseline_vs_pixels(runs: pd.DataFrame, comp: Comparison, *, n_boot: int = 2000,
                       seed: int = 42) -> pd.DataFrame:
    """The baseline (its seeds) against the pixel logistic regression fitted on the same
    training rows (``PIXEL_REFERENCE`` at the comparison's imbalance setting), on the same
    resampled test images, at the comparison's threshold rule: one row per metric
    (``stats.paired_bootstrap``; ``diff`` = baseline - pixels). A CNN worth ranking clears
    it. Empty when the reference has not run."""
    ref = results.select(runs, kind="reference", scenarios=[PIXEL_REFERENCE],
                         imbalance=comp.imbalance)
    if ref.empty:
        return pd.DataFrame(columns=["metric", *stats.BOOT_COLUMNS])
    base = results.select(runs, framework=comp.framework, scenarios=[BASELINE],
                          imbalance=comp.imbalance)
    y, probs = results.aligned_test(pd.concat([ref.iloc[:1], base.iloc[:1]]))
    cut = 0.5 if comp.threshold == "threshold_0.5" else float(ref["youden_threshold"].iloc[0])
    group = comp.groups[BASELINE]
    table = stats.paired_bootstrap(y, probs[0], group.probs, cut, group.thresholds,
                                   n_boot=n_boot, seed=seed)
    return table.rename_axis("metric").reset_index()


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
    pixel = results.at_threshold(results.select(runs, kind="reference", imbalance=imbalance),
                                 threshold)
    measured = pd.DataFrame({
        "source": [f"{s} on 32x32 pixels, this split ({RULES[threshold]}; measured)"
                   for s in pixel["scenario"]],
        **{m: pixel[m].to_numpy(float) * 100 for m in THESIS_METRICS}})
    official = "official" in set(runs["split_protocol"].dropna())
    reported = LITERATURE[(LITERATURE["split_protocol"] == "random") | official]
    return pd.concat([measured, reported.drop(columns="split_protocol")], ignore_index=True)


def findings(comp: Comparison, boot: pd.DataFrame, tests: pd.DataFrame,
             verdicts: pd.DataFrame, references: pd.DataFrame, *, metric: str = "accuracy",
             pixels: pd.DataFrame | None = None) -> str:
    """findings.md: sentences generated from the numbers (never written by hand);
    ``pixels``: ``baseline_vs_pixels``."""
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
    if pixels is not None and len(pixels):
        lines += ["", _pixel_line(pixels)]
    if len(verdicts):
        lines += ["", "Hypotheses:"] + [_verdict_line(v) for v in verdicts.itertuples()]
    return "\n".join(lines) + "\n"


def _pixel_line(pixels: pd.DataFrame) -> str:
    """Whether the baseline clears the pixel logistic regression, on ROC-AUC and balanced
    accuracy, with the paired CIs as they are."""
    parts, below = [], []
    for metric in ("roc_auc", "balanced_accuracy"):
        r = pixels.set_index("metric").loc[metric]
        k = scale(metric)
        sure = (" (above it with 95% confidence)" if r["diff_low"] > 0 else
                " (below it with 95% confidence)" if r["diff_high"] < 0 else "")
        parts.append(f"{metric.replace('_', ' ')} {r['b'] * k:.2f} against {r['a'] * k:.2f}, "
                     f"{r['diff'] * k:+.2f} points (95% CI {r['diff_low'] * k:+.2f} to "
                     f"{r['diff_high'] * k:+.2f}, MDD {r['mdd'] * k:.2f}){sure}")
        if r["diff"] <= 0:
            below.append(metric.replace("_", " "))
    verdict = (f"it does not clear it on {' and '.join(below)}: a number a 32-pixel linear "
               f"model matches is a finding, not a result." if below else
               "it clears it on both (mean over seeds).")
    return ("The baseline against the pixel logistic regression fitted on the same training "
            "rows, on the same test images: " + "; ".join(parts) + f"; {verdict}")


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
