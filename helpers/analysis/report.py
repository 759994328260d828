"""Notebook 07's report: which comparisons to make (``plan``), each one's tables, figures and
findings (``compare_framework``, from the statistics of ``helpers.analysis.comparison``), and the
files they are written to (CSV, Markdown and LaTeX tables; PNG and PDF figures)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from helpers.analysis import plots, results
from helpers.analysis.comparison import (
    BASELINE,
    SECOND_METRIC,
    Comparison,
    baseline_vs_pixels,
    bootstrap_vs_baseline,
    findings,
    hypotheses,
    load_comparison,
    paired_tests,
    reference_rows,
    scale,
    seed_summary,
    thesis_table,
)
from helpers.analysis.evaluation import THRESHOLD_RULES
from helpers.config import Layout, list_items
from helpers.data import synthetic
from helpers.data.imbalance import NATURAL
from helpers.data.imbalance import order as imbalance_order
from helpers.errors import UserError


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
    rows = results.at_threshold(rows, comp.threshold)[["scenario", "seed", *columns.values()]]
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
    table, hypotheses on ``metric`` and on SECOND_METRIC, reference rows, the baseline
    against the pixel reference), figures and findings."""
    if not isinstance(n_boot, int) or n_boot < 1:
        raise UserError(f"N_BOOT must be a positive integer, e.g. 2000 (got {n_boot!r}).")
    comp = load_comparison(runs, framework, threshold, imbalance=imbalance)
    boot = bootstrap_vs_baseline(comp, n_boot=n_boot, seed=seed)
    tests = paired_tests(comp)
    metrics = tuple(dict.fromkeys((metric, SECOND_METRIC)))
    verdicts = (hypotheses(comp, boot, metrics=metrics, n_boot=n_boot, seed=seed) if len(boot)
                else pd.DataFrame())
    refs = reference_rows(runs, threshold, imbalance=imbalance)
    pixels = baseline_vs_pixels(runs, comp, n_boot=n_boot, seed=seed)
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
        "pixel_reference": (pixels, f"Paired bootstrap ({n_boot} resamples of the test "
                                    f"images): the baseline (b, its seeds) against the pixel "
                                    f"logistic regression on the same training rows (a) "
                                    f"({framework}). {rule}"),
    }
    return Report(comp, tables, _figures(runs, comp, boot, labels),
                  findings(comp, boot, tests, verdicts, refs, metric=metric, pixels=pixels))


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


def plan(runs: pd.DataFrame, frameworks: str | Sequence[str] = "auto",
         thresholds: str | float | Sequence[str | float] = "youden,0.5"
         ) -> list[tuple[str, str, str]]:
    """(framework, threshold key, imbalance) to compare: ``frameworks`` "auto" = every
    framework with a finished baseline; ``thresholds`` of "youden" and "0.5" (both list
    parameters: ``config.list_items``); every imbalance setting with a finished baseline of
    the framework (natural for a framework named without one, whose comparison then says
    what to run)."""
    keys = {r.name: r.key for r in THRESHOLD_RULES}
    chosen_t = [str(t) for t in list_items(thresholds)]
    if not chosen_t or set(chosen_t) - set(keys):
        raise UserError(f"THRESHOLDS {thresholds!r} must name youden and/or 0.5, e.g. "
                        f"'youden,0.5'.")
    with_baseline = list(dict.fromkeys(runs.loc[(runs["kind"] == "classifier")
                                                & (runs["scenario"] == BASELINE), "framework"]))
    chosen_f = with_baseline if list_items(frameworks) == ["auto"] else list_items(frameworks)
    if not chosen_f:
        raise UserError("No framework has a finished baseline run: run notebook 03 or 04 first.")
    return [(f, keys[t], i) for f in chosen_f for i in imbalances(runs, f) or [NATURAL]
            for t in chosen_t]
