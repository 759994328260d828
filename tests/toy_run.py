"""A run in the run format, without training: the thesis model at 32 px with seeded random
weights, its predictions on bundled sample images as the validation and test rows.

``python tests/toy_run.py ROOT [pytorch|keras]`` writes
``ROOT/results/chest_xray/runs/<run>/`` and its checkpoint; tests run it in a process of
its own (it imports the framework).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.analysis import evaluation
from helpers.config import SAMPLE_DIR, Layout, get_profile
from helpers.data.datasets import read_image
from helpers.data.preprocessing import preprocess
from helpers.training.runs import RunSpec

SIZE = 32
Predict = Callable[[np.ndarray], np.ndarray]


def _predictions(predict: Predict, split: str, per_class: int) -> pd.DataFrame:
    rows = []
    for label_id, label in enumerate(("NORMAL", "PNEUMONIA")):
        folder = SAMPLE_DIR / "chest_xray" / split / label
        for path in sorted(folder.iterdir())[:per_class]:
            rows.append({"path": f"chest_xray/{split}/{label}/{path.name}", "label_id": label_id,
                         "image": preprocess(read_image(path), "center", SIZE)})
    frame = pd.DataFrame(rows)
    frame["probability"] = predict(np.stack(frame.pop("image")))
    return frame


def _torch_model(folder: Path) -> tuple[Path, Predict]:
    import torch

    from helpers.torch.checkpoints import save_checkpoint
    from helpers.torch.gradcam import probabilities
    from helpers.torch.models import build_model

    torch.manual_seed(0)
    model = build_model(SIZE, "none").eval()
    save_checkpoint({"model": model.state_dict(), "epoch": 1}, folder / "best.pt")
    return folder / "best.pt", lambda images: probabilities(model, images)


def _keras_model(folder: Path) -> tuple[Path, Predict]:
    import keras

    from helpers.keras.gradcam import probabilities
    from helpers.keras.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model(SIZE, "none")
    model.save_weights(folder / "best.weights.h5")
    return folder / "best.weights.h5", lambda images: probabilities(model, images)


def write_toy_run(root: Path, framework: str = "pytorch") -> Path:
    """The run's results folder under ``root``."""
    layout = Layout.of("chest_xray", root)
    profile = get_profile("smoke")
    spec = RunSpec.for_profile("chest_xray", framework, profile)
    folder = layout.checkpoints(spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint, predict = {"pytorch": _torch_model, "keras": _keras_model}[framework](folder)
    config = {**spec.describe(), "classes": {"NORMAL": 0, "PNEUMONIA": 1},
              "positive_class": "PNEUMONIA", "split_protocol": "official",
              "profile": profile, "checkpoint": str(checkpoint)}
    evaluation.save_run_results(layout.results(spec.name), test=_predictions(predict, "test", 4),
                                val=_predictions(predict, "val", 4), history=None, config=config)
    return layout.results(spec.name)


if __name__ == "__main__":
    print(write_toy_run(Path(sys.argv[1]), *sys.argv[2:]))
