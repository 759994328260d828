"""The PyTorch ResNet50: head, what each phase trains, and the weights' clear failures."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torch import nn
from torchvision.models import resnet50

from helpers.config import get_profile
from helpers.errors import UserError
from helpers.torch.models import MEAN, STD, GreyToImageNet, ResNet50Classifier, build_model, configure_phase
from helpers.training.protocols import phases

pytestmark = pytest.mark.torch


def test_head_gives_one_logit_per_image() -> None:
    model = build_model(32, "none").eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 32, 32, dtype=torch.uint8)).shape == (2,)
    linear = [(m.in_features, m.out_features) for m in model.head if isinstance(m, nn.Linear)]
    dropout = [m.p for m in model.head if isinstance(m, nn.Dropout)]
    assert linear == [(2048, 1024), (1024, 512), (512, 1)] and dropout == [0.5, 0.3]


def test_first_layer_maps_grey_black_and_white_to_imagenet_extremes() -> None:
    x = GreyToImageNet()(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1))
    assert x.shape == (2, 3, 1, 1) and x.dtype == torch.float32
    torch.testing.assert_close(x[0].flatten(), torch.tensor([-m / s for m, s in zip(MEAN, STD)]))
    white = torch.tensor([(255 - m) / s for m, s in zip(MEAN, STD)])
    torch.testing.assert_close(x[1].flatten(), white)
    with pytest.raises(ValueError, match="grey"):
        GreyToImageNet()(torch.zeros(1, 3, 4, 4))


def test_normalisation_constants_stay_out_of_checkpoints() -> None:
    model = build_model(32, "none")
    assert not any(key.startswith("normalize") for key in model.state_dict())
    assert set(model.backbone.state_dict()) == set(resnet50().state_dict()) - {"fc.weight",
                                                                                "fc.bias"}


def trainable(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def batchnorm_training(model: nn.Module) -> set[bool]:
    return {m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d)}


def test_phases_train_the_head_then_layer4_convolutions_with_batchnorm_frozen() -> None:
    model = ResNet50Classifier(pretrained=True)
    head = {n for n, _ in model.named_parameters() if n.startswith("head.")}
    layer4 = {f"backbone.layer4.{n}.weight" for n, m in model.backbone.layer4.named_modules()
              if isinstance(m, nn.Conv2d)}
    assert len(layer4) == 10  # 3 blocks x 3 convolutions + the downsampling one
    head_phase, last_stage = phases(get_profile("smoke", weights="imagenet"))
    configure_phase(model, head_phase)
    assert trainable(model) == head and batchnorm_training(model.train()) == {False}
    params = configure_phase(model, last_stage)
    assert trainable(model) == head | layer4 and len(params) == len(head | layer4)
    model.train()
    assert batchnorm_training(model) == {False}
    assert all(m.training for m in model.head)


def test_without_pretrained_weights_the_one_phase_trains_everything() -> None:
    model = ResNet50Classifier(pretrained=False)
    (only,) = phases(get_profile("smoke", weights="none"))
    configure_phase(model, only)
    assert trainable(model) == {n for n, _ in model.named_parameters()}
    assert batchnorm_training(model.train()) == {True}


@pytest.mark.parametrize("weights, file", [("imagenet", "resnet50-0676ba61.pth"),
                                           ("IMAGENET1K_V2", "resnet50-11ad3fa6.pth")])
def test_offline_download_stops_with_one_sentence(weights: str, file: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UserError) as error:
        build_model(32, weights)
    message = str(error.value)
    assert file in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "WEIGHTS=<path" in message and "WEIGHTS=none" in message
    assert "\n" not in message and message.count(". ") == 0


def test_too_small_an_image_is_a_user_error() -> None:
    with pytest.raises(UserError, match="IMAGE_SIZE=16"):
        build_model(16, "none")


def test_missing_local_weights_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nothere.pth"):
        build_model(32, str(tmp_path / "nothere.pth"))


def test_local_weights_file_is_loaded(tmp_path: Path) -> None:
    reference = resnet50()
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    model = build_model(32, str(tmp_path / "resnet50.pth"))
    assert model.pretrained
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.backbone.layer4[2].bn3.running_var,
                       reference.layer4[2].bn3.running_var)
