"""Grad-CAM of a PyTorch run (the mirror of ``helpers.keras.gradcam``), through the
``grad-cam`` package on the last convolutional stage (``layer4``) of the ResNet50.

``python -m helpers.torch.gradcam request.npz reply.npz`` computes maps and probabilities
for ``helpers.analysis.gradcam.maps_in_subprocess``.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget
from torch import nn

from helpers.analysis import gradcam
from helpers.torch.checkpoints import load_checkpoint
from helpers.torch.models import ResNet50Classifier, build_model

BATCH = 32


@lru_cache(maxsize=2)
def load_model(run_dir: str | Path) -> nn.Module:
    """The run's best weights in its own architecture, in inference mode, on the CPU."""
    run = gradcam.load_run(run_dir)
    model = build_model(run.image_size, "none")
    model.load_state_dict(load_checkpoint(run.checkpoint)["model"])
    return model.eval()


def _target_layer(model: nn.Module) -> nn.Module:
    """The last convolutional stage: ResNet50's ``layer4``, else the model's last Conv2d."""
    if isinstance(model, ResNet50Classifier):
        return model.backbone.layer4[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the model has no Conv2d layer to compute Grad-CAM on")
    return convs[-1]


def _model(model: nn.Module | str | Path) -> nn.Module:
    return model if isinstance(model, nn.Module) else load_model(str(model))


def gradcam_maps(model: nn.Module | str | Path, images: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] of the positive logit for grey 0-255 images
    (N, H, W) already preprocessed for ``model`` (a module or a run folder)."""
    net = _model(model).eval()
    maps = []
    with GradCAM(model=net, target_layers=[_target_layer(net)]) as cam:
        for start in range(0, len(images), BATCH):
            batch = torch.from_numpy(np.asarray(images[start:start + BATCH], np.float32))[:, None]
            maps.append(cam(input_tensor=batch,
                            targets=[BinaryClassifierOutputTarget(1)] * len(batch)))
    return np.clip(np.concatenate(maps), 0, 1).astype(np.float32)


@torch.no_grad()
def probabilities(model: nn.Module | str | Path, images: np.ndarray) -> np.ndarray:
    """The positive class's probability (N,) for grey 0-255 preprocessed images (N, H, W)."""
    net = _model(model).eval()
    logits = [net(torch.from_numpy(np.asarray(images[s:s + BATCH], np.float32))[:, None])
              for s in range(0, len(images), BATCH)]
    return torch.sigmoid(torch.cat(logits).double()).numpy()


def maps_and_probabilities(model: nn.Module | str | Path, images: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """``gradcam_maps`` and ``probabilities`` of the same images."""
    return gradcam_maps(model, images), probabilities(model, images)


if __name__ == "__main__":
    gradcam.serve(sys.argv[1:], maps_and_probabilities)
