"""PyTorch inputs from the framework-free split arrays (the mirror of ``helpers.keras.data``).

Each split is decoded once (``helpers.data.arrays.load_arrays``) into a uint8 array. A
DataLoader asks for runs of whole batches (``helpers.training.batches.epoch_batches``): its
workers gather them by index and augment them in uint8 with OpenCV, exactly as the Keras
side does. Batches reach the device as they are, grey uint8 (B, 1, s, s), 12 times fewer
bytes than normalised RGB floats; the model normalises them itself (its first layer, as
Keras' ``preprocess_input``). Shuffling and augmentation depend on (seed, epoch) alone, so
every epoch can be replayed on its own, with or without workers, and a resumed run needs
no loader state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from helpers.config import Layout
from helpers.data.arrays import SplitArrays, split_summary
from helpers.data.training_data import load_all_arrays
from helpers.training.batches import Augmentation, Batch, batch_count, epoch_batches, gather_batches

TRANSFER_IMAGES = 128  # per worker message: at batch 32, 1.4x the images/s of one batch each


class ImageArrayDataset(Dataset):
    """Grayscale images held once as a uint8 array (N, s, s) with float labels (N,).

    Items are runs of whole batches: ``dataset[[(indices, seed), ...]]`` gathers their
    images in one index operation and, with an ``augment``, augments each batch with
    parameters drawn from its own seed (``helpers.training.batches.gather_batches``).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 augment: Augmentation | None = None) -> None:
        self.images = np.ascontiguousarray(images, dtype=np.uint8)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, request: list[Batch]) -> tuple[torch.Tensor, torch.Tensor]:
        images = gather_batches(self.images, request, self.augment)
        indices = torch.from_numpy(np.concatenate([idx for idx, _ in request]))
        return torch.from_numpy(images).unsqueeze(1), self.labels[indices]


class EpochBatchSampler(Sampler[list[Batch]]):
    """An epoch's batches (``epoch_batches``), handed out ``group`` at a time (one worker
    message each, which amortises the inter-process transfer); ``set_epoch`` picks the
    epoch, like DistributedSampler."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, group: int = 1) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.drop_last, self.group = drop_last, group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def plan(self) -> list[Batch]:
        return epoch_batches(self.n, self.batch_size, seed=self.seed, epoch=self.epoch,
                             shuffle=self.shuffle, drop_last=self.drop_last)

    @property
    def batches(self) -> int:
        """Batches per epoch."""
        return batch_count(self.n, self.batch_size, self.drop_last)

    def __len__(self) -> int:
        return -(-self.batches // self.group)

    def __iter__(self) -> Iterator[list[Batch]]:
        batches = self.plan()
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

    def summary(self) -> pd.DataFrame:
        """Images, positives and negatives per split."""
        return split_summary(self.arrays)


def load_datasets(layout: Layout, size: int, batch_size: int, seed: int, *,
                  training_data: str = "original", imbalance: str = "natural",
                  augmentation: Augmentation | None = Augmentation(), num_workers: int = 0,
                  device: torch.device | str = "cpu") -> TorchData:
    """Train (shuffled and augmented with ``seed``), val and test; ``training_data``
    "ros" takes the oversampled training rows, ``imbalance`` a setting's training rows
    (``helpers.data.imbalance``).

    ``augmentation=None`` trains on the images as they are; ``num_workers`` loader
    processes gather and augment the training batches.
    """
    device = torch.device(device)
    arrays = load_all_arrays(layout, size, training_data, imbalance)
    batches = {s: make_batches(ImageArrayDataset(a.images, a.labels,
                                                 augmentation if s == "train" else None),
                               batch_size, seed=seed, shuffle=s == "train", device=device,
                               num_workers=num_workers if s == "train" else 0)
               for s, a in arrays.items()}
    return TorchData(arrays, batches, augmentation)
