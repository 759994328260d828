"""Keras training on the 32 px toy set (smoke profile), the mirror of
``test_torch_training.py``: both protocols, checkpoints, history, reproducibility, an
interrupted run that resumes to the same final weights, and the run function.

Runs in a process of its own (TensorFlow and torch never share one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pandas as pd
import pytest
from conftest import assert_curves_hold_the_history, read_curves
from sklearn.metrics import roc_auc_score

from helpers.config import Layout, Profile, get_profile
from helpers.errors import UserError
from helpers.keras.data import KerasData, load_datasets
from helpers.keras.models import _learning_rate
from helpers.keras.training import BEST, _callbacks, predict_split, run_training, train
from helpers.training.protocols import HISTORY_COLUMNS, TrainResult, monitor_mode, phases, warmup_cosine_lr
from helpers.training.runs import RunSpec

pytestmark = [pytest.mark.tensorflow, pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")]

SCRATCH = get_profile("smoke", epochs_scratch=2, patience=3)  # one phase, warm-up + cosine


class Interrupted(Exception):
    pass


def stop_after(epoch: int):
    def hook(row: dict[str, Any]) -> None:
        if row["epoch"] == epoch:
            raise Interrupted
    return hook


def same_weights(a: keras.Model, b: keras.Model) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


@pytest.fixture(scope="module")
def transfer(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """The transfer protocol (2 + 1 epochs) from a local random "pretrained" file."""
    path = tmp_path_factory.mktemp("weights") / "backbone.weights.h5"
    keras.utils.set_random_seed(0)
    keras.applications.ResNet50(include_top=False, weights=None,
                                input_shape=(32, 32, 3)).save_weights(path)
    return get_profile("smoke", weights=str(path), epochs_head=2)


@pytest.fixture(scope="module")
def data(prepared_layout: Layout) -> KerasData:
    return load_datasets(prepared_layout, 32, SCRATCH.batch_size, seed=42)


@pytest.fixture(scope="module")
def scratch_run(data: KerasData, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(data, SCRATCH, seed=42, checkpoint_dir=tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="module")
def transfer_run(data: KerasData, transfer: Profile,
                 tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(data, transfer, seed=42, checkpoint_dir=tmp_path_factory.mktemp("transfer"))


def test_scratch_protocol_is_one_phase_on_the_warmup_cosine_schedule(
        scratch_run: TrainResult, data: KerasData) -> None:
    history = scratch_run.history
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2] and history["phase"].tolist() == [1, 1]
    (phase,) = phases(SCRATCH)
    steps = len(data.batches["train"])
    expected = [warmup_cosine_lr(e * steps, phase, steps) for e in range(2)]
    assert history["lr"].tolist() == pytest.approx(expected, rel=1e-5)
    assert expected[0] < expected[1]  # warm-up, then decay
    config = scratch_run.config()
    assert config["protocol"] == "scratch" and "AdamW" in config["phases"][0]
    assert scratch_run.checkpoint.name == BEST
    with h5py.File(scratch_run.checkpoint) as kept:
        assert "optimizer" not in kept and "layers" in kept  # weights only
    assert {p.name for p in scratch_run.checkpoint.parent.iterdir()} == {BEST, "phase1",
                                                                         "settings.json"}
    assert scratch_run.best_epoch == history.loc[history["val_auc"].idxmax(), "epoch"]
    assert (config["monitor"], config["monitor_mode"]) == ("val_auc", "max")
    assert config["best_value"] == config["best_val_auc"] == history["val_auc"].max()
    assert history["val_bce"].tolist() == pytest.approx(history["val_loss"].tolist(), rel=1e-5)


def test_transfer_protocol_trains_two_phases(transfer_run: TrainResult,
                                             transfer: Profile) -> None:
    history = transfer_run.history
    assert history["epoch"].tolist() == [1, 2, 3] and history["phase"].tolist() == [1, 1, 2]
    assert history["lr"].tolist() == pytest.approx([transfer.lr_head] * 2 + [transfer.lr_finetune],
                                                   rel=1e-6)  # float32 variables
    config = transfer_run.config()
    assert config["protocol"] == "transfer" and len(config["phases"]) == 2
    assert "backbone frozen" in config["phases"][0] and config["best_phase"] in (1, 2)


def test_keras_schedule_is_the_reference_formula_at_every_step() -> None:
    (phase,) = phases(get_profile("smoke", epochs_scratch=5, warmup_epochs=1.5))
    schedule = _learning_rate(phase, 7)  # the CosineDecay the optimiser steps
    got = [float(schedule(step)) for step in range(35)]
    assert got == pytest.approx([warmup_cosine_lr(s, phase, 7) for s in range(35)], rel=1e-5)


def assert_kept_epoch_reproduced(result: TrainResult, data: KerasData) -> None:
    """The returned (best) weights predict the validation BCE and ROC-AUC of the best epoch
    (Keras' at its thresholds, which may tie one close positive-negative pair: half a pair
    off on 16 images)."""
    labels = data.arrays["val"].labels
    prob = predict_split(result.model, data, "val")["probability"].to_numpy()
    best = result.history.set_index("epoch").loc[result.best_epoch]
    pair = 1 / (labels.sum() * (len(labels) - labels.sum()))
    assert roc_auc_score(labels, prob) == pytest.approx(best["val_auc"], abs=pair / 2 + 1e-6)
    bce = keras.losses.BinaryCrossentropy()(labels.astype(np.float32)[:, None], prob[:, None])
    assert float(bce) == pytest.approx(best["val_bce"], rel=1e-4)


def test_kept_model_is_the_best_on_validation(scratch_run: TrainResult, data: KerasData) -> None:
    assert_kept_epoch_reproduced(scratch_run, data)


@pytest.mark.parametrize("protocol, stops", [("scratch", (1,)), ("transfer", (1, 2))])
def test_interrupted_run_resumes_to_the_same_final_weights(
        protocol: str, stops: tuple[int, ...], request: pytest.FixtureRequest, data: KerasData,
        tmp_path: Path) -> None:
    profile = SCRATCH if protocol == "scratch" else request.getfixturevalue("transfer")
    uninterrupted: TrainResult = request.getfixturevalue(f"{protocol}_run")
    # Its first epochs are trained afresh from the seed, so an exact match is also the
    # check that one seed gives one result.
    for epoch in stops:  # inside a phase, then (transfer) at the phase boundary
        with pytest.raises(Interrupted):
            train(data, profile, seed=42, checkpoint_dir=tmp_path, on_epoch_end=stop_after(epoch))
    resumed = train(data, profile, seed=42, checkpoint_dir=tmp_path)
    pd.testing.assert_frame_equal(resumed.history, uninterrupted.history, check_exact=True)
    assert same_weights(resumed.model, uninterrupted.model)
    pd.testing.assert_frame_equal(predict_split(resumed.model, data, "test"),
                                  predict_split(uninterrupted.model, data, "test"), check_exact=True)


def test_finished_run_is_not_trained_again(scratch_run: TrainResult, data: KerasData) -> None:
    again = train(data, SCRATCH, seed=42, checkpoint_dir=scratch_run.checkpoint.parent,
                  on_epoch_end=stop_after(1))  # would raise if an epoch ran
    pd.testing.assert_frame_equal(again.history, scratch_run.history)
    assert again.best_epoch == scratch_run.best_epoch and same_weights(again.model,
                                                                       scratch_run.model)


@pytest.mark.parametrize("change", [{"lr_scratch": 1e-2}, {"weight_decay": 0.0}])
def test_resuming_with_other_settings_is_a_user_error(scratch_run: TrainResult, data: KerasData,
                                                      change: dict[str, Any]) -> None:
    profile = get_profile("smoke", epochs_scratch=2, patience=3, **change)
    with pytest.raises(UserError, match="RESUME=False"):
        train(data, profile, seed=42, checkpoint_dir=scratch_run.checkpoint.parent)


def test_no_epochs_at_all_is_a_user_error(data: KerasData, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="EPOCHS_SCRATCH"):
        train(data, get_profile("smoke", epochs_scratch=0), seed=42, checkpoint_dir=tmp_path)


def test_run_training_writes_a_named_run_and_skips_it_when_done(fresh_layout: Layout) -> None:
    layout = fresh_layout
    profile = get_profile("smoke", epochs_scratch=1)  # torch's mirror test trains 2: a curve per epoch
    specs = [RunSpec.for_profile("toy", "keras", profile, seed=s) for s in (1, 2)]
    outcomes = [run_training(spec, layout, profile) for spec in specs]
    assert [o.results_dir.name for o in outcomes] == ["keras-baseline-scratch-seed1",
                                                      "keras-baseline-scratch-seed2"]
    for outcome in outcomes:
        files = {p.name for p in outcome.results_dir.iterdir()}
        assert {"metrics.json", "predictions.csv", "history.csv", "config.json"} <= files
        assert [p.name for p in outcome.checkpoint.parent.iterdir()] == [BEST]
        config = json.loads((outcome.results_dir / "config.json").read_text())
        assert config["protocol"] == "scratch" and config["framework"] == "keras"
        assert config["settings"]["seed"] == outcome.spec.seed and outcome.trained
    assert outcomes[0].metrics != outcomes[1].metrics  # another seed, another model
    folders = [layout.tensorboard(spec.name) for spec in specs]
    curves = read_curves(*folders)
    for outcome, folder in zip(outcomes, folders):  # per epoch, the history's columns
        history = pd.read_csv(outcome.results_dir / "history.csv")
        assert len(history) == 1 and len(list(folder.glob("events.out.tfevents.*"))) == 1
        assert_curves_hold_the_history(curves[folder], history, "epoch")
    written = {p: p.read_bytes() for p in folders[0].iterdir()}
    again = run_training(specs[0], layout, profile)
    assert not again.trained and again.metrics == outcomes[0].metrics
    assert {p: p.read_bytes() for p in folders[0].iterdir()} == written  # not trained: no curve
    with pytest.raises(ValueError, match="RunSpec.for_profile"):
        run_training(RunSpec("toy", "keras", protocol="transfer"), layout, profile)


class NaNLoss(keras.losses.Loss):
    """A loss that is NaN from the first step: a diverged run."""

    def call(self, y_true, y_pred):
        return keras.ops.mean(y_pred * float("nan"), axis=-1)


def test_diverged_run_stops_with_a_sentence(data: KerasData, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="diverged.*LR_SCRATCH"):
        train(data, get_profile("smoke", epochs_scratch=1), seed=42, checkpoint_dir=tmp_path,
              loss=NaNLoss())


class FallingLoss(keras.losses.Loss):
    """A scenario loss that misleads a selection by it: BCE against the flipped labels
    (training inverts the ranking, so the validation ROC-AUC falls) minus 1000 per call
    (so the validation loss falls at every epoch, whatever the model; the smoke profile
    runs eagerly, so every batch calls it)."""

    def __init__(self) -> None:
        super().__init__(name="falling")
        self.calls = 0

    def call(self, y_true, y_pred):
        self.calls += 1
        return keras.losses.binary_crossentropy(1 - y_true, y_pred) - 1000.0 * self.calls


def falling_run(data: KerasData, tmp_path: Path, monitor: str) -> TrainResult:
    """Two epochs under ``FallingLoss``, the model selected on ``monitor``."""
    profile = get_profile("smoke", epochs_scratch=2, patience=3, monitor=monitor)
    return train(data, profile, seed=42, checkpoint_dir=tmp_path, loss=FallingLoss())


def test_kept_weights_are_the_best_by_validation_roc_auc_not_by_the_loss(
        data: KerasData, tmp_path: Path) -> None:
    result = falling_run(data, tmp_path, "val_auc")
    history = result.history.set_index("epoch")
    assert history["val_loss"].idxmin() != history["val_auc"].idxmax()
    assert result.best_epoch == history["val_auc"].idxmax()
    assert_kept_epoch_reproduced(result, data)
    assert result.config()["best_value"] == history["val_auc"].max()


@pytest.mark.parametrize("monitor, mode", [("val_auc", "max"), ("val_loss", "min")])
def test_every_callback_follows_the_monitor(monitor: str, mode: str, tmp_path: Path) -> None:
    # the training path under val_loss (the thesis' rule) is run in the torch mirror; here
    # the Keras callbacks it builds: stopping, best weights and plateau on one criterion
    profile = get_profile("smoke", monitor=monitor, weights="imagenet")  # a plateau phase
    phase = phases(profile)[0]
    callbacks = _callbacks(phase, profile, tmp_path, *monitor_mode(profile), best_so_far=0.5)
    assert [type(c).__name__ for c in callbacks] == ["EarlyStopping", "ModelCheckpoint",
                                                     "ReduceLROnPlateau"]
    assert {(c.monitor, c.mode) for c in callbacks} == {(monitor, mode)}


def test_unknown_monitor_is_a_user_error(data: KerasData, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="val_auc"):
        train(data, get_profile("smoke", monitor="val_f1"), seed=42, checkpoint_dir=tmp_path)


def tiny_model(size: int, weights: str = "none") -> keras.Model:
    """A stand-in for ResNet50 with the layer names ``configure_phase`` reads."""
    inputs = keras.Input((size, size, 1))
    backbone = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization()],
                                name="resnet50")
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", dtype="float32")(x))


def test_the_graph_step_is_traced_once_per_phase(data: KerasData, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # the optimiser's and the metrics' variables are built before fit: a trace that created
    # them would be traced again (the first epoch's largest cost outside the steps)
    traces = []
    step = keras.Model.train_step
    monkeypatch.setattr(keras.Model, "train_step",
                        lambda self, batch: traces.append(1) or step(self, batch))
    monkeypatch.setattr("helpers.keras.training.build_model", tiny_model)
    train(data, get_profile("smoke", epochs_scratch=2, keras_eager=False), seed=42,
          checkpoint_dir=tmp_path)
    assert len(traces) == 1
