"""A run's results folder read in one place: finished or not, its settings, its files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.errors import UserError
from helpers.training.run_folder import RunFolder, recorded_path

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


def test_a_damaged_results_file_makes_the_run_not_done_and_names_the_file(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run", SETTINGS)
    (path / "metrics.json").write_text('{"youden_thr')
    folder = RunFolder(path)
    assert not folder.done and not folder.trained_with(SETTINGS)  # so it is trained again
    with pytest.raises(UserError, match=f"{path / 'metrics.json'} is damaged.*delete the folder"):
        _ = folder.metrics


def test_the_checkpoint_is_read_under_the_folder_s_own_root(tmp_path: Path) -> None:
    original = tmp_path / "original"
    run = original / "results" / "toy" / "runs" / "r"
    weights = original / "checkpoints" / "toy" / "runs" / "r" / "best.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"original")
    write_run(run, SETTINGS)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(
        {**config, "checkpoint": recorded_path(weights, original)}))
    assert json.loads((run / "config.json").read_text())["checkpoint"] == \
        "checkpoints/toy/runs/r/best.pt"
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    (copy / "checkpoints" / "toy" / "runs" / "r" / "best.pt").write_bytes(b"copy")
    assert RunFolder(copy / "results" / "toy" / "runs" / "r").checkpoint.read_bytes() == b"copy"
    assert RunFolder(run).checkpoint == weights
    # an absolute path an older version recorded is read under the copy's root too
    (copy / "results" / "toy" / "runs" / "r" / "config.json").write_text(json.dumps(
        {**config, "checkpoint": str(weights)}))
    assert RunFolder(copy / "results" / "toy" / "runs" / "r").checkpoint.read_bytes() == b"copy"
