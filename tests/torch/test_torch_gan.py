"""The WGAN-GP: sizes, the gradient penalty against closed forms, exact resume, and the
GAN run end to end on the 32 px toy set (smoke settings), its TensorBoard curves included."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_curves_hold_the_history, read_curves
from torch import nn

from helpers.config import Layout, get_gan_settings, get_profile
from helpers.data.synthetic import gan_images, minority_class
from helpers.errors import UserError
from helpers.torch.gan import (
    HISTORY,
    Critic,
    Generator,
    channels,
    gradient_penalty,
    run_gan,
    stages,
    train_gan,
)
from helpers.torch.gan_quality import inception_extractor, measure_quality
from helpers.torch.models import pick_device
from helpers.torch.training import run_training
from helpers.training.runs import RunSpec

pytestmark = pytest.mark.torch

SMOKE = get_gan_settings("smoke", iterations=6, checkpoint_every=2)
PROFILE = get_profile("smoke")


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("size, base, doublings", [(224, 7, 5), (64, 4, 4), (32, 4, 3)])
def test_networks_are_sized_from_the_image_size(size: int, base: int, doublings: int) -> None:
    assert stages(size) == (base, doublings)
    generator, critic = Generator(size, 4, latent=16), Critic(size, 4)
    images = generator(torch.randn(2, 16))
    assert images.shape == (2, 1, size, size) and images.abs().max() <= 1
    assert critic(images).shape == (2,)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in critic.modules())


def test_thesis_widths_at_224_px() -> None:
    assert channels(224, 32) == [512, 256, 128, 64, 32]
    convs = [m for m in Critic(224, 32).modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [
        (1, 32, (2, 2)), (32, 64, (2, 2)), (64, 128, (2, 2)), (128, 256, (2, 2)), (256, 512, (2, 2))]


def test_a_size_that_does_not_halve_to_4_7_px_is_refused() -> None:
    with pytest.raises(UserError, match="IMAGE_SIZE=100"):
        stages(100)


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared() -> None:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    with torch.no_grad():
        critic[1].weight.copy_(torch.full((1, 16), 0.75))  # ||w|| = 0.75 * 4 = 3
    real, fake = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)
    penalty = gradient_penalty(critic, real, fake, torch.rand(5, 1, 1, 1))
    torch.testing.assert_close(penalty, torch.tensor((3.0 - 1) ** 2))


def test_gradient_penalty_of_a_quadratic_critic_uses_the_interpolates() -> None:
    class Quadratic(nn.Module):  # D(x) = ||x||^2 / 2, so grad D(x) = x
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x.flatten(1).pow(2).sum(1)

    real, fake, eps = torch.randn(6, 1, 3, 3), torch.randn(6, 1, 3, 3), torch.rand(6, 1, 1, 1)
    mixed = eps * real + (1 - eps) * fake
    expected = ((mixed.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty = gradient_penalty(Quadratic(), real, fake, eps)
    torch.testing.assert_close(penalty, expected)


@pytest.fixture(scope="module")
def minority_images(prepared_layout: Layout) -> np.ndarray:
    return gan_images(prepared_layout, 32)[0].images


def weights(directory: Path) -> dict[str, torch.Tensor]:
    state = torch.load(directory / "last.pt", weights_only=True)
    return {f"{net}.{k}": v for net in ("generator", "critic") for k, v in state[net].items()}


def test_interrupted_run_resumes_to_the_same_weights(minority_images: np.ndarray,
                                                     tmp_path: Path) -> None:
    whole = train_gan(minority_images, SMOKE, seed=3, checkpoint_dir=tmp_path / "whole")
    assert list(whole.history.columns) == HISTORY and len(whole.history) == 6

    def stop(row: dict[str, float]) -> None:
        if row["iteration"] == 3:  # after the checkpoint of iteration 2
            raise Interrupted

    with pytest.raises(Interrupted):
        train_gan(minority_images, SMOKE, seed=3, checkpoint_dir=tmp_path / "cut", on_iteration=stop)
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["iteration"] == 2
    resumed = train_gan(minority_images, SMOKE, seed=3, checkpoint_dir=tmp_path / "cut")
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(whole.history, resumed.history)
    other = train_gan(minority_images, SMOKE, seed=4, checkpoint_dir=tmp_path / "other")
    assert not whole.history.equals(other.history)  # the seed matters


def test_a_checkpoint_with_other_settings_is_not_resumed(minority_images: np.ndarray,
                                                         tmp_path: Path) -> None:
    train_gan(minority_images, get_gan_settings("smoke", iterations=2), seed=1,
              checkpoint_dir=tmp_path)
    with pytest.raises(UserError, match="width"):
        train_gan(minority_images, get_gan_settings("smoke", iterations=2, width=4), seed=1,
                  checkpoint_dir=tmp_path)


def md5s(layout: Layout) -> dict[str, str]:
    folder = layout.synthetic_dir(32)
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*.png")}


def test_gan_run_writes_the_balancing_synthetic_set_and_its_quality(fresh_layout: Layout) -> None:
    baseline = RunSpec.for_profile("toy", "pytorch", PROFILE)
    run_training(baseline, fresh_layout, PROFILE)  # the feature space of the quality scores
    outcome = run_gan(fresh_layout, PROFILE, SMOKE, seed=5, inception=False)
    minority = minority_class(fresh_layout)
    assert outcome.trained and len(outcome.synthetic) == minority.missing == 16
    assert set(outcome.synthetic["label"]) == {minority.label}
    metrics = json.loads((outcome.results_dir / "metrics.json").read_text())
    assert metrics["counts"] == {"real": 16, "synthetic": 16}
    classifier = metrics["classifier"]
    assert classifier["status"] == "measured" and classifier["run"] == baseline.name
    assert classifier["dims"] == 512
    assert set(classifier) >= {"synthetic", "real_halves"}
    assert metrics["inception"]["status"] == "skipped"
    assert len(metrics["memorisation"]["synthetic_distances"]) == 16
    for name in ("losses.png", "real_vs_synthetic.png", "memorisation.png", "history.csv"):
        assert (outcome.results_dir / name).is_file(), name
    assert sorted(p.name for p in (outcome.results_dir / "samples").iterdir()) == [
        "iteration_000002.png", "iteration_000004.png", "iteration_000006.png"]
    checkpoints = outcome.generator.parent
    assert sorted(p.name for p in checkpoints.iterdir()) == ["generator.pt"]  # weights only

    config = json.loads((outcome.results_dir / "config.json").read_text())
    assert config["environment"]["versions"]["torch"] == torch.__version__
    assert config["environment"]["device"] == str(pick_device())

    first = md5s(fresh_layout)
    again = run_gan(fresh_layout, PROFILE, SMOKE, seed=5, inception=False)
    assert not again.trained and again.metrics == outcome.metrics and md5s(fresh_layout) == first
    afresh = run_gan(fresh_layout, PROFILE, SMOKE, seed=5, resume=False, inception=False)
    assert afresh.trained and md5s(fresh_layout) == first  # deterministic for a seed
    # its curves: every iteration once, the first training's event file gone
    folder = fresh_layout.tensorboard(outcome.spec.name)
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    history = pd.read_csv(outcome.results_dir / "history.csv")
    assert history["iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    assert_curves_hold_the_history(read_curves(folder)[folder], history, "iteration")


def test_without_a_baseline_the_classifier_scores_are_skipped_with_the_reason(
        fresh_layout: Layout) -> None:
    outcome = run_gan(fresh_layout, PROFILE, get_gan_settings("smoke", iterations=1), seed=5,
                      inception=False)
    assert outcome.metrics["classifier"]["status"] == "skipped"
    assert "notebook 04" in outcome.metrics["classifier"]["reason"]
    assert outcome.metrics["memorisation"]["real_to_real"]["median"] > 0


def test_offline_inception_is_one_sentence_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchmetrics.image.fid as fid

    def offline(*args: Any, **kwargs: Any) -> None:
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(fid, "NoTrainInceptionV3", offline)
    reason = inception_extractor(torch.device("cpu"))
    assert isinstance(reason, str) and reason.startswith("Inception FID/KID skipped")
    assert "weights-inception-2015-12-05-6726825d.pth" in reason


def test_inception_scores_are_measured_when_its_network_loads(
        prepared_layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchmetrics.image.fid as fid

    class StandIn(nn.Module):  # what NoTrainInceptionV3 returns: (B, 2048) from uint8 RGB
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.dtype == torch.uint8 and x.shape[1] == 3
            return x.float().flatten(1)[:, :2048]

    monkeypatch.setattr(fid, "NoTrainInceptionV3", StandIn)
    real = gan_images(prepared_layout, 32)[0].images
    fake = np.random.default_rng(0).integers(0, 256, (12, 32, 32), dtype=np.uint8)
    metrics = measure_quality(prepared_layout, real, fake, inception=True)
    assert metrics["inception"]["status"] == "measured" and metrics["inception"]["dims"] == 2048
    assert metrics["inception"]["synthetic"]["n_other"] == 8  # as many as the real half
    assert metrics["classifier"]["status"] == "skipped"  # no baseline in this layout
