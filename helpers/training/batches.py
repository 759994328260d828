"""The order of each epoch's training batches and the training augmentation, for both
frameworks.

Both the Keras and the PyTorch loaders draw their batches here, so both frameworks see the
same images in the same batches, augmented the same way. A training batch depends only on
(seed, epoch, batch), so an epoch can be replayed on its own and a resumed run needs no
loader state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

_BORDERS = {"nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT,
            "wrap": cv2.BORDER_WRAP, "constant": cv2.BORDER_CONSTANT}  # Keras fill modes
_STREAMS = {"shuffle": 0, "augment": 1}


def epoch_rng(seed: int, epoch: int, stream: str) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, stream): "shuffle" or "augment"."""
    return np.random.default_rng([seed, epoch, _STREAMS[stream]])


Batch = tuple[np.ndarray, int]  # the indices of one batch and its augmentation seed


def batch_count(n: int, batch_size: int, drop_last: bool) -> int:
    """Batches per epoch; ``drop_last`` drops a last incomplete batch unless it is the only one."""
    return n // batch_size if drop_last and n > batch_size else -(-n // batch_size)


def epoch_batches(n: int, batch_size: int, *, seed: int, epoch: int, shuffle: bool,
                  drop_last: bool = False) -> list[Batch]:
    """One epoch's batches over ``n`` rows, from (seed, epoch) alone.

    ``shuffle``: a fresh permutation each epoch; ``drop_last`` (training) drops a last
    incomplete batch, so BatchNorm never sees a single image, unless there is only one batch.
    """
    order = epoch_rng(seed, epoch, "shuffle").permutation(n) if shuffle else np.arange(n)
    seeds = epoch_rng(seed, epoch, "augment").integers(0, 2**62,
                                                       batch_count(n, batch_size, drop_last))
    return [(order[i * batch_size:(i + 1) * batch_size], int(s)) for i, s in enumerate(seeds)]


@dataclass(frozen=True)
class Augmentation:
    """The seeds' training augmentation, one implementation for both frameworks.

    ``rotation`` in degrees; ``shift`` and ``zoom`` as fractions of the side; ``shear`` as
    the x-shear coefficient (0.1 is about 5.7 degrees; the seeds'
    ``ImageDataGenerator(shear_range=0.1)`` meant 0.1 degree, a near no-op); ``fill_mode``
    as Keras names it ("nearest" repeats the border pixels). A factor of 0 turns that part off.

    Each image gets its own rotation, shift, shear, zoom and flip, composed into one affine
    map and applied in uint8 by ``cv2.warpAffine``. Hand-written because torchvision's v2
    transforms and Keras' random layers draw one parameter set per call on a batch, keep
    their random state outside the model (so a resumed run would see other images), and
    resample in float, several times slower than OpenCV.
    """

    rotation: float = 15.0
    shift: float = 0.1
    shear: float = 0.1
    zoom: float = 0.1
    flip: bool = True
    fill_mode: str = "nearest"

    def matrices(self, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 2, 3) maps from output to input pixel coordinates, about the image centre."""
        u = rng.uniform(-1, 1, (n, 6))
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

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augmented copies of uint8 images (B, s, s), parameters drawn from ``rng``."""
        return self.warp(images, self.matrices(len(images), images.shape[-1], rng))

    def warp(self, images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
        """Copies of uint8 images (B, s, s), each mapped by its (2, 3) matrix.

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
        for image, target, matrix, m in zip(images, out, matrices, margins.tolist()):
            padded = cv2.copyMakeBorder(image, m, m, m, m, _BORDERS[self.fill_mode], value=0)
            cv2.warpAffine(padded, matrix + [[0, 0, m], [0, 0, m]], (size, size), dst=target,
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT)
        return out


def gather_batches(images: np.ndarray, batches: Sequence[Batch],
                   augmentation: Augmentation | None) -> np.ndarray:
    """The images of consecutive ``batches`` (one gather), each batch augmented with its
    own seed, so a batch never depends on how many batches are gathered together."""
    indices = np.concatenate([idx for idx, _ in batches])
    out = images[indices]
    if augmentation is None:
        return out
    size = out.shape[-1]
    return augmentation.warp(out, np.concatenate([
        augmentation.matrices(len(idx), size, np.random.default_rng(seed))
        for idx, seed in batches]))
