"""Checkpoint files of the PyTorch side: written atomically, read weights-only, with the
random-number states a resumed run needs (the classifier's and the GAN's training)."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helpers.errors import UserError
from helpers.io import temporary_name


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """torch.save that never leaves a half-written file behind."""
    tmp = temporary_name(path)  # unique per process: two writers never share one
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by ``save_checkpoint``, on the CPU, tensors and plain types only;
    a damaged file is one sentence naming it."""
    if not Path(path).is_file():
        raise UserError(f"No checkpoint at {path}: train the run (notebooks 04-06) first.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"The checkpoint {path} is damaged ({first}): delete it (and, for a "
                        f"finished run, its results folder) and train the run again.") from None


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), NumPy and Python RNG states, in types ``weights_only`` loads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def resume_checkpoint(last: Path, settings: dict[str, Any], resume: bool,
                      stale: tuple[Path, ...] = ()) -> dict[str, Any] | None:
    """The checkpoint ``last`` to continue from, or None. ``resume`` False deletes it and
    the ``stale`` files first; a checkpoint trained with other ``settings`` stops the run
    with a sentence."""
    if not resume:
        for path in (last, *stale):
            path.unlink(missing_ok=True)
    if not last.exists():
        return None
    state = load_checkpoint(last)
    changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
    if changed:
        raise UserError(f"The checkpoint {last} was trained with other settings "
                        f"({', '.join(changed)}): pass RESUME=False to start this run afresh.")
    return state
