"""Two-phase transfer learning of the PyTorch ResNet50, resumable after every epoch.

The Keras baseline's protocol: per phase a fresh Adam on the phase's trainable
parameters, ReduceLROnPlateau on val_loss (factor 0.5, min 1e-7) and early stopping on
val_loss; phase 2 starts from phase 1's best weights, and the run ends with the best
weights on validation across both phases (``best.pt``). ``last.pt`` holds everything
needed to continue after the last finished epoch; the loaders need no state, because
each epoch's shuffle and augmentation depend on (seed, epoch) alone.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from tqdm import tqdm

from .config import Profile
from .errors import UserError
from .model_data import HISTORY_COLUMNS
from .torch_data import TorchData
from .torch_models import (PHASE2_TRAINS, ResNet50Classifier, adam, amp_dtype, build_model,
                           configure_phase, grad_scaler, is_pretrained, phase1_trains,
                           predict_logits, seed_torch, to_device, train_step)

RUN = "torch_baseline"
MIN_LR = 1e-7
_SETTINGS = ("weights", "image_size", "batch_size", "epochs_head", "epochs_finetune", "lr_head",
             "lr_finetune", "patience", "lr_patience")


@dataclass
class EarlyStopping:
    """Keras ``EarlyStopping(val_loss, min_delta=0)``: stop after ``patience`` epochs
    without improvement."""

    patience: int
    best: float = math.inf
    wait: int = 0

    def update(self, val_loss: float) -> None:
        if val_loss < self.best:
            self.best, self.wait = val_loss, 0
        else:
            self.wait += 1

    @property
    def stop(self) -> bool:
        return self.wait >= self.patience


@dataclass(frozen=True)
class TrainResult:
    """The best model on validation (in eval mode), the history and where the checkpoints are."""

    model: ResNet50Classifier
    history: pd.DataFrame
    best_epoch: int
    checkpoint_dir: Path

    def config(self) -> dict[str, Any]:
        """What the run's config.json should record about training (as the Keras side)."""
        best = self.history.set_index("epoch").loc[self.best_epoch]
        return {"best_epoch": self.best_epoch, "best_phase": int(best["phase"]),
                "best_val_loss": float(best["val_loss"]),
                "checkpoint": str(self.checkpoint_dir / "best.pt"),
                "phase1_trains": phase1_trains(self.model), "phase2_trains": PHASE2_TRAINS}


def _save(obj: dict[str, Any], path: Path) -> None:
    """torch.save that never leaves a half-written file behind."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), NumPy and Python RNG states, in types ``weights_only`` loads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def _run_settings(profile: Profile, seed: int, loss_fn: nn.Module,
                 train_images: int) -> dict[str, Any]:
    """What decides a run's result; a checkpoint only resumes a run with the same settings."""
    return {**{k: getattr(profile, k) for k in _SETTINGS}, "seed": seed, "loss": repr(loss_fn),
            "train_images": train_images}


def _resume_state(directory: Path, settings: dict[str, Any], resume: bool) -> dict[str, Any] | None:
    """The last checkpoint to continue from, or None (``resume`` False: delete old checkpoints)."""
    last = directory / "last.pt"
    if not resume:
        for name in ("last.pt", "best.pt"):
            (directory / name).unlink(missing_ok=True)
    if not last.exists():
        return None
    state = _load(last)
    changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
    if changed:
        raise UserError(f"The checkpoint in {directory} was trained with other settings "
                        f"({', '.join(changed)}): pass RESUME=False to start this run afresh.")
    return state


def _metrics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Accuracy at logit 0 (probability 0.5) and ROC-AUC (NaN with one class only)."""
    y = labels.cpu().numpy()
    accuracy = float(((logits > 0).float() == labels).float().mean())
    auc = roc_auc_score(y, logits.float().cpu().numpy()) if len(np.unique(y)) == 2 else math.nan
    return accuracy, float(auc)


@dataclass
class _Phase:
    """The optimiser, scheduler, scaler and stopper of one phase (fresh for each phase)."""

    optimizer: torch.optim.Optimizer
    scheduler: ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    stopper: EarlyStopping

    @classmethod
    def start(cls, params: list[nn.Parameter], lr: float, profile: Profile,
              device: torch.device) -> "_Phase":
        optimizer = adam(params, lr, device)
        # Keras reduces after `patience` bad epochs, torch after more than `patience`;
        # Keras' min_delta 1e-4 is an absolute threshold.
        scheduler = ReduceLROnPlateau(optimizer, factor=0.5, patience=profile.lr_patience - 1,
                                      threshold=1e-4, threshold_mode="abs", min_lr=MIN_LR)
        return cls(optimizer, scheduler, grad_scaler(device), EarlyStopping(profile.patience))

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "stopper": asdict(self.stopper)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.stopper = EarlyStopping(**state["stopper"])


def _fit_epoch(model: ResNet50Classifier, data: TorchData, state: _Phase, loss_fn: nn.Module,
               epoch: int, phase: int) -> dict[str, Any]:
    """Train one epoch, validate, and return its history row (tqdm bar with the results)."""
    train = data.batches["train"]
    amp = amp_dtype(train.device)
    lr = state.optimizer.param_groups[0]["lr"]
    model.train()
    losses, logits, labels = [], [], []
    with tqdm(total=len(train), desc=f"epoch {epoch} (phase {phase})", unit="batch",
              mininterval=2) as bar:
        for images, y in train.epoch(epoch):
            loss, out = train_step(model, images, y, loss_fn, state.optimizer, state.scaler, amp)
            losses.append(loss * len(y))
            logits.append(out)
            labels.append(y)
            bar.update()
        val_logits, val_labels = predict_logits(model, data.batches["val"].epoch(), amp)
        accuracy, auc = _metrics(torch.cat(logits), torch.cat(labels))
        val_accuracy, val_auc = _metrics(val_logits, val_labels)
        row = {"epoch": epoch, "phase": phase,
               "loss": float(torch.stack(losses).sum()) / sum(len(y) for y in labels),
               "val_loss": float(loss_fn(val_logits, val_labels)), "lr": lr,
               "accuracy": accuracy, "val_accuracy": val_accuracy, "auc": auc, "val_auc": val_auc}
        bar.set_postfix({k: f"{row[k]:.4g}" for k in ("loss", "val_loss", "val_auc", "lr")})
    return row


def _enter_phase(model: ResNet50Classifier, phase: int, lr: float, profile: Profile,
                 directory: Path, resumed: dict[str, Any] | None) -> tuple[_Phase, int]:
    """The phase's state and its epochs done: fresh, with phase 2 starting from the best
    weights so far, or, resuming inside this phase, the weights, states and RNGs of last.pt."""
    device = next(model.parameters()).device
    state = _Phase.start(configure_phase(model, phase), lr, profile, device)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        state.load_state_dict(resumed)
        _set_rng_state(resumed["rng"])
        return state, resumed["phase_epochs"]
    if phase == 2 and (directory / "best.pt").exists():
        model.load_state_dict(_load(directory / "best.pt")["model"])
    return state, 0


def train(data: TorchData, profile: Profile, *, seed: int, checkpoint_dir: str | Path,
          loss: nn.Module | None = None, resume: bool = True,
          on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train the classifier in two phases on ``data`` (see the module docstring).

    ``loss`` defaults to BCEWithLogitsLoss; ``resume`` continues from ``last.pt`` in
    ``checkpoint_dir`` when there is one (False starts afresh); ``on_epoch_end`` gets each
    epoch's history row after its checkpoint is written. A phase with 0 epochs is skipped.
    """
    if profile.epochs_head <= 0 and profile.epochs_finetune <= 0:
        raise UserError("Both EPOCHS_HEAD and EPOCHS_FINETUNE are 0: set at least one above 0.")
    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    device = data.batches["train"].device
    loss_fn = (loss if loss is not None else nn.BCEWithLogitsLoss()).to(device)
    settings = _run_settings(profile, seed, loss_fn, len(data.arrays["train"]))
    resumed = _resume_state(directory, settings, resume)
    seed_torch(seed, device)
    model = to_device(ResNet50Classifier(is_pretrained(profile.weights)) if resumed
                      else build_model(profile.weights), device)
    history: list[dict[str, Any]] = list(resumed["history"]) if resumed else []
    print(f"Phase 1 trains {phase1_trains(model)}; phase 2 {PHASE2_TRAINS}.")
    for phase, epochs, lr in ((1, profile.epochs_head, profile.lr_head),
                              (2, profile.epochs_finetune, profile.lr_finetune)):
        if resumed and resumed["phase"] > phase:
            continue
        state, done = _enter_phase(model, phase, lr, profile, directory, resumed)
        resumed = None
        while done < epochs and not state.stopper.stop:
            row = _fit_epoch(model, data, state, loss_fn, len(history) + 1, phase)
            if row["val_loss"] < min((r["val_loss"] for r in history), default=math.inf):
                _save({"model": model.state_dict(), "epoch": row["epoch"]}, directory / "best.pt")
            history.append(row)
            state.scheduler.step(row["val_loss"])
            state.stopper.update(row["val_loss"])
            done += 1
            _save({"settings": settings, "phase": phase, "phase_epochs": done, "history": history,
                   "model": model.state_dict(), "rng": _rng_state(), **state.state_dict()},
                  directory / "last.pt")
            if on_epoch_end is not None:
                on_epoch_end(row)
    best = _load(directory / "best.pt")
    model.load_state_dict(best["model"])
    model.eval()
    history_frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    return TrainResult(model, history_frame, best["epoch"], directory)


def predict_split(model: nn.Module, data: TorchData, split: str) -> pd.DataFrame:
    """path, label_id, probability for every image of ``split`` (the evaluation module's input)."""
    batches = data.batches[split]
    logits, _ = predict_logits(model, batches.epoch(), amp_dtype(batches.device))
    arrays = data.arrays[split]
    return pd.DataFrame({"path": arrays.paths, "label_id": arrays.labels,
                         "probability": torch.sigmoid(logits.double()).cpu().numpy()})
