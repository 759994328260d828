"""The toy Grad-CAM case both frameworks' tests share: grey images whose only evidence is a
bright square, and the weights of a one-filter model that detects it (no framework here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from helpers.analysis import gradcam

SIZE = 32
SQUARES = [(4, 4, 8), (18, 6, 8), (10, 20, 10)]  # (top, left, side) per image


def square_images() -> np.ndarray:
    """Noise in 0-100 with one 255 square per image, at the ``SQUARES`` positions."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 101, (len(SQUARES), SIZE, SIZE)).astype(np.uint8)
    for image, (top, left, side) in zip(images, SQUARES):
        image[top:top + side, left:left + side] = 255
    return images


def assert_maps_peak_on_the_squares(maps: np.ndarray) -> None:
    """Each map's maximum lies on (or next to) its image's square, which holds > 80% of its mass."""
    for cam, (top, left, side) in zip(maps, SQUARES, strict=True):
        inside = np.zeros(cam.shape, bool)
        inside[top:top + side, left:left + side] = True
        row, col = np.unravel_index(cam.argmax(), cam.shape)
        assert top - 1 <= row <= top + side and left - 1 <= col <= left + side
        assert gradcam.region_score(cam, inside) > 0.8


def assert_maps_and_probabilities_are_well_formed(maps: np.ndarray, probs: np.ndarray) -> None:
    """Float32 maps of the images' shape in [0, 1], one probability in (0, 1) per image."""
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    assert probs.shape == (3,) and ((probs > 0) & (probs < 1)).all()


def square_model_weights() -> tuple[np.ndarray, float, float]:
    """A 3x3 mean filter, a bias that silences anything darker than 150, and a positive
    dense weight: the logit is the bright area."""
    return np.full((3, 3), 1 / 9, np.float32), -150.0, 0.01


def write_run_folder(root: Path, framework: str, checkpoint_name: str) -> tuple[Path, Path]:
    """A classifier run folder (config.json, metrics.json) of a 32 px chest run under
    ``root``; returns (results folder, where its weights file goes)."""
    name = f"{framework}-baseline-scratch-seed42"
    run_dir = root / "results" / "chest_xray" / "runs" / name
    checkpoint = root / "checkpoints" / "chest_xray" / "runs" / name / checkpoint_name
    run_dir.mkdir(parents=True)
    checkpoint.parent.mkdir(parents=True)
    config = {"framework": framework, "dataset": "chest_xray", "scenario": "baseline",
              "seed": 42, "profile": {"image_size": SIZE}, "checkpoint": str(checkpoint),
              "classes": {"NORMAL": 0, "PNEUMONIA": 1}, "positive_class": "PNEUMONIA"}
    at = {"n": 2, "accuracy": 0.5}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "metrics.json").write_text(json.dumps(
        {"threshold_0.5": at, "threshold_youden": at, "youden_threshold": 0.5}))
    return run_dir, checkpoint
