"""One GPU check of where the full profile's hours go, within about 8 minutes on one GPU.

    python benchmarks/gpu_check.py [--keras]

It prints the PyTorch input pipeline at 224 px with 8 workers (``bench_torch_pipeline``),
the training epoch at 224 px with mixed precision (``bench_training``, PyTorch; Keras too
with ``--keras``, whose first epoch traces the graph), 200 WGAN-GP iterations at the full
profile's GAN settings (``bench_gan``), and from these the wall time of notebooks 03-07
under the full profile. Without a GPU it says so and runs the same steps at tiny sizes on
the CPU (a smoke test of this script: its figures estimate nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmarks
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

import bench_gan
import bench_torch_pipeline
import bench_training

from helpers.config import GAN_SETTINGS, PROFILES
from helpers.torch.data import ImageArrayDataset, make_batches
from helpers.training.batches import Augmentation
from helpers.training.scenarios import SCENARIOS

TRAIN_IMAGES = 4684  # training rows of the chest split (validation: a 16th, in the epoch rate)
BALANCED_ROWS = 6834  # training rows of a scenario that balances the classes (ros, wgan)


@dataclass(frozen=True)
class Plan:
    """The sizes of one check: the GPU's, or the CPU smoke's."""

    device: torch.device
    size: int
    pipeline_images: int
    workers: int
    batch_size: int
    batches: int
    gan_profile: str
    gan_iterations: int


GPU = Plan(torch.device("cuda"), 224, 4096, 8, 32, 100, "full", 200)
CPU_SMOKE = Plan(torch.device("cpu"), 32, 64, 0, 8, 2, "smoke", 2)


def pipeline_rate(plan: Plan) -> float:
    """Images/s of the training loader (augmentation in the workers), best of two epochs
    (the first starts the workers)."""
    images = np.random.default_rng(0).integers(0, 256, (plan.pipeline_images, plan.size,
                                                        plan.size), dtype=np.uint8)
    dataset = ImageArrayDataset(images, np.arange(len(images)) % 2, Augmentation())
    batches = make_batches(dataset, 32, seed=0, shuffle=True, device=plan.device,
                           num_workers=plan.workers)
    sync = torch.cuda.synchronize if plan.device.type == "cuda" else (lambda: None)
    return max(bench_torch_pipeline.rate(batches.epoch(e), sync=sync) for e in range(2))


def training_rates(plan: Plan, keras: bool) -> dict[str, float]:
    """Steady epoch images/s of each framework (``bench_training``, mixed precision)."""
    figures = bench_training.main(
        ["--size", str(plan.size), "--batch-size", str(plan.batch_size),
         "--batches", str(plan.batches), "--repeat", "1",
         "--workers", str(plan.workers), "--device", plan.device.type,
         "--frameworks", *(["pytorch", "keras"] if keras else ["pytorch"])])
    return {name: f["images_per_s"] for name, f in figures.items()}


def notebook_hours(rates: dict[str, float], gan_rate: float) -> dict[str, float]:
    """Hours of notebooks 03-07 under the full profile, every run at its most epochs (no
    early stop) at the whole-network step's rate: an upper bound."""
    p, epochs = PROFILES["full"], PROFILES["full"].epochs_head + PROFILES["full"].epochs_finetune
    run = lambda rate, rows=TRAIN_IMAGES: epochs * rows / rate / 3600  # noqa: E731
    grid = sum(run(rates["pytorch"], TRAIN_IMAGES if s.training_data == "original"
                   else BALANCED_ROWS) for s in SCENARIOS.values()) * len(p.seeds)
    keras = "03 Keras" + ("" if "keras" in rates else " (at PyTorch's rate)")
    return {keras: run(rates.get("keras", rates["pytorch"])),
            "04 PyTorch": run(rates["pytorch"]),
            "05 WGAN-GP": GAN_SETTINGS["full"].iterations / gan_rate / 3600,
            f"06 grid ({len(SCENARIOS)} scenarios x {len(p.seeds)} seeds)": grid,
            "07 tables": 0.0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", action="store_true", help="time the Keras epoch too")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if torch.cuda.is_available():
        plan = GPU
        print(f"GPU check on {torch.cuda.get_device_name(0)} (torch {torch.__version__})")
    else:
        plan = CPU_SMOKE
        print("No GPU here: a tiny CPU smoke of this check follows, its figures estimate nothing.")
    pipeline = pipeline_rate(plan)
    print(f"input pipeline: {pipeline:.0f} images/s ({plan.size} px, {plan.workers} workers)")
    rates = training_rates(plan, args.keras)
    gan = bench_gan.iterations_per_second(plan.gan_profile, plan.device, plan.gan_iterations)
    print(f"WGAN-GP: {gan:.2f} iterations/s ({plan.gan_profile} profile's GAN, "
          f"{plan.gan_iterations} iterations)")
    hours = notebook_hours(rates, gan)
    print(f"full profile, estimated hours (upper bound: {TRAIN_IMAGES} training images, "
          "every epoch run, whole-network step):")
    for notebook, h in hours.items():
        print(f"  {notebook:40s} {h:8.2f} h")
    print(f"  {'total':40s} {sum(hours.values()):8.2f} h")
    print(f"check took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
