"""The scenario grid: its plan, and each run in a process of its own, skipped when done,
isolated when it fails, reported when interrupted, and the same through submitit.

The runs train in child processes, so this file imports neither TensorFlow nor torch.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers.config import Layout
from helpers.environment import environment
from helpers.errors import UserError
from helpers.io import save_json
from helpers.training.grid import GridJob, grid_status, job_state, main, plan_grid, run_grid, summary
from helpers.training.protocols import training_settings
from helpers.training.scenarios import SCENARIOS


def test_plan_is_scenarios_by_frameworks_by_the_profiles_seeds() -> None:
    jobs = plan_grid("chest_xray", "cpu", frameworks="keras,pytorch", weights="none")
    assert len(jobs) == len(SCENARIOS) * 2 * 2  # cpu profile: seeds 42 and 43
    assert [j.seed for j in jobs[:14]] == [42] * 14  # one seed's runs all come first
    assert {j.name for j in jobs} >= {"keras-ldam-scratch-seed43", "pytorch-ros-scratch-seed42"}
    assert len({j.name for j in jobs}) == len(jobs)
    one = plan_grid("chest_xray", "full", frameworks="pytorch", scenarios="wgan", seeds=[7])
    assert [j.name for j in one] == ["pytorch-wgan-transfer-seed7"]
    assert GridJob.from_json(one[0].to_json()) == one[0]


@pytest.mark.parametrize("kwargs, message", [({"frameworks": "jax"}, "framework"),
                                             ({"frameworks": "keras", "scenarios": "smote"},
                                              "scenario")])
def test_unknown_names_stop_with_a_sentence(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=f"Unknown {message}"):
        plan_grid("chest_xray", "smoke", **kwargs)


def test_a_failed_run_is_recorded_and_the_rest_goes_on_then_done_runs_are_skipped(
        fresh_layout: Layout) -> None:
    # wgan needs notebook 05's synthetic set, which this layout lacks: that run fails
    jobs = plan_grid("toy", "smoke", frameworks="pytorch", scenarios="wgan,weighted",
                     root=str(fresh_layout.root))
    seen = []
    status = run_grid(jobs, on_update=seen.append).set_index("scenario")
    assert status.loc["wgan", "state"] == "failed"
    assert "run notebook 05" in status.loc["wgan", "error"]
    assert status.loc["weighted", "state"] == "done" and status.loc["weighted", "minutes"] >= 0
    assert [summary(s) for s in (seen[0], seen[-1])] == ["0 done, 0 running, 0 failed, 2 to do",
                                                         "1 done, 0 running, 1 failed, 0 to do"]
    config = json.loads((fresh_layout.results(jobs[1].name) / "config.json").read_text())
    assert config["training_rows"] == {"real": {"0": 32, "1": 16}, "synthetic": {"0": 0, "1": 0}}
    assert config["settings"]["loss"].startswith("WeightedBCEWithLogitsLoss(w0=0.75, w1=1.5")
    assert "Traceback" in jobs[0].log_file.read_text()  # the full error is in the run's log

    done_status = jobs[1].status_file.read_text()
    again = run_grid(jobs).set_index("scenario")
    assert jobs[1].status_file.read_text() == done_status  # not started again
    assert again.loc["wgan", "state"] == "failed"  # retried, failed again


def test_an_interrupted_run_is_reported_and_counted_as_to_do(fresh_layout: Layout) -> None:
    job = plan_grid("toy", "smoke", frameworks="keras", scenarios="focal",
                    root=str(fresh_layout.root))[0]
    dead = subprocess.Popen(["true"])
    dead.wait()
    job.status_file.parent.mkdir(parents=True)
    job.status_file.write_text(json.dumps({"state": "running", "pid": dead.pid,
                                           "host": __import__("socket").gethostname(),
                                           "started": 0}))
    assert job_state(job)["state"] == "interrupted"
    assert summary(grid_status([job])) == "0 done, 0 running, 0 failed, 1 to do"


@pytest.mark.parametrize("recorded", [None, environment("pytorch", "cuda:0 (an H100): autocast bfloat16")],
                         ids=["trained before environments were recorded", "another machine"])
def test_a_finished_run_is_done_whatever_environment_it_recorded(
        tmp_path, recorded: dict | None) -> None:
    job = plan_grid("toy", "smoke", frameworks="pytorch", scenarios="focal", root=str(tmp_path))[0]
    settings = training_settings(job.settings, seed=job.seed, loss="FocalLoss()", train_images=48)
    folder = job.layout.results(job.name)
    extra = {} if recorded is None else {"environment": recorded}
    save_json({"settings": settings, **extra}, folder / "config.json")
    save_json({}, folder / "metrics.json")
    assert job_state(job)["state"] == "done"
    save_json({"settings": {**settings, "seed": job.seed + 1}, **extra}, folder / "config.json")
    assert job_state(job)["state"] == "to do"  # the settings, not the environment, decide


def test_the_submitit_path_runs_the_grid_with_its_local_executor(fresh_layout: Layout) -> None:
    jobs = plan_grid("toy", "smoke", frameworks="pytorch", scenarios="ldam",
                     root=str(fresh_layout.root))
    status = run_grid(jobs, executor="submitit-local")
    assert status["state"].tolist() == ["done"]
    assert list((fresh_layout.root / "results" / "toy" / "grid" / "submitit").glob("*_result.pkl"))
    metrics = json.loads((fresh_layout.results(jobs[0].name) / "metrics.json").read_text())
    assert 0.0 <= metrics["threshold_0.5"]["roc_auc"] <= 1.0


@pytest.mark.parametrize("seeds, expected", [(None, [42]), (43, [43]), ("42,43", [42, 43]),
                                            ("[42, 43]", [42, 43]), ([42, 43], [42, 43])])
def test_seeds_in_every_written_form(seeds: object, expected: list[int]) -> None:
    jobs = plan_grid("chest_xray", "smoke", frameworks="pytorch", scenarios="[baseline, ros]",
                     seeds=seeds)
    assert [(j.seed, j.scenario) for j in jobs] == [(s, sc) for s in expected
                                                    for sc in ("baseline", "ros")]


@pytest.mark.parametrize("seeds", ["abc", "-1", -1, "4.5", "", []])
def test_bad_seeds_stop_the_plan_with_a_sentence(seeds: object) -> None:
    with pytest.raises(UserError, match="^SEEDS must be whole numbers"):
        plan_grid("chest_xray", "smoke", frameworks="pytorch", seeds=seeds)


@pytest.mark.parametrize("gpus", [-1, 1.5])
def test_a_bad_gpu_count_is_a_sentence(gpus: object) -> None:
    jobs = plan_grid("chest_xray", "smoke", frameworks="pytorch", scenarios="baseline")
    with pytest.raises(UserError, match="^GPUS must be a whole number of at least 0"):
        run_grid(jobs, executor="gpus", gpus=gpus)


def test_command_line_errors_are_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--frameworks", "jax"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: Unknown framework") and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [(["--seeds", "abc"], "SEEDS must be whole numbers"),
                                           (["--seeds", ""], "SEEDS must be whole numbers"),
                                           (["--seeds", "4.5"], "SEEDS must be whole numbers"),
                                           (["-p", "IMAGE_SIZE=0"], "IMAGE_SIZE must be a multiple"),
                                           (["-p", "BATCH_SIZE=0"], "BATCH_SIZE must be")])
def test_command_line_values_are_checked_in_one_sentence(
        argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--profile", "smoke", "--root", str(tmp_path), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {message}") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # stopped before any run
