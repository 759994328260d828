"""The scenario grid of notebook 06: scenarios x frameworks x seeds, each run in a process of
its own (TensorFlow and torch never share one), on this machine or through submitit.

    python -m helpers.training.grid --dataset chest_xray --profile cpu --frameworks pytorch
                           [--scenarios baseline,focal] [--seeds 42,43] [--root DIR]
                           [--imbalance natural,10,30]
                           [--executor local|gpus|submitit-local|slurm] [-p WEIGHTS=none]

A run's state comes from its files alone, so any process (a notebook, a cluster job, a
re-run after an interruption) reads the same grid:

- done: ``results/<ds>/runs/<run>/metrics.json``, trained with the grid's profile;
- running, failed or interrupted: ``results/<ds>/grid/<run>.json`` (state, start, end,
  the error in one line; the run's full output in ``results/<ds>/grid/logs/<run>.log``);
- to do: neither.

A done run is skipped, an interrupted one resumes from its checkpoint (the training path
does that), a failed one is recorded and the rest of the grid goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from helpers.analysis import evaluation, results
from helpers.config import PROFILES, Layout, Profile, get_profile, list_items
from helpers.data.imbalance import NATURAL, suffix
from helpers.data.imbalance import settings as imbalance_settings
from helpers.errors import UserError
from helpers.io import read_json, save_json
from helpers.locks import Busy, holding
from helpers.training.protocols import training_settings
from helpers.training.run_folder import RunFolder
from helpers.training.runs import RunSpec
from helpers.training.scenarios import SCENARIOS

GRID_FRAMEWORKS = ("keras", "pytorch")
EXECUTORS = ("local", "gpus", "submitit-local", "slurm")
STATES = ("done", "running", "failed", "interrupted", "to do")


@dataclass(frozen=True)
class GridJob:
    """One run of the grid, as plain values (it travels as JSON or through a pickle)."""

    dataset: str
    framework: str
    scenario: str
    seed: int
    profile: str
    root: str
    overrides: tuple[tuple[str, Any], ...] = ()  # profile fields, e.g. (("weights", "none"),)
    imbalance: str = NATURAL  # the training rows' setting (helpers.data.imbalance)

    @property
    def settings(self) -> Profile:
        return get_profile(self.profile, **dict(self.overrides))

    @property
    def layout(self) -> Layout:
        return Layout.of(self.dataset, self.root)

    @property
    def spec(self) -> RunSpec:
        return RunSpec.for_profile(self.dataset, self.framework, self.settings,
                                   scenario=self.scenario, seed=self.seed,
                                   imbalance=self.imbalance)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def status_file(self) -> Path:
        return grid_dir(self.layout) / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return grid_dir(self.layout) / "logs" / f"{self.name}.log"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GridJob:
        data = json.loads(text)
        return cls(**{**data, "overrides": tuple(tuple(kv) for kv in data["overrides"])})


def grid_dir(layout: Layout) -> Path:
    """Where the grid's state files and logs live."""
    return layout.root / "results" / layout.dataset / "grid"


def _names(given: str | Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    """A list parameter (``config.list_items``) checked against ``known`` ("all" or None: all)."""
    items = ["all"] if given is None else list_items(given)
    if items == ["all"]:
        return list(known)
    unknown = [s for s in items if s not in known]
    if unknown or not items:
        raise UserError(f"Unknown {what} {unknown or items}: use some of {', '.join(known)}.")
    return items


def plan_grid(dataset: str, profile: str, *, frameworks: str | Sequence[str],
              scenarios: str | Sequence[str] | None = None,
              seeds: int | str | Sequence[int] | None = None, root: str = "",
              imbalance: str | Sequence[str | float] = NATURAL,
              **overrides: Any) -> list[GridJob]:
    """The grid's runs, seed by seed (one seed's runs at every imbalance setting finish
    before the next seed starts, so a grid cut short still covers every setting);
    ``seeds`` (42, "42,43", "[42, 43]" or [42, 43], checked with the profile:
    ``config.parse_seeds``) default to the profile's, ``imbalance`` is one setting or
    several ("natural,10,30"), ``overrides`` are profile fields."""
    settings = get_profile(profile, seeds=seeds, **overrides)
    changes = tuple(sorted((k.lower(), v) for k, v in overrides.items() if v is not None))
    frames = _names(frameworks, GRID_FRAMEWORKS, "framework(s)")
    names = _names(scenarios, list(SCENARIOS), "scenario(s)")
    root = str(Layout.of(dataset, root).root)
    return [GridJob(dataset, fw, sc, int(seed), profile, root, changes, ratio)
            for seed in settings.seeds for ratio in imbalance_settings(imbalance)
            for sc in names for fw in frames]


def _write_status(job: GridJob, **fields: Any) -> dict[str, Any]:
    status = {"run": job.name, "host": socket.gethostname(), **fields}
    save_json(status, job.status_file)
    return status


def run_job(job: GridJob) -> dict[str, Any]:
    """Train one run in this process (the framework's ``run_training``) and record its state;
    a failure is recorded with its error, never raised. A run another process trains (its
    lock is held) is skipped, and its status left to that process."""
    try:
        with holding(job.layout, job.name, f"Training {job.name}"):
            return _run_held(job)
    except Busy as busy:
        print(busy, flush=True)
        return {"run": job.name, "state": "skipped", "reason": str(busy)}


def _run_held(job: GridJob) -> dict[str, Any]:
    start = time.time()
    _write_status(job, state="running", pid=os.getpid(), started=start)
    try:
        if job.framework == "keras":
            from helpers.keras.training import run_training
        else:
            from helpers.torch.training import run_training
        outcome = run_training(job.spec, job.layout, job.settings)
    except Exception as error:  # noqa: BLE001 - any failure of one run is recorded, not raised
        traceback.print_exc()
        return _write_status(job, state="failed", started=start, ended=time.time(),
                             error=f"{type(error).__name__}: {error}".splitlines()[0][:500])
    return _write_status(job, state="done", started=start, ended=time.time(),
                         trained=outcome.trained)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _finished(job: GridJob) -> bool:
    """Whether the run's results exist and were trained with the grid's profile and seed
    (the settings ``runs.finished`` compares, less the loss and the row count, which the
    run itself checks once its data are loaded)."""
    expected = training_settings(job.settings, seed=job.seed, loss="", train_images=0)
    return RunFolder(job.layout.results(job.name)).trained_with(
        expected, ignore=("loss", "train_images"))


def _status(job: GridJob) -> dict[str, Any]:
    """The job's status file ({} when there is none, or a damaged one, which is said: the
    grid writes it again when the job runs)."""
    if not job.status_file.is_file():
        return {}
    try:
        return read_json(job.status_file, "it is written again when the run starts")
    except UserError as err:
        print(err)
        return {}


def job_state(job: GridJob) -> dict[str, Any]:
    """The run's row of the status table: state, minutes, the error if it failed."""
    status = _status(job)
    state = status.get("state", "to do")
    if _finished(job):
        state = "done"
    elif state == "done":  # results removed or trained with other settings since
        state = "to do"
    elif state == "running" and status.get("host") == socket.gethostname() \
            and not _alive(int(status.get("pid", 0))):
        state = "interrupted"
    end = status.get("ended") or (time.time() if state == "running" else None)
    minutes = (end - status["started"]) / 60 if end and "started" in status else None
    return {"run": job.name, "framework": job.framework, "scenario": job.scenario,
            "seed": job.seed, "imbalance": job.imbalance, "state": state,
            "minutes": round(minutes, 1) if minutes is not None else None,
            "error": status.get("error", "") if state == "failed" else ""}


def grid_status(jobs: Sequence[GridJob]) -> pd.DataFrame:
    """One row per run: framework, scenario, seed, state, minutes, error."""
    return pd.DataFrame([job_state(j) for j in jobs],
                        columns=["run", "framework", "scenario", "seed", "imbalance", "state",
                                 "minutes", "error"])


def summary(status: pd.DataFrame) -> str:
    """"3 done, 1 running, 0 failed, 10 to do" (interrupted runs count as to do)."""
    counts = status["state"].replace("interrupted", "to do").value_counts()
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "running", "failed", "to do"))


def finished_runs(jobs: Sequence[GridJob]) -> dict[str, Path]:
    """The results folders of the grid's done runs, by run name."""
    return {j.name: j.layout.results(j.name) for j in jobs if _finished(j)}


def done_metrics(jobs: Sequence[GridJob], threshold: str = "threshold_youden") -> pd.DataFrame:
    """Test metrics of the done runs, one row per run (framework, scenario, seed first), at
    the validation-chosen threshold unless ``threshold`` says "threshold_0.5"."""
    done = finished_runs(jobs)
    if not done:
        return pd.DataFrame()
    table = evaluation.compare_runs(done, threshold).T
    keys = pd.DataFrame([(j.framework, j.scenario, j.seed, j.imbalance) for j in jobs
                         if j.name in done],
                        columns=["framework", "scenario", "seed", "imbalance"], index=list(done))
    return pd.concat([keys, table], axis=1)


def done_histories(jobs: Sequence[GridJob]) -> dict[str, dict[str, pd.DataFrame]]:
    """The done runs' training histories, by scenario and then by "framework seed<N>"
    ("framework-r10 seed<N>" at an imbalance setting other than natural)."""
    done = pd.DataFrame([(j.scenario, f"{j.framework}{suffix(j.imbalance)}", j.seed,
                          str(j.layout.results(j.name))) for j in jobs if _finished(j)],
                        columns=["scenario", "framework", "seed", "results_dir"])
    return results.histories(done)


def _run_in_process(job: GridJob) -> int:
    """One run as a child process (``python -m helpers.training.grid --job``), its output in the log."""
    job.log_file.parent.mkdir(parents=True, exist_ok=True)
    with job.log_file.open("a") as log:
        return subprocess.run([sys.executable, "-m", "helpers.training.grid", "--job", job.to_json()],
                              stdout=log, stderr=subprocess.STDOUT).returncode


def _submitit(jobs: list[GridJob], folder: Path, cluster: str, gpus: int,
              timeout_min: int) -> None:
    """The runs as submitit jobs: a Slurm array, or local processes (``gpus`` > 0: one run
    per GPU at a time, in waves)."""
    import submitit  # imported here: only this path needs it

    if cluster == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(timeout_min=timeout_min, gpus_per_node=min(gpus, 1),
                                   slurm_array_parallelism=max(1, len(jobs)))
        submitted = executor.map_array(run_job, jobs)
        print(f"Submitted {len(submitted)} Slurm job(s): {submitted[0].job_id if submitted else '-'}")
        _wait(submitted)
        return
    executor = submitit.LocalExecutor(folder=folder)
    width = max(1, gpus)
    for start in range(0, len(jobs), width):
        wave = []
        for gpu, job in enumerate(jobs[start:start + width]):
            executor.update_parameters(timeout_min=timeout_min, gpus_per_node=int(gpus > 0),
                                       visible_gpus=(gpu,) if gpus else ())
            wave.append(executor.submit(run_job, job))
        _wait(wave)


def _wait(submitted: list[Any]) -> None:
    """Wait for submitit jobs; one that died without recording its state (killed, out of
    memory) is reported in a line and shows as interrupted in the status table."""
    for job in submitted:
        try:
            job.result()
        except Exception as error:  # noqa: BLE001 - submitit raises whatever ended the job
            print(f"submitit job {job.job_id} ended abnormally: {str(error).splitlines()[0]}")


def run_grid(jobs: Sequence[GridJob], *, executor: str = "local", gpus: int = 0,
             timeout_min: int = 24 * 60,
             on_update: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Run every run of ``jobs`` that is not done and return the status table.

    ``executor``: "local" (one child process after another), "gpus" (submitit's local
    executor, one run per GPU, ``gpus`` of them), "submitit-local" (the same path a cluster
    takes, on this machine) or "slurm" (a Slurm job array). ``on_update`` gets the status
    table before the first run and after each one (notebook 06 redraws it).
    """
    if executor not in EXECUTORS:
        raise UserError(f"Unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}.")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise UserError(f"GPUS must be a whole number of at least 0, not {gpus!r}.")
    if not jobs:
        raise UserError("The grid has no runs: name at least one framework, scenario and seed.")
    status = grid_status(jobs)
    todo = [j for j, s in zip(jobs, status["state"]) if s != "done"]
    print(f"Grid of {len(jobs)} runs: {summary(status)}.", flush=True)
    if on_update is not None:
        on_update(status)
    if executor == "local" or (executor == "gpus" and gpus == 0):  # no GPU: one after another
        with tqdm(todo, desc="grid", unit="run") as bar:
            for job in bar:
                bar.set_postfix_str(job.name)
                _run_in_process(job)
                if on_update is not None:
                    on_update(grid_status(jobs))
    elif todo:
        folder = grid_dir(todo[0].layout) / "submitit"
        cluster = "slurm" if executor == "slurm" else "local"
        _submitit(todo, folder, cluster, gpus, timeout_min)
    status = grid_status(jobs)
    if on_update is not None:
        on_update(status)
    print(f"Grid: {summary(status)}.", flush=True)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers.training.grid",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="chest_xray")
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--frameworks", default="pytorch", help="keras, pytorch or both: keras,pytorch")
    parser.add_argument("--scenarios", default="all", help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--seeds", default=None,
                        help="42, 42,43 or [42,43]; default: the profile's seeds")
    parser.add_argument("--imbalance", default=NATURAL,
                        help="natural and/or ratios r (minority kept at 1 : r), e.g. natural,10,30")
    parser.add_argument("--root", default="", help="the folder notebooks 01-05 wrote to")
    parser.add_argument("--executor", default="local", choices=EXECUTORS)
    parser.add_argument("--gpus", type=int, default=0, help="GPUs for --executor gpus or slurm")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="a profile field, e.g. -p WEIGHTS=none (repeatable)")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # one run, in this process
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from helpers.notebook.run import parse_parameters  # the notebook runner's KEY=VALUE parsing

    args = build_parser().parse_args(argv)
    if args.job:
        return 0 if run_job(GridJob.from_json(args.job))["state"] == "done" else 1
    try:
        jobs = plan_grid(args.dataset, args.profile, frameworks=args.frameworks,
                         scenarios=args.scenarios, seeds=args.seeds, root=args.root,
                         imbalance=args.imbalance, **parse_parameters(args.parameter))
        status = run_grid(jobs, executor=args.executor, gpus=args.gpus)
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    print(status.drop(columns="run").to_string(index=False))
    return 0 if not (status["state"] == "failed").any() else 1


if __name__ == "__main__":
    sys.exit(main())
