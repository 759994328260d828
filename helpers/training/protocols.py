"""The two training protocols, framework-free: which phases run, what each trains, how fast.

- ``transfer`` (pretrained weights): the thesis' two phases. Phase 1 trains the head on a
  frozen backbone (Adam ``lr_head``); phase 2 fine-tunes the last stage with BatchNorm
  frozen (Adam ``lr_finetune``); ReduceLROnPlateau on the monitor in each.
- ``scratch`` (``WEIGHTS=none``): one phase over the whole network, AdamW at
  ``lr_scratch`` with decoupled weight decay, a linear warm-up over ``warmup_epochs``
  and a cosine decay to 1% of the peak, stepped every batch. A frozen random backbone
  would feed the head noise, and transfer rates (1e-4, then 1e-5) are far too low for
  random weights.

Both select the model by one rule, the profile's ``monitor``, in every scenario and both
frameworks: early stopping (``patience``), the best weights over all phases and the plateau
schedule follow it. ``"val_auc"`` (the default, maximised) is the validation ROC-AUC,
threshold-free and the same scale whatever the loss; ``"val_loss"`` (minimised) is the
scenario's own validation loss, the thesis' rule. A NaN value (a diverged run) never
counts as an improvement. The Keras and the PyTorch training follow the same list of
phases and the same schedule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.config import Profile
from helpers.errors import UserError

PLATEAU_MIN_LR = 1e-7  # ReduceLROnPlateau's floor (transfer protocol)
WARMUP_START = 0.04  # the warm-up starts at 4% of the peak rate (one-cycle's 1/25)
FINAL_FRACTION = 0.01  # the cosine ends at 1% of the peak rate
HISTORY_COLUMNS = ["epoch", "phase", "loss", "val_loss", "val_bce", "lr", "accuracy",
                   "val_accuracy", "auc", "val_auc"]  # either framework's history (contract)
MONITORS = {"val_auc": "max", "val_loss": "min"}  # what selects the model -> its direction


def is_pretrained(weights: str) -> bool:
    """Whether ``weights`` asks for trained backbone weights (anything but "none")."""
    return str(weights).lower() != "none"


def protocol_for(weights: str) -> str:
    """"transfer" for pretrained weights, "scratch" for ``weights="none"``."""
    return "transfer" if is_pretrained(weights) else "scratch"


@dataclass(frozen=True)
class Phase:
    """One training phase: what trains, for how many epochs, with which optimiser and rate."""

    number: int
    trains: str  # "all" (whole network), "head" (backbone frozen), "last_stage" (+ head)
    epochs: int
    lr: float
    optimizer: str  # "adam" or "adamw"
    weight_decay: float
    schedule: str  # "plateau" (ReduceLROnPlateau on the monitor) or "warmup_cosine" (per step)
    warmup_epochs: float = 0.0

    def describe(self) -> str:
        """The phase in words, for the log and the run's config."""
        what = {"all": "the whole network", "head": "the head (backbone frozen)",
                "last_stage": "the last stage (BatchNorm frozen) and the head"}[self.trains]
        rate = (f"AdamW {self.lr:g} (weight decay {self.weight_decay:g}), {self.warmup_epochs:g} "
                f"warm-up epoch(s) then cosine decay" if self.schedule == "warmup_cosine"
                else f"Adam {self.lr:g}, ReduceLROnPlateau")
        return f"phase {self.number}: {what}, up to {self.epochs} epochs, {rate}"


def phases(profile: Profile) -> list[Phase]:
    """The phases of the profile's protocol that have epochs (see the module docstring)."""
    if protocol_for(profile.weights) == "scratch":
        planned = [Phase(1, "all", profile.epochs_scratch, profile.lr_scratch, "adamw",
                         profile.weight_decay, "warmup_cosine", profile.warmup_epochs)]
    else:
        planned = [Phase(1, "head", profile.epochs_head, profile.lr_head, "adam", 0.0, "plateau"),
                   Phase(2, "last_stage", profile.epochs_finetune, profile.lr_finetune, "adam",
                         0.0, "plateau")]
    return [p for p in planned if p.epochs > 0]


def training_plan(profile: Profile) -> list[Phase]:
    """The phases to train, announced in one line; a plan without epochs is a UserError."""
    planned = phases(profile)
    if not planned:
        raise UserError("The protocol has no epochs to train: set EPOCHS_SCRATCH (weights none) "
                        "or EPOCHS_HEAD / EPOCHS_FINETUNE (pretrained) above 0.")
    print(f"Protocol {protocol_for(profile.weights)}: "
          + "; ".join(p.describe() for p in planned) + f"; model selected on {profile.monitor}.")
    return planned


def monitor_mode(profile: Profile) -> tuple[str, str]:
    """The profile's monitor and its mode ("max" or "min"); an unknown one is a UserError."""
    if profile.monitor not in MONITORS:
        raise UserError(f"Unknown MONITOR {profile.monitor!r}: use 'val_auc' (validation "
                        f"ROC-AUC, the default) or 'val_loss' (the scenario's own loss, as in "
                        f"the thesis).")
    return profile.monitor, MONITORS[profile.monitor]


def improves(value: float, best: float, mode: str) -> bool:
    """Whether ``value`` beats ``best`` in the direction ``mode``; NaN never does."""
    return value > best if mode == "max" else value < best


def best_value(values: Iterable[float], mode: str) -> float:
    """The best of ``values`` in the direction ``mode``, NaN left out; without any, the
    worst value (-inf for "max", inf for "min"), which every number improves on."""
    best = -math.inf if mode == "max" else math.inf
    for value in values:
        if improves(value, best, mode):
            best = value
    return best


def best_epoch_of(history: pd.DataFrame, monitor: str, mode: str) -> int:
    """The epoch with the best ``monitor`` (the first of equal ones, NaN left out): the
    epoch whose weights the best-weights checkpoint holds."""
    values = history[monitor]
    return int(history.loc[values.idxmax() if mode == "max" else values.idxmin(), "epoch"])


_SETTINGS = ("weights", "image_size", "batch_size", "epochs_head", "epochs_finetune", "lr_head",
             "lr_finetune", "patience", "lr_patience", "epochs_scratch", "lr_scratch",
             "warmup_epochs", "weight_decay", "precision", "monitor")


def training_settings(profile: Profile, *, seed: int, loss: str, train_images: int
                      ) -> dict[str, Any]:
    """What decides a run's result: a checkpoint resumes, and a finished run is skipped,
    only with the same settings (the profile's training fields, seed, loss, row count)."""
    return {**{k: getattr(profile, k) for k in _SETTINGS},
            "protocol": protocol_for(profile.weights), "seed": seed, "loss": loss,
            "train_images": train_images}


def warmup_steps(phase: Phase, steps_per_epoch: int) -> int:
    """Optimizer steps of the linear warm-up (at least 1, at most all but one step)."""
    total = phase.epochs * steps_per_epoch
    return max(1, min(total - 1, round(phase.warmup_epochs * steps_per_epoch)))


def warmup_cosine_lr(step: int, phase: Phase, steps_per_epoch: int) -> float:
    """The reference rate at optimizer step ``step`` (0-based) of a warmup_cosine phase.

    Linear from ``WARMUP_START`` x peak to the peak over the warm-up steps, then cosine
    down to ``FINAL_FRACTION`` x peak at the last step. Both frameworks' library schedules
    are tested against this formula.
    """
    total, warm = phase.epochs * steps_per_epoch, warmup_steps(phase, steps_per_epoch)
    peak = phase.lr
    if step < warm:
        return peak * (WARMUP_START + (1 - WARMUP_START) * step / warm)
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return peak * (FINAL_FRACTION + (1 - FINAL_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def require_best_weights(best_weights: Path) -> None:
    """Stop with a sentence when training kept no best weights: the monitor (validation
    ROC-AUC or loss) was NaN in every epoch (a diverged run), so there is no model to
    evaluate."""
    if not best_weights.exists():
        raise UserError(f"Training diverged (the validation monitor, ROC-AUC or loss, was NaN "
                        f"in every epoch), so there are no best weights in {best_weights.parent}:"
                        f" lower the learning rate (LR_SCRATCH, or LR_HEAD / LR_FINETUNE) and "
                        f"pass RESUME=False.")


@dataclass(frozen=True)
class TrainResult:
    """What training returns in either framework: the best model on validation (ready to
    predict), the history, the protocol that ran, the best weights' file and the monitor
    that chose them (``MONITORS``)."""

    model: Any  # a keras.Model or a torch ResNet50Classifier
    history: pd.DataFrame
    best_epoch: int
    checkpoint: Path
    protocol: str
    phases: tuple[Phase, ...]
    monitor: str

    def config(self) -> dict[str, Any]:
        """What the run's config.json records about training (``best_value``: the monitor's
        value at the best epoch)."""
        best = self.history.set_index("epoch").loc[self.best_epoch]
        return {"protocol": self.protocol, "phases": [p.describe() for p in self.phases],
                "monitor": self.monitor, "monitor_mode": MONITORS[self.monitor],
                "best_epoch": self.best_epoch, "best_phase": int(best["phase"]),
                "best_value": float(best[self.monitor]), "best_val_loss": float(best["val_loss"]),
                "best_val_auc": float(best["val_auc"]), "checkpoint": str(self.checkpoint)}
