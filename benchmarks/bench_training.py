"""The project's real training epoch, Keras against PyTorch, on the same batches.

    python benchmarks/bench_training.py [--size 64|224] [--batches 20] [--batch-size 32]
                                        [--repeat 2] [--frameworks keras pytorch]
                                        [--root ROOT [--dataset chest_xray]] [--precision auto]
                                        [--torch-variant channels_last|compile|channels_last+compile]

Each framework trains in a process of its own (TensorFlow and torch never share one) through
its own ``train`` (``helpers.keras.training`` / ``helpers.torch.training``): the model of
``build_model``, the scenario's loss (``make_loss``), the phase's optimiser and schedule,
augmentation, the input path of ``load_datasets``, validation, checkpoints and callbacks,
exactly as a notebook runs it. The scratch protocol (weights none: the whole network trains,
the slowest step) runs ``1 + --repeat`` epochs; the clock reads at every epoch's end. The
first epoch pays for building, tracing and compiling: its overhead is its time less a steady
epoch's. Images/s counts the training images of a steady epoch (its validation included).

Without ``--root`` the data are random images at ``--size`` in a prepared layout written to
a temporary folder: ``--batches`` training batches and one validation image for 16 training
ones (the chest set's proportion). With ``--root`` (prepared by notebooks 01-02 at
``--size``), that split's images.

``--torch-variant`` measures PyTorch CPU options the pipeline leaves off (the model in
``channels_last`` memory, ``torch.compile`` with inductor; their numbers are in
docs/results.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

from helpers.config import Layout, Profile, get_profile
from helpers.data.split_file import write_split_file

FRAMEWORKS = {"keras": "helpers.keras.training", "pytorch": "helpers.torch.training"}
RESULT = "RESULT "  # the worker's last line: this prefix and its figures as JSON
VAL_SHARE = 16  # training images per validation image (4,684 : 293 in the chest split)


def write_random_layout(root: Path, size: int, train_images: int, seed: int = 0) -> Layout:
    """A prepared layout of random grey images at ``size`` px (the contract of notebooks
    01-02): ``train_images`` training rows, one validation row per ``VAL_SHARE`` and as many
    test rows, one in three positive."""
    layout = Layout.of("random", root)
    rng = np.random.default_rng(seed)
    held_out = max(2, train_images // VAL_SHARE)
    rows = []
    for split, n in (("train", train_images), ("val", held_out), ("test", held_out)):
        for i in range(n):
            label_id = int(i % 3 == 0)
            rel = f"{split}/{'sick' if label_id else 'well'}/img{i:05d}.png"
            path = layout.cache_path(rel, size)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)
            rows.append({"path": rel, "label": "sick" if label_id else "well",
                         "label_id": label_id, "split": split, "group": f"{split}{i}",
                         "md5": f"{split}{i:030d}"})
    write_split_file(layout, pd.DataFrame(rows),
                     {"dataset": "random", "data_dir": str(root), "positive_class": "sick",
                      "classes": {"well": 0, "sick": 1}, "protocol": "random", "seed": seed})
    return layout


def bench_profile(args: argparse.Namespace) -> Profile:
    """The full profile at the asked size and batch, scratch protocol, ``1 + repeat`` epochs
    that never stop early."""
    epochs = 1 + args.repeat
    return get_profile("full", image_size=args.size, batch_size=args.batch_size,
                       weights="none", epochs_scratch=epochs, warmup_epochs=1,
                       patience=epochs, precision=args.precision, num_workers=args.workers,
                       keras_eager=args.eager)


def with_torch_variant(training: Any, variant: str) -> None:
    """Wrap ``training.to_device`` so that the model trains in the ``variant``'s form."""
    import torch

    to_device = training.to_device

    def variant_to_device(model: Any, device: Any) -> Any:
        model = to_device(model, device)
        if "channels_last" in variant:
            model = model.to(memory_format=torch.channels_last)
        return torch.compile(model) if "compile" in variant else model

    training.to_device = variant_to_device


def run_framework(args: argparse.Namespace) -> dict[str, Any]:
    """Train in this process with ``args.worker``'s ``train``; the end time of every epoch."""
    training = importlib.import_module(FRAMEWORKS[args.worker])
    if args.worker == "pytorch" and args.torch_variant != "plain":
        with_torch_variant(training, args.torch_variant)
    profile, layout = bench_profile(args), Layout.of(args.dataset, args.root)
    if args.worker == "keras":
        data = training.load_datasets(layout, args.size, args.batch_size, 0)
    else:
        device = training.pick_device(args.device)
        data = training.load_datasets(layout, args.size, args.batch_size, 0,
                                      num_workers=args.workers, device=device)
    labels = data.arrays["train"].labels
    counts = (int((labels == 0).sum()), int((labels == 1).sum()))
    ends: list[float] = []
    with tempfile.TemporaryDirectory() as checkpoint:
        start = time.perf_counter()
        training.train(data, profile, seed=0, checkpoint_dir=checkpoint, resume=False,
                       loss=training.make_loss(args.scenario, counts),
                       on_epoch_end=lambda row: ends.append(time.perf_counter()))
    epochs = np.diff([start, *ends])
    steady = float(epochs[1:].min())
    trained = len(data.batches["train"]) * args.batch_size
    return {"images": trained, "epoch_s": epochs.tolist(), "images_per_s": trained / steady,
            "first_epoch_overhead_s": float(epochs[0]) - steady}


def launch(framework: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """``framework``'s figures, from a process of its own running this script."""
    command = [sys.executable, __file__, "--worker", framework, "--root", str(root),
               "--dataset", args.dataset, "--size", str(args.size), "--batch-size",
               str(args.batch_size), "--repeat", str(args.repeat), "--precision",
               args.precision, "--workers", str(args.workers), "--scenario", args.scenario,
               "--torch-variant", args.torch_variant,
               *(["--eager"] if args.eager else [])]
    if args.device:
        command += ["--device", args.device]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode or not results:
        sys.exit(f"{framework} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(results[-1].removeprefix(RESULT))


def report(args: argparse.Namespace, figures: dict[str, dict[str, Any]]) -> None:
    """One line per framework and, with both, the ratio Keras / PyTorch."""
    variant = "" if args.torch_variant == "plain" else f", torch {args.torch_variant}"
    print(f"\n{args.size} px, batch {args.batch_size}, scratch protocol (whole network), "
          f"scenario {args.scenario}, precision {args.precision}{variant}, load "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    for name, f in figures.items():
        print(f"  {name:8s} {f['images_per_s']:9.1f} images/s after warm-up "
              f"({f['images']} training images an epoch; epochs "
              + ", ".join(f"{s:.1f}" for s in f["epoch_s"])
              + f" s); first-epoch overhead {f['first_epoch_overhead_s']:.1f} s")
    if len(figures) == 2:
        ratio = figures["keras"]["images_per_s"] / figures["pytorch"]["images_per_s"]
        print(f"  Keras / PyTorch images/s: {ratio:.2f}")


def measure(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every asked framework's figures, on ``--root`` or on a random layout made here."""
    if args.root:
        return {f: launch(f, args, Path(args.root)) for f in args.frameworks}
    with tempfile.TemporaryDirectory() as root:
        args.dataset = write_random_layout(Path(root), args.size,
                                           args.batches * args.batch_size).dataset
        return {f: launch(f, args, Path(root)) for f in args.frameworks}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batches", type=int, default=20,
                   help="training batches of the random layout (no --root)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeat", type=int, default=2, help="timed epochs after the first")
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    p.add_argument("--root", help="a ROOT prepared by notebooks 01-02 at --size")
    p.add_argument("--dataset", default="chest_xray")
    p.add_argument("--scenario", default="baseline", help="whose loss (make_loss)")
    p.add_argument("--precision", choices=("auto", "float32"), default="auto",
                   help="auto: bfloat16 on a GPU or a CPU with native bfloat16")
    p.add_argument("--workers", type=int, default=0, help="torch loader workers")
    p.add_argument("--eager", action="store_true",
                   help="Keras without tf.function (tiny runs, where tracing costs most)")
    p.add_argument("--device", help="torch device (default: the GPU if there is one)")
    p.add_argument("--torch-variant", default="plain",
                   choices=("plain", "channels_last", "compile", "channels_last+compile"),
                   help="PyTorch: the model in channels_last memory and/or torch.compile'd")
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]] | None:
    args = parser().parse_args(argv)
    if args.repeat < 1 or args.batches < 1:
        parser().error("--repeat and --batches must be 1 or more")
    if args.worker:
        print(RESULT + json.dumps(run_framework(args)))
        return None
    figures = measure(args)
    report(args, figures)
    return figures


if __name__ == "__main__":
    main()
