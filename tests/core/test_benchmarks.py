"""The training benchmark and the GPU check, end to end at their smallest sizes, each in
processes of its own (this one imports neither framework)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
NUMBER = r"(-?\d+(?:\.\d+)?)"


def run(script: str, *args: str) -> str:
    """The script's standard output; CUDA hidden, so the CPU path runs everywhere."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True,
                          text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def figure(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1))


def test_bench_training_times_the_keras_epoch_in_a_process_of_its_own() -> None:
    out = run("bench_training.py", "--size", "32", "--batches", "2", "--batch-size", "8",
              "--repeat", "1", "--frameworks", "keras", "--eager")
    assert figure(rf"keras\s+{NUMBER} images/s after warm-up \(16 training images", out) > 0
    figure(rf"first-epoch overhead {NUMBER} s", out)  # tracing: near 0 in eager mode


def test_bench_training_trains_pytorch_in_a_variant_it_names() -> None:
    out = run("bench_training.py", "--size", "32", "--batches", "2", "--batch-size", "8",
              "--repeat", "1", "--frameworks", "pytorch", "--torch-variant", "channels_last")
    assert "torch channels_last" in out
    assert figure(rf"pytorch\s+{NUMBER} images/s after warm-up \(16 training images", out) > 0


def test_gpu_check_without_a_gpu_says_so_and_runs_its_cpu_smoke() -> None:
    out = run("gpu_check.py")
    assert out.startswith("No GPU here:")
    assert figure(rf"input pipeline: {NUMBER} images/s", out) > 0
    assert figure(rf"pytorch\s+{NUMBER} images/s after warm-up", out) > 0
    assert figure(rf"WGAN-GP: {NUMBER} iterations/s", out) > 0
    hours = [figure(rf"{name}.*?{NUMBER} h", out) for name in ("03 Keras", "04 PyTorch",
                                                               "05 WGAN-GP", "06 grid")]
    assert all(h > 0 for h in hours)
    assert figure(rf"total\s+{NUMBER} h", out) >= sum(hours) - 0.01
