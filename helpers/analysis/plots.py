"""Figures of the series; each function returns a matplotlib Figure and can save it as PNG."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    roc_auc_score,
    roc_curve,
)


def save_figure(fig: Figure, path: str | Path, *, pdf: bool = False) -> Path:
    """Write ``fig`` as a PNG (tight box, 120 dpi), and beside it as a PDF (for a thesis)
    when ``pdf``; close it and return the PNG's path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    if pdf:
        fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
    plt.close(fig)
    return path


def _message(ax: Axes, text: str) -> None:
    """Replace a plot that cannot be drawn by a sentence saying why."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)


def plot_confusion_matrix(cm: np.ndarray | Sequence[Sequence[int]], labels: Sequence[str],
                          title: str) -> Figure:
    """2x2 confusion matrix (rows true, columns predicted), each cell as count and % of all."""
    cm = np.asarray(cm, dtype=int)
    fig = Figure(figsize=(4.6, 4.0))
    ax = fig.subplots()
    disp = ConfusionMatrixDisplay(cm, display_labels=list(labels))
    disp.plot(ax=ax, cmap="Blues", colorbar=False, values_format="d")
    total = cm.sum()
    for (i, j), text in np.ndenumerate(disp.text_):
        share = f"{100 * cm[i, j] / total:.1f}%" if total else "n/a"
        text.set_text(f"{cm[i, j]}\n({share})")
    ax.set_title(title)
    return fig


def plot_roc(y_true: Sequence[int], prob: Sequence[float], *, title: str = "ROC curve",
             points: Mapping[str, float] | None = None) -> Figure:
    """ROC curve with the chance diagonal; ``points`` marks operating thresholds {name: t}."""
    y, p = np.asarray(y_true), np.asarray(prob, dtype=float)
    fig = Figure(figsize=(5.0, 5.0))
    ax = fig.subplots()
    if len(np.unique(y)) < 2:
        _message(ax, f"{title}: undefined, the labels contain one class only.")
        return fig
    RocCurveDisplay.from_predictions(y, p, name="model", ax=ax, plot_chance_level=True)
    for name, t in (points or {}).items():
        pred = p >= t
        ax.plot(pred[y == 0].mean(), pred[y == 1].mean(), "o", markersize=8,
                label=f"{name}, t = {t:.3g}")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return fig


def plot_pr(y_true: Sequence[int], prob: Sequence[float], *,
            title: str = "Precision-recall curve") -> Figure:
    """Precision-recall curve with the prevalence (chance) baseline."""
    y, p = np.asarray(y_true), np.asarray(prob, dtype=float)
    fig = Figure(figsize=(5.0, 5.0))
    ax = fig.subplots()
    if not (y == 1).any():
        _message(ax, f"{title}: undefined, the labels contain no positive sample.")
        return fig
    PrecisionRecallDisplay.from_predictions(y, p, name="model", ax=ax, plot_chance_level=True)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower left")
    return fig


def _history_panels(history: pd.DataFrame) -> list[str]:
    """Metric names to plot, loss first: every column that is not epoch, phase, lr or val_*."""
    names = [c for c in history.columns if c not in ("epoch", "phase", "lr") and not c.startswith("val_")]
    return sorted(names, key=lambda c: c != "loss")


def _empty(text: str) -> Figure:
    """A small figure that says why there is nothing to plot."""
    fig = Figure(figsize=(5.5, 3.4))
    _message(fig.subplots(), text)
    return fig


def _panels(n: int, most_columns: int, size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A figure with ``n`` panels of ``size`` inches, at most ``most_columns`` per row."""
    ncols = min(most_columns, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def plot_history(history: pd.DataFrame) -> Figure:
    """Training curves (train and val_ per metric), learning rate on a log scale, and a
    vertical line where phase 2 (fine-tuning) begins."""
    panels = _history_panels(history) + (["lr"] if "lr" in history else [])
    if history.empty or not panels:
        return _empty("Training history: nothing to plot.")
    fig, axes = _panels(len(panels), 2, (5.5, 3.4))
    epoch = history["epoch"].to_numpy() if "epoch" in history else np.arange(1, len(history) + 1)
    starts = epoch[1:][np.diff(history["phase"].to_numpy()) > 0] if "phase" in history else []
    for ax, name in zip(axes, panels):
        for column, style in ((name, "-o"), (f"val_{name}", "--s")):
            if column in history and column != "val_lr":
                ax.plot(epoch, history[column], style, markersize=3, label=column)
        if name == "lr":
            ax.set_yscale("log")
        for i, start in enumerate(starts):
            ax.axvline(start - 0.5, color="grey", linestyle=":",
                       label="fine-tuning starts" if i == 0 else None)
        ax.set_title("learning rate" if name == "lr" else name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    return fig


def plot_split_counts(split_df: pd.DataFrame, ros_df: pd.DataFrame | None = None) -> Figure:
    """Images per split and class as grouped bars; with ``ros_df``, a second panel where
    the training rows are the oversampled ones."""
    panels = [("as split", split_df)]
    if ros_df is not None:
        panels.append(("train oversampled (ROS)",
                       pd.concat([split_df[split_df["split"] != "train"], ros_df])))
    fig = Figure(figsize=(5.2 * len(panels), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    for ax, (title, df) in zip(axes, panels):
        counts = pd.crosstab(df["split"], df["label"])
        counts = counts.reindex([s for s in ("train", "val", "test") if s in counts.index])
        counts.plot.bar(ax=ax, rot=0)
        for bars in ax.containers:
            ax.bar_label(bars, fontsize="small")
        ax.set_title(title)
        ax.set_xlabel("split")
        ax.set_ylabel("images")
    return fig


def plot_preprocessing_examples(examples: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> Figure:
    """Raw images (top row) above their preprocessed versions (bottom row)."""
    fig = Figure(figsize=(2.6 * max(1, len(examples)), 5.8), layout="constrained")
    if not examples:
        _message(fig.subplots(), "No preprocessed image to show.")
        return fig
    axes = fig.subplots(2, len(examples), squeeze=False)
    for col, (title, raw, processed) in enumerate(examples):
        for ax, img, kind in ((axes[0, col], raw, "raw"), (axes[1, col], processed, "preprocessed")):
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{title}\n{kind} {img.shape[1]}x{img.shape[0]}", fontsize="small")
            ax.set_axis_off()
    return fig


# ---------------------------------------------------------------- data audit (notebook 01)

def plot_class_counts(index_df: pd.DataFrame) -> Figure:
    """Images per label, stacked by official split when the data set has one."""
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    if index_df.empty:
        _message(ax, "Class counts: no images.")
        return fig
    splits = [s for s in ("train", "val", "test") if (index_df["official_split"] == s).any()]
    counts = (pd.crosstab(index_df["label"], index_df["official_split"])[splits] if splits
              else index_df["label"].value_counts().sort_index().to_frame("images"))
    counts.plot.bar(ax=ax, stacked=True, rot=0, legend=bool(splits))
    for i, total in enumerate(counts.sum(axis=1)):
        ax.annotate(f"{total} ({100 * total / counts.to_numpy().sum():.1f}%)", (i, total),
                    ha="center", va="bottom", fontsize="small")
    ax.set_ylabel("images")
    ax.set_xlabel("")
    ax.margins(y=0.12)
    ax.set_title("Images per class" + (" and official split" if splits else ""))
    return fig


def plot_image_sizes(index_df: pd.DataFrame) -> Figure:
    """Width against height per label (left) and the file sizes (right)."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    if index_df.empty:
        _message(left, "Image sizes: no images.")
        right.set_axis_off()
        return fig
    for label, rows in index_df.groupby("label"):
        left.scatter(rows["width"], rows["height"], s=10, alpha=0.4, label=str(label))
        right.hist(rows["bytes"] / 1024, bins=40, alpha=0.6, label=str(label))
    distinct = len(index_df.groupby(["width", "height"]))
    left.set(xlabel="width (px)", ylabel="height (px)",
             title=f"Image sizes ({distinct} distinct)")
    right.set(xlabel="file size (KiB)", ylabel="images", title="File sizes")
    left.legend(fontsize="small")
    right.legend(fontsize="small")
    return fig


def plot_image_grid(rows: Mapping[str, Sequence[tuple[str, np.ndarray]]], title: str = "") -> Figure:
    """Grayscale images in rows (e.g. one per class or per duplicate group), each row named
    on its left and each image captioned: ``{row name: [(caption, image)]}``."""
    ncols = max((len(v) for v in rows.values()), default=0)
    if not ncols:
        fig = Figure(figsize=(5.0, 1.5))
        _message(fig.subplots(), f"{title}: nothing to show." if title else "Nothing to show.")
        return fig
    fig = Figure(figsize=(1.9 * ncols + 0.6, 2.1 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            if c < len(images):
                caption, image = images[c]
                ax.imshow(image, cmap="gray", vmin=0, vmax=255)
                ax.set_title(caption, fontsize="x-small")
        axes[r, 0].set_ylabel(name, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- the GAN (notebook 05)

def plot_gan_history(history: pd.DataFrame) -> Figure:
    """Critic and generator losses, the Wasserstein estimate and the gradient penalty per
    iteration (light), with a moving average (dark)."""
    window = max(1, len(history) // 50)
    panels = {"losses": ["critic_loss", "generator_loss"], "Wasserstein estimate D(real) - "
              "D(fake)": ["wasserstein"], "gradient penalty": ["gradient_penalty"]}
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    for ax, (title, columns) in zip(fig.subplots(1, 3), panels.items()):
        for column, colour in zip(columns, ("tab:blue", "tab:orange")):
            ax.plot(history["iteration"], history[column], color=colour, alpha=0.25, lw=0.8)
            ax.plot(history["iteration"], history[column].rolling(window, min_periods=1).mean(),
                    color=colour, label=column.replace("_", " "))
        ax.set(title=title, xlabel="generator iteration")
        if len(columns) > 1:
            ax.legend(fontsize="small")
    return fig


def plot_mosaics(mosaics: Mapping[str, np.ndarray]) -> Figure:
    """Sample mosaics (uint8 grey) side by side, each titled (e.g. by its iteration)."""
    fig = Figure(figsize=(4.2 * len(mosaics), 2.6), layout="constrained")
    for ax, (title, image) in zip(np.atleast_1d(fig.subplots(1, len(mosaics))), mosaics.items()):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize="small")
        ax.set_axis_off()
    return fig


def plot_memorisation(memo: Mapping[str, Any], real: np.ndarray, fake: np.ndarray) -> Figure:
    """Nearest-real-image distances of the synthetic images beside the real images' own
    (leave-one-out), and the closest synthetic/real pairs (synthetic above, real below)."""
    pairs = memo["closest_pairs"]
    fig = Figure(figsize=(max(8.0, 1.5 * len(pairs)), 6.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.1])
    ax = top.subplots()
    bins = np.histogram_bin_edges(np.r_[memo["synthetic_distances"], memo["real_distances"]], 40)
    ax.hist(memo["real_distances"], bins, alpha=0.6, density=True,
            label="real -> nearest other real (floor)")
    ax.hist(memo["synthetic_distances"], bins, alpha=0.6, density=True,
            label="synthetic -> nearest real")
    ax.set(xlabel="RMS pixel distance (grey levels)", ylabel="density",
           title="Nearest real training image")
    ax.legend(fontsize="small")
    axes = bottom.subplots(2, max(1, len(pairs)), squeeze=False)
    for c, pair in enumerate(pairs):
        for r, (image, caption) in enumerate(((fake[pair["synthetic"]], f"d={pair['distance']:.1f}"),
                                              (real[pair["real"]], "nearest real"))):
            axes[r, c].imshow(image, cmap="gray", vmin=0, vmax=255)
            axes[r, c].set_title(caption, fontsize="x-small")
            axes[r, c].set_axis_off()
    bottom.suptitle("Closest pairs: synthetic (top), its nearest real training image (bottom)",
                    fontsize="small")
    return fig


def plot_history_grid(histories: Mapping[str, Mapping[str, pd.DataFrame]]) -> Figure:
    """Validation ROC-AUC per epoch (solid, left axis: what selects the model by default),
    one panel per scenario (``histories[scenario][run]``), one line per run (framework and
    seed), and the plain validation binary cross-entropy dotted in the same colour (right
    axis). Both have one scale in every scenario, unlike each scenario's own loss (focal,
    weighted, LDAM), which the runs' history.csv keeps as val_loss."""
    if not histories:
        return _empty("No finished runs yet: nothing to plot.")
    fig, axes = _panels(len(histories), 4, (3.8, 3.0))
    for ax, (scenario, runs) in zip(axes, histories.items()):
        bce = ax.twinx()
        for i, (run, history) in enumerate(runs.items()):
            colour = f"C{i}"
            ax.plot(history["epoch"], history["val_auc"], "-o", color=colour, markersize=3,
                    label=run)
            if "val_bce" in history:  # histories written before val_bce have none
                bce.plot(history["epoch"], history["val_bce"], ":", color=colour)
        ax.set_title(scenario)
        ax.set(xlabel="epoch", ylabel="validation ROC-AUC")
        bce.set_ylabel("validation BCE")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="x-small")
    for ax in axes[len(histories):]:
        ax.set_axis_off()
    fig.suptitle("Validation ROC-AUC (solid, left; selects the model) and validation "
                 "binary cross-entropy (dotted, right) per scenario")
    return fig


def plot_roc_overlay(y_true: Sequence[int], probs: Mapping[str, np.ndarray], title: str) -> Figure:
    """ROC curves of several scenarios on one test set: one colour per scenario
    (``probs[scenario]``: (seeds, images)), one line per seed, the mean ROC-AUC in the legend."""
    y = np.asarray(y_true)
    fig = Figure(figsize=(5.6, 5.2))
    ax = fig.subplots()
    for i, (scenario, runs) in enumerate(probs.items()):
        runs = np.atleast_2d(runs)
        aucs = [roc_auc_score(y, p) for p in runs]
        for k, p in enumerate(runs):
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, color=f"C{i}", linewidth=1.2, alpha=0.8, label=None if k else
                    f"{scenario} (AUC {np.mean(aucs):.4f}, {len(runs)} seed(s))")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def plot_metric_bars(table: pd.DataFrame, metrics: Sequence[str], title: str) -> Figure:
    """One panel per metric: a bar per scenario (``table`` rows: scenario, metric, value,
    low, high, in display units) with its 95% CI as a whisker."""
    fig, axes = _panels(len(metrics), 3, (4.2, 3.4))
    for ax, metric in zip(axes, metrics):
        rows = table[table["metric"] == metric]
        x = np.arange(len(rows))
        ax.bar(x, rows["value"], color=[f"C{i}" for i in x], alpha=0.8)
        whiskers = [rows["value"] - rows["low"], rows["high"] - rows["value"]]
        ax.errorbar(x, rows["value"], yerr=whiskers, fmt="none", color="black", capsize=3)
        ax.set_xticks(x, rows["scenario"], rotation=45, ha="right")
        low = float(rows["low"].min()) if len(rows) else 0.0
        ax.set_ylim(max(0.0, low - 0.1 * abs(low)), None)
        ax.set_title(metric.replace("_", " "))
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig


def plot_confusion_grid(counts: Mapping[str, np.ndarray], labels: Sequence[str], title: str
                        ) -> Figure:
    """One confusion matrix per scenario (``counts[scenario]``: [[tn, fp], [fn, tp]], mean
    over seeds), rows true class, columns predicted, each cell with its share of all."""
    fig, axes = _panels(len(counts), 4, (3.2, 3.0))
    for ax, (scenario, cm) in zip(axes, counts.items()):
        cm = np.asarray(cm, dtype=float)
        ax.imshow(cm, cmap="Blues")
        for (i, j), value in np.ndenumerate(cm):
            ax.text(j, i, f"{value:.1f}\n({100 * value / cm.sum():.1f}%)", ha="center",
                    va="center", color="white" if value > cm.max() / 2 else "black")
        ax.set_xticks([0, 1], labels)
        ax.set_yticks([0, 1], labels)
        ax.set(title=scenario, xlabel="predicted", ylabel="true")
    for ax in axes[len(counts):]:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig


def plot_seed_dots(table: pd.DataFrame, metrics: Sequence[str], title: str) -> Figure:
    """Per-seed values (``table`` rows: scenario, seed, one column per metric, display units)
    as dots beside each scenario's mean (a bar), one panel per metric."""
    fig, axes = _panels(len(metrics), 3, (4.2, 3.4))
    scenarios = list(dict.fromkeys(table["scenario"]))
    for ax, metric in zip(axes, metrics):
        for i, scenario in enumerate(scenarios):
            values = table.loc[table["scenario"] == scenario, metric].to_numpy(float)
            ax.hlines(values.mean(), i - 0.3, i + 0.3, color=f"C{i}", linewidth=2.5)
            ax.plot(np.full(len(values), i) + np.linspace(-0.12, 0.12, len(values)), values, "o",
                    color=f"C{i}", markersize=5, markeredgecolor="black")
        ax.set_xticks(range(len(scenarios)), scenarios, rotation=45, ha="right")
        ax.set_title(metric.replace("_", " "))
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig


def plot_real_vs_synthetic(real: np.ndarray, fake: np.ndarray, n: int = 8, seed: int = 42,
                           title: str = "Real training images (top) beside synthetic ones "
                                        "(bottom)") -> Figure:
    """``n`` random real images (uint8 grey) above ``n`` random synthetic ones."""
    rng = np.random.default_rng(seed)
    grid = {name: [("", images[i]) for i in rng.choice(len(images), min(n, len(images)),
                                                      replace=False)]
            for name, images in (("real", real), ("synthetic", fake))}
    return plot_image_grid(grid, title)


def plot_gain_by_ratio(table: pd.DataFrame, metrics: Sequence[str], title: str) -> Figure:
    """Gain over the baseline against the imbalance ratio: one panel per metric, one line per
    scenario with its 95% CI as error bars, a dotted line at 0 (``table`` rows: imbalance,
    imbalance_ratio, scenario, metric, gain, gain_low, gain_high, in display units). The
    ratio is on a log axis at its real value; a setting whose ratio was not recorded is left
    out, and the title says so."""
    known = table.dropna(subset=["imbalance_ratio"])
    settings = known.drop_duplicates("imbalance")
    scenarios = list(dict.fromkeys(known["scenario"]))
    fig, axes = _panels(len(metrics), 3, (4.2, 3.4))
    for ax, metric in zip(axes, metrics):
        for i, scenario in enumerate(scenarios):
            rows = known[(known["metric"] == metric) & (known["scenario"] == scenario)]
            nudge = 1.04 ** (i - (len(scenarios) - 1) / 2)  # scenarios side by side
            ax.errorbar(rows["imbalance_ratio"] * nudge, rows["gain"], fmt="-o", capsize=3,
                        yerr=[rows["gain"] - rows["gain_low"], rows["gain_high"] - rows["gain"]],
                        color=f"C{i}", markersize=4, label=scenario)
        ax.axhline(0, color="grey", linestyle=":")
        ax.set_xscale("log")
        ax.set_xticks(settings["imbalance_ratio"], [  # the setting's name where not its ratio
            f"{r:.3g}" if f"{r:.3g}" == i else f"{r:.3g}\n{i}"
            for i, r in zip(settings["imbalance"], settings["imbalance_ratio"])])
        ax.minorticks_off()
        ax.set(title=metric.replace("_", " "), xlabel="training majority:minority",
               ylabel="gain (points)")
    if scenarios:
        axes[0].legend(fontsize="small")
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    left_out = [i for i in dict.fromkeys(table["imbalance"]) if i not in set(known["imbalance"])]
    fig.suptitle(title + (f"\n{', '.join(left_out)} left out: training ratio not recorded"
                          if left_out else ""))
    return fig
