"""Checkpoint files of the PyTorch side: atomic writes under names unique to the process,
and a damaged file read as one sentence that names it.

Runs in a process of its own (TensorFlow and torch never share one): ``pytest tests/torch/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.errors import UserError
from helpers.torch.checkpoints import load_checkpoint, save_checkpoint


def test_a_checkpoint_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint({"weights": torch.arange(6.0), "iteration": 3}, path)
    state = load_checkpoint(path)
    assert state["iteration"] == 3 and torch.equal(state["weights"], torch.arange(6.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_a_damaged_checkpoint_is_one_sentence_naming_it(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint({"weights": torch.randn(64, 64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(UserError, match=f"The checkpoint {path} is damaged .*train the run again"):
        load_checkpoint(path)
