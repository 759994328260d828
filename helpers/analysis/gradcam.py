"""Grad-CAM, the framework-free part: trained runs on disk, uploads, region masks and scores,
overlays, the test images a comparison shows, and the figure of notebook 07.

The maps themselves come from ``helpers.torch.gradcam`` / ``helpers.keras.gradcam`` (the
same ``gradcam_maps(model, images)``), on the model's own input: the preprocessed grey
image. A map is in [0, 1] (each image's own maximum is 1). The region score of an image is
the share of its map's mass inside the region where the evidence should be: a central
ellipse over the lung fields (chest X-ray, centre crop) or the head mask of the
foreground crop (MRI). Importing this module imports neither framework; a framework's maps
can be computed in a process of its own (``maps_in_subprocess``).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.analysis import plots, results
from helpers.config import Layout
from helpers.data.datasets import REGISTRY, UnreadableImageError, decode_image, image_size
from helpers.data.preprocessing import preprocess
from helpers.errors import UserError
from helpers.training.run_folder import RunFolder
from helpers.training.scenarios import SCENARIOS

MODULES = {"pytorch": "helpers.torch.gradcam", "keras": "helpers.keras.gradcam"}
FRAMEWORK_PACKAGES = {"pytorch": "torch", "keras": "tensorflow"}
MAX_UPLOAD_MB = 20
MAX_UPLOAD_PIXELS = 50_000_000  # 50 megapixels: checked from the header, before decoding
LUNG_ELLIPSE = (0.5, 0.5, 0.40, 0.36)  # centre row, centre column, half-height, half-width
CASES = ("TP", "FP", "FN")
CASE_NAMES = {"TP": "true positive", "FP": "false positive", "FN": "false negative"}
# Notebook 07 per profile: images shown per case, test images each run's region score averages
SERIES = {"smoke": {"per_case": 1, "n_images": 8}, "demo": {"per_case": 2, "n_images": 47},
          "cpu": {"per_case": 2, "n_images": 100}, "full": {"per_case": 3, "n_images": 300}}
CARD_METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc")


# ---------------------------------------------------------------- trained runs

@dataclass(frozen=True)
class TrainedRun:
    """A finished classifier run of notebooks 03/04/06: its config, metrics and weights."""

    run_dir: Path
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def framework(self) -> str:
        return self.config["framework"]

    @property
    def image_size(self) -> int:
        return int(self.config["profile"]["image_size"])

    @property
    def crop(self) -> str:
        """The crop of the training preprocessing: the data set's (centre for a folder)."""
        spec = REGISTRY.get(self.config.get("dataset", ""))
        return spec.crop if spec else "center"

    @property
    def threshold(self) -> float:
        """The threshold chosen on the run's validation images (Youden)."""
        return float(self.metrics["youden_threshold"])

    @property
    def classes(self) -> list[str]:
        """Class names by label id (negative first)."""
        return sorted(self.config["classes"], key=self.config["classes"].get)

    @property
    def checkpoint(self) -> Path:
        """The best weights, under the root that holds this results folder."""
        return RunFolder(self.run_dir).checkpoint

    def card(self) -> dict[str, Any]:
        """What the run is and how it scored on its test images (at its threshold)."""
        at = self.metrics["threshold_youden"]
        card = {"data set": self.config.get("dataset"), "framework": self.framework,
                "scenario": self.config.get("scenario"), "seed": self.config.get("seed"),
                "protocol": self.config.get("protocol"),
                "split": self.config.get("split_protocol"),
                "training data": self.config.get("training_data"),
                "loss": self.config.get("loss"), "image size": f"{self.image_size} px",
                "positive class": self.config.get("positive_class"),
                "threshold (validation, Youden)": round(self.threshold, 4),
                "test images": at.get("n")}
        card.update({f"test {m}": None if at.get(m) is None else round(at[m], 4)
                     for m in CARD_METRICS})
        return card


def load_run(run_dir: str | Path) -> TrainedRun:
    """The classifier run in ``run_dir``; a folder that is not one stops with a sentence."""
    folder = RunFolder(run_dir)
    try:
        config, metrics = folder.config, folder.metrics
    except (UserError, ValueError):
        raise UserError(f"{folder.path} holds no finished run (config.json and metrics.json): "
                        f"train one with notebooks 03, 04 or 06.") from None
    if config.get("framework") not in MODULES or "youden_threshold" not in metrics:
        raise UserError(f"{run_dir.name} is not a Keras or PyTorch classifier run.")
    return TrainedRun(folder.path, config, metrics)


def find_runs(root: str | Path) -> list[TrainedRun]:
    """Every finished Keras or PyTorch classifier run under ``<root>/results`` whose weights
    are on disk, sorted by data set and name."""
    found = []
    for config in sorted(Path(root).glob("results/*/runs/*/config.json")):
        try:
            run = load_run(config.parent)
        except UserError:
            continue
        if run.checkpoint.is_file():
            found.append(run)
    return found


def framework_module(framework: str) -> ModuleType:
    """``helpers.torch.gradcam`` or ``helpers.keras.gradcam``, imported now."""
    return importlib.import_module(MODULES[framework])


# ---------------------------------------------------------------- images in

def decode_upload(data: bytes, max_mb: float = MAX_UPLOAD_MB,
                  max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
    """An uploaded file as 8-bit grey (any format, mode, bit depth the pipeline reads); an
    empty, too large (bytes, or pixels by its header, before any decoding) or non-image file
    raises a UserError of one sentence."""
    if len(data) > max_mb * 2**20:
        raise UserError(f"too large ({len(data) / 2**20:.1f} MB; at most {max_mb} MB).")
    try:
        width, height = image_size(data)
        if width * height > max_pixels:
            raise UserError(f"too large ({width:,} x {height:,} pixels = "
                            f"{width * height / 1e6:.1f} megapixels; at most "
                            f"{max_pixels / 1e6:g} megapixels).")
        return decode_image(data)
    except UnreadableImageError as error:
        raise UserError(f"not usable: {error}.") from None


def prepare(gray: np.ndarray, run: TrainedRun) -> np.ndarray:
    """The training preprocessing of ``run`` (crop, CLAHE, blur, its image size)."""
    return preprocess(gray, run.crop, run.image_size)


# ---------------------------------------------------------------- regions and scores

def lung_region(shape: tuple[int, int]) -> np.ndarray:
    """A central ellipse over both lung fields of a centre-cropped chest film (bool mask);
    the corners, where markers and the film's border lie, stay outside."""
    h, w = shape
    cy, cx, ry, rx = LUNG_ELLIPSE
    yy, xx = np.mgrid[:h, :w]
    return ((yy + 0.5) / h - cy) ** 2 / ry ** 2 + ((xx + 0.5) / w - cx) ** 2 / rx ** 2 <= 1


def head_mask(image: np.ndarray) -> np.ndarray:
    """The head in a foreground-cropped MRI slice: Otsu threshold, the components at least a
    tenth of the largest, holes filled (bool mask; all True when nothing stands out)."""
    mask = cv2.threshold(cv2.GaussianBlur(image, (5, 5), 0), 0, 255,
                         cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n < 2:
        return np.ones(image.shape, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.isin(labels, 1 + np.flatnonzero(areas >= areas.max() / 10)).astype(np.uint8)
    contours, _ = cv2.findContours(keep, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = cv2.drawContours(np.zeros_like(keep), contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def region_mask(image: np.ndarray, crop: str) -> np.ndarray:
    """The region an image's evidence should lie in, for the crop its set was trained with."""
    return head_mask(image) if crop == "foreground" else lung_region(image.shape)


def region_score(cam: np.ndarray, mask: np.ndarray) -> float:
    """The share of the map's mass inside ``mask`` (NaN for an all-zero map)."""
    total = float(cam.sum())
    return float(cam[mask].sum()) / total if total > 0 else float("nan")


def region_scores(maps: np.ndarray, images: np.ndarray, crop: str) -> np.ndarray:
    """One region score per (map, image) pair."""
    return np.array([region_score(m, region_mask(i, crop)) for m, i in zip(maps, images)])


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The grey image with the map in the jet colours on top (RGB uint8)."""
    heat = cv2.applyColorMap(np.uint8(255 * np.clip(cam, 0, 1)), cv2.COLORMAP_JET)[..., ::-1]
    grey = np.repeat(image[..., None], 3, axis=-1).astype(np.float32)
    return np.uint8(np.clip((1 - alpha) * grey + alpha * heat, 0, 255))


# ---------------------------------------------------------------- maps in a process of their own

def maps_in_subprocess(framework: str, run_dirs: Sequence[str | Path], images: np.ndarray
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{run folder: (maps, probabilities)} for ``images`` under every run, computed by a
    Python process that loads only ``framework`` (so this process loads none)."""
    with tempfile.TemporaryDirectory() as tmp:
        request, reply = Path(tmp) / "request.npz", Path(tmp) / "reply.npz"
        np.savez(request, images=images, runs=np.array([str(d) for d in run_dirs]))
        done = subprocess.run([sys.executable, "-m", MODULES[framework], str(request),
                               str(reply)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"Grad-CAM ({framework}) failed:\n{done.stderr[-2000:]}")
        with np.load(reply) as out:
            return {str(d): (out[f"maps{i}"], out[f"probs{i}"]) for i, d in enumerate(run_dirs)}


def serve(argv: Sequence[str],
          compute: Callable[[str, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
    """The worker side of ``maps_in_subprocess``: argv = request.npz reply.npz."""
    request, reply = argv
    with np.load(request) as data:
        images, run_dirs = data["images"], [str(r) for r in data["runs"]]
    out = {}
    for i, run_dir in enumerate(run_dirs):
        out[f"maps{i}"], out[f"probs{i}"] = compute(run_dir, images)
    np.savez(reply, **out)


# ---------------------------------------------------------------- the comparison's images

def pick_cases(predictions: pd.DataFrame, threshold: float, per_case: int = 2, seed: int = 42
               ) -> pd.DataFrame:
    """``per_case`` random test rows (path, label_id, probability) of each case at
    ``threshold``: true positives, false positives, false negatives; a ``case`` column."""
    positive = predictions["probability"] >= threshold
    sick = predictions["label_id"] == 1
    pools = {"TP": positive & sick, "FP": positive & ~sick, "FN": ~positive & sick}
    picked = [predictions[pool].sample(min(per_case, int(pool.sum())), random_state=seed)
              .assign(case=case) for case, pool in pools.items()]
    return pd.concat(picked).reset_index(drop=True)


def plot_gradcam_grid(images: np.ndarray, rows: Sequence[str],
                      maps: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = ""
                      ) -> Any:
    """One row per image (its label in ``rows``), the image then one overlay per column of
    ``maps`` ({column: (maps, probabilities)}), each titled with its probability."""
    columns = list(maps)
    fig, axes = plt.subplots(len(images), 1 + len(columns), squeeze=False,
                             figsize=(1.6 * (1 + len(columns)), 1.75 * len(images)))
    for r, image in enumerate(images):
        axes[r, 0].imshow(image, cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_ylabel(rows[r], fontsize=8)
        for c, name in enumerate(columns, start=1):
            cams, probs = maps[name]
            axes[r, c].imshow(overlay(image, cams[r]))
            axes[r, c].set_title(f"{name}\np={probs[r]:.2f}" if r == 0 else f"p={probs[r]:.2f}",
                                 fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def cached_images(layout: Layout, paths: Sequence[str], size: int) -> np.ndarray:
    """The preprocessed (cached) images of ``paths`` at ``size`` px, stacked."""
    images = [cv2.imread(str(layout.cache_path(p, size)), cv2.IMREAD_GRAYSCALE) for p in paths]
    missing = [p for p, image in zip(paths, images) if image is None]
    if missing:
        raise UserError(f"{len(missing)} test images are not in the {size} px cache (e.g. "
                        f"{missing[0]}): run notebook 02 with this ROOT first.")
    return np.stack(images)


def _region_table(chosen: pd.DataFrame, scores: Mapping[str, np.ndarray], area: float
                  ) -> pd.DataFrame:
    """Per scenario: mean and sd over seeds of the runs' mean region score, the share of
    empty maps (no evidence for the positive class), and the region's share of the image
    (``area``: the score of a map that says nothing about where)."""
    per_run = chosen.assign(region_score=[float(np.nanmean(scores[d])) if np.isfinite(
        scores[d]).any() else np.nan for d in chosen["results_dir"]],
        empty=[float(np.isnan(scores[d]).mean()) for d in chosen["results_dir"]])
    table = per_run.groupby("scenario", sort=False).agg(
        seeds=("seed", "size"), region_score_mean=("region_score", "mean"),
        region_score_sd=("region_score", "std"), empty_maps=("empty", "mean"))
    return table.assign(region_area=area, images=len(next(iter(scores.values()))))


def compare_scenarios(layout: Layout, runs: pd.DataFrame, framework: str, *,
                      profile: str = "cpu", seed: int = 42) -> tuple[Any, pd.DataFrame]:
    """Grad-CAM across the scenarios of one framework (notebook 07).

    The images: true positives, false positives and false negatives of the baseline (its
    first seed, at its validation threshold), shown under each scenario's first seed; and
    ``SERIES[profile]["n_images"]`` random test images on which every run's region score
    is averaged, beside the region's share of the image (a score equal to it says nothing:
    a map as coarse as 2 x 2, layer4 at 64 px, always scores it by symmetry). Runs at
    another image size than the baseline's are left out. Writes
    ``gradcam_<framework>.png``/``.pdf`` and the region table
    (``gradcam_regions_<framework>.csv``/``.md``) to the comparison folder; returns both.
    """
    chosen = results.select(runs, framework=framework, scenarios=list(SCENARIOS))
    if chosen.empty:
        raise UserError(f"No finished {framework} classifier run: run notebook 06 first.")
    reference = chosen.iloc[0]  # the baseline when there is one (scenario order)
    chosen = chosen[chosen["image_size"] == reference["image_size"]]
    first = chosen.drop_duplicates("scenario")
    run = load_run(reference["results_dir"])
    predictions = results.read_predictions(reference["results_dir"])
    cases = pick_cases(predictions, run.threshold, SERIES[profile]["per_case"], seed)
    sample = predictions.sample(min(SERIES[profile]["n_images"], len(predictions)),
                                random_state=seed)
    images = cached_images(layout, list(cases["path"]) + list(sample["path"]), run.image_size)
    computed = maps_in_subprocess(framework, list(chosen["results_dir"]), images)
    shown, scored = images[:len(cases)], images[len(cases):]
    scores = {d: region_scores(maps[len(cases):], scored, run.crop)
              for d, (maps, _) in computed.items()}
    rows = [f"{c}: {CASE_NAMES[c]}" for c in cases["case"]]
    grid = {row.scenario: tuple(a[:len(cases)] for a in computed[row.results_dir])
            for row in first.itertuples()}
    figure = plot_gradcam_grid(shown, rows, grid, f"Grad-CAM ({framework}, first seed of each "
                               f"scenario; cases of {reference['run']})")
    area = float(np.mean([region_mask(image, run.crop).mean() for image in scored]))
    table = _region_table(chosen, scores, area)
    out = layout.reports("comparison")
    plots.save_figure(figure, out / f"gradcam_{framework}.png", pdf=True)
    table.to_csv(out / f"gradcam_regions_{framework}.csv")
    (out / f"gradcam_regions_{framework}.md").write_text(table.round(3).to_markdown() + "\n")
    print(f"Wrote gradcam_{framework}.png/.pdf and gradcam_regions_{framework}.csv/.md to {out}")
    return figure, table
