"""A run's identity: what was trained, on what, how; its name names its folders.

``results/<dataset>/runs/<name>/`` and ``checkpoints/<dataset>/runs/<name>/`` hold one run
each, so another seed, scenario, framework or protocol never overwrites or blocks a run.
The baselines of notebooks 03 and 04 are the ``baseline`` runs of their framework; the
pixel reference is a run of framework ``sklearn``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from helpers.analysis import evaluation
from helpers.config import Layout, Profile
from helpers.data.arrays import row_counts, training_ratio
from helpers.data.imbalance import NATURAL, normalise, suffix
from helpers.data.split_file import read_record
from helpers.data.training_data import TRAINING_DATA
from helpers.environment import environment
from helpers.errors import UserError
from helpers.io import remove_stale_temporaries
from helpers.locks import holding
from helpers.training.curves import EPOCH_TAGS, Curves
from helpers.training.protocols import TrainResult, protocol_for, training_settings
from helpers.training.run_folder import RunFolder, recorded_path
from helpers.training.scenarios import class_counts, get_scenario

FRAMEWORKS = ("keras", "pytorch", "sklearn")


@dataclass(frozen=True)
class RunSpec:
    """What a run is: data set, framework, scenario, seed, training rows, loss, protocol."""

    dataset: str
    framework: str
    scenario: str = "baseline"
    seed: int = 42
    training_data: str = "original"
    loss: str = "bce"  # helpers.training.scenarios' loss kinds; "log_loss" for sklearn
    protocol: str = "scratch"  # "scratch" or "transfer" (protocol_for); for sklearn, its input
    imbalance: str = NATURAL  # the training rows' setting (helpers.data.imbalance): "natural", "10"

    def __post_init__(self) -> None:
        object.__setattr__(self, "imbalance", normalise(self.imbalance))
        if self.framework not in FRAMEWORKS:
            raise UserError(f"Unknown framework {self.framework!r}: use one of {FRAMEWORKS}.")
        if self.training_data not in TRAINING_DATA:
            raise UserError(f"Unknown training data {self.training_data!r}: use one of "
                            f"{TRAINING_DATA}.")

    @classmethod
    def for_profile(cls, dataset: str, framework: str, profile: Profile, *,
                    scenario: str = "baseline", seed: int = 42,
                    imbalance: str = NATURAL) -> RunSpec:
        """The description of a run of ``scenario`` (its training rows and loss from
        ``helpers.training.scenarios``) trained with ``profile`` (its weights decide the protocol) at
        an imbalance setting."""
        recipe = get_scenario(scenario)
        return cls(dataset, framework, scenario, seed, recipe.training_data, recipe.loss,
                   protocol_for(profile.weights), imbalance)

    @property
    def name(self) -> str:
        """The folder name, e.g. ``pytorch-baseline-scratch-seed42``; a setting other than
        natural ends it (``...-seed42-r10``)."""
        return (f"{self.framework}-{self.scenario}-{self.protocol}-seed{self.seed}"
                f"{suffix(self.imbalance)}")

    def describe(self) -> dict[str, Any]:
        """The description as config.json records it (``run`` is the name)."""
        return {"run": self.name, **asdict(self)}


def check_protocol(spec: RunSpec, profile: Profile, framework: str) -> None:
    """Stop when a run description does not fit the framework or the profile's protocol."""
    if spec.framework != framework:
        raise ValueError(f"{spec.name} is a {spec.framework} run, not a {framework} one.")
    if spec.protocol != protocol_for(profile.weights):
        raise ValueError(f"{spec.name} names protocol {spec.protocol!r} but weights "
                         f"{profile.weights!r} train with {protocol_for(profile.weights)!r}: "
                         f"build the description with RunSpec.for_profile.")


def finished(layout: Layout, spec: RunSpec, settings: dict[str, Any]) -> bool:
    """Whether this run already finished with these training settings (its config.json
    records them when its results are written): then it is not trained again."""
    return RunFolder(layout.results(spec.name)).trained_with(settings)


def keep_finished(layout: Layout, spec: RunSpec, settings: dict[str, Any]) -> None:
    """Stop with a sentence when the run's folder holds a run that finished with other
    settings: it is replaced only on purpose (``RESUME=False``)."""
    folder = RunFolder(layout.results(spec.name))
    changed = folder.changed_settings(settings) if folder.done else []
    if not changed:
        return
    raise UserError(f"{spec.name} finished already in {folder.path} with other settings "
                    f"({', '.join(changed)}): pass RESUME=False to replace it, or use another "
                    f"ROOT to keep both.")


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: its description, test metrics (``evaluation.save_run_results``),
    folders, and whether this call trained it (False: it was finished and skipped)."""

    spec: RunSpec
    metrics: dict[str, Any]
    results_dir: Path
    checkpoint: Path
    trained: bool


def saved_outcome(layout: Layout, spec: RunSpec) -> RunOutcome:
    """The outcome of a finished run, read from its results folder (and said so)."""
    folder = RunFolder(layout.results(spec.name))
    print(f"{spec.name} finished already: results read from {folder.path} (RESUME=False runs it "
          f"again).")
    return RunOutcome(spec, folder.metrics, folder.path, folder.checkpoint, trained=False)


def save_outcome(layout: Layout, spec: RunSpec, *, test: pd.DataFrame, val: pd.DataFrame,
                 history: pd.DataFrame | None, checkpoint: Path, config: dict[str, Any],
                 device: str) -> RunOutcome:
    """Evaluate and write a run's results; config.json gets the run description, the split's
    classes, ``config`` (the profile, the training settings, what the trainer reports) and
    the environment it ran in on ``device`` (``helpers.environment``)."""
    split = read_record(layout)
    full = {**spec.describe(), "imbalance_ratio": training_ratio(layout, spec.imbalance),
            "classes": split["classes"],
            "positive_class": split["positive_class"], "split_protocol": split.get("protocol"),
            **config, "checkpoint": recorded_path(checkpoint, layout.root),
            "environment": environment(spec.framework, device)}
    run_dir = layout.results(spec.name)
    metrics = evaluation.save_run_results(run_dir, test=test, val=val, history=history,
                                          config=full)
    return RunOutcome(spec, metrics, run_dir, checkpoint, trained=True)


def best_run(layout: Layout, framework: str, scenario: str = "baseline", *,
             image_size: int | None = None, imbalance: str = NATURAL) -> Path | None:
    """The results folder of the finished run of ``framework`` and ``scenario`` at an
    imbalance setting (at ``image_size`` px if given) that is best on validation by the
    monitor it recorded, or None: chosen on validation, never on test. Runs selected on
    val_auc rank by the highest best value, before runs selected on val_loss (those that
    record no monitor are older ones), which rank by the lowest: the two scales cannot be
    compared."""
    found = []
    for path in layout.runs_dir.glob(f"{framework}-{scenario}-*/"):
        folder = RunFolder(path)
        if not folder.done:
            continue
        config = folder.config
        size = config.get("profile", {}).get("image_size")
        value = config.get("best_value", config.get("best_val_loss"))
        if value is not None and image_size in (None, size) and folder.checkpoint is not None \
                and folder.checkpoint.is_file() \
                and normalise(config.get("imbalance")) == normalise(imbalance):
            by_auc = config.get("monitor", "val_loss") == "val_auc"
            found.append((not by_auc, -value if by_auc else value, folder.name, folder.path))
    return min(found)[3] if found else None


class TrainingSide(Protocol):
    """The hooks ``helpers.keras.training`` and ``helpers.torch.training`` provide to
    ``drive``, under the same names on both sides (tests/core/test_mirror.py)."""

    FRAMEWORK: str
    make_loss: Callable[[str, Mapping[int, int]], Any]
    pick_device: Callable[[Any], Any]
    describe_device: Callable[[Any, Profile], str]

    def load_run_data(self, spec: RunSpec, layout: Layout, profile: Profile, device: Any) -> Any: ...
    def loss_name(self, loss: Any) -> str: ...
    def train(self, data: Any, profile: Profile, *, seed: int, checkpoint_dir: Path, loss: Any,
              resume: bool, on_epoch_end: Callable[[dict[str, Any]], None]) -> TrainResult: ...
    def predict_split(self, model: Any, data: Any, split: str) -> pd.DataFrame: ...
    def prune_checkpoint(self, checkpoint: Path) -> None: ...


def drive(spec: RunSpec, layout: Layout, profile: Profile, side: TrainingSide, *,
          loss: Any = None, resume: bool = True, device: str | None = None) -> RunOutcome:
    """One run, start to end, the same in both frameworks: load the split's cached images,
    make the scenario's loss, skip a run that finished with these settings (``resume=False``
    trains it afresh), train (an interrupted run continues from its last epoch) with its
    curves in TensorBoard (``helpers.training.curves``), predict the validation and test
    splits, save the results under the run's name and keep only the best weights. ``side`` is
    the framework's training module, whose ``run_training`` this is.

    One process at a time trains a run (``helpers.locks``: another one gets ``Busy``); a
    run that finished with other settings is never replaced unless ``resume=False`` says so.
    """
    with holding(layout, spec.name, f"Training {spec.name}"):
        remove_stale_temporaries(layout.checkpoints(spec.name))
        return _drive(spec, layout, profile, side, loss=loss, resume=resume, device=device)


def _drive(spec: RunSpec, layout: Layout, profile: Profile, side: TrainingSide, *,
           loss: Any, resume: bool, device: str | None) -> RunOutcome:
    check_protocol(spec, profile, side.FRAMEWORK)
    runtime = side.pick_device(device)
    data = side.load_run_data(spec, layout, profile, runtime)
    train_labels = data.arrays["train"].labels
    loss_fn = loss if loss is not None else side.make_loss(spec.scenario, class_counts(train_labels))
    settings = training_settings(profile, seed=spec.seed, loss=side.loss_name(loss_fn),
                                 train_images=len(data.arrays["train"]))
    if resume and finished(layout, spec, settings):
        return saved_outcome(layout, spec)
    if resume:
        keep_finished(layout, spec, settings)
    where = side.describe_device(runtime, profile)
    print(f"{spec.name} on {where}")
    with Curves(layout.tensorboard(spec.name), "epoch", EPOCH_TAGS) as curves:
        result = side.train(data, profile, seed=spec.seed,
                            checkpoint_dir=layout.checkpoints(spec.name), loss=loss_fn,
                            resume=resume, on_epoch_end=curves)
    outcome = save_outcome(
        layout, spec, test=side.predict_split(result.model, data, "test"),
        val=side.predict_split(result.model, data, "val"), history=result.history,
        checkpoint=result.checkpoint,
        config={"profile": profile, "settings": settings, "augmentation": data.augmentation,
                "training_rows": row_counts(data.arrays["train"]), **result.config()},
        device=where)
    side.prune_checkpoint(result.checkpoint)
    return outcome
