"""The two training protocols: which phases run, what each trains, and the schedule."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from helpers.config import get_profile
from helpers.errors import UserError
from helpers.training.protocols import (
    FINAL_FRACTION,
    WARMUP_START,
    TrainResult,
    best_epoch_of,
    best_value,
    improves,
    monitor_mode,
    phases,
    protocol_for,
    training_settings,
    warmup_cosine_lr,
    warmup_steps,
)


@pytest.mark.parametrize("weights", ["none", "None", "NONE"])
def test_random_weights_train_one_phase_over_the_whole_network(weights: str) -> None:
    profile = get_profile("cpu", weights=weights)
    assert protocol_for(weights) == "scratch"
    (phase,) = phases(profile)
    assert (phase.trains, phase.optimizer, phase.schedule) == ("all", "adamw", "warmup_cosine")
    assert (phase.epochs, phase.lr, phase.weight_decay) == (
        profile.epochs_scratch, profile.lr_scratch, profile.weight_decay)


@pytest.mark.parametrize("weights", ["imagenet", "IMAGENET1K_V2", "/tmp/resnet50.h5"])
def test_pretrained_weights_train_the_thesis_two_phases(weights: str) -> None:
    profile = get_profile("full", weights=weights)
    assert protocol_for(weights) == "transfer"
    head, last = phases(profile)
    assert (head.trains, head.epochs, head.lr, head.optimizer) == ("head", 50, 1e-4, "adam")
    assert (last.trains, last.epochs, last.lr, last.schedule) == ("last_stage", 30, 1e-5,
                                                                  "plateau")
    assert "backbone frozen" in head.describe() and "BatchNorm frozen" in last.describe()


def test_phases_without_epochs_are_left_out() -> None:
    assert [p.number for p in phases(get_profile("smoke", weights="x.h5", epochs_head=0))] == [2]
    assert phases(get_profile("smoke", epochs_scratch=0)) == []


def test_schedule_warms_up_linearly_then_decays_by_cosine() -> None:
    (phase,) = phases(get_profile("cpu", weights="none", epochs_scratch=4, warmup_epochs=1))
    steps = 10
    lrs = [warmup_cosine_lr(s, phase, steps) for s in range(40)]
    assert warmup_steps(phase, steps) == 10
    assert lrs[0] == pytest.approx(WARMUP_START * phase.lr)
    assert lrs[10] == pytest.approx(phase.lr) and max(lrs) == lrs[10]
    assert all(b > a for a, b in zip(lrs[:10], lrs[1:11]))  # rising during the warm-up
    assert all(b < a for a, b in zip(lrs[10:39], lrs[11:40]))  # falling after it
    mid = 10 + 15  # half-way through the decay: the cosine's midpoint
    assert lrs[mid] == pytest.approx(phase.lr * (FINAL_FRACTION + (1 - FINAL_FRACTION) / 2))
    assert warmup_cosine_lr(40, phase, steps) == pytest.approx(FINAL_FRACTION * phase.lr)
    assert math.isclose(warmup_cosine_lr(100, phase, steps), FINAL_FRACTION * phase.lr)


def test_settings_name_what_decides_a_result() -> None:
    profile = get_profile("cpu", weights="none")
    settings = training_settings(profile, seed=3, loss="bce", train_images=100)
    assert settings["protocol"] == "scratch" and settings["seed"] == 3
    assert settings["lr_scratch"] == profile.lr_scratch and settings["train_images"] == 100
    other = training_settings(get_profile("cpu", weights="none", lr_scratch=1e-3), seed=3,
                              loss="bce", train_images=100)
    assert other != settings


def test_monitor_is_checked_and_part_of_the_settings() -> None:
    assert monitor_mode(get_profile("cpu")) == ("val_auc", "max")
    assert monitor_mode(get_profile("cpu", monitor="val_loss")) == ("val_loss", "min")
    with pytest.raises(UserError, match="'val_auc'.*'val_loss'"):
        monitor_mode(get_profile("cpu", monitor="val_f1"))
    settings = training_settings(get_profile("cpu"), seed=3, loss="bce", train_images=100)
    assert settings["monitor"] == "val_auc"
    assert training_settings(get_profile("cpu", monitor="val_loss"), seed=3, loss="bce",
                             train_images=100) != settings


def test_best_follows_the_monitors_direction_and_never_nan() -> None:
    nan = math.nan
    assert best_value([0.6, nan, 0.8, 0.7], "max") == 0.8
    assert best_value([0.6, nan, 0.8, 0.7], "min") == 0.6
    assert best_value([nan], "max") == -math.inf and best_value([], "min") == math.inf
    assert improves(0.7, 0.6, "max") and not improves(0.7, 0.6, "min")
    assert not improves(nan, -math.inf, "max") and not improves(nan, math.inf, "min")
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_auc": [0.6, 0.9, nan, 0.9],
                            "val_loss": [0.5, 0.4, 0.3, nan]})
    assert best_epoch_of(history, "val_auc", "max") == 2  # the first of equals
    assert best_epoch_of(history, "val_loss", "min") == 3


def test_config_records_the_monitor_and_its_best_value() -> None:
    history = pd.DataFrame({"epoch": [1, 2], "phase": [1, 1], "val_loss": [0.5, 0.3],
                            "val_auc": [0.8, 0.7]})
    config = TrainResult(None, history, 1, Path("best.pt"), "scratch", (), "val_auc").config()
    assert (config["monitor"], config["monitor_mode"], config["best_value"]) == (
        "val_auc", "max", 0.8)
    assert (config["best_val_auc"], config["best_val_loss"]) == (0.8, 0.5)
