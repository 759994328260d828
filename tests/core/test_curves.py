"""A run's TensorBoard curves (``helpers.training.curves``): written without a framework, and
served by TensorBoard itself with one point per step, after a resume as after a fresh start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest

from helpers.config import Layout
from helpers.training.curves import EVENT_FILES, Curves


def write_session(folder: Path, losses: dict[int, float]) -> None:
    """One training session's curve: ``loss`` at each epoch, in order."""
    with Curves(folder, "epoch", ["loss"]) as curves:
        for epoch, loss in losses.items():
            curves({"epoch": epoch, "loss": loss})


def test_writing_curves_imports_no_framework(tmp_path: Path) -> None:
    code = ("import sys\nfrom pathlib import Path\nfrom helpers.training.curves import Curves\n"
            f"with Curves(Path({str(tmp_path)!r}), 'epoch', ['loss']) as curves:\n"
            "    curves({'epoch': 1, 'loss': 0.5})\n"
            "print(sorted(k for k in ('tensorflow', 'torch', 'keras') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert len(list(tmp_path.glob(EVENT_FILES))) == 1


def test_nothing_written_opens_no_file(tmp_path: Path) -> None:
    with Curves(tmp_path / "tensorboard", "epoch", ["loss"]):
        pass
    assert not (tmp_path / "tensorboard").exists()


@contextmanager
def tensorboard(logdir: Path) -> Iterator[str]:
    """TensorBoard over ``logdir`` on a free localhost port (the system picks it); its
    address once it serves. With ``--reload_task=blocking`` it reads the whole folder before
    it serves, so its first answer holds every point. Killed on the way out."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
         "--port", "0", "--load_fast=false", "--reload_interval=0", "--reload_task=blocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        said = []
        for line in server.stderr:  # ends when the server exits
            said.append(line)
            serving = re.search(r"TensorBoard \S+ at (http://\S+)", line)
            if serving:
                yield serving.group(1)
                return
        raise AssertionError("TensorBoard stopped before serving:\n" + "".join(said))
    finally:
        server.kill()
        server.wait()


def get_json(url: str) -> Any:
    with urlopen(url, timeout=60) as answer:
        return json.load(answer)


def test_tensorboard_serves_each_runs_curve_one_point_per_epoch(tmp_path: Path) -> None:
    layout = Layout.of("toy", tmp_path)
    resumed, afresh = "pytorch-baseline-scratch-seed1", "keras-baseline-scratch-seed1"
    write_session(layout.tensorboard(resumed), {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.65})
    write_session(layout.tensorboard(resumed), {3: 0.6, 4: 0.5, 5: 0.4})  # 3 and 4 replayed
    write_session(layout.tensorboard(afresh), {1: 0.9, 2: 0.8, 3: 0.7})
    write_session(layout.tensorboard(afresh), {1: 0.3, 2: 0.2})  # trained again from the start
    assert len(list(layout.tensorboard(resumed).glob(EVENT_FILES))) == 2
    assert len(list(layout.tensorboard(afresh).glob(EVENT_FILES))) == 1
    with tensorboard(tmp_path / "results") as url:
        runs = get_json(f"{url}data/runs")
        shown = {run: get_json(f"{url}data/plugin/scalars/scalars?"
                               + urlencode({"run": run, "tag": "loss"})) for run in runs}
    assert sorted(runs) == [f"toy/runs/{afresh}/tensorboard", f"toy/runs/{resumed}/tensorboard"]
    expected = {resumed: {1: 0.9, 2: 0.8, 3: 0.6, 4: 0.5, 5: 0.4}, afresh: {1: 0.3, 2: 0.2}}
    for name, losses in expected.items():
        points = shown[f"toy/runs/{name}/tensorboard"]  # [wall time, step, value]
        assert [step for _, step, _ in points] == list(losses), name
        assert [value for _, _, value in points] == pytest.approx(list(losses.values())), name
