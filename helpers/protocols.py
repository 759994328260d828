"""The two training protocols, framework-free: which phases run, what each trains, how fast.

- ``transfer`` (pretrained weights): the thesis' two phases. Phase 1 trains the head on a
  frozen backbone (Adam ``lr_head``); phase 2 fine-tunes the last stage with BatchNorm
  frozen (Adam ``lr_finetune``); ReduceLROnPlateau on val_loss in each.
- ``scratch`` (``WEIGHTS=none``): one phase over the whole network, AdamW at
  ``lr_scratch`` with decoupled weight decay, a linear warm-up over ``warmup_epochs``
  and a cosine decay to 1% of the peak, stepped every batch. A frozen random backbone
  would feed the head noise, and transfer rates (1e-4, then 1e-5) are far too low for
  random weights.

Both stop early on val_loss (``patience``) and keep the best weights on validation. The
Keras and the PyTorch training follow the same list of phases and the same schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Profile
from .errors import UserError

PLATEAU_MIN_LR = 1e-7  # ReduceLROnPlateau's floor (transfer protocol)
WARMUP_START = 0.04  # the warm-up starts at 4% of the peak rate (one-cycle's 1/25)
FINAL_FRACTION = 0.01  # the cosine ends at 1% of the peak rate


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
    schedule: str  # "plateau" (ReduceLROnPlateau on val_loss) or "warmup_cosine" (per step)
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
          + "; ".join(p.describe() for p in planned) + ".")
    return planned


_SETTINGS = ("weights", "image_size", "batch_size", "epochs_head", "epochs_finetune", "lr_head",
             "lr_finetune", "patience", "lr_patience", "epochs_scratch", "lr_scratch",
             "warmup_epochs", "weight_decay", "precision")


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
    """Stop with a sentence when training kept no best weights: every validation loss was
    NaN (a diverged run), so there is no model to evaluate."""
    if not best_weights.exists():
        raise UserError(f"Training diverged (the validation loss was NaN in every epoch), so "
                        f"there are no best weights in {best_weights.parent}: lower the learning "
                        f"rate (LR_SCRATCH, or LR_HEAD / LR_FINETUNE) and pass RESUME=False.")


@dataclass(frozen=True)
class TrainResult:
    """What training returns in either framework: the best model on validation (ready to
    predict), the history, the protocol that ran and the best weights' file."""

    model: Any  # a keras.Model or a torch ResNet50Classifier
    history: pd.DataFrame
    best_epoch: int
    checkpoint: Path
    protocol: str
    phases: tuple[Phase, ...]

    def config(self) -> dict[str, Any]:
        """What the run's config.json records about training."""
        best = self.history.set_index("epoch").loc[self.best_epoch]
        return {"protocol": self.protocol, "phases": [p.describe() for p in self.phases],
                "best_epoch": self.best_epoch, "best_phase": int(best["phase"]),
                "best_val_loss": float(best["val_loss"]), "checkpoint": str(self.checkpoint)}
