"""A notebook run cell by cell in a real Jupyter kernel, as JupyterLab runs it (no
papermill), gives the same metrics as the headless runner with the same parameters.

The kernels are processes of their own, so this file imports neither TensorFlow nor torch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.config import Layout
from helpers.run import KERNEL_ARGUMENTS, NOTEBOOK_DIR, main

pytestmark = pytest.mark.notebook
RUNS = ("pytorch-baseline-scratch-seed42", "sklearn-pixel_logreg-pixels32-seed42",
        "sklearn-pixel_knn-pixels32-seed42")


def run_cell_by_cell(notebook: Path, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """Execute ``notebook``'s code cells one at a time in a python3 kernel started in its
    folder, with ``parameters`` typed into a cell after the parameters cell (as a user
    would edit it)."""
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


def metrics(layout: Layout) -> dict[str, Any]:
    return {run: json.loads((layout.results(run) / "metrics.json").read_text()) for run in RUNS}


def test_cell_by_cell_in_a_kernel_gives_the_headless_metrics(
        tiny_chest: Path, tmp_path: Path) -> None:
    headless = Layout.of("chest_xray", tmp_path / "headless")
    common = ["--dataset", "chest_xray", "--data-dir", str(tiny_chest), "--profile", "smoke"]
    assert main([*common, "--root", str(headless.root), "--notebooks", "01,02"]) == 0
    by_hand = Layout.of("chest_xray", tmp_path / "by_hand")
    shutil.copytree(headless.root / "data", by_hand.root / "data")  # the same split and cache
    assert main([*common, "--root", str(headless.root), "--notebooks", "04"]) == 0

    nb = run_cell_by_cell(NOTEBOOK_DIR / "04_pytorch_resnet50_port.ipynb",
                          {"PROFILE": "smoke", "DATASET": "chest_xray", "DATA_DIR": str(tiny_chest),
                           "ROOT": str(by_hand.root), "SEED": 42})
    setup = next(c for c in nb.cells if "setup" in c.metadata.get("tags", []))
    said = [o.text for o in setup.outputs]
    assert said == [f"Not on Colab: nothing to set up (ROOT = {by_hand.root}).\n"]
    assert metrics(by_hand) == metrics(headless)
