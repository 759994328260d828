"""torchvision ResNet50 with the thesis head (the mirror of ``helpers.keras.models``),
its weights, what each training phase trains, seeds, devices and one training step.

Nothing here beyond torch, torchvision and NumPy, so a benchmark on a bare GPU machine
can use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from helpers.config import Profile, mixed_precision, seed_everything
from helpers.errors import UserError
from helpers.training.protocols import Phase, is_pretrained

# The backbone's own preprocessing constants (the same for IMAGENET1K_V1 and V2), on 0-255.
_PRESET = ResNet50_Weights.IMAGENET1K_V1.transforms()
MEAN = tuple(255 * m for m in _PRESET.mean)
STD = tuple(255 * s for s in _PRESET.std)

# WEIGHTS values (any case) naming torchvision's ImageNet weights; "imagenet" = V1, which
# matches the Keras ImageNet weights' training recipe.
WEIGHT_NAMES = {"imagenet": "IMAGENET1K_V1", "imagenet1k_v1": "IMAGENET1K_V1",
                "imagenet1k_v2": "IMAGENET1K_V2"}


class GreyToImageNet(nn.Module):
    """Grey 0-255 images (B, 1, s, s) of any dtype to ImageNet-normalised RGB float32
    (B, 3, s, s), by broadcasting: the grey channel is repeated with each channel's constants."""

    def __init__(self) -> None:
        super().__init__()
        scale = torch.tensor([1 / s for s in STD]).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(MEAN, STD)]).view(1, 3, 1, 1)
        self.register_buffer("scale", scale, persistent=False)  # constants, not in checkpoints
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != 1:
            raise ValueError(f"expected grey images (B, 1, s, s), got {tuple(images.shape)}")
        return images.float().mul(self.scale).add_(self.shift)  # 2-3x faster than addcmul on a CPU


class ResNet50Classifier(nn.Module):
    """Grey 0-255 images -> ImageNet normalisation -> ResNet50 -> global average pooling ->
    Linear 1024 ReLU -> Dropout 0.5 -> Linear 512 ReLU -> Dropout 0.3 -> Linear 1: one logit
    per image.

    The normalisation is the model's first layer, as Keras' ``preprocess_input``, so the
    loader ships uint8 and the device does the arithmetic. While ``frozen_bn`` is set,
    ``train()`` keeps every BatchNorm layer in inference mode (Keras: ``training=False``).
    """

    def __init__(self, pretrained: bool) -> None:
        super().__init__()
        self.pretrained = pretrained
        self.frozen_bn = False
        self.normalize = GreyToImageNet()
        self.backbone = resnet50()
        self.backbone.fc = nn.Identity()  # torchvision's avgpool is the global average pooling
        self.head = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(1024, 512), nn.ReLU(), nn.Dropout(0.3),
                                  nn.Linear(512, 1))
        for layer in self.head:
            if isinstance(layer, nn.Linear):  # Keras Dense defaults: Glorot uniform, zero bias
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.normalize(images))).squeeze(1)

    def train(self, mode: bool = True) -> ResNet50Classifier:
        super().train(mode)
        if mode and self.frozen_bn:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self


def _download(name: str) -> dict[str, torch.Tensor]:
    """torchvision's state dict ``name``, from the hub cache or downloaded into it."""
    weights = ResNet50_Weights[name]
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except OSError as error:  # URLError offline, or a cache folder that cannot be written
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise UserError(
            f"Could not download the {name} ResNet50 weights ({type(error).__name__}: {error}): "
            f"put {weights.url.rsplit('/', 1)[-1]} (from {weights.url}) under {folder}, or pass "
            f"WEIGHTS=<path to a ResNet50 .pth file>, or WEIGHTS=none to train from random "
            f"weights.") from error


def backbone_state(weights: str) -> dict[str, torch.Tensor]:
    """ImageNet weights of torchvision's ResNet50: a name of WEIGHT_NAMES or a local .pth file."""
    name = WEIGHT_NAMES.get(str(weights).lower())
    if name is not None:
        return _download(name)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"WEIGHTS={weights!r} is no file and not one of imagenet, "
                        f"IMAGENET1K_V1, IMAGENET1K_V2, none: pass one of those or the path "
                        f"of a ResNet50 .pth file.")
    return torch.load(path, map_location="cpu", weights_only=True)


def build_model(size: int, weights: str = "imagenet") -> ResNet50Classifier:
    """The classifier for (size, size) grey images with ImageNet (or a file's) backbone
    weights, or random ones for "none" (torchvision's ResNet50 takes any size >= 32)."""
    if size < 32:
        raise UserError(f"IMAGE_SIZE={size} is too small for ResNet50: use 32 px or more.")
    model = ResNet50Classifier(pretrained=is_pretrained(weights))
    if model.pretrained:
        state = {k: v for k, v in backbone_state(weights).items() if not k.startswith("fc.")}
        try:
            model.backbone.load_state_dict(state)
        except RuntimeError as error:
            first_line = str(error).splitlines()[0]
            raise UserError(f"WEIGHTS={weights!r} does not hold torchvision ResNet50 weights "
                            f"({first_line}): pass a resnet50 .pth state dict.") from error
    return model


def configure_phase(model: ResNet50Classifier, phase: Phase) -> list[nn.Parameter]:
    """Set what trains in ``phase`` and return those parameters (as the Keras side).

    "all": the whole network with BatchNorm training (the scratch protocol); "head": the
    head with the backbone frozen; "last_stage": the layer4 convolutions and the head.
    Whenever the backbone is not trained whole, every BatchNorm is frozen in inference mode.
    """
    whole = phase.trains == "all"
    model.requires_grad_(whole)
    model.head.requires_grad_(True)
    if phase.trains == "last_stage":
        for module in model.backbone.layer4.modules():
            if isinstance(module, nn.Conv2d):
                module.requires_grad_(True)
    model.frozen_bn = not whole
    return [p for p in model.parameters() if p.requires_grad]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else the GPU when there is one, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_dtype(device: torch.device, profile: Profile) -> torch.dtype | None:
    """Autocast dtype (``helpers.config.mixed_precision``): on CUDA bf16 where supported,
    else fp16; on a CPU with native bf16, bf16; otherwise None (float32)."""
    if not mixed_precision(profile, device.type):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def describe_device(device: torch.device, profile: Profile) -> str:
    """The device and its precision, in words."""
    amp = amp_dtype(device, profile)
    name = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    precision = "float32" if amp is None else f"autocast {str(amp).removeprefix('torch.')}"
    return f"{device}{name}: {precision}" + (", channels_last" if device.type == "cuda" else "")


def set_seeds(seed: int, device: torch.device | str = "cpu") -> None:
    """Seed Python, NumPy and torch; deterministic kernels on the CPU, cuDNN autotuning on
    the GPU."""
    seed_everything(seed)
    torch.manual_seed(seed)
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        torch.use_deterministic_algorithms(True)


def to_device(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``, channels_last on CUDA."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def optimizer(params: list[nn.Parameter], phase: Phase, device: torch.device
              ) -> torch.optim.Optimizer:
    """The phase's Adam or AdamW with Keras' epsilon (1e-7); the fused kernel on CUDA."""
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[phase.optimizer]
    extra = {"weight_decay": phase.weight_decay} if phase.optimizer == "adamw" else {}
    return kind(params, lr=phase.lr, eps=1e-7, fused=device.type == "cuda", **extra)


def grad_scaler(device: torch.device, amp: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 autocast."""
    return torch.amp.GradScaler(device.type, enabled=amp == torch.float16)


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, loss_fn: nn.Module,
               optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               amp: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step; the batch's mean loss and logits, detached (no host sync)."""
    with torch.autocast(images.device.type, dtype=amp, enabled=amp is not None):
        logits = model(images)
    loss = loss_fn(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), logits.detach()


@torch.no_grad()
def predict_logits(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                   amp: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels (float32, on the batches' device) of every batch, in inference mode."""
    model.eval()
    logits, labels = [], []
    for images, y in batches:
        with torch.autocast(images.device.type, dtype=amp, enabled=amp is not None):
            logits.append(model(images).float())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)
