"""Two-phase training on the 32 px toy set (smoke profile): checkpoints, history,
reproducibility, and an interrupted run that resumes to the same final weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from helpers.config import Layout, Profile, get_profile
from helpers.errors import UserError
from helpers.torch_data import TorchData, load_datasets
from helpers.model_data import HISTORY_COLUMNS
from helpers.torch_training import TrainResult, predict_split, train

pytestmark = pytest.mark.torch

PROFILE = get_profile("smoke", epochs_head=2)  # 2 + 1 epochs: a resume inside a phase and across


class Interrupted(Exception):
    pass


def stop_after(epoch: int):
    def hook(row: dict[str, Any]) -> None:
        if row["epoch"] == epoch:
            raise Interrupted
    return hook


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One intra-op thread: on a CPU shared with other test processes, OpenMP threads
    that wait on each other make a ResNet50 step several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(prepared_layout: Layout) -> TorchData:
    return load_datasets(prepared_layout, 32, PROFILE.batch_size, seed=42)


@pytest.fixture(scope="module")
def uninterrupted(data: TorchData, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(data, PROFILE, seed=42, checkpoint_dir=tmp_path_factory.mktemp("ckpt"))


def test_training_writes_checkpoints_and_history(uninterrupted: TrainResult) -> None:
    history = uninterrupted.history
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3] and history["phase"].tolist() == [1, 1, 2]
    assert history["lr"].tolist()[-1] == PROFILE.lr_finetune
    assert history[["loss", "val_loss"]].notna().all().all()
    assert uninterrupted.best_epoch == history.loc[history["val_loss"].idxmin(), "epoch"]
    assert {p.name for p in uninterrupted.checkpoint_dir.iterdir()} == {"best.pt", "last.pt"}
    assert not uninterrupted.model.training
    config = uninterrupted.config()
    assert config["best_epoch"] == uninterrupted.best_epoch and config["best_phase"] in (1, 2)
    assert config["phase1_trains"] == "the whole network (weights none)"


def test_same_seed_twice_gives_identical_results(uninterrupted: TrainResult, data: TorchData,
                                                 tmp_path: Path) -> None:
    again = train(data, PROFILE, seed=42, checkpoint_dir=tmp_path)
    pd.testing.assert_frame_equal(again.history, uninterrupted.history, check_exact=True)
    pd.testing.assert_frame_equal(predict_split(again.model, data, "test"),
                                  predict_split(uninterrupted.model, data, "test"),
                                  check_exact=True)


def test_interrupted_run_resumes_to_the_same_final_weights(uninterrupted: TrainResult,
                                                           data: TorchData, tmp_path: Path) -> None:
    for epoch in (1, 2):  # inside phase 1, then at the phase boundary
        with pytest.raises(Interrupted):
            train(data, PROFILE, seed=42, checkpoint_dir=tmp_path, on_epoch_end=stop_after(epoch))
    resumed = train(data, PROFILE, seed=42, checkpoint_dir=tmp_path)
    pd.testing.assert_frame_equal(resumed.history, uninterrupted.history, check_exact=True)
    expected = uninterrupted.model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in resumed.model.state_dict().items())
    best = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(v, expected[k]) for k, v in best.items())


def test_finished_run_is_not_trained_again(uninterrupted: TrainResult, data: TorchData) -> None:
    again = train(data, PROFILE, seed=42, checkpoint_dir=uninterrupted.checkpoint_dir,
                  on_epoch_end=stop_after(1))  # would raise if an epoch ran
    pd.testing.assert_frame_equal(again.history, uninterrupted.history)
    assert again.best_epoch == uninterrupted.best_epoch


@pytest.mark.parametrize("change", [{"lr_head": 1e-3}, {"weights": "imagenet"}])
def test_resuming_with_other_settings_is_a_user_error(uninterrupted: TrainResult, data: TorchData,
                                                      change: dict[str, Any]) -> None:
    profile: Profile = get_profile("smoke", epochs_head=2, **change)
    with pytest.raises(UserError, match="RESUME=False"):
        train(data, profile, seed=42, checkpoint_dir=uninterrupted.checkpoint_dir)
