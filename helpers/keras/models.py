"""Keras ResNet50 with the thesis head (the mirror of ``helpers.torch.models``): the
model, its weights, what each training phase trains, and seeds.

The backbone's own ``preprocess_input`` is the model's first layer (the seeds fed the
ImageNet backbone raw [0, 1] inputs), on grey images, as the PyTorch side normalises
its grey batches in its first layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from helpers.config import Profile, mixed_precision
from helpers.errors import UserError
from helpers.training.protocols import FINAL_FRACTION, WARMUP_START, Phase, is_pretrained, warmup_steps

WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + WEIGHTS_FILE
_WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"  # keras.applications.resnet's own hash
BACKBONE = "resnet50"
LAST_STAGE = "conv5_"  # the layers a "last_stage" phase fine-tunes
BN_MOMENTUM = 0.9  # = torch's momentum 0.1; frozen (pretrained) BatchNorm never uses it


@keras.saving.register_keras_serializable(package="helpers")
class ResNetPreprocess(keras.layers.Layer):
    """Grey 0-255 images (B, s, s, 1) to the backbone's input: the grey channel repeated
    as RGB, then ``keras.applications.resnet50.preprocess_input``."""

    def call(self, inputs: Any) -> Any:
        rgb = keras.ops.repeat(keras.ops.cast(inputs, "float32"), 3, axis=-1)
        return keras.applications.resnet50.preprocess_input(rgb)


def set_seeds(seed: int, device: str = "cpu") -> None:
    """Seed Python, NumPy and TensorFlow, with deterministic TensorFlow ops on any device
    (``device`` only mirrors the PyTorch signature: TensorFlow places ops itself)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else "gpu" when TensorFlow sees one, else "cpu"."""
    return device or ("gpu" if tf.config.list_physical_devices("GPU") else "cpu")


def describe_device(device: str, profile: Profile) -> str:
    """The device and its precision, in words."""
    precision = "mixed bfloat16" if mixed_precision(profile, device) else "float32"
    return f"{device}: {precision}"


def keras_cache_dir() -> Path:
    """Where Keras looks for downloaded weights (``$KERAS_HOME/models`` or ~/.keras/models)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def weights_path(weights: str) -> str | None:
    """The local file to load into the backbone: None for "none"; "imagenet" is fetched
    into (or found in) Keras' cache; anything else is a path that must exist."""
    if not is_pretrained(weights):
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
    """Grey (size, size, 1) images in 0-255 -> preprocess_input -> ResNet50 (no top) ->
    GAP -> Dense 1024 ReLU -> Dropout 0.5 -> Dense 512 ReLU -> Dropout 0.3 -> Dense 1
    sigmoid (float32 under a mixed-precision policy).

    ``weights``: "imagenet", a local ``.h5`` file, or "none". A pretrained backbone runs in
    inference mode (``training=False``: its BatchNorm statistics never move); a random one
    ("none") follows the training flag so that its BatchNorm layers learn, with the
    running-average momentum of the PyTorch side (0.9 here, 0.1 there: the same rate).
    """
    if size < 32:
        raise UserError(f"IMAGE_SIZE={size} is too small for ResNet50: use 32 px or more.")
    path = weights_path(weights)
    try:
        backbone = keras.applications.ResNet50(include_top=False, weights=path,
                                               input_shape=(size, size, 3), name=BACKBONE)
    except (ValueError, OSError) as error:
        raise UserError(f"{path} is not a ResNet50 weights file without top ({error}): pass "
                        f"WEIGHTS=/path/to/{WEIGHTS_FILE}, or WEIGHTS=none.") from error
    # torch's running-average rate, not Keras' 0.99: random statistics settle within an epoch
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    inputs = keras.Input((size, size, 1), name="image")
    x = ResNetPreprocess(name="preprocess")(inputs)
    x = backbone(x, training=None if path is None else False)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(1024, activation="relu", name="dense_1024")(x)
    x = keras.layers.Dropout(0.5, name="dropout_50")(x)
    x = keras.layers.Dense(512, activation="relu", name="dense_512")(x)
    x = keras.layers.Dropout(0.3, name="dropout_30")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs, outputs, name="resnet50_thesis")


def configure_phase(model: keras.Model, phase: Phase) -> list[keras.Variable]:
    """Set what trains in ``phase`` and return those weights (as the PyTorch side).

    "all": the whole network (the scratch protocol); "head": the head with the backbone
    frozen; "last_stage": the backbone's ``conv5_*`` layers without their BatchNorm, which
    stay frozen and so in inference mode, and the head. The head always trains.
    """
    backbone = model.get_layer(BACKBONE)
    backbone.trainable = phase.trains != "head"
    for layer in backbone.layers:
        layer.trainable = phase.trains == "all" or (
            phase.trains == "last_stage" and layer.name.startswith(LAST_STAGE)
            and not isinstance(layer, keras.layers.BatchNormalization))
    return list(model.trainable_weights)


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total and trainable parameters, as the model is set now."""
    count = lambda ws: int(sum(np.prod(w.shape) for w in ws))  # noqa: E731
    return {"total": count(model.weights), "trainable": count(model.trainable_weights)}


def _learning_rate(phase: Phase, steps_per_epoch: int
                   ) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The phase's rate: Keras' CosineDecay with linear warm-up (``protocols``'s formula),
    or a constant that ReduceLROnPlateau lowers."""
    if phase.schedule != "warmup_cosine":
        return phase.lr
    warm = warmup_steps(phase, steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        WARMUP_START * phase.lr, decay_steps=phase.epochs * steps_per_epoch - warm,
        alpha=FINAL_FRACTION, warmup_target=phase.lr, warmup_steps=warm)


def optimizer(phase: Phase, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The phase's Adam or AdamW (epsilon 1e-7, as on the PyTorch side)."""
    rate = _learning_rate(phase, steps_per_epoch)
    if phase.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=phase.weight_decay, epsilon=1e-7)
    return keras.optimizers.Adam(rate, epsilon=1e-7)


def load_weights(model: keras.Model, path: Path) -> None:
    """Load a weights file into ``model``; a damaged file is one sentence naming it."""
    try:
        model.load_weights(path)
    except (OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"The weights file {path} is damaged ({first}): delete it (and, for a "
                        f"finished run, its results folder) and train the run again.") from None
