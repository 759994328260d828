"""A run's results folder read in one place: finished or not, its settings, its files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.errors import UserError
from helpers.training.run_folder import RunFolder

SETTINGS = {"seed": 42, "epochs": 6, "loss": "bce", "train_images": 4684, "monitor": "val_auc"}


def write_run(path: Path, settings: dict, *, metrics: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"settings": settings,
                                                  "checkpoint": str(path / "best.pt")}))
    if metrics:
        (path / "metrics.json").write_text(json.dumps({"youden_threshold": 0.5}))
    return path


def test_a_run_is_done_once_both_files_are_written(tmp_path: Path) -> None:
    assert not RunFolder(write_run(tmp_path / "half", SETTINGS, metrics=False)).done
    folder = RunFolder(write_run(tmp_path / "whole", SETTINGS))
    assert folder.done and folder.name == "whole"
    assert folder.metrics == {"youden_threshold": 0.5}
    assert folder.checkpoint == tmp_path / "whole" / "best.pt"


def test_trained_with_compares_the_recorded_settings(tmp_path: Path) -> None:
    folder = RunFolder(write_run(tmp_path / "run", SETTINGS))
    assert folder.trained_with(SETTINGS)
    assert not folder.trained_with({**SETTINGS, "seed": 43})
    assert not folder.trained_with({**SETTINGS, "loss": "focal"})
    assert folder.trained_with({**SETTINGS, "loss": "", "train_images": 0},
                               ignore=("loss", "train_images"))
    assert not RunFolder(tmp_path / "nothing").trained_with(SETTINGS)


def test_an_unfinished_run_read_anyway_stops_with_a_sentence(tmp_path: Path) -> None:
    folder = RunFolder(write_run(tmp_path / "half", SETTINGS, metrics=False))
    with pytest.raises(UserError, match="No metrics.json in .*half: the run did not finish"):
        _ = folder.metrics
