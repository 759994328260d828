"""ResNet50 with the thesis head: build, two-phase training, prediction (Keras side).

DESIGN.md section 7 protocol without the seeds' defects (section 8): the backbone's own
``preprocess_input`` inside the model, fresh callbacks in each phase, and the model kept
at the end is the best on validation over both phases, never simply the last epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .config import Profile
from .errors import UserError
from .keras_data import KerasData
from .model_data import HISTORY_COLUMNS

WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + WEIGHTS_FILE
_WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"  # keras.applications.resnet's own hash
BACKBONE = "resnet50"
LAST_STAGE = "conv5_"  # the layers phase 2 fine-tunes


@keras.saving.register_keras_serializable(package="helpers")
class ResNetPreprocess(keras.layers.Layer):
    """``keras.applications.resnet50.preprocess_input`` as a layer: RGB 0-255 in."""

    def call(self, inputs: Any) -> Any:
        return keras.applications.resnet50.preprocess_input(inputs)


def set_seeds(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; ``deterministic``: TF op determinism too."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def keras_cache_dir() -> Path:
    """Where Keras looks for downloaded weights (``$KERAS_HOME/models`` or ~/.keras/models)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def from_scratch(weights: str) -> bool:
    return str(weights).lower() == "none"


def weights_path(weights: str) -> str | None:
    """The local file to load into the backbone: None for "none"; "imagenet" is fetched
    into (or found in) Keras' cache; anything else is a path that must exist."""
    if from_scratch(weights):
        return None
    if str(weights).lower() != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"No weights file at {path}: pass WEIGHTS=/path/to/{WEIGHTS_FILE}, "
                            f"or WEIGHTS=none to train from scratch.")
        return str(path)
    try:
        return keras.utils.get_file(WEIGHTS_FILE, _WEIGHTS_URL, cache_subdir="models",
                                    file_hash=_WEIGHTS_MD5)
    except Exception as error:  # offline, Keras raises a bare Exception ("URL fetch failure")
        raise UserError(f"Could not download the ImageNet weights of ResNet50 (no network?): put "
                        f"{WEIGHTS_FILE} in {keras_cache_dir()}/ or pass WEIGHTS=/path/to/"
                        f"{WEIGHTS_FILE}, or set WEIGHTS=none to train from scratch.") from error


def build_model(size: int, weights: str = "imagenet") -> keras.Model:
    """ResNet50 (no top) -> GAP -> Dense 1024 ReLU -> Dropout 0.5 -> Dense 512 ReLU ->
    Dropout 0.3 -> Dense 1 sigmoid, on (size, size, 3) images in 0-255.

    ``weights``: "imagenet", a local ``.h5`` file, or "none". Returned ready for phase 1
    (:func:`set_phase`). A pretrained backbone runs in inference mode (``training=False``:
    its BatchNorm statistics never move); a random one ("none") follows the training flag
    so that its BatchNorm layers can learn in phase 1.
    """
    path = weights_path(weights)
    try:
        backbone = keras.applications.ResNet50(include_top=False, weights=path,
                                               input_shape=(size, size, 3), name=BACKBONE)
    except (ValueError, OSError) as error:
        raise UserError(f"{path} is not a ResNet50 weights file without top ({error}): pass "
                        f"WEIGHTS=/path/to/{WEIGHTS_FILE}, or WEIGHTS=none.") from error
    inputs = keras.Input((size, size, 3), name="image")
    x = ResNetPreprocess(name="preprocess")(inputs)
    x = backbone(x, training=None if path is None else False)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(1024, activation="relu", name="dense_1024")(x)
    x = keras.layers.Dropout(0.5, name="dropout_50")(x)
    x = keras.layers.Dense(512, activation="relu", name="dense_512")(x)
    x = keras.layers.Dropout(0.3, name="dropout_30")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    model = keras.Model(inputs, outputs, name="resnet50_thesis")
    set_phase(model, 1, scratch=path is None)
    return model


def set_phase(model: keras.Model, phase: int, scratch: bool = False) -> None:
    """Trainable layers of a phase; the head always trains.

    Phase 1: the backbone frozen, or, from scratch, the whole network (a frozen random
    backbone would only feed the head noise). Phase 2: the last stage (``conv5_*``) of
    the backbone without its BatchNorm layers, which stay frozen and so in inference mode.
    """
    backbone = model.get_layer(BACKBONE)
    backbone.trainable = phase == 2 or scratch
    for layer in backbone.layers:
        layer.trainable = scratch if phase == 1 else (
            layer.name.startswith(LAST_STAGE)
            and not isinstance(layer, keras.layers.BatchNormalization))


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total and trainable parameters, as the model is set now."""
    count = lambda ws: int(sum(np.prod(w.shape) for w in ws))  # noqa: E731
    return {"total": count(model.weights), "trainable": count(model.trainable_weights)}


def _callbacks(profile: Profile, out_dir: Path, phase: int) -> list[keras.callbacks.Callback]:
    """Fresh DESIGN.md section 7 callbacks (ReduceLROnPlateau logs the rate before CSVLogger)."""
    return [
        keras.callbacks.EarlyStopping("val_loss", patience=profile.patience,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(out_dir / f"phase{phase}.keras", monitor="val_loss",
                                        save_best_only=True),
        keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=profile.lr_patience,
                                          min_lr=1e-7),
        keras.callbacks.CSVLogger(str(out_dir / f"phase{phase}_log.csv")),
    ]


def _history_frame(history: dict[str, list[float]], phase: int, first_epoch: int) -> pd.DataFrame:
    df = pd.DataFrame(history).rename(columns={"learning_rate": "lr"})
    df.insert(0, "phase", phase)
    df.insert(0, "epoch", range(first_epoch, first_epoch + len(df)))
    return df[[c for c in HISTORY_COLUMNS if c in df.columns]]


@dataclass(frozen=True)
class TrainResult:
    """The best model on validation, the history of both phases, and where it was saved."""

    model: keras.Model
    history: pd.DataFrame
    best_phase: int
    best_val_loss: float
    checkpoint: Path
    phase1_trains: str

    def config(self) -> dict[str, Any]:
        """What the run's config.json should record about training."""
        return {"best_phase": self.best_phase, "best_val_loss": self.best_val_loss,
                "checkpoint": str(self.checkpoint), "phase1_trains": self.phase1_trains,
                "phase2_trains": f"{LAST_STAGE}* layers except BatchNorm, and the head"}


def train(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset,
          profile: Profile, out_dir: str | Path, *, loss: keras.losses.Loss | None = None,
          verbose: int = 2) -> TrainResult:
    """Two phases (DESIGN.md section 7): head at ``lr_head``, then the last stage at
    ``lr_finetune``; ``loss`` defaults to binary cross-entropy.

    Each phase has fresh callbacks, ends on its best epoch (EarlyStopping restores it)
    and saves it as ``phase<N>.keras``; phase 2 starts from phase 1's best, and is kept
    only if its best val_loss beats phase 1's. With weights "none" (``profile.weights``)
    phase 1 trains the whole network, not just the head. The kept model is saved as
    ``best.keras`` in ``out_dir``. A phase with 0 epochs is skipped.
    """
    if profile.epochs_head <= 0 and profile.epochs_finetune <= 0:
        raise UserError("Both EPOCHS_HEAD and EPOCHS_FINETUNE are 0: set at least one above 0.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("phase*"):  # a previous run's checkpoints and logs
        stale.unlink()
    scratch = from_scratch(profile.weights)
    phase1_trains = "the whole network (weights none)" if scratch else "the head (backbone frozen)"
    print(f"Phase 1 trains {phase1_trains}; phase 2 the {LAST_STAGE}* stage and the head.")
    frames: list[pd.DataFrame] = []
    best: tuple[float, list[np.ndarray], int] = (np.inf, [], 0)
    for phase, epochs, lr in ((1, profile.epochs_head, profile.lr_head),
                              (2, profile.epochs_finetune, profile.lr_finetune)):
        if epochs <= 0:
            continue
        set_phase(model, phase, scratch)
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=loss or keras.losses.BinaryCrossentropy(),
                      metrics=[keras.metrics.BinaryAccuracy(name="accuracy"),
                               keras.metrics.AUC(name="auc")],
                      jit_compile=False)  # XLA on CPU: twice as slow per epoch, and to compile
        fit = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose,
                        callbacks=_callbacks(profile, out_dir, phase), shuffle=False)
        frames.append(_history_frame(fit.history, phase, sum(len(f) for f in frames) + 1))
        val_loss = float(np.nan_to_num(frames[-1]["val_loss"].min(), nan=np.inf))
        if not best[1] or val_loss < best[0]:
            best = (val_loss, model.get_weights(), phase)
        else:
            model.set_weights(best[1])
            print(f"Phase {phase} did not beat phase {best[2]}'s best val_loss "
                  f"{best[0]:.4f}: keeping phase {best[2]}'s model.")
    checkpoint = save_model(model, out_dir / "best.keras")
    return TrainResult(model, pd.concat(frames, ignore_index=True), best[2], best[0],
                       checkpoint, phase1_trains)


def save_model(model: keras.Model, path: str | Path) -> Path:
    """Save as ``.keras`` without the optimizer state (a third of the size): an
    uncompiled copy, for prediction; the phase checkpoints keep the optimizer."""
    copy = keras.Model.from_config(model.get_config())  # clone_model would copy the compile
    copy.set_weights(model.get_weights())
    copy.save(path)
    return Path(path)


def load_model(path: str | Path) -> keras.Model:
    """A saved ``.keras`` model (importing this module registers ``ResNetPreprocess``)."""
    return keras.saving.load_model(path)


def predict(model: keras.Model, dataset: tf.data.Dataset) -> np.ndarray:
    """Positive-class probabilities, (N,), in the dataset's order."""
    return model.predict(dataset, verbose=0).ravel()


def predict_split(model: keras.Model, data: KerasData, split: str) -> pd.DataFrame:
    """One row per image of ``split``: path, label_id, probability (the results' columns)."""
    arrays = data.arrays[split]
    return pd.DataFrame({"path": arrays.paths, "label_id": arrays.labels,
                         "probability": predict(model, data.datasets[split])})
