"""WGAN-GP training speed: generator iterations per second (each = ``critic_steps`` critic
updates with the gradient penalty + one generator update) for the profiles' GAN settings.

    python benchmarks/bench_gan.py [--profiles cpu full] [--device cpu|cuda] [--iterations 5]
                                   [--repeat 3]

Random images stand in for the data (the speed does not depend on them). The first
iterations are warm-up and not timed. Every figure is measured ``--repeat`` times because
the CPU may be shared. Needs only torch and NumPy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

from helpers.config import PROFILES, get_gan_settings
from helpers.torch.gan import Draws, GanState, train_iteration

WARMUP = 2


def iterations_per_second(profile: str, device: torch.device, iterations: int) -> float:
    """Timed generator iterations per second of ``profile``'s GAN settings on ``device``."""
    size, settings = PROFILES[profile].image_size, get_gan_settings(profile)
    torch.manual_seed(0)
    state = GanState.build(size, settings, device)
    real = torch.rand(512, 1, size, size, device=device) * 2 - 1
    for i in range(WARMUP + iterations):
        if i == WARMUP:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        train_iteration(state, real, Draws.of(0, i, len(real), settings), settings, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iterations / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["cpu", "full"], choices=sorted(PROFILES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu, {torch.get_num_threads()} threads"
    print(f"WGAN-GP iterations/s on {name} (torch {torch.__version__})")
    for profile in args.profiles:
        s = get_gan_settings(profile)
        rates = [iterations_per_second(profile, device, args.iterations) for _ in range(args.repeat)]
        planned = s.iterations / max(rates)
        print(f"{profile:>5}: {PROFILES[profile].image_size} px, width {s.width}, batch "
              f"{s.batch_size}, {s.critic_steps} critic steps: "
              + ", ".join(f"{r:.2f}" for r in rates)
              + f" it/s; its {s.iterations} iterations take {planned / 60:.1f} min at the best rate")


if __name__ == "__main__":
    main()
