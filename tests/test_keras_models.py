"""ResNet50 baseline (Keras): the model, its two training phases, checkpoints, weights errors.

Runs in a process of its own (DESIGN.md section 4): ``pytest tests/test_keras_*.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from helpers.config import Layout, Profile, get_profile
from helpers.errors import UserError
from helpers.keras_data import KerasData, load_datasets
from helpers.keras_models import (WEIGHTS_FILE, ResNetPreprocess, TrainResult, build_model,
                                  load_model, predict, set_phase, set_seeds, train)

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


@pytest.fixture(scope="module")
def profile(backbone_file: Path) -> Profile:
    """Smoke, with a backbone file (phase 1 trains the head only: fast to trace), and
    phase 2 at a rate that makes it diverge, so the best model is phase 1's, not the last."""
    return get_profile("smoke", weights=str(backbone_file), lr_finetune=0.05)


def train_toy(layout: Layout, out_dir: Path, profile: Profile) -> tuple[TrainResult, KerasData]:
    set_seeds(SEED)
    data = load_datasets(layout, 32, profile.batch_size, SEED)
    model = build_model(32, profile.weights)
    return train(model, data.datasets["train"], data.datasets["val"], profile, out_dir,
                 verbose=0), data


@pytest.fixture(scope="module")
def trained(prepared_layout: Layout, profile: Profile, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[TrainResult, KerasData]:
    return train_toy(prepared_layout, tmp_path_factory.mktemp("keras") / "ckpt", profile)


def bce(labels: np.ndarray, prob: np.ndarray) -> float:
    return float(keras.losses.BinaryCrossentropy()(labels[:, None], prob[:, None]))


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
    prob = model.predict(np.full((2, 32, 32, 3), 128.0, np.float32), verbose=0)
    assert prob.shape == (2, 1) and np.all((prob >= 0) & (prob <= 1))


def test_preprocessing_layer_is_resnet50_preprocess_input() -> None:
    rgb = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    expected = keras.applications.resnet50.preprocess_input(rgb.copy())
    np.testing.assert_allclose(np.asarray(ResNetPreprocess()(rgb)), expected, rtol=1e-6)


def test_phase_two_fine_tunes_the_last_stage_with_batchnorm_frozen(backbone_file: Path) -> None:
    reference = keras.applications.ResNet50(include_top=False, weights=str(backbone_file),
                                            input_shape=(32, 32, 3))
    model = build_model(32, str(backbone_file))  # a local file: the pretrained path
    backbone = model.get_layer("resnet50")
    for mine, theirs in zip(backbone.weights, reference.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert not backbone.trainable_weights  # phase 1: backbone frozen
    set_phase(model, 2)
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
    model.train_on_batch(rng.uniform(0, 255, (4, 32, 32, 3)), np.array([[0], [1], [0], [1]]))
    changed = {n: not np.array_equal(w, backbone.get_layer(n).get_weights()[0])
               for n, w in watched.items()}
    assert changed == {"conv4_block6_3_conv": False, "conv5_block3_3_conv": True,
                       "conv5_block3_3_bn": False}
    set_phase(model, 1, scratch=True)  # from scratch, phase 1 trains everything
    assert len(model.trainable_weights) == len([w for w in model.weights if "moving" not in w.path])


def test_training_writes_checkpoints_and_a_two_phase_history(
        trained: tuple[TrainResult, KerasData], profile: Profile) -> None:
    result, _ = trained
    out = result.checkpoint.parent
    assert result.checkpoint.name == "best.keras"
    for name in ("best.keras", "phase1.keras", "phase2.keras", "phase1_log.csv", "phase2_log.csv"):
        assert (out / name).is_file(), name
    history = result.history
    assert list(history.columns[:5]) == ["epoch", "phase", "loss", "val_loss", "lr"]
    assert history["epoch"].tolist() == [1, 2] and history["phase"].tolist() == [1, 2]
    np.testing.assert_allclose(history["lr"], [profile.lr_head, profile.lr_finetune])
    assert {"val_accuracy", "val_auc"} <= set(history.columns)
    assert result.config()["phase1_trains"] == "the head (backbone frozen)"


def test_reloaded_checkpoint_predicts_the_same(trained: tuple[TrainResult, KerasData]) -> None:
    result, data = trained
    prob = predict(result.model, data.datasets["test"])
    assert prob.shape == (len(data.arrays["test"]),) and np.all((prob >= 0) & (prob <= 1))
    np.testing.assert_allclose(predict(load_model(result.checkpoint), data.datasets["test"]),
                               prob, rtol=1e-5, atol=1e-6)


def test_kept_model_is_the_best_on_validation_not_the_last(trained: tuple[TrainResult, KerasData]
                                                           ) -> None:
    result, data = trained
    history = result.history
    best = int(history["val_loss"].idxmin())
    assert best != len(history) - 1  # phase 2 diverged, so "last" would be wrong
    assert result.best_phase == history.loc[best, "phase"] == 1
    labels = data.arrays["val"].labels.astype(np.float32)
    for model in (result.model, load_model(result.checkpoint)):
        val_loss = bce(labels, predict(model, data.datasets["val"]))
        assert val_loss == pytest.approx(history["val_loss"].min(), rel=1e-4)


def test_same_seed_gives_the_same_history(prepared_layout: Layout, profile: Profile,
                                          tmp_path: Path, trained: tuple[TrainResult, KerasData]
                                          ) -> None:
    again, _ = train_toy(prepared_layout, tmp_path / "again", profile)
    pd.testing.assert_frame_equal(again.history, trained[0].history, rtol=1e-6)


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


def test_no_epochs_at_all_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="EPOCHS_HEAD"):
        train(keras.Sequential(), None, None,
              get_profile("smoke", epochs_head=0, epochs_finetune=0), tmp_path)
