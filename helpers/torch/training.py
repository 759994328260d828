"""Training of the PyTorch ResNet50 under either protocol, resumable after every epoch
(the mirror of ``helpers.keras.training``: the same names and signatures).

The phases come from ``helpers.training.protocols``: one phase over the whole network with AdamW
and a per-step warm-up + cosine schedule (scratch), or the thesis' two phases with Adam and
ReduceLROnPlateau (transfer). Every phase has a fresh optimiser, schedule and early stopping
on the profile's monitor (``protocols.monitor_mode``: val_auc or val_loss); phase 2 starts
from phase 1's best weights, and the run ends with the weights of the best epoch by the
monitor over all phases (``best.pt``, weights only). ``last.pt`` holds
everything needed to continue after the last finished epoch; the loaders need no state,
because each epoch's batches depend on (seed, epoch) alone.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau
from tqdm import tqdm

from helpers.config import Layout, Profile
from helpers.torch.checkpoints import (
    load_checkpoint,
    resume_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from helpers.torch.data import TorchData, load_datasets
from helpers.torch.losses import make_loss as make_loss  # a hook of runs.drive
from helpers.torch.models import (
    ResNet50Classifier,
    amp_dtype,
    build_model,
    configure_phase,
    grad_scaler,
    optimizer,
    predict_logits,
    set_seeds,
    to_device,
    train_step,
)
from helpers.torch.models import describe_device as describe_device  # hooks of runs.drive
from helpers.torch.models import pick_device as pick_device
from helpers.training.protocols import (
    HISTORY_COLUMNS,
    PLATEAU_MIN_LR,
    Phase,
    TrainResult,
    best_value,
    improves,
    is_pretrained,
    monitor_mode,
    protocol_for,
    require_best_weights,
    training_plan,
    training_settings,
    warmup_cosine_lr,
)
from helpers.training.runs import RunOutcome, RunSpec, drive


@dataclass
class EarlyStopping:
    """Keras ``EarlyStopping(monitor, mode=mode, min_delta=0)``: stop after ``patience``
    epochs without improvement in the direction ``mode`` ("max" or "min"); NaN is none."""

    patience: int
    mode: str
    best: float
    wait: int = 0

    @classmethod
    def start(cls, patience: int, mode: str) -> EarlyStopping:
        """A stopper that has seen nothing: its best is the mode's worst value."""
        return cls(patience, mode, best_value((), mode))

    def update(self, value: float) -> None:
        if improves(value, self.best, self.mode):
            self.best, self.wait = value, 0
        else:
            self.wait += 1

    @property
    def stop(self) -> bool:
        return self.wait >= self.patience


def _metrics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Accuracy at logit 0 (probability 0.5) and ROC-AUC (NaN with one class only, or with
    non-finite logits: a diverged run)."""
    y = labels.cpu().numpy()
    accuracy = float(((logits > 0).float() == labels).float().mean())
    defined = len(np.unique(y)) == 2 and bool(torch.isfinite(logits).all())
    auc = roc_auc_score(y, logits.float().cpu().numpy()) if defined else math.nan
    return accuracy, float(auc)


def _scheduler(opt: torch.optim.Optimizer, phase: Phase, profile: Profile,
               steps_per_epoch: int, mode: str) -> LRScheduler | ReduceLROnPlateau:
    """Per step warm-up + cosine (``protocols.warmup_cosine_lr``), or ReduceLROnPlateau on
    the monitor (``mode``: its direction)."""
    if phase.schedule == "warmup_cosine":
        return LambdaLR(opt, lambda step: warmup_cosine_lr(step, phase, steps_per_epoch) / phase.lr)
    # Keras reduces after `patience` bad epochs, torch after more than `patience`;
    # Keras' min_delta 1e-4 is an absolute threshold (in either mode).
    return ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=profile.lr_patience - 1,
                             threshold=1e-4, threshold_mode="abs", min_lr=PLATEAU_MIN_LR)


@dataclass
class _Phase:
    """The optimiser, scheduler, scaler and stopper of one phase (fresh for each phase)."""

    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler | ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    stopper: EarlyStopping

    @classmethod
    def start(cls, params: list[nn.Parameter], phase: Phase, profile: Profile,
              device: torch.device, steps_per_epoch: int, mode: str) -> _Phase:
        opt = optimizer(params, phase, device)
        return cls(opt, _scheduler(opt, phase, profile, steps_per_epoch, mode),
                   grad_scaler(device, amp_dtype(device, profile)),
                   EarlyStopping.start(profile.patience, mode))

    @property
    def per_step(self) -> bool:
        return not isinstance(self.scheduler, ReduceLROnPlateau)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "stopper": asdict(self.stopper)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.stopper = EarlyStopping(**state["stopper"])


def _fit_epoch(model: ResNet50Classifier, data: TorchData, state: _Phase, loss_fn: nn.Module,
               epoch: int, phase: int, amp: torch.dtype | None) -> dict[str, Any]:
    """Train one epoch, validate, and return its history row (tqdm bar with the results)."""
    train = data.batches["train"]
    lr = state.optimizer.param_groups[0]["lr"]
    model.train()
    losses, logits, labels = [], [], []
    with tqdm(total=len(train), desc=f"epoch {epoch} (phase {phase})", unit="batch",
              mininterval=2) as bar:
        for images, y in train.epoch(epoch):
            loss, out = train_step(model, images, y, loss_fn, state.optimizer, state.scaler, amp)
            if state.per_step:
                state.scheduler.step()
            losses.append(loss * len(y))
            logits.append(out)
            labels.append(y)
            bar.update()
        val_logits, val_labels = predict_logits(model, data.batches["val"].epoch(), amp)
        accuracy, auc = _metrics(torch.cat(logits), torch.cat(labels))
        val_accuracy, val_auc = _metrics(val_logits, val_labels)
        row = {"epoch": epoch, "phase": phase,
               "loss": float(torch.stack(losses).sum()) / sum(len(y) for y in labels),
               "val_loss": float(loss_fn(val_logits, val_labels)),
               "val_bce": float(F.binary_cross_entropy_with_logits(val_logits, val_labels)),
               "lr": lr,
               "accuracy": accuracy, "val_accuracy": val_accuracy, "auc": auc, "val_auc": val_auc}
        bar.set_postfix({k: f"{row[k]:.4g}" for k in ("loss", "val_loss", "val_auc", "lr")})
    return row


def _enter_phase(model: ResNet50Classifier, phase: Phase, profile: Profile, directory: Path,
                 resumed: dict[str, Any] | None, steps_per_epoch: int, mode: str
                 ) -> tuple[_Phase, int]:
    """The phase's state (stopper and plateau in the monitor's direction ``mode``) and its
    epochs done: fresh, with a later phase starting from the best weights so far, or,
    resuming inside this phase, the weights, states and RNGs of last.pt."""
    device = next(model.parameters()).device
    state = _Phase.start(configure_phase(model, phase), phase, profile, device, steps_per_epoch,
                         mode)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        state.load_state_dict(resumed)
        set_rng_state(resumed["rng"])
        return state, resumed["phase_epochs"]
    if phase.number > 1 and (directory / "best.pt").exists():
        model.load_state_dict(load_checkpoint(directory / "best.pt")["model"])
    return state, 0


def train(data: TorchData, profile: Profile, *, seed: int, checkpoint_dir: str | Path,
          loss: nn.Module | None = None, resume: bool = True,
          on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train the classifier on ``data`` under the profile's protocol (module docstring).

    ``loss`` defaults to BCEWithLogitsLoss; ``resume`` continues from ``last.pt`` in
    ``checkpoint_dir`` when there is one (False starts afresh); ``on_epoch_end`` gets each
    epoch's history row after its checkpoint is written. The profile's monitor chooses the
    weights kept, stops early and, on a plateau schedule, lowers the rate.
    """
    monitor, mode = monitor_mode(profile)
    planned = training_plan(profile)
    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    device = data.batches["train"].device
    amp = amp_dtype(device, profile)
    loss_fn = (loss if loss is not None else nn.BCEWithLogitsLoss()).to(device)
    settings = training_settings(profile, seed=seed, loss=loss_name(loss_fn),
                                 train_images=len(data.arrays["train"]))
    resumed = resume_checkpoint(directory / "last.pt", settings, resume,
                                (directory / "best.pt",))
    if resumed:
        print(f"Continuing the interrupted run from {directory / 'last.pt'} after epoch "
              f"{len(resumed['history'])}")
    set_seeds(seed, device)
    size = data.arrays["train"].images.shape[-1]
    model = to_device(ResNet50Classifier(is_pretrained(profile.weights)) if resumed
                      else build_model(size, profile.weights), device)
    history: list[dict[str, Any]] = list(resumed["history"]) if resumed else []
    steps = len(data.batches["train"])
    for phase in planned:
        if resumed and resumed["phase"] > phase.number:
            continue
        state, done = _enter_phase(model, phase, profile, directory, resumed, steps, mode)
        resumed = None
        while done < phase.epochs and not state.stopper.stop:
            row = _fit_epoch(model, data, state, loss_fn, len(history) + 1, phase.number, amp)
            if improves(row[monitor], best_value((r[monitor] for r in history), mode), mode):
                save_checkpoint({"model": model.state_dict(), "epoch": row["epoch"]},
                                directory / "best.pt")
            history.append(row)
            if not state.per_step:
                state.scheduler.step(row[monitor])
            state.stopper.update(row[monitor])
            done += 1
            save_checkpoint({"settings": settings, "phase": phase.number, "phase_epochs": done,
                   "history": history, "model": model.state_dict(), "rng": rng_state(),
                   **state.state_dict()}, directory / "last.pt")
            if on_epoch_end is not None:
                on_epoch_end(row)
    require_best_weights(directory / "best.pt")
    best = load_checkpoint(directory / "best.pt")
    model.load_state_dict(best["model"])
    model.eval()
    history_frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    return TrainResult(model, history_frame, best["epoch"], directory / "best.pt",
                       protocol_for(profile.weights), tuple(planned), monitor)


def predict_split(model: nn.Module, data: TorchData, split: str) -> pd.DataFrame:
    """path, label_id, probability for every image of ``split`` (the evaluation module's
    input), computed in float32 whatever the training precision."""
    logits, _ = predict_logits(model, data.batches[split].epoch(), None)  # float32 everywhere
    arrays = data.arrays[split]
    return pd.DataFrame({"path": arrays.paths, "label_id": arrays.labels,
                         "probability": torch.sigmoid(logits.double()).cpu().numpy()})


FRAMEWORK = "pytorch"


def load_run_data(spec: RunSpec, layout: Layout, profile: Profile,
                  device: torch.device) -> TorchData:
    """The run's split, batches on ``device`` (a hook of ``runs.drive``)."""
    return load_datasets(layout, profile.image_size, profile.batch_size, spec.seed,
                         training_data=spec.training_data, imbalance=spec.imbalance,
                         num_workers=profile.num_workers, device=device)


def loss_name(loss: nn.Module) -> str:
    """A loss and its settings, as the run's settings record them."""
    return repr(loss)


def prune_checkpoint(checkpoint: Path) -> None:
    """Keep the best weights only, once the results are written (``best.pt``)."""
    (checkpoint.parent / "last.pt").unlink(missing_ok=True)


def run_training(spec: RunSpec, layout: Layout, profile: Profile, *,
                 loss: nn.Module | None = None, resume: bool = True,
                 device: str | None = None) -> RunOutcome:
    """One run, start to end (``runs.drive`` with this module's hooks)."""
    return drive(spec, layout, profile, sys.modules[__name__], loss=loss, resume=resume,
                 device=device)
