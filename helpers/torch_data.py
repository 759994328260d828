"""PyTorch inputs from the framework-free split arrays (the mirror of ``helpers.keras_data``).

Each split is decoded once (``helpers.model_data.load_arrays``) into a uint8 tensor. A
DataLoader asks for whole batches: its workers gather them by index and augment them in
uint8 with OpenCV; the ImageNet normalisation runs on the training device. Shuffling and
augmentation depend on (seed, epoch) alone, so every epoch can be replayed on its own,
with or without workers, and a resumed run needs no loader state.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.models import ResNet50_Weights

from .config import Layout
from .model_data import AugmentationParams, SplitArrays, load_all_arrays

# The backbone's own preprocessing constants (the same for IMAGENET1K_V1 and V2), on 0-255.
_PRESET = ResNet50_Weights.IMAGENET1K_V1.transforms()
MEAN = tuple(255 * m for m in _PRESET.mean)
STD = tuple(255 * s for s in _PRESET.std)
_STREAMS = {"shuffle": 0, "augment": 1}
_BORDERS = {"nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT,
            "wrap": cv2.BORDER_WRAP, "constant": cv2.BORDER_CONSTANT}  # Keras fill modes


def epoch_generator(seed: int, epoch: int, stream: str) -> torch.Generator:
    """A CPU generator that depends only on (seed, epoch, stream): "shuffle" or "augment"."""
    state = np.random.SeedSequence([seed, epoch, _STREAMS[stream]]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


class Augmentation(AugmentationParams):
    """The shared augmentation parameters applied per image in uint8.

    Each image gets its own rotation, shift, shear, zoom and flip, composed into one affine
    map and applied by ``cv2.warpAffine``. Hand-written because torchvision's v2 transforms
    draw one parameter set per call on a batch, and per image on uint8 tensors they
    resample in float through ``grid_sample``, several times slower than OpenCV.
    """

    def matrices(self, n: int, size: int, generator: torch.Generator) -> np.ndarray:
        """(n, 2, 3) maps from output to input pixel coordinates, about the image centre."""
        u = (torch.rand(n, 6, generator=generator, dtype=torch.float64) * 2 - 1).numpy()
        angle = np.radians(u[:, 0] * self.rotation)
        scale = 1 + u[:, 1] * self.zoom
        mirror = np.where((u[:, 2] < 0) & self.flip, -1.0, 1.0)
        cos, sin, zero, one = np.cos(angle), np.sin(angle), np.zeros(n), np.ones(n)
        rotate = np.stack([cos, -sin, sin, cos], 1).reshape(n, 2, 2)
        shear = np.stack([one, u[:, 3] * self.shear, zero, one], 1).reshape(n, 2, 2)
        scaling = np.stack([scale * mirror, zero, zero, scale], 1).reshape(n, 2, 2)
        inverse = np.linalg.inv(rotate @ shear @ scaling)
        centre = np.full((n, 2, 1), (size - 1) / 2)
        shift = u[:, 4:6, None] * self.shift * size
        return np.concatenate([inverse, centre - inverse @ (centre + shift)], 2)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augmented copies of uint8 images (B, 1, s, s), parameters drawn from ``generator``."""
        size = images.shape[-1]
        out = np.empty(images.shape, np.uint8)
        matrices = self.matrices(len(images), size, generator)
        for image, target, matrix in zip(images.numpy(), out, matrices):
            cv2.warpAffine(image[0], matrix, (size, size), dst=target[0],
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=_BORDERS[self.fill_mode])
        return torch.from_numpy(out)


class ImageArrayDataset(Dataset):
    """Grayscale images held once as a uint8 tensor (N, 1, s, s) with float labels (N,).

    Items are whole batches: ``dataset[(indices, seed)]`` gathers the images in one index
    operation and, with an ``augment``, augments them with parameters drawn from ``seed``.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 augment: Augmentation | None = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)).unsqueeze(1)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, request: tuple[list[int], int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices, seed = request
        images = self.images[indices]
        if self.augment is not None:
            images = self.augment(images, torch.Generator().manual_seed(seed))
        return images, self.labels[indices]


class EpochBatchSampler(Sampler[tuple[list[int], int]]):
    """(indices, seed) per batch; order and seeds from (seed, epoch) alone (``set_epoch``,
    like DistributedSampler), so workers and resumed runs see the same batches."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0,
                 drop_last: bool = False) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last = drop_last and n > batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[list[int], int]]:
        order = (torch.randperm(self.n, generator=epoch_generator(self.seed, self.epoch, "shuffle"))
                 if self.shuffle else torch.arange(self.n))
        seeds = torch.randint(2**62, (len(self),),
                              generator=epoch_generator(self.seed, self.epoch, "augment"))
        for i, seed in enumerate(seeds.tolist()):
            yield order[i * self.batch_size:(i + 1) * self.batch_size].tolist(), seed


@functools.cache
def _normalization(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) on ``device``, made once per device."""
    scale = torch.tensor([1 / s for s in STD]).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(MEAN, STD)]).view(1, 3, 1, 1)
    return scale.to(device), shift.to(device)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Grey 0-255 (B, 1, s, s) to ImageNet-normalised RGB (B, 3, s, s), by broadcasting."""
    scale, shift = _normalization(images.device)
    return images.float().mul(scale).add_(shift)  # 2-3x faster than addcmul on a CPU


@dataclass(frozen=True)
class Batches:
    """Model-ready batches of one split: the loader gathers (and for training augments)
    uint8 batches; they are moved to ``device`` and normalised there."""

    loader: DataLoader
    device: torch.device
    channels_last: bool = False

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images (B, 3, s, s) float32, labels (B,) float32) of one epoch, reproducible alone."""
        self.loader.sampler.set_epoch(epoch)
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        for images, labels in self.loader:
            x = normalize(images.to(self.device, non_blocking=True))
            yield x.contiguous(memory_format=memory), labels.to(self.device, non_blocking=True)


def make_batches(dataset: ImageArrayDataset, batch_size: int, *, seed: int, shuffle: bool,
                 device: torch.device, num_workers: int = 0) -> Batches:
    """A DataLoader over ``dataset`` (workers kept alive, pinned memory on CUDA) as Batches.

    Training (``shuffle``) drops a last incomplete batch, so BatchNorm never sees one image.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed,
                                drop_last=shuffle)
    loader = DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers,
                        persistent_workers=num_workers > 0, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(seed))
    return Batches(loader, device, channels_last=device.type == "cuda")


@dataclass(frozen=True)
class TorchData:
    """The three splits as arrays (paths and labels for the results) and as Batches."""

    arrays: dict[str, SplitArrays]
    batches: dict[str, Batches]
    augmentation: Augmentation | None


def load_datasets(layout: Layout, size: int, batch_size: int, seed: int, *, ros: bool = False,
                  augmentation: Augmentation | None = Augmentation(), num_workers: int = 0,
                  device: torch.device | str = "cpu") -> TorchData:
    """Train (shuffled and augmented with ``seed``; ``ros``: oversampled rows), val and test.

    ``augmentation=None`` trains on the images as they are; ``num_workers`` loader
    processes gather and augment the training batches.
    """
    device = torch.device(device)
    arrays = load_all_arrays(layout, size, ros)
    batches = {s: make_batches(ImageArrayDataset(a.images, a.labels,
                                                 augmentation if s == "train" else None),
                               batch_size, seed=seed, shuffle=s == "train", device=device,
                               num_workers=num_workers if s == "train" else 0)
               for s, a in arrays.items()}
    return TorchData(arrays, batches, augmentation)
