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
        """Whether the run finished: both its config.json and metrics.json are written (the
        last thing a run does, atomically)."""
        return (self.path / "config.json").is_file() and (self.path / "metrics.json").is_file()

    def _read(self, name: str) -> dict[str, Any]:
        path = self.path / name
        if not path.is_file():
            raise UserError(f"No {name} in {self.path}: the run did not finish; run the notebook "
                            "that trains it (03, 04, 05 or 06) first.")
        return json.loads(path.read_text())

    @cached_property
    def config(self) -> dict[str, Any]:
        return self._read("config.json")

    @cached_property
    def metrics(self) -> dict[str, Any]:
        return self._read("metrics.json")

    @property
    def checkpoint(self) -> Path | None:
        """The weights the run kept, as its config names them (None: it names none)."""
        path = self.config.get("checkpoint")
        return None if path is None else Path(path)

    def trained_with(self, settings: Mapping[str, Any], ignore: Iterable[str] = ()) -> bool:
        """Whether the run finished with these training settings (those it recorded under
        ``settings`` in config.json), the keys in ``ignore`` left out on both sides."""
        if not self.done:
            return False
        skip = set(ignore)
        recorded = {k: v for k, v in self.config.get("settings", {}).items() if k not in skip}
        expected = {k: v for k, v in json.loads(json.dumps(dict(settings))).items() if k not in skip}
        return recorded == expected
