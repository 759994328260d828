"""Shared fixtures: tiny real data (from the bundled sample) and a prepared layout.

The tests mirror the package's process split: ``tests/core`` (helpers' framework-free
subpackages, the notebooks), ``tests/keras``, ``tests/torch`` and ``tests/app``, each run
in a process of its own by ``tests/run_suites.py`` (TensorFlow >= 2.20 loaded before
Triton, which the CUDA build of torch pulls in, crashes the process: tensorflow issue
124205); nothing here imports either framework.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.config import SAMPLE_DIR, Layout
from helpers.data.split_file import write_split_file


@pytest.fixture(scope="session")
def tiny_chest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Kaggle-layout copy of 64 sample images (both classes in every official split),
    imbalanced like the real set: 24 NORMAL, 40 PNEUMONIA."""
    dst = tmp_path_factory.mktemp("tiny_chest")
    for split, counts in (("train", (16, 32)), ("val", (2, 2)), ("test", (6, 6))):
        for label, count in zip(("NORMAL", "PNEUMONIA"), counts):
            files = sorted((SAMPLE_DIR / "chest_xray" / split / label).iterdir())[:count]
            out = dst / "chest_xray" / split / label
            out.mkdir(parents=True)
            for f in files:
                shutil.copy(f, out / f.name)
    return dst


@pytest.fixture(scope="session")
def prepared_layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """A split CSV, its config and a 32 px cache written straight to the contract.

    Positive images carry a bright disc, negatives do not, so a model can learn them.
    """
    root = tmp_path_factory.mktemp("prepared")
    layout = Layout.of("toy", root)
    rng = np.random.default_rng(0)
    rows = []
    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 16) ** 2 + (xx - 16) ** 2 < 64
    for split, n in (("train", 48), ("val", 16), ("test", 16)):
        for i in range(n):
            label_id = int(i % 3 == 0)  # one in three positive: imbalanced
            img = rng.integers(0, 120, (32, 32), dtype=np.uint8)
            if label_id:
                img[disc] = 230
            rel = f"{split}/{'sick' if label_id else 'well'}/img{i:03d}.png"
            path = layout.cache_path(rel, 32)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
            rows.append({"path": rel, "label": "sick" if label_id else "well",
                         "label_id": label_id, "split": split, "group": f"{split}{i}",
                         "md5": f"{split}{i:030d}"})
    write_split_file(layout, pd.DataFrame(rows),
                     {"dataset": "toy", "data_dir": str(root), "positive_class": "sick",
                      "classes": {"well": 0, "sick": 1}, "protocol": "random", "seed": 42})
    return layout


@pytest.fixture
def fresh_layout(prepared_layout: Layout, tmp_path: Path) -> Layout:
    """A copy of the prepared layout's split files over its shared 32 px cache: a root of its
    own for tests that write runs."""
    copy = Layout.of("toy", tmp_path)
    for path in (prepared_layout.split_csv, prepared_layout.split_config):
        target = copy.root / path.relative_to(prepared_layout.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (copy.root / "data" / "processed").symlink_to(prepared_layout.root / "data" / "processed")
    return copy


def write_toy_run(root: Path, framework: str) -> Path:
    """A run of ``framework`` in the run format under ``root`` (``tests/toy_run.py``), written
    by a process of its own so that this one imports no framework; returns ``root``."""
    script = Path(__file__).with_name("toy_run.py")
    subprocess.run([sys.executable, str(script), str(root), framework], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(script.parent.parent)})
    return root


def read_curves(*folders: Path) -> dict[Path, dict[str, list[list[float]]]]:
    """The scalars of TensorBoard event folders, tag -> [step, value] points, read by
    TensorBoard's own reader in a process of its own (``tests/tensorboard_events.py``)."""
    script = Path(__file__).with_name("tensorboard_events.py")
    out = subprocess.run([sys.executable, str(script), *map(str, folders)], check=True,
                         capture_output=True, text=True)
    return {Path(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def assert_curves_hold_the_history(curves: dict[str, list[list[float]]], history: pd.DataFrame,
                                   step: str) -> None:
    """One curve per history column but ``step`` (and a classifier's ``phase``), one point
    per row: at step ``row[step]``, the row's value (TensorBoard keeps float32)."""
    assert sorted(curves) == sorted(c for c in history.columns if c not in (step, "phase"))
    for tag, points in curves.items():
        assert [p[0] for p in points] == history[step].tolist(), tag
        assert [p[1] for p in points] == pytest.approx(history[tag].tolist(), rel=1e-6,
                                                       nan_ok=True), tag


@pytest.fixture(scope="session")
def toy_run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding one PyTorch run in the run format."""
    return write_toy_run(tmp_path_factory.mktemp("toy_run"), "pytorch")
