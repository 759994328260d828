"""Faults injected on purpose, one test (or more) per finding, each showing what happens now.

1. A damaged split (cut, edited, garbage, its record missing) stops every reader with one
   sentence naming the file: no model trains on fewer rows.
2. Two grids on one root train a run once; the other skips it and both exit 0.
3. A damaged cached image is removed and named, so notebook 02 writes it again (no loop).
4. A damaged file the pipeline wrote is one sentence naming it, and a run whose results
   file is damaged is not done.
5. A copied root reads its own weights.
10. A run that finished with other settings is kept.

Elsewhere, by the process split or the module they test: damaged checkpoints and weights
(tests/torch/test_torch_checkpoints.py, tests/keras/test_keras_models.py), a synthetic
image cut short (tests/core/test_synthetic.py), an upload of 13,000 x 13,000 pixels and
tiny images (tests/app/), bad parameters (tests/core/test_config.py, test_setup.py,
test_run.py, test_grid.py), stale temporary files and a cached PNG cut short
(tests/core/test_preprocessing.py), a lock of a killed process (tests/core/test_locks.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_run_folder import SETTINGS, write_run  # tests/core: the run folder's writer

from helpers.config import Layout
from helpers.data.arrays import load_arrays, read_split_rows
from helpers.data.preprocessing import complete_png
from helpers.errors import UserError
from helpers.locks import lock_path
from helpers.training.grid import job_state, plan_grid
from helpers.training.run_folder import RunFolder, recorded_path
from helpers.training.runs import RunSpec, keep_finished


def test_a_split_cut_short_is_never_trained_on(fresh_layout: Layout) -> None:
    lines = fresh_layout.split_csv.read_text().splitlines(keepends=True)
    fresh_layout.split_csv.write_text("".join(lines[: int(len(lines) * 0.6)]))
    with pytest.raises(UserError, match=r"does not match its record \(47 rows where 80.*"
                                        r"run notebook 02 again"):
        read_split_rows(fresh_layout, "train")
    with pytest.raises(UserError, match="does not match its record"):
        load_arrays(fresh_layout, "test", 32)


def test_a_csv_without_its_record_says_so(fresh_layout: Layout) -> None:
    fresh_layout.split_config.unlink()
    with pytest.raises(UserError, match="has no record chest_xray.json|has no record toy.json"):
        read_split_rows(fresh_layout, "train")


def test_garbage_in_the_csv_names_the_file(fresh_layout: Layout) -> None:
    record = json.loads(fresh_layout.split_config.read_text())
    for key in ("csv_rows", "csv_md5"):  # a record an older version wrote
        record.pop(key)
    fresh_layout.split_config.write_text(json.dumps(record))
    read_split_rows(fresh_layout, "train")  # an older record is taken as it is
    fresh_layout.split_csv.write_text("\x00garbage;;\nnot,a,split\n")
    with pytest.raises(UserError, match=f"{fresh_layout.split_csv} is damaged.*notebook 02"):
        read_split_rows(fresh_layout, "train")


def test_a_damaged_cached_image_is_removed_and_named_so_notebook_02_rebuilds_it(
        fresh_layout: Layout) -> None:
    processed = fresh_layout.root / "data" / "processed"
    shared = processed.resolve()
    processed.unlink()  # a cache of its own: the shared one stays whole for other tests
    shutil.copytree(shared, processed)
    image = fresh_layout.cache_path(read_split_rows(fresh_layout, "val")["path"][0], 32)
    image.write_bytes(image.read_bytes()[:200])  # cut short, as by a crash
    assert not complete_png(image)
    with pytest.raises(UserError, match=f"could not be read \\(first: {image}\\) and were "
                                        "removed: run notebook 02"):
        load_arrays(fresh_layout, "val", 32)
    assert not image.exists()  # so notebook 02 writes it again instead of skipping it


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


def test_a_damaged_results_file_makes_the_run_not_done_and_names_the_file(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run", SETTINGS)
    (path / "metrics.json").write_text('{"youden_thr')
    folder = RunFolder(path)
    assert not folder.done and not folder.trained_with(SETTINGS)  # so it is trained again
    with pytest.raises(UserError, match=f"{path / 'metrics.json'} is damaged.*delete the folder"):
        _ = folder.metrics


def test_the_checkpoint_is_read_under_the_folder_s_own_root(tmp_path: Path) -> None:
    original = tmp_path / "original"
    run = original / "results" / "toy" / "runs" / "r"
    weights = original / "checkpoints" / "toy" / "runs" / "r" / "best.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"original")
    write_run(run, SETTINGS)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(
        {**config, "checkpoint": recorded_path(weights, original)}))
    assert json.loads((run / "config.json").read_text())["checkpoint"] == \
        "checkpoints/toy/runs/r/best.pt"
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    (copy / "checkpoints" / "toy" / "runs" / "r" / "best.pt").write_bytes(b"copy")
    assert RunFolder(copy / "results" / "toy" / "runs" / "r").checkpoint.read_bytes() == b"copy"
    assert RunFolder(run).checkpoint == weights
    # an absolute path an older version recorded is read under the copy's root too
    (copy / "results" / "toy" / "runs" / "r" / "config.json").write_text(json.dumps(
        {**config, "checkpoint": str(weights)}))
    assert RunFolder(copy / "results" / "toy" / "runs" / "r").checkpoint.read_bytes() == b"copy"


def test_the_grid_counts_a_run_with_a_damaged_metrics_file_as_to_do(fresh_layout: Layout) -> None:
    job = plan_grid("toy", "smoke", frameworks="pytorch", scenarios="baseline",
                    root=str(fresh_layout.root))[0]
    folder = fresh_layout.results(job.name)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"settings": {}}))
    (folder / "metrics.json").write_text("not json")
    job.status_file.parent.mkdir(parents=True)
    job.status_file.write_text(json.dumps({"state": "done", "started": 0, "ended": 1}))
    assert job_state(job)["state"] == "to do"
