"""Grad-CAM of the Keras side (the mirror of test_torch_gradcam): shape and range on the
thesis model, and on a toy model whose only evidence is a bright square, a map that peaks
on that square."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from gradcam_cases import (
    SIZE,
    assert_maps_and_probabilities_are_well_formed,
    assert_maps_peak_on_the_squares,
    square_images,
    square_model_weights,
    write_run_folder,
)

from helpers.analysis import gradcam
from helpers.keras.gradcam import gradcam_maps, maps_and_probabilities, probabilities
from helpers.keras.models import build_model


def toy_model() -> keras.Model:
    """Conv (the toy's evidence detector: mean brightness above 150) -> ReLU -> GAP ->
    Dense sigmoid: the logit grows with the bright area."""
    kernel, bias, dense = square_model_weights()
    inputs = keras.Input((SIZE, SIZE, 1))
    conv = keras.layers.Conv2D(1, 3, strides=2, padding="same", activation="relu")
    x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    head = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, head(x))
    conv.set_weights([kernel[:, :, None, None], np.array([bias], np.float32)])
    head.set_weights([np.full((1, 1), dense, np.float32), np.zeros(1, np.float32)])
    return model


def test_the_map_peaks_on_the_square_that_is_the_evidence() -> None:
    images = square_images()
    assert_maps_peak_on_the_squares(gradcam_maps(toy_model(), images))


def test_maps_of_the_thesis_model_have_the_images_shape_and_lie_in_0_1() -> None:
    keras.utils.set_random_seed(0)
    model = build_model(SIZE, "none")
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE)).astype(np.uint8)
    assert_maps_and_probabilities_are_well_formed(gradcam_maps(model, images),
                                                  probabilities(model, images))


def test_a_model_without_convolutions_is_refused() -> None:
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="no Conv2D"):
        gradcam_maps(model, np.zeros((1, 4, 4)))


def test_a_run_folder_gives_the_maps_of_its_weights_here_and_in_a_subprocess(
        tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    model = build_model(SIZE, "none")
    run_dir, checkpoint = write_run_folder(tmp_path, "keras", "best.weights.h5")
    model.save_weights(checkpoint)
    images = square_images()
    maps, probs = maps_and_probabilities(run_dir, images)
    np.testing.assert_allclose(maps, gradcam_maps(model, images), atol=1e-4)
    np.testing.assert_allclose(probs, probabilities(model, images), atol=1e-5)
    served = gradcam.maps_in_subprocess("keras", [run_dir], images)[str(run_dir)]
    np.testing.assert_allclose(served[0], maps, atol=1e-4)
    np.testing.assert_allclose(served[1], probs, atol=1e-5)
