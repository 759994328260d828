"""Throughput of the PyTorch side: input pipeline and training step, in images/s.

    python benchmarks/bench_torch_pipeline.py input [--root ROOT [--dataset chest_xray]]
                                [--data-dir DIR] [--sizes 224 128] [--limit 2048] [--workers 2]
    python benchmarks/bench_torch_pipeline.py train [--sizes 64 128 224] [--device cpu|cuda]
                                [--synthetic N] [--phase full|head|layer4] [--workers 0]

``input`` compares our pipeline (images decoded once into a uint8 tensor, batches gathered
by index and augmented in uint8 by the loader; the model normalises them, which is timed
on its own line) with the seeds' per-item Dataset (a DataFrame row per item, PIL open of
the raw file, torchvision transforms per image, normalised floats) on the same images:
the training split of a ROOT prepared by notebooks 01-02 (its cache at each size), or a
raw Kaggle-layout folder decoded here with OpenCV. ``train``
times full training steps (forward, backward, Adam; data loading included) after a few
warm-up steps: a few batches on the CPU, or a whole epoch of ``--synthetic N`` random
images with mixed precision and channels_last on CUDA. Every figure is measured
``--repeat`` times because the CPU may be shared. No arguments: both, on the bundled
sample. Needs only torch, torchvision, numpy, pandas, OpenCV and Pillow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

from helpers.config import SAMPLE_DIR, Layout, get_profile
from helpers.data.arrays import load_arrays
from helpers.torch.data import ImageArrayDataset, make_batches
from helpers.torch.models import (
    MEAN,
    STD,
    GreyToImageNet,
    ResNet50Classifier,
    amp_dtype,
    configure_phase,
    describe_device,
    grad_scaler,
    optimizer,
    set_seeds,
    to_device,
    train_step,
)
from helpers.training.batches import Augmentation
from helpers.training.protocols import phases

IMAGENET_MEAN = [m / 255 for m in MEAN]
IMAGENET_STD = [s / 255 for s in STD]
# --phase: (weights, index of the protocol's phase): scratch's one phase, transfer's two
PHASES = {"full": ("none", 0), "head": ("imagenet", 0), "layer4": ("imagenet", 1)}


class SeedStyleDataset(Dataset):
    """Seed document 000's Dataset: ``df.iloc[idx]``, PIL open of the raw file, transforms."""

    def __init__(self, df: pd.DataFrame, transform: Callable) -> None:
        self.df, self.transform = df, transform

    def __len__(self) -> int:
        return len(self.df)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.df.iloc[idx]
        image = Image.open(row["image_path"]).convert("RGB")
        return self.transform(image), torch.tensor(row["label"], dtype=torch.float32)


def seed_transform(size: int, augmentation: T.RandomAffine | T.RandomRotation) -> T.Compose:
    return T.Compose([T.Resize((size, size)), T.RandomHorizontalFlip(), augmentation,
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def our_affine() -> T.RandomAffine:
    """Our Augmentation's ranges as a per-image torchvision transform."""
    aug = Augmentation()
    return T.RandomAffine(aug.rotation, translate=(aug.shift, aug.shift),
                          scale=(1 - aug.zoom, 1 + aug.zoom),
                          shear=float(np.degrees(np.arctan(aug.shear))))


def load(path: str, size: int) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def train_images(args: argparse.Namespace, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Grey uint8 images (N, size, size), labels and the raw files they came from."""
    if args.root:
        layout = Layout.of(args.dataset, args.root)
        arrays = load_arrays(layout, "train", size)
        data_dir = Path(json.loads(layout.split_config.read_text())["data_dir"])
        n = min(args.limit, len(arrays))
        return arrays.images[:n], arrays.labels[:n], [str(data_dir / p) for p in arrays.paths[:n]]
    files = sorted(str(p) for p in Path(args.data_dir).rglob("*.jp*g"))[:args.limit]
    labels = np.array(["NORMAL" not in f for f in files], dtype=np.int64)
    return np.stack([load(f, size) for f in files]), labels, files


def rate(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], skip: int = 0,
         sync: Callable[[], None] = lambda: None) -> float:
    """Images per second over ``batches``, first-batch latency included; with ``skip``, the
    clock starts after the first ``skip`` batches."""
    n, start = 0, time.perf_counter()
    for i, (x, _) in enumerate(batches, 1):
        n += len(x)
        if i == skip:
            sync()
            n, start = 0, time.perf_counter()
    sync()
    return n / (time.perf_counter() - start)


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def bench_input(args: argparse.Namespace) -> None:
    for size in args.sizes:
        start = time.perf_counter()
        images, labels, files = train_images(args, size)
        decode = time.perf_counter() - start
        print(f"\n{size} px, {len(files)} images, batch {args.batch_size}, {args.workers} workers "
              f"(ours: one-time decode {decode:.1f} s = {len(files) / decode:.0f} images/s)")
        dataset = ImageArrayDataset(images, labels, Augmentation())
        ours = {w: make_batches(dataset, args.batch_size, seed=0, shuffle=True,
                                device=torch.device("cpu"), num_workers=w)
                for w in sorted({args.workers, 0})}
        df = pd.DataFrame({"image_path": files, "label": labels})
        seed_style = {name: DataLoader(SeedStyleDataset(df, seed_transform(size, augmentation)),
                                       args.batch_size, shuffle=True, num_workers=args.workers,
                                       persistent_workers=args.workers > 0)
                      for name, augmentation in (("RandomRotation(20) as seed 000",
                                                  T.RandomRotation(20)),
                                                 ("our affine per image", our_affine()))}
        normalize = GreyToImageNet()
        pipelines = {
            **{f"ours, {w} workers": ours[w].epoch for w in ours},
            f"ours, {args.workers} workers, + normalised here": lambda e: (
                (normalize(x), y) for x, y in ours[args.workers].epoch(e)),
            **{f"seed-style, {name}": lambda e, loader=loader: loader
               for name, loader in seed_style.items()},
        }
        for name, epoch in pipelines.items():
            runs = [rate(epoch(e)) for e in range(args.repeat)]
            print(f"  {name:44s} " + "  ".join(f"{r:8.0f}" for r in runs)
                  + f"  images/s  ({load_average()})")


def bench_train(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    set_seeds(0, device)
    weights, index = PHASES[args.phase]
    profile = get_profile("cpu", weights=weights, precision=args.precision)
    phase = phases(profile)[index]
    print(f"{describe_device(device, profile)}; {args.phase} step, batch {args.batch_size}, "
          f"{args.workers} workers, {torch.get_num_threads()} threads")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for size in args.sizes:
        n = args.synthetic or args.batch_size * (args.warmup + args.steps)
        images = np.random.default_rng(0).integers(0, 256, (n, size, size), dtype=np.uint8)
        batches = make_batches(ImageArrayDataset(images, np.arange(n) % 2, Augmentation()),
                               args.batch_size, seed=0, shuffle=True, device=device,
                               num_workers=args.workers)
        model = to_device(ResNet50Classifier(weights != "none"), device)
        opt = optimizer(configure_phase(model, phase), phase, device)
        model.train()
        amp = amp_dtype(device, profile)
        loss_fn, scaler = nn.BCEWithLogitsLoss(), grad_scaler(device, amp)

        def steps(epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
            for x, y in batches.epoch(epoch):
                train_step(model, x, y, loss_fn, opt, scaler, amp)
                yield x, y

        runs = [rate(steps(e), skip=args.warmup, sync=sync) for e in range(args.repeat)]
        print(f"  {size:4d} px, {n - args.warmup * args.batch_size} images timed: "
              + "  ".join(f"{r:8.1f}" for r in runs) + f"  images/s  ({load_average()})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    inp = commands.add_parser("input", help="input pipeline: ours vs the seed-style Dataset")
    inp.add_argument("--root", help="a ROOT prepared by notebooks 01-02 (cache at each size)")
    inp.add_argument("--dataset", default="chest_xray")
    inp.add_argument("--data-dir", default=str(SAMPLE_DIR), help="raw folder, when no --root")
    inp.add_argument("--sizes", type=int, nargs="+", default=[224, 128])
    inp.add_argument("--limit", type=int, default=2048, help="at most this many images")
    inp.add_argument("--workers", type=int, default=2)
    trn = commands.add_parser("train", help="training-step images/s")
    trn.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    trn.add_argument("--device", default="cpu")
    trn.add_argument("--phase", choices=PHASES, default="full")
    trn.add_argument("--precision", choices=("auto", "float32"), default="auto",
                     help="auto: bfloat16 autocast on a GPU or a CPU with native bfloat16")
    trn.add_argument("--synthetic", type=int, default=0,
                     help="time one epoch of N random images (default: warm-up + steps batches)")
    trn.add_argument("--warmup", type=int, default=2)
    trn.add_argument("--steps", type=int, default=3)
    trn.add_argument("--workers", type=int, default=0)
    for sub in (inp, trn):
        sub.add_argument("--batch-size", type=int, default=32)
        sub.add_argument("--repeat", type=int, default=2)
        sub.add_argument("--threads", type=int, default=0,
                         help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, {load_average()}")
    if args.command in ("input", None):
        bench_input(args if args.command else parser.parse_args(["input"]))
    if args.command in ("train", None):
        bench_train(args if args.command else parser.parse_args(["train"]))


if __name__ == "__main__":
    main()
