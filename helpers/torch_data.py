"""PyTorch inputs from the framework-free split arrays (the mirror of ``helpers.keras_data``).

Each split is decoded once (``helpers.model_data.load_split``) into a uint8 tensor; a
DataLoader gathers whole batches from it by index, and the augmentation and the ImageNet
normalisation run on each batch on the training device. Shuffling and augmentation draw
from generators seeded by (seed, epoch) alone, so every epoch can be replayed on its own
and a resumed run needs no loader state.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.models import ResNet50_Weights

from .config import Layout
from .model_data import SPLITS, SplitArrays, load_split

# The backbone's own preprocessing constants (the same for IMAGENET1K_V1 and V2), on 0-255.
_PRESET = ResNet50_Weights.IMAGENET1K_V1.transforms()
MEAN = tuple(255 * m for m in _PRESET.mean)
STD = tuple(255 * s for s in _PRESET.std)
_STREAMS = {"shuffle": 0, "augment": 1}


def epoch_generator(seed: int, epoch: int, stream: str) -> torch.Generator:
    """A CPU generator that depends only on (seed, epoch, stream): "shuffle" or "augment"."""
    state = np.random.SeedSequence([seed, epoch, _STREAMS[stream]]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


class ImageArrayDataset(Dataset):
    """Grayscale images held once as a uint8 tensor (N, 1, s, s) with float labels (N,).

    Indexing with a list of indices returns a whole batch in one gather.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)).unsqueeze(1)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of indices; shuffled from (seed, epoch) alone, like DistributedSampler.set_epoch."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0,
                 drop_last: bool = False) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last = drop_last and n > batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = (torch.randperm(self.n, generator=epoch_generator(self.seed, self.epoch, "shuffle"))
                 if self.shuffle else torch.arange(self.n))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start:start + self.batch_size].tolist()


@dataclass(frozen=True)
class Augmentation:
    """The seeds' augmentation (DESIGN.md section 7) with the Keras side's parameters.

    Hand-written because torchvision's v2 transforms draw one parameter set per call: here
    each image of a batch gets its own rotation, shift, shear, zoom and flip, composed
    into one affine matrix and applied with one ``grid_sample`` on the training device.
    ``rotation`` in degrees; ``shift`` and ``zoom`` as fractions of the side; ``shear`` as
    the x-shear coefficient (0.1, about 5.7 degrees, as Keras ``RandomShear``); ``fill``
    the padding of ``grid_sample`` ("border" = Keras fill_mode "nearest").
    """

    rotation: float = 15.0
    shift: float = 0.1
    shear: float = 0.1
    zoom: float = 0.1
    flip: bool = True
    fill: str = "border"

    def matrices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 2, 3) output-to-input matrices in ``affine_grid``'s normalised coordinates."""
        u = torch.rand(n, 6, generator=generator, dtype=torch.float64) * 2 - 1
        angle = torch.deg2rad(u[:, 0] * self.rotation)
        scale = 1 + u[:, 1] * self.zoom
        mirror = 1 - 2 * ((u[:, 2] < 0) & self.flip).to(u.dtype)
        cos, sin, zero, one = angle.cos(), angle.sin(), torch.zeros_like(angle), torch.ones_like(angle)
        rotate = torch.stack([cos, -sin, sin, cos], 1).view(n, 2, 2)
        shear = torch.stack([one, u[:, 3] * self.shear, zero, one], 1).view(n, 2, 2)
        forward = rotate @ shear @ torch.diag_embed(torch.stack([scale * mirror, scale], 1))
        inverse = torch.linalg.inv(forward)
        shift = (u[:, 4:6] * self.shift * 2).unsqueeze(2)  # normalised coordinates span 2
        return torch.cat([inverse, -inverse @ shift], 2)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment float images (B, C, s, s); parameters drawn from ``generator`` (CPU)."""
        theta = self.matrices(len(images), generator).to(images.dtype)
        if images.is_cuda:  # a pinned source copies without waiting for the GPU's queue
            theta = theta.pin_memory()
        theta = theta.to(images.device, non_blocking=True)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode=self.fill,
                             align_corners=False)


@functools.cache
def _normalization(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) on ``device``, made once per device."""
    scale = torch.tensor([1 / s for s in STD]).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(MEAN, STD)]).view(1, 3, 1, 1)
    return scale.to(device), shift.to(device)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Grey 0-255 (B, 1, s, s) to ImageNet-normalised RGB (B, 3, s, s), in one broadcast."""
    scale, shift = _normalization(images.device)
    return torch.addcmul(shift, images.float(), scale)


@dataclass(frozen=True)
class Batches:
    """Model-ready batches of one split: the loader gathers uint8 batches, then they are
    moved to ``device``, augmented (training) and normalised there."""

    loader: DataLoader
    device: torch.device
    seed: int
    augment: Augmentation | None = None
    channels_last: bool = False

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images (B, 3, s, s) float32, labels (B,) float32) of one epoch, reproducible alone."""
        self.loader.sampler.set_epoch(epoch)
        generator = epoch_generator(self.seed, epoch, "augment")
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        for images, labels in self.loader:
            x = images.to(self.device, non_blocking=True).float()
            if self.augment is not None:
                x = self.augment(x, generator)
            yield (normalize(x).contiguous(memory_format=memory),
                   labels.to(self.device, non_blocking=True))


def make_batches(dataset: ImageArrayDataset, batch_size: int, *, seed: int, shuffle: bool,
                 device: torch.device, augment: Augmentation | None = None,
                 num_workers: int = 0) -> Batches:
    """A DataLoader over ``dataset`` (workers kept alive, pinned memory on CUDA) as Batches.

    Training (``shuffle``) drops a last incomplete batch, so BatchNorm never sees one image.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed,
                                drop_last=shuffle)
    loader = DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers,
                        persistent_workers=num_workers > 0, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(seed))
    return Batches(loader, device, seed, augment, channels_last=device.type == "cuda")


@dataclass(frozen=True)
class TorchData:
    """The three splits as arrays (paths and labels for the results) and as Batches."""

    arrays: dict[str, SplitArrays]
    batches: dict[str, Batches]


def load_datasets(layout: Layout, size: int, batch_size: int, seed: int, *, ros: bool = False,
                  augment: bool | Augmentation = True, num_workers: int = 0,
                  device: torch.device | str = "cpu") -> TorchData:
    """Train (shuffled with ``seed``, augmented; ``ros``: oversampled rows), val and test.

    ``augment``: True for :class:`Augmentation` with its defaults, False for none, or your own.
    """
    device = torch.device(device)
    if isinstance(augment, bool):
        augment = Augmentation() if augment else None
    arrays = {s: load_split(layout, s, size, ros=ros and s == "train") for s in SPLITS}
    batches = {s: make_batches(ImageArrayDataset(a.images, a.labels), batch_size, seed=seed,
                               shuffle=s == "train", device=device,
                               augment=augment if s == "train" else None, num_workers=num_workers)
               for s, a in arrays.items()}
    return TorchData(arrays, batches)
