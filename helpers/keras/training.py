"""Training of the Keras ResNet50 under either protocol, resumable after every epoch
(the mirror of ``helpers.torch.training``: the same names and signatures).

The phases come from ``helpers.training.protocols``: one phase over the whole network with AdamW
and a per-step warm-up + cosine schedule (``CosineDecay``, scratch), or the thesis' two
phases with Adam and ReduceLROnPlateau (transfer). Each phase compiles a fresh optimiser
and fresh callbacks (EarlyStopping, ModelCheckpoint of the best weights over all phases and
ReduceLROnPlateau, all on the profile's monitor, ``protocols.monitor_mode``;
BackupAndRestore); phase 2 starts from phase 1's best weights, and the run ends with the
weights of the best epoch by the monitor (``best.weights.h5``, weights only).

Resuming: ``BackupAndRestore`` restores the weights, the optimiser (its step drives the
schedule) and the epoch; :class:`_Recorder` restores what Keras does not, the history
and the callbacks' counters (patience, best value). The batches depend on (seed, epoch)
alone (``helpers.keras.data``), so a resumed run replays the epochs it missed.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from helpers.config import Layout, Profile, mixed_precision
from helpers.errors import UserError
from helpers.io import read_json, save_json
from helpers.keras.data import EpochSetter, KerasData, load_datasets
from helpers.keras.losses import make_loss as make_loss  # a hook of runs.drive
from helpers.keras.models import build_model, configure_phase, load_weights, optimizer, pick_device, set_seeds
from helpers.keras.models import describe_device as describe_device  # a hook of runs.drive
from helpers.training.protocols import (
    HISTORY_COLUMNS,
    PLATEAU_MIN_LR,
    Phase,
    TrainResult,
    best_epoch_of,
    best_value,
    monitor_mode,
    protocol_for,
    require_best_weights,
    training_plan,
    training_settings,
)
from helpers.training.runs import RunOutcome, RunSpec, drive

BEST = "best.weights.h5"
_STATE_KEYS = ("wait", "best", "cooldown_counter", "best_epoch")  # callbacks' counters
# ROC-AUC at 3999 thresholds evenly spaced in logit over [-40, 17] (float32 probabilities end
# there), not Keras' 200 (or 1000) in probability, which merge confident predictions: within
# 0.001 of sklearn's exact value where 1000 were 0.04 off, for ~3 ms a batch (measured on
# 600 spread predictions); predictions within 0.014 in logit still count as tied.
AUC_THRESHOLDS = (1 / (1 + np.exp(-np.linspace(-40, 17, 3999)))).tolist()


class RocAuc(keras.metrics.AUC):
    """Keras' ROC-AUC at ``AUC_THRESHOLDS``, NaN once a prediction is not finite (a diverged
    run), as on the PyTorch side; Keras' own would count NaN predictions as negatives."""

    def __init__(self, name: str = "auc") -> None:
        super().__init__(name=name, thresholds=AUC_THRESHOLDS)
        self.non_finite = self.add_variable((), "zeros", name="non_finite")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        bad = keras.ops.logical_not(keras.ops.isfinite(y_pred))
        self.non_finite.assign_add(keras.ops.sum(keras.ops.cast(bad, "float32")))
        super().update_state(y_true, y_pred, sample_weight)

    def result(self) -> Any:
        return keras.ops.where(self.non_finite > 0, float("nan"), super().result())

    def reset_state(self) -> None:
        super().reset_state()
        self.non_finite.assign(0.0)


def _seed_generators(model: keras.Model) -> list[keras.random.SeedGenerator]:
    """The random-state holders of the model's layers (Dropout's): ``save_weights``, and so
    BackupAndRestore, leaves them out."""
    found, stack = [], list(model.layers)
    while stack:
        layer = stack.pop(0)
        stack.extend(getattr(layer, "layers", []))
        found += [v for v in vars(layer).values() if isinstance(v, keras.random.SeedGenerator)]
    return found


class _Recorder(keras.callbacks.Callback):
    """The phase's history rows, the other callbacks' counters and the layers' random
    states (Dropout masks), in ``state.json`` after every epoch, restored when a phase
    resumes (BackupAndRestore restores the weights, the optimiser and the epoch).

    Listed before BackupAndRestore: should a run stop between the two writes, the epoch is
    trained again and its row replaced (``on_epoch_begin`` drops rows from that epoch on).
    """

    def __init__(self, path: Path, phase: int, first_epoch: int,
                 stateful: list[keras.callbacks.Callback]) -> None:
        super().__init__()
        self.path, self.phase, self.first_epoch, self.stateful = path, phase, first_epoch, stateful
        self.saved = (read_json(path, f"delete {path.parent.parent} to train the run afresh")
                      if path.exists() else {"rows": []})
        self.rows: list[dict[str, Any]] = self.saved["rows"]
        self.lr = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        for callback, state in zip(self.stateful, self.saved.get("states", [])):
            for key, value in state.items():
                setattr(callback, key, value)
        for generator, state in zip(_seed_generators(self.model), self.saved.get("seeds", [])):
            generator.state.assign(np.asarray(state, dtype=generator.state.dtype))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.rows = [r for r in self.rows if r["epoch"] < self.first_epoch + epoch]
        self.lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        row = {"epoch": self.first_epoch + epoch, "phase": self.phase, "lr": self.lr,
               **{k: float(logs[k]) for k in HISTORY_COLUMNS[2:] if k in logs and k != "lr"}}
        self.rows.append(row)
        states = [{k: _plain(getattr(c, k)) for k in _STATE_KEYS if hasattr(c, k)}
                  for c in self.stateful]
        seeds = [keras.ops.convert_to_numpy(g.state).tolist()
                 for g in _seed_generators(self.model)]
        save_json({"rows": self.rows, "states": states, "seeds": seeds}, self.path)


def _plain(value: Any) -> Any:
    """A counter as JSON keeps it (NumPy and tensor scalars to Python numbers)."""
    return float(value) if hasattr(value, "__float__") and not isinstance(value, int) else value


class _EpochEnd(keras.callbacks.Callback):
    """Calls ``hook(row)`` once an epoch's row and backup are written."""

    def __init__(self, recorder: _Recorder, hook: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.recorder, self.hook = recorder, hook

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.hook(self.recorder.rows[-1])


def _callbacks(phase: Phase, profile: Profile, directory: Path, monitor: str, mode: str,
               best_so_far: float) -> list[keras.callbacks.Callback]:
    """EarlyStopping, the best-weights ModelCheckpoint (over all phases: it saves only what
    beats ``best_so_far``) and, for a plateau schedule, ReduceLROnPlateau, all on
    ``monitor`` in the direction ``mode``."""
    stateful: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(monitor, mode=mode, patience=profile.patience),
        keras.callbacks.ModelCheckpoint(directory / BEST, monitor=monitor, mode=mode,
                                        save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=best_so_far),
    ]
    if phase.schedule == "plateau":
        stateful.append(keras.callbacks.ReduceLROnPlateau(monitor, mode=mode, factor=0.5,
                                                          patience=profile.lr_patience,
                                                          min_lr=PLATEAU_MIN_LR))
    return stateful


def _fit_phase(model: keras.Model, data: KerasData, phase: Phase, profile: Profile,
               directory: Path, loss: keras.losses.Loss, history: list[dict[str, Any]],
               on_epoch_end: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    """Train one phase (or what is left of it) and return its history rows; the weights
    are kept when the monitor beats every earlier epoch of the run."""
    phase_dir = directory / f"phase{phase.number}"
    done = phase_dir / "done.json"
    if done.exists():
        return read_json(done, f"delete {directory} to train the run afresh")["rows"]
    phase_dir.mkdir(parents=True, exist_ok=True)
    if phase.number > 1 and (directory / BEST).exists():
        load_weights(model, directory / BEST)
    configure_phase(model, phase)
    train = data.batches["train"]
    model.compile(optimizer=optimizer(phase, len(train)), loss=loss,
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), RocAuc(name="auc"),
                           keras.metrics.BinaryCrossentropy(name="bce")],
                  jit_compile=False,  # XLA on CPU: twice as slow per epoch, and to compile
                  run_eagerly=profile.keras_eager)
    # Keras' TensorFlow trainer creates the optimiser's and the metrics' variables in the
    # first traced step, and tf.function traces a step that created variables a second
    # time: built here first, the step is traced once (17 of 48 s of the first epoch at
    # 64 px, docs/results.md). Keras' own build (private), from the batches' shapes only.
    model._symbolic_build(data_batch=train.dataset.element_spec)
    monitor, mode = monitor_mode(profile)
    best = best_value((r[monitor] for r in history), mode)
    stateful = _callbacks(phase, profile, directory, monitor, mode, best)
    recorder = _Recorder(phase_dir / "state.json", phase.number, len(history) + 1, stateful)
    callbacks = [EpochSetter(train), *stateful, recorder,
                 keras.callbacks.BackupAndRestore(str(phase_dir / "backup"))]
    if on_epoch_end is not None:
        callbacks.append(_EpochEnd(recorder, on_epoch_end))
    # BackupAndRestore sets this to the epoch it restored, and Keras (3.15) never clears it:
    # the next phase's fit would start at that epoch.
    model._initial_epoch = None
    model.fit(train.stream, steps_per_epoch=len(train), validation_data=data.batches["val"].dataset,
              epochs=phase.epochs, verbose=2, callbacks=callbacks, shuffle=False)
    save_json({"rows": recorder.rows}, done)
    return recorder.rows


def _checkpoint_settings(directory: Path, settings: dict[str, Any], resume: bool) -> None:
    """Start afresh (``resume`` False), or check that a checkpoint has the same settings."""
    record = directory / "settings.json"
    if not resume and directory.exists():
        shutil.rmtree(directory)
    if record.exists() and read_json(record, f"delete {directory} to train the run afresh"
                                     ) != json.loads(json.dumps(settings)):
        raise UserError(f"The checkpoint in {directory} was trained with other settings: pass "
                        f"RESUME=False to start this run afresh.")
    directory.mkdir(parents=True, exist_ok=True)
    save_json(settings, record)


def _float32_copy(size: int, weights_file: Path, eager: bool) -> keras.Model:
    """The trained model rebuilt under float32 with the given weights (for prediction),
    which are saved again without the optimiser state ModelCheckpoint keeps (a third of the
    size); ``eager`` predicts without tracing (``Profile.keras_eager``)."""
    keras.config.set_dtype_policy("float32")
    copy = build_model(size, "none")
    load_weights(copy, weights_file)
    copy.save_weights(weights_file)
    copy.run_eagerly = eager
    return copy


def train(data: KerasData, profile: Profile, *, seed: int, checkpoint_dir: str | Path,
          loss: keras.losses.Loss | None = None, resume: bool = True,
          on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train the classifier on ``data`` under the profile's protocol (module docstring).

    ``loss`` defaults to binary cross-entropy; ``resume`` continues an interrupted run in
    ``checkpoint_dir`` (False starts afresh); ``on_epoch_end`` gets each epoch's history row
    after its backup is written. The profile's monitor chooses the weights kept, stops
    early and, on a plateau schedule, lowers the rate. The returned model predicts in
    float32.
    """
    monitor, mode = monitor_mode(profile)
    planned = training_plan(profile)
    directory = Path(checkpoint_dir)
    loss_fn = loss if loss is not None else keras.losses.BinaryCrossentropy()
    settings = training_settings(profile, seed=seed, loss=loss_name(loss_fn),
                                 train_images=len(data.arrays["train"]))
    _checkpoint_settings(directory, settings, resume)
    device = pick_device()
    keras.config.set_dtype_policy("mixed_bfloat16" if mixed_precision(profile, device)
                                  else "float32")
    set_seeds(seed, device)
    size = data.arrays["train"].images.shape[1]
    model = build_model(size, profile.weights)
    history: list[dict[str, Any]] = []
    for phase in planned:
        history += _fit_phase(model, data, phase, profile, directory, loss_fn, history,
                              on_epoch_end)
    require_best_weights(directory / BEST)
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    model = _float32_copy(size, directory / BEST, profile.keras_eager)
    return TrainResult(model, frame, best_epoch_of(frame, monitor, mode), directory / BEST,
                       protocol_for(profile.weights), tuple(planned), monitor)


def loss_name(loss: keras.losses.Loss) -> str:
    """A loss and its settings, as the run's settings record them."""
    config = {k: v for k, v in loss.get_config().items() if k not in ("name", "dtype")}
    return f"{type(loss).__name__}({', '.join(f'{k}={v!r}' for k, v in sorted(config.items()))})"


def predict_split(model: keras.Model, data: KerasData, split: str) -> pd.DataFrame:
    """path, label_id, probability for every image of ``split`` (the evaluation module's
    input)."""
    arrays = data.arrays[split]
    probability = model.predict(data.batches[split].dataset, verbose=0).ravel().astype(np.float64)
    return pd.DataFrame({"path": arrays.paths, "label_id": arrays.labels,
                         "probability": probability})


FRAMEWORK = "keras"


def load_run_data(spec: RunSpec, layout: Layout, profile: Profile, device: str) -> KerasData:
    """The run's split as Keras datasets (a hook of ``runs.drive``; ``device`` is recorded
    only: TensorFlow places its ops on a GPU when it sees one)."""
    return load_datasets(layout, profile.image_size, profile.batch_size, spec.seed,
                         training_data=spec.training_data, imbalance=spec.imbalance)


def prune_checkpoint(checkpoint: Path) -> None:
    """Keep the best weights only, once the results are written (``best.weights.h5``)."""
    for leftover in checkpoint.parent.iterdir():
        if leftover.name != BEST:
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()


def run_training(spec: RunSpec, layout: Layout, profile: Profile, *,
                 loss: keras.losses.Loss | None = None, resume: bool = True,
                 device: str | None = None) -> RunOutcome:
    """One run, start to end (``runs.drive`` with this module's hooks)."""
    return drive(spec, layout, profile, sys.modules[__name__], loss=loss, resume=resume,
                 device=device)

