"""Every notebook executed headless by the runner, smoke profile, on tiny real data; one
also cut off mid-training and continued cell by cell in a Jupyter kernel, as JupyterLab
runs it.

The notebooks run in kernels (processes of their own), so this file imports
neither TensorFlow nor torch even though notebooks 03 and 04 use them.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import psutil
import pytest
from nbclient import NotebookClient

from helpers.config import REPO_ROOT, Layout
from helpers.notebook.run import KERNEL_ARGUMENTS, NOTEBOOK_DIR, main

pytestmark = pytest.mark.notebook

# The smoke grid runs three of the seven scenarios in each framework: the focal loss on the
# synthetic set, oversampling and the baseline they are compared with; every loss (focal,
# weighted, LDAM) and every training set (real, synthetic, ros) has unit tests per framework,
# and the grid's planning and bookkeeping of all seven are tested in test_grid.
GRID = ("baseline", "wgan_focal", "ros")


def run(root: Path, data_dir: Path, notebooks: str, *extra: str) -> int:
    return main(["--dataset", "chest_xray", "--data-dir", str(data_dir), "--profile", "smoke",
                 "--root", str(root), "--notebooks", notebooks, *extra])


@pytest.fixture(scope="module")
def data_phase(tiny_chest: Path, tmp_path_factory: pytest.TempPathFactory) -> Layout:
    root = tmp_path_factory.mktemp("series")
    assert run(root, tiny_chest, "01,02") == 0
    return Layout.of("chest_xray", root)


def test_data_phase_writes_the_contract(data_phase: Layout, tiny_chest: Path) -> None:
    n_files = sum(1 for p in tiny_chest.rglob("*.jpeg"))
    split = pd.read_csv(data_phase.split_csv)
    assert list(split.columns) == ["path", "label", "label_id", "split", "group", "md5"]
    assert len(split) == n_files
    assert set(split["split"]) == {"train", "val", "test"}
    assert all(data_phase.cache_path(p, 32).exists() for p in split["path"])
    assert json.loads(data_phase.split_config.read_text())["data_dir"] == str(tiny_chest)
    audit = data_phase.reports("audit")
    assert {"thumbnails.npy", "near_copies.csv", "near_copy_calibration.csv",
            "near_copy_calibration.png"} <= {p.name for p in audit.iterdir()}
    report = data_phase.reports("preprocessing")
    check = json.loads((report / "leakage_check.json").read_text())["splits"]
    assert {s["split"] for s in check} == {"val", "test"}
    assert sum(s["within_threshold"] for s in check) == 0 and (report / "closest_pairs.png").exists()
    for name in ("01_download_data", "02_preprocessing"):
        assert (data_phase.executed_dir / f"{name}.ipynb").exists()
    assert (data_phase.executed_dir / "run.json").exists()


def test_data_phase_rerun_keeps_the_split_byte_identical(data_phase: Layout, tiny_chest: Path,
                                                         capfd: pytest.CaptureFixture) -> None:
    before = data_phase.split_csv.read_bytes()
    assert run(data_phase.root, tiny_chest, "02") == 0
    assert data_phase.split_csv.read_bytes() == before
    assert "without encryption" not in capfd.readouterr().err  # kernel start-up noise is off


@pytest.mark.parametrize("number, run_name", [("03", "keras-baseline-scratch-seed42"),
                                              ("04", "pytorch-baseline-scratch-seed42")])
def test_model_notebook_writes_results(data_phase: Layout, tiny_chest: Path, number: str,
                                       run_name: str, capfd: pytest.CaptureFixture) -> None:
    assert run(data_phase.root, tiny_chest, number) == 0
    console = capfd.readouterr()
    assert "cuInit" not in console.err  # TensorFlow's C++ noise stays quiet
    assert re.search(r"(?m)^ {4}(Epoch 1/\d+|epoch 1 \(phase 1\): 100%)", console.out)  # progress
    assert "  cell 1/" in console.out and "| numpy " not in console.out  # versions: not progress
    out = data_phase.results(run_name)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["threshold_0.5"]["accuracy"] <= 1.0
    predictions = pd.read_csv(out / "predictions.csv")
    split = pd.read_csv(data_phase.split_csv)
    for part in ("test", "val"):
        assert sorted(predictions.loc[predictions["split"] == part, "path"]) == \
            sorted(split.loc[split["split"] == part, "path"])
    assert len(list(out.glob("*.png"))) >= 3
    assert json.loads((out / "config.json").read_text())["protocol"] == "scratch"
    for model in ("logreg", "knn"):  # the pixel reference beside it
        reference = data_phase.results(f"sklearn-pixel_{model}-pixels32-seed42")
        assert (reference / "metrics.json").exists()


def test_gan_notebook_balances_the_training_split(data_phase: Layout, tiny_chest: Path) -> None:
    assert run(data_phase.root, tiny_chest, "04,05", "-p", "INCEPTION=false") == 0
    split = pd.read_csv(data_phase.split_csv)
    counts = split[split["split"] == "train"]["label"].value_counts()
    manifest = pd.read_csv(data_phase.synthetic_dir(32) / "manifest.csv")
    assert len(manifest) == counts.max() - counts.min() > 0
    assert set(manifest["label"]) == {counts.idxmin()}
    out = data_phase.results("pytorch-wgan_gp-32px-seed42")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classifier"]["run"] == "pytorch-baseline-scratch-seed42"
    assert metrics["inception"]["status"] == "skipped"
    assert (out / "real_vs_synthetic.png").exists() and (out / "memorisation.png").exists()


def test_scenario_notebook_runs_the_smoke_grid_in_both_frameworks(data_phase: Layout,
                                                                 tiny_chest: Path) -> None:
    # 05 first (skipped when the GAN test made its set): wgan and wgan_focal need it
    assert run(data_phase.root, tiny_chest, "05,06", "-p", "INCEPTION=false",
               "-p", "FRAMEWORKS=keras,pytorch", "-p", f"SCENARIOS={','.join(GRID)}") == 0
    names = [f"{fw}-{sc}-scratch-seed42" for sc in GRID for fw in ("keras", "pytorch")]
    for name in names:
        out = data_phase.results(name)
        config = json.loads((out / "config.json").read_text())
        predictions = pd.read_csv(out / "predictions.csv")
        assert set(predictions["split"]) == {"test", "val"}
        synthetic = sum(config["training_rows"]["synthetic"].values())
        assert (synthetic > 0) == ("wgan" in name), name
    split = pd.read_csv(data_phase.split_csv)
    counts = split[split["split"] == "train"]["label_id"].value_counts()
    rows = json.loads((data_phase.results("pytorch-wgan_focal-scratch-seed42") / "config.json")
                      .read_text())["training_rows"]
    assert rows["real"]["0"] + rows["synthetic"]["0"] == rows["real"]["1"] + rows["synthetic"]["1"]
    assert rows["real"] == {str(k): int(v) for k, v in counts.items()}
    grid = data_phase.root / "results" / "chest_xray" / "grid"
    assert len(list((grid / "logs").glob("*.log"))) >= len(names) - 2  # 03/04's baselines skipped


def test_comparison_notebook_reads_the_grid_and_writes_tables_figures_findings(
        data_phase: Layout, tiny_chest: Path) -> None:
    # 05 and 06 are read back (finished runs are skipped) when the grid test ran before
    assert run(data_phase.root, tiny_chest, "05,06,07", "-p", "INCEPTION=false",
               "-p", "FRAMEWORKS=keras,pytorch", "-p", f"SCENARIOS={','.join(GRID)}",
               "-p", "N_BOOT=200") == 0
    out = data_phase.reports("comparison")
    findings = (out / "findings.md").read_text()
    for fw in ("keras", "pytorch"):
        assert f"# Findings: {fw}, each run's Youden threshold" in findings
        assert f"# Findings: {fw}, threshold 0.5" in findings
        for rule in ("youden", "t05"):
            table = pd.read_csv(out / f"{fw}_{rule}_thesis_table.csv", index_col=0)
            assert list(table.index) == list(GRID), (fw, rule)
            assert "\\toprule" in (out / f"{fw}_{rule}_hypotheses.tex").read_text()
            assert (out / f"{fw}_{rule}_roc.pdf").is_file()
        # where each scenario looks: the Grad-CAM grid and the region scores
        assert (out / f"gradcam_{fw}.png").is_file() and (out / f"gradcam_{fw}.pdf").is_file()
        regions = pd.read_csv(out / f"gradcam_regions_{fw}.csv", index_col=0)
        assert list(regions.index) == list(GRID), fw
        assert regions["region_score_mean"].dropna().between(0, 1).all(), fw
        assert "region_score_mean" in (out / f"gradcam_regions_{fw}.md").read_text()
    executed = (data_phase.executed_dir / "07_comparison_tables.ipynb").read_text()
    assert "supported" in executed and "Grad-CAM region score per scenario" in executed
    assert "Traceback" not in executed


def test_an_imbalance_ratio_runs_end_to_end_through_02_05_06_07(data_phase: Layout,
                                                                tiny_chest: Path) -> None:
    # the natural runs of the tests above are skipped; ratio 4 is trained from 02 to 07
    split_before = data_phase.split_csv.read_bytes()
    scenarios = ("baseline", "wgan_focal")  # ros at a ratio: tests/core/test_imbalance.py
    assert run(data_phase.root, tiny_chest, "02,05,06,07", "-p", "IMBALANCE=natural,4",
               "-p", "INCEPTION=false", "-p", "FRAMEWORKS=pytorch", "-p", "THRESHOLDS=youden",
               "-p", f"SCENARIOS={','.join(scenarios)}", "-p", "N_BOOT=200") == 0
    assert data_phase.split_csv.read_bytes() == split_before  # val and test untouched
    kept = pd.read_csv(data_phase.imbalanced_csv("4"))
    counts = kept["label_id"].value_counts()
    assert set(kept["split"]) == {"train"} and counts[1] / counts[0] >= 3
    manifest = pd.read_csv(data_phase.synthetic_dir(32, "4") / "manifest.csv")
    assert len(manifest) == counts[1] - counts[0]  # the GAN balances the subsampled split
    for scenario in scenarios:
        config = json.loads((data_phase.results(f"pytorch-{scenario}-scratch-seed42-r4")
                             / "config.json").read_text())
        assert config["imbalance"] == "4"
        assert config["imbalance_ratio"] == pytest.approx(counts[1] / counts[0])
        rows = config["training_rows"]
        if scenario == "baseline":
            assert rows["real"] == {str(k): int(v) for k, v in counts.items()}
        else:  # the synthetic set balances the subsampled rows
            total = {c: rows["real"][c] + rows.get("synthetic", {}).get(c, 0) for c in "01"}
            assert total["0"] == total["1"] == counts[1], scenario
    assert data_phase.results("sklearn-pixel_logreg-pixels32-seed42-r4").is_dir()
    out = data_phase.reports("comparison")
    assert (out / "pytorch_youden_r4_pixel_reference.csv").is_file()
    table = pd.read_csv(out / "pytorch_youden_r4_thesis_table.csv", index_col=0)
    assert list(table.index) == list(scenarios)
    gains = pd.read_csv(out / "pytorch_gain_by_ratio.csv")
    assert set(gains["imbalance"].astype(str)) == {"natural", "4"}
    assert set(gains.loc[gains["imbalance"].astype(str) == "4", "scenario"]) == {"wgan_focal"}
    assert (out / "pytorch_gain_by_ratio.png").is_file()
    findings = (out / "findings.md").read_text()
    assert "imbalance ratio 4 (training majority:minority" in findings
    assert "# Across imbalance ratios: pytorch" in findings


def run_cell_by_cell(notebook: Path, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """Execute ``notebook``'s code cells one at a time in a python3 kernel started in its
    folder, as JupyterLab does (no papermill), with ``parameters`` typed into a cell after
    the parameters cell, as a user would edit it."""
    nb = nbformat.read(notebook, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    typed = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(typed))
    client = NotebookClient(nb, kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS,
                            resources={"metadata": {"path": str(notebook.parent)}})
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, i)
    return nb


def test_a_run_cut_off_mid_training_continues_cell_by_cell_to_the_headless_result(
        data_phase: Layout, tiny_chest: Path, tmp_path: Path) -> None:
    # As after a Colab disconnect: the runtime is gone, ROOT (on Drive there) keeps the
    # checkpoint; notebook 04, opened again and run cell by cell in a kernel as JupyterLab
    # does, continues the run and ends exactly where the uninterrupted headless run ended.
    drive = Layout.of("chest_xray", tmp_path / "drive")
    shutil.copytree(data_phase.root / "data", drive.root / "data")  # the same split and cache
    assert run(data_phase.root, tiny_chest, "04") == 0  # headless (skipped if a test ran it)
    name = "pytorch-baseline-scratch-seed42"
    last = drive.checkpoints(name) / "last.pt"
    runner = subprocess.Popen([sys.executable, "-m", "helpers.notebook.run", "--dataset", "chest_xray",
                               "--data-dir", str(tiny_chest), "--profile", "smoke", "--root",
                               str(drive.root), "--notebooks", "04"],
                              cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not last.exists() and runner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in [*psutil.Process(runner.pid).children(recursive=True), psutil.Process(runner.pid)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()  # the kernel with the runner: the runtime recycled
    runner.wait()
    assert last.exists() and not (drive.results(name) / "metrics.json").exists()

    nb = run_cell_by_cell(NOTEBOOK_DIR / "04_pytorch_resnet50_port.ipynb",
                          {"PROFILE": "smoke", "DATASET": "chest_xray", "DATA_DIR": str(tiny_chest),
                           "ROOT": str(drive.root), "SEED": 42})
    setup = next(c for c in nb.cells if "setup" in c.metadata.get("tags", []))
    assert [o.text for o in setup.outputs] == [
        f"Not on Colab: nothing to set up (ROOT = {drive.root}).\n"]
    said = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    done_before = int(re.search(r"Continuing the interrupted run from .* after epoch (\d+)", said)[1])
    history = pd.read_csv(drive.results(name) / "history.csv")
    assert done_before >= 1 and list(history["epoch"]) == list(range(1, len(history) + 1))
    assert len(history) >= done_before and not last.exists()
    for run_name in (name, "sklearn-pixel_logreg-pixels32-seed42", "sklearn-pixel_knn-pixels32-seed42"):
        metrics = [json.loads((layout.results(run_name) / "metrics.json").read_text())
                   for layout in (drive, data_phase)]
        assert metrics[0] == metrics[1], run_name


def test_bad_data_dir_stops_with_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, tmp_path / "does-not-exist", "01") == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: 01_download_data: ")
    assert "Traceback" not in err

