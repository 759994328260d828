"""Training on the 32 px toy set (smoke profile): both protocols, checkpoints, history,
reproducibility, an interrupted run that resumes to the same final weights, and the run
function that writes a named run's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_curves_hold_the_history, read_curves
from sklearn.metrics import roc_auc_score
from torch import nn
from torchvision.models import resnet50

from helpers.config import Layout, Profile, get_profile
from helpers.errors import UserError
from helpers.torch.data import TorchData, load_datasets
from helpers.torch.models import describe_device, pick_device, predict_logits
from helpers.torch.training import predict_split, run_training, train
from helpers.training.protocols import HISTORY_COLUMNS, TrainResult, phases, warmup_cosine_lr
from helpers.training.runs import RunSpec

pytestmark = pytest.mark.torch

SCRATCH = get_profile("smoke", epochs_scratch=2, patience=3)  # one phase, warm-up + cosine


class Interrupted(Exception):
    pass


def stop_after(epoch: int):
    def hook(row: dict[str, Any]) -> None:
        if row["epoch"] == epoch:
            raise Interrupted
    return hook


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(v, b[k]) for k, v in a.items())


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One intra-op thread: on a CPU shared with other test processes, OpenMP threads
    that wait on each other make a ResNet50 step several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def transfer(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """The transfer protocol (2 + 1 epochs) from a local random "pretrained" file."""
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.manual_seed(0)
    torch.save(resnet50().state_dict(), path)
    return get_profile("smoke", weights=str(path), epochs_head=2)


@pytest.fixture(scope="module")
def data(prepared_layout: Layout) -> TorchData:
    return load_datasets(prepared_layout, 32, SCRATCH.batch_size, seed=42)


@pytest.fixture(scope="module")
def scratch_run(data: TorchData, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(data, SCRATCH, seed=42, checkpoint_dir=tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="module")
def transfer_run(data: TorchData, transfer: Profile,
                 tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(data, transfer, seed=42, checkpoint_dir=tmp_path_factory.mktemp("transfer"))


def test_scratch_protocol_is_one_phase_on_the_warmup_cosine_schedule(
        scratch_run: TrainResult, data: TorchData) -> None:
    history = scratch_run.history
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2] and history["phase"].tolist() == [1, 1]
    (phase,) = phases(SCRATCH)
    steps = len(data.batches["train"])
    expected = [warmup_cosine_lr(e * steps, phase, steps) for e in range(2)]
    assert history["lr"].tolist() == pytest.approx(expected, rel=1e-9)
    assert expected[0] < expected[1]  # warm-up, then decay
    config = scratch_run.config()
    assert config["protocol"] == "scratch" and "AdamW" in config["phases"][0]
    assert scratch_run.checkpoint.name == "best.pt"
    assert {p.name for p in scratch_run.checkpoint.parent.iterdir()} == {"best.pt", "last.pt"}
    assert not scratch_run.model.training
    assert scratch_run.best_epoch == history.loc[history["val_auc"].idxmax(), "epoch"]
    assert (config["monitor"], config["monitor_mode"]) == ("val_auc", "max")
    assert config["best_value"] == config["best_val_auc"] == history["val_auc"].max()
    assert history["val_bce"].tolist() == pytest.approx(history["val_loss"].tolist(), rel=1e-6)


def test_transfer_protocol_trains_two_phases(transfer_run: TrainResult,
                                             transfer: Profile) -> None:
    history = transfer_run.history
    assert history["epoch"].tolist() == [1, 2, 3] and history["phase"].tolist() == [1, 1, 2]
    assert history["lr"].tolist() == [transfer.lr_head] * 2 + [transfer.lr_finetune]
    config = transfer_run.config()
    assert config["protocol"] == "transfer" and len(config["phases"]) == 2
    assert "backbone frozen" in config["phases"][0] and config["best_phase"] in (1, 2)


@pytest.mark.parametrize("protocol, stops", [("scratch", (1,)), ("transfer", (1, 2))])
def test_interrupted_run_resumes_to_the_same_final_weights(
        protocol: str, stops: tuple[int, ...], request: pytest.FixtureRequest, data: TorchData,
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
    expected = uninterrupted.model.state_dict()
    assert same_weights(resumed.model.state_dict(), expected)
    assert same_weights(torch.load(tmp_path / "best.pt", weights_only=True)["model"], expected)
    pd.testing.assert_frame_equal(predict_split(resumed.model, data, "test"),
                                  predict_split(uninterrupted.model, data, "test"), check_exact=True)


def test_finished_run_is_not_trained_again(scratch_run: TrainResult, data: TorchData) -> None:
    again = train(data, SCRATCH, seed=42, checkpoint_dir=scratch_run.checkpoint.parent,
                  on_epoch_end=stop_after(1))  # would raise if an epoch ran
    pd.testing.assert_frame_equal(again.history, scratch_run.history)
    assert again.best_epoch == scratch_run.best_epoch


@pytest.mark.parametrize("change", [{"lr_scratch": 1e-2}, {"weight_decay": 0.0}])
def test_resuming_with_other_settings_is_a_user_error(scratch_run: TrainResult, data: TorchData,
                                                      change: dict[str, Any]) -> None:
    profile = get_profile("smoke", epochs_scratch=2, patience=3, **change)
    with pytest.raises(UserError, match="RESUME=False"):
        train(data, profile, seed=42, checkpoint_dir=scratch_run.checkpoint.parent)


def test_no_epochs_at_all_is_a_user_error(data: TorchData, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="EPOCHS_SCRATCH"):
        train(data, get_profile("smoke", epochs_scratch=0), seed=42, checkpoint_dir=tmp_path)


def test_run_training_writes_a_named_run_and_skips_it_when_done(fresh_layout: Layout) -> None:
    layout = fresh_layout
    profile = get_profile("smoke", epochs_scratch=2)
    specs = [RunSpec.for_profile("toy", "pytorch", profile, seed=s) for s in (1, 2)]
    outcomes = [run_training(spec, layout, profile) for spec in specs]
    assert [o.results_dir.name for o in outcomes] == ["pytorch-baseline-scratch-seed1",
                                                      "pytorch-baseline-scratch-seed2"]
    for outcome in outcomes:
        files = {p.name for p in outcome.results_dir.iterdir()}
        assert {"metrics.json", "predictions.csv", "history.csv", "config.json"} <= files
        assert [p.name for p in outcome.checkpoint.parent.iterdir()] == ["best.pt"]
        config = json.loads((outcome.results_dir / "config.json").read_text())
        assert config["protocol"] == "scratch" and config["framework"] == "pytorch"
        assert config["settings"]["seed"] == outcome.spec.seed and outcome.trained
        environment = config["environment"]
        assert environment["versions"]["torch"] == torch.__version__
        assert environment["device"] == describe_device(pick_device(), profile)
        assert "device" not in config  # recorded once, in the environment
    assert outcomes[0].metrics != outcomes[1].metrics  # another seed, another model
    folders = [layout.tensorboard(spec.name) for spec in specs]
    curves = read_curves(*folders)
    for outcome, folder in zip(outcomes, folders):  # per epoch, the history's columns
        history = pd.read_csv(outcome.results_dir / "history.csv")
        assert len(history) == 2 and len(list(folder.glob("events.out.tfevents.*"))) == 1
        assert_curves_hold_the_history(curves[folder], history, "epoch")
    written = {p: p.read_bytes() for p in folders[0].iterdir()}
    path = outcomes[0].results_dir / "config.json"
    config = json.loads(path.read_text())
    del config["environment"]
    path.write_text(json.dumps(config))  # a run written before the environment was recorded
    again = run_training(specs[0], layout, profile)
    assert not again.trained and again.metrics == outcomes[0].metrics
    assert {p: p.read_bytes() for p in folders[0].iterdir()} == written  # not trained: no curve
    with pytest.raises(ValueError, match="RunSpec.for_profile"):
        run_training(RunSpec("toy", "pytorch", protocol="transfer"), layout, profile)


class NaNLoss(nn.Module):
    """A loss that is NaN from the first step: a diverged run."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (logits * float("nan")).mean()


def test_diverged_run_stops_with_a_sentence(data: TorchData, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="diverged.*LR_SCRATCH"):
        train(data, get_profile("smoke", epochs_scratch=1), seed=42, checkpoint_dir=tmp_path,
              loss=NaNLoss())


class FallingLoss(nn.Module):
    """A scenario loss that misleads a selection by it: BCE against the flipped labels
    (training inverts the ranking, so the validation ROC-AUC falls) minus 1000 per call
    (so the validation loss falls at every epoch, whatever the model)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return F.binary_cross_entropy_with_logits(logits, 1 - labels) - 1000.0 * self.calls


def falling_run(data: TorchData, tmp_path: Path, monitor: str) -> TrainResult:
    """Two epochs under ``FallingLoss``, the model selected on ``monitor``."""
    profile = get_profile("smoke", epochs_scratch=2, patience=3, monitor=monitor)
    return train(data, profile, seed=42, checkpoint_dir=tmp_path, loss=FallingLoss())


def assert_kept_epoch_reproduced(result: TrainResult, data: TorchData) -> None:
    """The returned (best) weights predict the validation ROC-AUC and BCE of the best epoch."""
    logits, labels = predict_logits(result.model, data.batches["val"].epoch(), None)
    best = result.history.set_index("epoch").loc[result.best_epoch]
    assert roc_auc_score(labels.numpy(), logits.numpy()) == pytest.approx(best["val_auc"],
                                                                          abs=1e-9)
    assert float(F.binary_cross_entropy_with_logits(logits, labels)) == pytest.approx(
        best["val_bce"], rel=1e-6)


def test_kept_weights_are_the_best_by_validation_roc_auc_not_by_the_loss(
        data: TorchData, tmp_path: Path) -> None:
    result = falling_run(data, tmp_path, "val_auc")
    history = result.history.set_index("epoch")
    assert history["val_loss"].idxmin() != history["val_auc"].idxmax()
    assert result.best_epoch == history["val_auc"].idxmax()
    assert_kept_epoch_reproduced(result, data)
    assert result.config()["best_value"] == history["val_auc"].max()


def test_monitor_val_loss_keeps_the_thesis_rule(data: TorchData, tmp_path: Path) -> None:
    result = falling_run(data, tmp_path, "val_loss")
    history = result.history.set_index("epoch")
    assert result.best_epoch == history["val_loss"].idxmin() != history["val_auc"].idxmax()
    assert_kept_epoch_reproduced(result, data)
    config = result.config()
    assert (config["monitor"], config["monitor_mode"]) == ("val_loss", "min")
    assert config["best_value"] == config["best_val_loss"] == history["val_loss"].min()


def test_unknown_monitor_is_a_user_error(data: TorchData, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="val_auc"):
        train(data, get_profile("smoke", monitor="val_f1"), seed=42, checkpoint_dir=tmp_path)
