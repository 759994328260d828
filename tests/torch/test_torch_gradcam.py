"""Grad-CAM of the PyTorch side: shape and range on the thesis model, and on a toy model
whose only evidence is a bright square, a map that peaks on that square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gradcam_cases import (
    SIZE,
    assert_maps_and_probabilities_are_well_formed,
    assert_maps_peak_on_the_squares,
    square_images,
    square_model_weights,
    write_run_folder,
)
from torch import nn

from helpers.torch.checkpoints import save_checkpoint
from helpers.torch.gradcam import gradcam_maps, maps_and_probabilities, probabilities
from helpers.torch.models import build_model


def toy_model() -> nn.Module:
    """Conv (the toy's evidence detector: mean brightness above 150) -> ReLU -> GAP ->
    Linear: the logit grows with the bright area."""
    kernel, bias, dense = square_model_weights()
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1)
    linear = nn.Linear(1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel)[None, None])
        conv.bias.fill_(bias)
        linear.weight.fill_(dense)
        linear.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear).eval()


def test_the_map_peaks_on_the_square_that_is_the_evidence() -> None:
    images = square_images()
    assert_maps_peak_on_the_squares(gradcam_maps(toy_model(), images))


def test_maps_of_the_thesis_model_have_the_images_shape_and_lie_in_0_1() -> None:
    torch.manual_seed(0)
    model = build_model(SIZE, "none").eval()
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE)).astype(np.uint8)
    assert_maps_and_probabilities_are_well_formed(gradcam_maps(model, images),
                                                  probabilities(model, images))


def test_a_model_without_convolutions_is_refused() -> None:
    with pytest.raises(ValueError, match="no Conv2d"):
        gradcam_maps(nn.Sequential(nn.Flatten(), nn.Linear(16, 1)), np.zeros((1, 4, 4)))


def test_a_run_folder_gives_the_maps_of_its_weights(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_model(SIZE, "none").eval()
    run_dir, checkpoint = write_run_folder(tmp_path, "pytorch", "best.pt")
    save_checkpoint({"model": model.state_dict(), "epoch": 1}, checkpoint)
    images = square_images()
    maps, probs = maps_and_probabilities(run_dir, images)
    np.testing.assert_allclose(maps, gradcam_maps(model, images), atol=1e-4)
    np.testing.assert_allclose(probs, probabilities(model, images), atol=1e-6)
