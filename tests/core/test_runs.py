"""A run's identity: names, folders, the protocol check, and finished runs."""

from __future__ import annotations

import pytest

from helpers.config import Layout, get_profile
from helpers.errors import UserError
from helpers.io import save_json
from helpers.training.runs import RunSpec, best_run, check_protocol, finished


def test_name_holds_framework_scenario_protocol_and_seed() -> None:
    profile = get_profile("cpu", weights="none")
    spec = RunSpec.for_profile("chest_xray", "keras", profile, seed=7)
    assert spec.name == "keras-baseline-scratch-seed7"
    assert RunSpec.for_profile("chest_xray", "pytorch", get_profile("full"),
                               scenario="focal").name == "pytorch-focal-transfer-seed42"
    assert spec.describe()["run"] == spec.name and spec.describe()["protocol"] == "scratch"


def test_a_scenario_brings_its_training_rows_and_loss() -> None:
    profile = get_profile("cpu", weights="none")
    spec = RunSpec.for_profile("chest_xray", "pytorch", profile, scenario="wgan_focal")
    assert (spec.training_data, spec.loss) == ("synthetic", "focal")
    assert RunSpec.for_profile("chest_xray", "keras", profile, scenario="ros").training_data == "ros"
    with pytest.raises(UserError, match="Unknown scenario"):
        RunSpec.for_profile("chest_xray", "keras", profile, scenario="smote")


def test_two_seeds_get_two_folders(tmp_path) -> None:
    layout = Layout.of("chest_xray", tmp_path)
    profile = get_profile("cpu", weights="none")
    folders = {layout.results(RunSpec.for_profile("chest_xray", "pytorch", profile, seed=s).name)
               for s in (42, 43)}
    assert len(folders) == 2 and all(f.parent == layout.runs_dir for f in folders)


def test_bad_descriptions_stop_with_a_sentence() -> None:
    with pytest.raises(UserError, match="framework"):
        RunSpec("chest_xray", "jax")
    with pytest.raises(UserError, match="training data"):
        RunSpec("chest_xray", "keras", training_data="smote")
    spec = RunSpec("chest_xray", "keras", protocol="transfer")
    with pytest.raises(ValueError, match="RunSpec.for_profile"):
        check_protocol(spec, get_profile("cpu", weights="none"), "keras")
    with pytest.raises(ValueError, match="not a pytorch"):
        check_protocol(spec, get_profile("cpu"), "pytorch")


def test_finished_means_results_with_the_same_settings(tmp_path) -> None:
    layout = Layout.of("chest_xray", tmp_path)
    spec = RunSpec("chest_xray", "pytorch", seed=1)
    settings = {"seed": 1, "lr_scratch": 0.002}
    assert not finished(layout, spec, settings)
    run_dir = layout.results(spec.name)
    save_json({"settings": settings, "framework": "pytorch"}, run_dir / "config.json")
    assert not finished(layout, spec, settings)  # no metrics yet: interrupted before the end
    save_json({}, run_dir / "metrics.json")
    assert finished(layout, spec, settings)
    assert not finished(layout, spec, {**settings, "lr_scratch": 0.001})


def _finished_run(layout: Layout, name: str, **config: object) -> None:
    folder = layout.results(name)
    folder.mkdir(parents=True)
    checkpoint = layout.checkpoints(name) / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    save_json({"checkpoint": str(checkpoint), "profile": {"image_size": 32}, **config},
              folder / "config.json")
    save_json({}, folder / "metrics.json")


def test_best_run_follows_each_runs_monitor_and_its_imbalance(tmp_path) -> None:
    layout = Layout.of("chest_xray", tmp_path)
    _finished_run(layout, "pytorch-baseline-scratch-seed1", best_val_loss=0.1)  # before monitors
    _finished_run(layout, "pytorch-baseline-scratch-seed2", monitor="val_auc", best_value=0.80,
                  best_val_loss=0.9)
    _finished_run(layout, "pytorch-baseline-scratch-seed3", monitor="val_auc", best_value=0.90,
                  best_val_loss=2.0)
    _finished_run(layout, "pytorch-baseline-scratch-seed4-r10", monitor="val_auc",
                  best_value=0.99, imbalance="10")
    assert best_run(layout, "pytorch").name == "pytorch-baseline-scratch-seed3"  # highest AUC
    assert best_run(layout, "pytorch", imbalance=10).name == "pytorch-baseline-scratch-seed4-r10"
    assert best_run(layout, "pytorch", image_size=64) is None
    assert best_run(layout, "keras") is None
