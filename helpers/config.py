"""Run profiles and the on-disk layout every phase reads and writes.

Profiles are defined here and nowhere else: ``smoke`` (tests, seconds), ``demo`` (the
bundled sample, minutes), ``cpu`` (a laptop, real data) and ``full`` (a GPU, the thesis
settings). Which training protocol a run follows depends on its weights (see
``helpers.training.protocols`` and docs/protocols.md).
"""

from __future__ import annotations

import math
import numbers
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from helpers.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
CPU_EPOCHS = 6  # scratch epochs of the cpu profile: a full chest run within 12 min on 2 cores
DEMO_EPOCHS = 14  # the bundled sample has 1/13 of the images: more, shorter epochs (11
# steps each), at half the cpu profile's peak rate: at 2e-3 its balanced runs stopped learning
GAN_CPU_ITERATIONS = 1800  # the cpu profile's WGAN-GP: the full chest set in about 20 min on 2 cores
GAN_DEMO_ITERATIONS = 250  # the bundled sample's minority class has about 100 images
SAMPLE_DIR = REPO_ROOT / "data" / "sample" / "chest_xray"


@dataclass(frozen=True)
class Profile:
    """The expensive knobs of a run; a notebook parameter set to None takes these."""

    name: str
    image_size: int  # side of the preprocessing cache and of the model input, px
    batch_size: int
    epochs_head: int  # transfer protocol, phase 1: backbone frozen
    epochs_finetune: int  # transfer protocol, phase 2: last stage unfrozen
    lr_head: float
    lr_finetune: float
    patience: int  # EarlyStopping on the monitor (both protocols)
    lr_patience: int  # ReduceLROnPlateau on the monitor (transfer protocol)
    epochs_scratch: int  # scratch protocol: one phase over the whole network
    lr_scratch: float  # its peak rate (AdamW, linear warm-up, then cosine decay)
    warmup_epochs: float  # scratch protocol: epochs of linear warm-up
    weight_decay: float  # scratch protocol: AdamW's decoupled weight decay
    weights: str  # "imagenet", a local weights file, or "none" (scratch protocol)
    seeds: tuple[int, ...]  # seeds of the scenario runs
    num_workers: int  # data-loading workers (torch)
    precision: str = "auto"  # "auto": bfloat16 autocast where the chip has it; "float32"
    keras_eager: bool = False  # Keras without tf.function: for tiny runs, where tracing
    # ResNet50 (about a minute on 2 cores) costs more than the steps it would speed up
    monitor: str = "val_auc"  # what selects the model (early stopping, best weights, plateau):
    # "val_auc" (maximised) or "val_loss" (the scenario's own loss, minimised: the thesis)


_TRANSFER = {"lr_head": 1e-4, "lr_finetune": 1e-5}  # the thesis' rates
PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", image_size=32, batch_size=8, epochs_head=1, epochs_finetune=1,
                     patience=1, lr_patience=1, epochs_scratch=2, lr_scratch=1e-3,
                     warmup_epochs=1, weight_decay=0.05, weights="none", seeds=(42,),
                     num_workers=0, precision="float32", keras_eager=True, **_TRANSFER),
    "demo": Profile("demo", image_size=64, batch_size=32, epochs_head=6, epochs_finetune=4,
                    patience=8, lr_patience=2, epochs_scratch=DEMO_EPOCHS,
                    lr_scratch=1e-3, warmup_epochs=2, weight_decay=0.05, weights="none",
                    seeds=(42,), num_workers=0, **_TRANSFER),
    "cpu": Profile("cpu", image_size=64, batch_size=32, epochs_head=6, epochs_finetune=4,
                   patience=3, lr_patience=2, epochs_scratch=CPU_EPOCHS, lr_scratch=2e-3,
                   warmup_epochs=1, weight_decay=0.05, weights="imagenet", seeds=(42, 43),
                   num_workers=2, **_TRANSFER),
    "full": Profile("full", image_size=224, batch_size=32, epochs_head=50, epochs_finetune=30,
                    patience=10, lr_patience=5, epochs_scratch=60, lr_scratch=2e-3,
                    warmup_epochs=3, weight_decay=0.05, weights="imagenet",
                    seeds=(42, 43, 44, 45, 46), num_workers=8, **_TRANSFER),
}


@dataclass(frozen=True)
class GanSettings:
    """The WGAN-GP of notebook 05 for one profile (its image size is the profile's); its
    notebook parameters are the field names with ``GAN_`` (``GAN_ITERATIONS``).

    The thesis' architecture and optimiser (latent 128, lambda 10, 5 critic steps per
    generator step, Adam 1e-4 with betas (0, 0.9)); ``width`` is the channels of the
    generator's last and the critic's first hidden layer, doubled at every stage
    (the thesis: 32, up to 512 at 224 px).
    """

    iterations: int  # generator steps
    batch_size: int
    width: int
    checkpoint_every: int  # iterations between checkpoints (and sample grids)
    latent: int = 128
    critic_steps: int = 5
    gp_weight: float = 10.0
    lr: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9


GAN_SETTINGS: dict[str, GanSettings] = {
    "smoke": GanSettings(iterations=4, batch_size=8, width=8, checkpoint_every=2),
    "demo": GanSettings(iterations=GAN_DEMO_ITERATIONS, batch_size=32, width=16,
                        checkpoint_every=100),
    "cpu": GanSettings(iterations=GAN_CPU_ITERATIONS, batch_size=32, width=16,
                       checkpoint_every=250),
    "full": GanSettings(iterations=20000, batch_size=64, width=32, checkpoint_every=1000),
}


PROFILE_USES = {"smoke": "the tests, seconds", "demo": "the bundled sample (467 images)",
                "cpu": "a laptop CPU, the full chest set", "full": "a GPU, the thesis' settings"}


def profile_table() -> str:
    """Every profile and its WGAN-GP as one Markdown table: docs/running.md carries it,
    ``make sync-notebooks`` writes it there, a test keeps the two equal."""
    head = ("| profile | for | image px | batch | scratch epochs | transfer epochs (head + fine-tune) "
            "| weights | seeds | WGAN-GP iterations | GAN batch | GAN width | GAN checkpoint every |")
    rows = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for name, p in PROFILES.items():
        g = GAN_SETTINGS[name]
        cells = [f"`{name}`", PROFILE_USES[name], p.image_size, p.batch_size, p.epochs_scratch,
                 f"{p.epochs_head} + {p.epochs_finetune}", p.weights, len(p.seeds),
                 f"{g.iterations:,}", g.batch_size, g.width, f"{g.checkpoint_every:,}"]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit
IMAGE_STEP = 32  # ResNet50 halves the image in five stride-2 stages: 2^5


def list_items(value: Any) -> list[Any]:
    """A list parameter's items (SCENARIOS, FRAMEWORKS, IMBALANCE, SEEDS): a comma-separated
    string, bracketed or not ("a,b", "[a, b]"; items stripped of spaces and quotes, empty
    ones left out), a list or tuple as it is, or one value."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] + text[-1:] in ("[]", "()"):
            text = text[1:-1]
        items = (item.strip().strip("'\"").strip() for item in text.split(","))
        return [item for item in items if item]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _seed_or_none(value: Any) -> int | None:
    """``value`` as a seed (a whole number from 0 to MAX_SEED, or its digits), else None."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= value <= MAX_SEED:
        return int(value)
    return None


def check_seed(value: Any) -> int:
    """The ``SEED`` parameter as an int; anything but a whole number from 0 to MAX_SEED is a UserError."""
    seed = _seed_or_none(value)
    if seed is None:
        raise UserError(f"SEED must be a whole number from 0 to {MAX_SEED}, e.g. 42, not {value!r}.")
    return seed


def parse_seeds(value: Any) -> tuple[int, ...]:
    """The ``SEEDS`` parameter, written 42, "42,43", "[42, 43]" or [42, 43], as distinct
    seeds in order; anything else (no seed, a word, a negative or fractional number) is a
    UserError."""
    seeds = [_seed_or_none(item) for item in list_items(value)]
    if not seeds or None in seeds:
        raise UserError(f"SEEDS must be whole numbers from 0 to {MAX_SEED}, written 42, '42,43' "
                        f"or [42, 43], not {value!r}.")
    return tuple(dict.fromkeys(seeds))


@dataclass(frozen=True)
class Bound:
    """The values a numeric setting allows: a whole number or any, from ``least`` (or
    above it, ``least_allowed`` False) and below ``below``; NaN and infinity never."""

    whole: bool
    least: float
    least_allowed: bool = True
    below: float = math.inf

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if self.whole
                                                     else numbers.Real):
            return False
        finite = isinstance(value, numbers.Integral) or math.isfinite(value)
        above = value >= self.least if self.least_allowed else value > self.least
        return finite and above and value < self.below

    def describe(self) -> str:
        """"a whole number of at least 1", "a number above 0", "a number from 0 to below 1"."""
        what = "a whole number" if self.whole else "a number"
        if self.below < math.inf:
            return f"{what} from {self.least:g} to below {self.below:g}"
        return f"{what} {'of at least' if self.least_allowed else 'above'} {self.least:g}"


# Checked by hand: a dozen bounds, where a validation library would be a dependency of its
# own with messages of several lines.
_COUNT, _SOME, _NONE_OR_MORE = Bound(True, 1), Bound(True, 0), Bound(False, 0)
_RATE = Bound(False, 0, least_allowed=False)
PROFILE_BOUNDS: dict[str, Bound] = {
    "batch_size": _COUNT, "epochs_head": _SOME, "epochs_finetune": _SOME, "epochs_scratch": _SOME,
    "lr_head": _RATE, "lr_finetune": _RATE, "lr_scratch": _RATE, "patience": _COUNT,
    "lr_patience": _COUNT, "warmup_epochs": _NONE_OR_MORE, "weight_decay": _NONE_OR_MORE,
    "num_workers": _SOME}
GAN_BOUNDS: dict[str, Bound] = {
    "iterations": _COUNT, "batch_size": _COUNT, "width": _COUNT, "checkpoint_every": _COUNT,
    "latent": _COUNT, "critic_steps": _COUNT, "gp_weight": _NONE_OR_MORE, "lr": _RATE,
    "beta1": Bound(False, 0, below=1), "beta2": Bound(False, 0, below=1)}


def _check_bounds(settings: Any, bounds: Mapping[str, Bound], prefix: str = "") -> None:
    """A UserError naming the first field of ``settings`` outside its bound (as the notebook
    parameter ``prefix + FIELD``)."""
    for name, bound in bounds.items():
        value = getattr(settings, name)
        if not bound.allows(value):
            raise UserError(f"{prefix}{name.upper()} must be {bound.describe()}, not {value!r}.")


def check_image_size(value: Any) -> None:
    """A UserError unless ``IMAGE_SIZE`` is a multiple of 32 from 32 up."""
    if not Bound(True, IMAGE_STEP).allows(value) or value % IMAGE_STEP:
        raise UserError(f"IMAGE_SIZE must be a multiple of {IMAGE_STEP} from {IMAGE_STEP} up "
                        f"(32, 64, 96, ..., 224: ResNet50 halves it five times), not {value!r}.")


def _checked_profile(profile: Profile) -> Profile:
    """``profile`` with its seeds parsed, once every numeric field is within its bound."""
    check_image_size(profile.image_size)
    _check_bounds(profile, PROFILE_BOUNDS)
    return replace(profile, seeds=parse_seeds(profile.seeds))


def get_gan_settings(profile: str, **overrides: Any) -> GanSettings:
    """The profile's GAN settings with the non-None overrides applied (field names, any case),
    checked: a value outside its bound (``GAN_BOUNDS``) is a UserError."""
    settings = _overridden(GAN_SETTINGS, profile, overrides, "GAN")
    _check_bounds(settings, GAN_BOUNDS, prefix="GAN_")
    return settings


def _overridden(table: dict[str, Any], name: str, overrides: dict[str, Any], what: str) -> Any:
    """``table[name]`` with the non-None overrides applied (keys are field names, any case)."""
    if name not in table:
        raise UserError(f"Unknown profile {name!r}: choose one of {', '.join(table)}.")
    known = {f.name for f in fields(table[name])}
    changes = {k.lower(): v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - known
    if unknown:
        raise UserError(f"Unknown {what} setting(s) {sorted(unknown)}: use one of {sorted(known)}.")
    return replace(table[name], **changes)


def get_profile(name: str, **overrides: Any) -> Profile:
    """The named profile with the non-None overrides applied (keys are field names, any case),
    checked: an image size that is not a multiple of 32 from 32 up, a number outside its
    bound (``PROFILE_BOUNDS``) or seeds that ``parse_seeds`` rejects are a UserError."""
    return _checked_profile(_overridden(PROFILES, name, overrides, "profile"))


def check_parameters(profile: str, parameters: Mapping[str, Any]) -> None:
    """Check the notebook parameters that set a profile field (``IMAGE_SIZE``, ``SEEDS``),
    a GAN setting (``GAN_ITERATIONS``) or ``SEED`` as the notebooks will: a bad value is a
    UserError before any notebook runs."""
    profile_names = {f.name.upper(): f.name for f in fields(Profile)}
    gan_names = {f"GAN_{f.name.upper()}": f.name for f in fields(GanSettings)}
    get_profile(profile, **{profile_names[k]: v for k, v in parameters.items() if k in profile_names})
    get_gan_settings(profile, **{gan_names[k]: v for k, v in parameters.items() if k in gan_names})
    if "SEED" in parameters:
        check_seed(parameters["SEED"])


@dataclass(frozen=True)
class Layout:
    """Where a run's files live under one root (the on-disk contract, docs/layout.md)."""

    root: Path
    dataset: str

    @classmethod
    def of(cls, dataset: str, root: str | os.PathLike | None = None) -> Layout:
        """Layout under ``root`` (empty or None: the repository)."""
        return cls(Path(root).expanduser().resolve() if root else REPO_ROOT, dataset)

    @property
    def raw_dir(self) -> Path:
        return self.root / "data" / "raw" / self.dataset

    @property
    def split_csv(self) -> Path:
        """One row per image: path, label, label_id, split, group, md5."""
        return self.root / "data" / "splits" / f"{self.dataset}.csv"

    @property
    def split_config(self) -> Path:
        """Where the data came from, the label mapping and the split parameters."""
        return self.split_csv.with_suffix(".json")

    @property
    def ros_csv(self) -> Path:
        """The training rows after RandomOverSampler (scenario ``ros``)."""
        return self.split_csv.with_name(f"{self.dataset}_train_ros.csv")

    def imbalanced_csv(self, imbalance: str, ros: bool = False) -> Path:
        """The training rows of an imbalance setting other than natural
        (``helpers.data.imbalance``), or their oversampled copy (``ros``)."""
        return self.split_csv.with_name(f"{self.dataset}_train_r{imbalance}"
                                        f"{'_ros' if ros else ''}.csv")

    def processed_dir(self, size: int) -> Path:
        return self.root / "data" / "processed" / self.dataset / f"{size}px"

    def cache_path(self, relpath: str, size: int) -> Path:
        """Preprocessed image of ``relpath``: an 8-bit grayscale PNG, original name + .png."""
        return self.processed_dir(size) / f"{relpath}.png"

    def synthetic_dir(self, size: int, imbalance: str = "natural") -> Path:
        """The WGAN-GP's set at ``size`` px for an imbalance setting (``<size>px-r10``)."""
        tail = "" if imbalance == "natural" else f"-r{imbalance}"
        return self.root / "data" / "synthetic" / self.dataset / f"{size}px{tail}"

    def checkpoints(self, run: str) -> Path:
        """A trained run's checkpoints (``run``: a run name, ``helpers.training.runs.RunSpec.name``)."""
        return self.root / "checkpoints" / self.dataset / "runs" / run

    def results(self, run: str) -> Path:
        """A trained run's metrics, predictions, history, config and figures."""
        return self.root / "results" / self.dataset / "runs" / run

    def tensorboard(self, run: str) -> Path:
        """A run's training curves as TensorBoard event files (``helpers.training.curves``)."""
        return self.results(run) / "tensorboard"

    @property
    def runs_dir(self) -> Path:
        """Every trained run's results folder lives here."""
        return self.root / "results" / self.dataset / "runs"

    def reports(self, phase: str) -> Path:
        """What a data phase found and shows (``audit``, ``preprocessing``)."""
        return self.root / "results" / self.dataset / phase

    @property
    def executed_dir(self) -> Path:
        return self.root / "results" / self.dataset / "executed"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX; Linux flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags to read, assume emulated (slow) bfloat16
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def mixed_precision(profile: Profile, device: str) -> bool:
    """Whether a run trains with bfloat16 autocast: ``precision="auto"`` on a GPU, or on a
    CPU that computes bfloat16 natively (1.3-1.5x faster there); "float32" never."""
    if profile.precision not in ("auto", "float32"):
        raise UserError(f"PRECISION must be 'auto' or 'float32', not {profile.precision!r}.")
    return profile.precision == "auto" and (device != "cpu" or cpu_has_bf16())


def seed_everything(seed: int) -> None:
    """Seed Python and NumPy; framework modules seed their framework on top of this."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
