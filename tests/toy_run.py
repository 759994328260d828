"""A PyTorch run in the run format, without training: the thesis model at 32 px with seeded
random weights, its predictions on bundled sample images as the validation and test rows.

``python tests/toy_run.py ROOT`` writes ``ROOT/results/chest_xray/runs/<run>/`` and its
checkpoint; the app's tests run it in a process of their own (it imports torch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers import evaluation
from helpers.config import SAMPLE_DIR, Layout, get_profile
from helpers.data import read_image
from helpers.preprocessing import preprocess
from helpers.runs import RunSpec
from helpers.torch_checkpoints import save_checkpoint
from helpers.torch_gradcam import probabilities
from helpers.torch_models import build_model

SIZE = 32


def _predictions(model: torch.nn.Module, split: str, per_class: int) -> pd.DataFrame:
    rows = []
    for label_id, label in enumerate(("NORMAL", "PNEUMONIA")):
        for path in sorted((SAMPLE_DIR / "chest_xray" / split / label).iterdir())[:per_class]:
            rows.append({"path": f"chest_xray/{split}/{label}/{path.name}", "label_id": label_id,
                         "image": preprocess(read_image(path), "center", SIZE)})
    frame = pd.DataFrame(rows)
    frame["probability"] = probabilities(model, np.stack(frame.pop("image")))
    return frame


def write_toy_run(root: Path) -> Path:
    """The run's results folder under ``root``."""
    layout = Layout.of("chest_xray", root)
    profile = get_profile("smoke")
    spec = RunSpec.for_profile("chest_xray", "pytorch", profile)
    torch.manual_seed(0)
    model = build_model(SIZE, "none").eval()
    checkpoint = layout.checkpoints(spec.name) / "best.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"model": model.state_dict(), "epoch": 1}, checkpoint)
    config = {**spec.describe(), "classes": {"NORMAL": 0, "PNEUMONIA": 1},
              "positive_class": "PNEUMONIA", "split_protocol": "official",
              "profile": profile, "checkpoint": str(checkpoint)}
    evaluation.save_run_results(layout.results(spec.name), test=_predictions(model, "test", 4),
                                val=_predictions(model, "val", 4), history=None, config=config)
    return layout.results(spec.name)


if __name__ == "__main__":
    print(write_toy_run(Path(sys.argv[1])))
