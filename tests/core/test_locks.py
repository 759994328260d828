"""One process at a time on a run or a root's data phase: a held lock names its holder, a
dead holder's lock is free at once, and two grids on one root train each run once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.config import Layout
from helpers.errors import UserError
from helpers.locks import Busy, holding, lock_path
from helpers.training.grid import plan_grid
from helpers.training.runs import RunSpec, keep_finished


def _holder(layout: Layout, name: str) -> subprocess.Popen:
    """Another process that takes the lock and keeps it until it is killed."""
    code = ("import sys, time\n"
            "from helpers.config import Layout\n"
            "from helpers.locks import hold\n"
            f"hold(Layout.of({layout.dataset!r}, {str(layout.root)!r}), {name!r}, 'x')\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_names_its_holder_and_a_dead_holder_s_lock_is_free(tmp_path: Path) -> None:
    layout = Layout.of("toy", tmp_path)
    holder = _holder(layout, "run-a")
    try:
        with pytest.raises(Busy, match=f"Training run-a is in progress in another process "
                                       f"\\(pid {holder.pid} on .* since \\d\\d:\\d\\d\\)"), \
                holding(layout, "run-a", "Training run-a"):
            pass
        with holding(layout, "run-b", "Training run-b"):  # another name is another lock
            pass
    finally:
        holder.kill()  # killed: no clean-up of its own
        holder.wait()
    # the dead holder's lock is taken over; taking it again within a process is a no-op
    with holding(layout, "run-a", "Training run-a"), holding(layout, "run-a", "Training run-a"):
        note = json.loads(lock_path(layout, "run-a").with_suffix(".json").read_text())
        assert note["pid"] != holder.pid
    assert not lock_path(layout, "run-a").with_suffix(".json").exists()
    assert issubclass(Busy, UserError)  # a notebook shows it as one sentence


def test_two_grids_on_one_root_train_a_run_once(fresh_layout: Layout) -> None:
    job = plan_grid("toy", "smoke", frameworks="pytorch", scenarios="weighted",
                    root=str(fresh_layout.root))[0]
    command = [sys.executable, "-m", "helpers.training.grid", "--dataset", "toy", "--profile",
               "smoke", "--frameworks", "pytorch", "--scenarios", "weighted",
               "--root", str(fresh_layout.root)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    note = lock_path(fresh_layout, job.name).with_suffix(".json")
    deadline = time.monotonic() + 120
    while not note.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    second = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first.communicate()
    assert (first.returncode, second.returncode) == (0, 0)
    log = job.log_file.read_text()
    assert log.count(f"{job.name} on ") == 1  # trained once
    assert "is in progress in another process" in log or "finished already" in log
    assert json.loads(job.status_file.read_text())["state"] == "done"


def test_a_run_finished_with_other_settings_is_kept_unless_replaced_on_purpose(
        tmp_path: Path) -> None:
    layout = Layout.of("toy", tmp_path)
    spec = RunSpec("toy", "pytorch", "baseline", 42)
    folder = layout.results(spec.name)
    folder.mkdir(parents=True)
    settings = {"seed": 42, "epochs": 6, "image_size": 32}
    (folder / "config.json").write_text(json.dumps({"settings": settings}))
    (folder / "metrics.json").write_text(json.dumps({"roc_auc": 0.9}))
    keep_finished(layout, spec, settings)  # the same settings: nothing to keep apart
    with pytest.raises(UserError, match=f"{spec.name} finished already in {folder} with other "
                                        "settings \\(epochs\\): pass RESUME=False to replace it"):
        keep_finished(layout, spec, {**settings, "epochs": 1})
