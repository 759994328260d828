"""The Keras ResNet50: head, grey input, what each phase trains, the weights' clear failures.

Runs in a process of its own (TensorFlow and torch never share one): ``pytest
tests/keras/``.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers.config import get_profile
from helpers.errors import UserError
from helpers.keras.models import WEIGHTS_FILE, ResNetPreprocess, build_model, configure_phase, load_weights
from helpers.training.protocols import phases

pytestmark = [pytest.mark.tensorflow, pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")]

SEED = 42


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random ResNet50 weights saved as a local file: the pretrained path, without a download."""
    path = tmp_path_factory.mktemp("weights") / "backbone.weights.h5"
    keras.utils.set_random_seed(SEED)
    keras.applications.ResNet50(include_top=False, weights=None,
                                input_shape=(32, 32, 3)).save_weights(path)
    return path


def test_model_is_resnet50_with_the_thesis_head() -> None:
    model = build_model(32, "none")
    assert model.output_shape == (None, 1)
    assert isinstance(model.layers[1], ResNetPreprocess)
    assert model.layers[2].name == "resnet50"
    head = [(type(layer).__name__, getattr(layer, "units", None), getattr(layer, "rate", None),
             getattr(getattr(layer, "activation", None), "__name__", None))
            for layer in model.layers[3:]]
    assert head == [("GlobalAveragePooling2D", None, None, None), ("Dense", 1024, None, "relu"),
                    ("Dropout", None, 0.5, None), ("Dense", 512, None, "relu"),
                    ("Dropout", None, 0.3, None), ("Dense", 1, None, "sigmoid")]
    momenta = {layer.momentum for layer in model.layers[2].layers
               if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}  # = torch's 0.1
    prob = model.predict(np.full((2, 32, 32, 1), 128.0, np.float32), verbose=0)
    assert prob.shape == (2, 1) and np.all((prob >= 0) & (prob <= 1))


def test_preprocessing_layer_is_resnet50_preprocess_input_on_grey() -> None:
    grey = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 1)).astype(np.float32)
    expected = keras.applications.resnet50.preprocess_input(np.repeat(grey, 3, axis=-1))
    np.testing.assert_allclose(np.asarray(ResNetPreprocess()(grey)), expected, rtol=1e-6)


def test_phase_two_fine_tunes_the_last_stage_with_batchnorm_frozen(backbone_file: Path) -> None:
    reference = keras.applications.ResNet50(include_top=False, weights=str(backbone_file),
                                            input_shape=(32, 32, 3))
    model = build_model(32, str(backbone_file))  # a local file: the pretrained path
    backbone = model.get_layer("resnet50")
    for mine, theirs in zip(backbone.weights, reference.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    head_phase, last_stage = phases(get_profile("smoke", weights=str(backbone_file)))
    configure_phase(model, head_phase)
    assert not backbone.trainable_weights  # phase 1: backbone frozen
    configure_phase(model, last_stage)
    trainable = {layer.name for layer in backbone.layers if layer.trainable_weights}
    with_weights = {layer.name for layer in backbone.layers if layer.weights}
    conv5 = {n for n in with_weights if n.startswith("conv5_") and not n.endswith("_bn")}
    assert trainable == conv5 and conv5
    assert all(not layer.trainable for layer in backbone.layers
               if isinstance(layer, keras.layers.BatchNormalization))
    # One step of phase 2 moves conv5 kernels only; BatchNorm statistics stay put.
    watched = {n: backbone.get_layer(n).get_weights()[0].copy()
               for n in ("conv4_block6_3_conv", "conv5_block3_3_conv", "conv5_block3_3_bn")}
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.uniform(0, 255, (4, 32, 32, 1)), np.array([[0], [1], [0], [1]]))
    changed = {n: not np.array_equal(w, backbone.get_layer(n).get_weights()[0])
               for n, w in watched.items()}
    assert changed == {"conv4_block6_3_conv": False, "conv5_block3_3_conv": True,
                       "conv5_block3_3_bn": False}
    (everything,) = phases(get_profile("smoke", weights="none"))  # the scratch protocol
    trained = configure_phase(model, everything)
    assert len(trained) == len([w for w in model.weights if "moving" not in w.path])


def test_offline_imagenet_weights_stop_with_both_ways_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(fname: str, origin: str, **kwargs: object) -> str:
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)  # as Keras behaves with no network
    start = time.perf_counter()
    with pytest.raises(UserError) as error:
        build_model(32, "imagenet")
    message = str(error.value)
    assert time.perf_counter() - start < 5
    assert "\n" not in message and message.count(". ") == 0
    assert WEIGHTS_FILE in message and ".keras" in message and "WEIGHTS=/" in message
    assert "WEIGHTS=none" in message


def test_missing_local_weights_file_is_a_user_error(tmp_path: Path) -> None:
    missing = tmp_path / WEIGHTS_FILE
    with pytest.raises(UserError, match="WEIGHTS=none") as error:
        build_model(32, str(missing))
    assert str(missing) in str(error.value)


def test_too_small_an_image_is_a_user_error() -> None:
    with pytest.raises(UserError, match="IMAGE_SIZE=16"):
        build_model(16, "none")


@pytest.mark.parametrize("keep", [0, 0.5])
def test_a_damaged_weights_file_is_one_sentence_naming_it(tmp_path: Path, keep: float) -> None:
    model = build_model(32, "none")
    path = tmp_path / "best.weights.h5"
    model.save_weights(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UserError, match=f"The weights file {path} is damaged .*train the run again"):
        load_weights(model, path)
