"""One run's results folder (``results/<dataset>/runs/<run>/``), read in one place: its
``config.json`` and ``metrics.json``, the weights it names, and whether it finished
(docs/layout.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from helpers.errors import UserError
from helpers.io import read_json


@dataclass(frozen=True)
class RunFolder:
    """A results folder; ``config`` and ``metrics`` are read once, when first asked for."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def done(self) -> bool:
        """Whether the run finished: its config.json and metrics.json are written (the last
        thing a run does, atomically) and both read as JSON objects; a damaged one makes the
        run not done, so it is trained again."""
        try:
            return isinstance(self.config, dict) and isinstance(self.metrics, dict)
        except UserError:
            return False

    def _read(self, name: str) -> dict[str, Any]:
        path = self.path / name
        if not path.is_file():
            raise UserError(f"No {name} in {self.path}: the run did not finish; run the notebook "
                            "that trains it (03, 04, 05 or 06) first.")
        return read_json(path, f"delete the folder {self.path} and train the run again")

    @cached_property
    def config(self) -> dict[str, Any]:
        return self._read("config.json")

    @cached_property
    def metrics(self) -> dict[str, Any]:
        return self._read("metrics.json")

    @property
    def root(self) -> Path:
        """The root that holds this folder (``<root>/results/<dataset>/runs/<run>``)."""
        return self.path.resolve().parents[3]

    @property
    def checkpoint(self) -> Path | None:
        """The weights the run kept (None: it names none), under this folder's own root, so
        a copied or moved root reads its own files: config.json records the path relative to
        the root (``recorded_path``); an absolute path an older version wrote is read from
        its ``checkpoints/`` part on."""
        recorded = self.config.get("checkpoint")
        if recorded is None:
            return None
        parts = Path(recorded).parts
        if Path(recorded).is_absolute():
            if "checkpoints" not in parts:
                return Path(recorded)
            parts = parts[len(parts) - 1 - parts[::-1].index("checkpoints"):]
        return self.root.joinpath(*parts)

    def changed_settings(self, settings: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
        """The training settings whose recorded value (``settings`` in config.json) differs
        from ``settings``, sorted, the keys in ``ignore`` left out; the run must be done."""
        skip = set(ignore)
        recorded = self.config.get("settings", {})
        expected = json.loads(json.dumps(dict(settings)))
        return sorted(k for k in {*recorded, *expected} - skip if recorded.get(k) != expected.get(k))

    def trained_with(self, settings: Mapping[str, Any], ignore: Iterable[str] = ()) -> bool:
        """Whether the run finished with these training settings (those it recorded under
        ``settings`` in config.json), the keys in ``ignore`` left out on both sides."""
        return self.done and not self.changed_settings(settings, ignore)


def recorded_path(path: Path, root: Path) -> str:
    """How config.json records a file under the root: relative to it (POSIX separators)."""
    return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
