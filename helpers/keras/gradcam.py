"""Grad-CAM of a Keras run (the mirror of ``helpers.torch.gradcam``): a GradientTape over
the last convolutional block (the ResNet50 backbone's output, ``conv5_block3_out``), with
the gradient of the positive logit (the last Dense layer before its sigmoid).

``python -m helpers.keras.gradcam request.npz reply.npz`` computes maps and probabilities
for ``helpers.analysis.gradcam.maps_in_subprocess``.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import tensorflow as tf

from helpers.analysis import gradcam
from helpers.keras.models import BACKBONE, build_model, load_weights

BATCH = 32


@lru_cache(maxsize=2)
def load_model(run_dir: str | Path) -> keras.Model:
    """The run's best weights in its own architecture (float32)."""
    run = gradcam.load_run(run_dir)
    keras.config.set_dtype_policy("float32")
    model = build_model(run.image_size, "none")
    load_weights(model, run.checkpoint)
    return model


def _target_index(model: keras.Model) -> int:
    """The index in ``model.layers`` of the last convolutional block: the ResNet50 backbone,
    else the last Conv2D layer."""
    names = [layer.name for layer in model.layers]
    if BACKBONE in names:
        return names.index(BACKBONE)
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError("the model has no Conv2D layer to compute Grad-CAM on")
    return convs[-1]


def _forward(model: keras.Model, images: tf.Tensor, tape: tf.GradientTape
             ) -> tuple[tf.Tensor, tf.Tensor]:
    """(activations of the target layer, positive logits) along the model's chain of
    layers, in inference mode; the tape watches the activations."""
    target = _target_index(model)
    x: Any = images
    conv = None
    for i, layer in enumerate(model.layers[1:], start=1):
        last = i == len(model.layers) - 1
        if last and isinstance(layer, keras.layers.Dense):  # the logit, before the sigmoid
            x = tf.matmul(x, layer.kernel) + layer.bias
        else:
            x = layer(x, training=False)
        if i == target:
            conv = x
            tape.watch(conv)
    return conv, tf.reshape(x, [-1])


def _maps(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Grad-CAM of one batch at the target layer's resolution (N, h, w), not normalised."""
    with tf.GradientTape() as tape:
        conv, logits = _forward(model, tf.convert_to_tensor(images[..., None], tf.float32), tape)
        score = tf.reduce_sum(logits)
    grads = tape.gradient(score, conv)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1)).numpy()


def _normalise(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resized to the image (bilinear) and scaled to [0, 1] by its own range, as grad-cam
    does on the PyTorch side."""
    cam = cv2.resize(cam.astype(np.float32), (shape[1], shape[0]))
    cam = cam - cam.min()
    return cam / (cam.max() + 1e-7)


def _model(model: keras.Model | str | Path) -> keras.Model:
    return model if isinstance(model, keras.Model) else load_model(str(model))


def gradcam_maps(model: keras.Model | str | Path, images: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] of the positive logit for grey 0-255 images
    (N, H, W) already preprocessed for ``model`` (a model or a run folder)."""
    net = _model(model)
    images = np.asarray(images, np.float32)
    maps = [_normalise(cam, images.shape[1:]) for s in range(0, len(images), BATCH)
            for cam in _maps(net, images[s:s + BATCH])]
    return np.clip(np.stack(maps), 0, 1).astype(np.float32)


def probabilities(model: keras.Model | str | Path, images: np.ndarray) -> np.ndarray:
    """The positive class's probability (N,) for grey 0-255 preprocessed images (N, H, W)."""
    net = _model(model)
    batch = np.asarray(images, np.float32)[..., None]
    return np.concatenate([np.asarray(net(batch[s:s + BATCH], training=False)).ravel()
                           for s in range(0, len(batch), BATCH)]).astype(np.float64)


def maps_and_probabilities(model: keras.Model | str | Path, images: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """``gradcam_maps`` and ``probabilities`` of the same images."""
    return gradcam_maps(model, images), probabilities(model, images)


if __name__ == "__main__":
    gradcam.serve(sys.argv[1:], maps_and_probabilities)
