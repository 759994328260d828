"""PyTorch inputs from the framework-free split arrays (the mirror of ``helpers.keras_data``).

Each split is decoded once (``helpers.model_data.load_arrays``) into a uint8 tensor. A
DataLoader asks for runs of whole batches: its workers gather them by index and augment
them in uint8 with OpenCV. Batches reach the device as they are, grey uint8 (B, 1, s, s),
12 times fewer bytes than normalised RGB floats; the model normalises them itself (its
first layer, as Keras' ``preprocess_input``). Shuffling and augmentation depend on
(seed, epoch) alone, so every epoch can be replayed on its own, with or without workers,
and a resumed run needs no loader state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import Layout
from .model_data import AugmentationParams, SplitArrays, load_all_arrays

_STREAMS = {"shuffle": 0, "augment": 1}
TRANSFER_IMAGES = 128  # per worker message: at batch 32, 1.4x the images/s of one batch each
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
        return self.warp(images, self.matrices(len(images), images.shape[-1], generator))

    def warp(self, images: torch.Tensor, matrices: np.ndarray) -> torch.Tensor:
        """Copies of uint8 images (B, 1, s, s), each mapped by its (2, 3) matrix.

        Each image is padded by its fill mode as far as its map reaches and then warped with
        a constant border: 2x faster than warpAffine's own border modes, and within one
        grey level of them (fixed-point rounding).
        """
        size = images.shape[-1]
        out = np.empty(images.shape, np.uint8)
        corners = np.array([[0, size - 1, 0, size - 1], [0, 0, size - 1, size - 1], [1, 1, 1, 1]])
        reach = matrices @ corners  # where each output corner samples the input
        overshoot = np.maximum(-reach.min((1, 2)), reach.max((1, 2)) - (size - 1))
        margins = np.ceil(overshoot.clip(0)).astype(int) + 2  # + the interpolation neighbour
        for image, target, matrix, m in zip(images.numpy(), out, matrices, margins.tolist()):
            padded = cv2.copyMakeBorder(image[0], m, m, m, m, _BORDERS[self.fill_mode], value=0)
            cv2.warpAffine(padded, matrix + [[0, 0, m], [0, 0, m]], (size, size), dst=target[0],
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT)
        return torch.from_numpy(out)


Request = list[tuple[list[int], int]]  # consecutive batches, each (indices, augmentation seed)


class ImageArrayDataset(Dataset):
    """Grayscale images held once as a uint8 tensor (N, 1, s, s) with float labels (N,).

    Items are runs of whole batches: ``dataset[[(indices, seed), ...]]`` gathers their
    images in one index operation and, with an ``augment``, augments each batch with
    parameters drawn from its own seed, so a batch never depends on how batches are grouped.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 augment: Augmentation | None = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)).unsqueeze(1)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, request: Request) -> tuple[torch.Tensor, torch.Tensor]:
        indices = [i for batch, _ in request for i in batch]
        images = self.images[indices]
        if self.augment is not None:
            size = images.shape[-1]
            images = self.augment.warp(images, np.concatenate([
                self.augment.matrices(len(batch), size, torch.Generator().manual_seed(seed))
                for batch, seed in request]))
        return images, self.labels[indices]


class EpochBatchSampler(Sampler[Request]):
    """Batches as (indices, seed), handed out ``group`` at a time (one worker message each,
    which amortises the inter-process transfer). Order and seeds come from (seed, epoch)
    alone (``set_epoch``, like DistributedSampler), so workers, grouping and resumed runs
    all see the same batches."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, group: int = 1) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last = drop_last and n > batch_size
        self.group = group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def batches(self) -> int:
        """Batches per epoch."""
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __len__(self) -> int:
        return -(-self.batches // self.group)

    def __iter__(self) -> Iterator[Request]:
        order = (torch.randperm(self.n, generator=epoch_generator(self.seed, self.epoch, "shuffle"))
                 if self.shuffle else torch.arange(self.n))
        seeds = torch.randint(2**62, (self.batches,),
                              generator=epoch_generator(self.seed, self.epoch, "augment")).tolist()
        batches = [(order[i * self.batch_size:(i + 1) * self.batch_size].tolist(), seed)
                   for i, seed in enumerate(seeds)]
        for start in range(0, len(batches), self.group):
            yield batches[start:start + self.group]


@dataclass(frozen=True)
class Batches:
    """Model-ready batches of one split: the loader gathers (and for training augments)
    uint8 batches, which are moved to ``device`` as they are."""

    loader: DataLoader
    device: torch.device

    def __len__(self) -> int:
        return self.loader.sampler.batches

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images (B, 1, s, s) uint8 0-255, labels (B,) float32) of one epoch, reproducible
        alone."""
        sampler = self.loader.sampler
        sampler.set_epoch(epoch)
        for images, labels in self.loader:  # a group of batches: one transfer, then views
            images = images.to(self.device, non_blocking=True).split(sampler.batch_size)
            labels = labels.to(self.device, non_blocking=True).split(sampler.batch_size)
            yield from zip(images, labels)


def make_batches(dataset: ImageArrayDataset, batch_size: int, *, seed: int, shuffle: bool,
                 device: torch.device, num_workers: int = 0) -> Batches:
    """A DataLoader over ``dataset`` (workers kept alive, pinned memory on CUDA) as Batches.

    Training (``shuffle``) drops a last incomplete batch, so BatchNorm never sees one image.
    Workers send about ``TRANSFER_IMAGES`` images per message.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed,
                                drop_last=shuffle, group=max(1, TRANSFER_IMAGES // batch_size))
    loader = DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers,
                        persistent_workers=num_workers > 0, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(seed))
    return Batches(loader, device)


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
