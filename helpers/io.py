"""Writing files so that an interruption never leaves half of one: atomic writes and JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from helpers.errors import UserError

TMP_SUFFIX = ".tmp"  # a temporary file: <name>.<pid>.tmp beside its final name


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def temporary_name(path: str | Path) -> str:
    """A temporary name beside ``path``, unique to this process."""
    return f"{path}.{os.getpid()}{TMP_SUFFIX}"


def remove_stale_temporaries(folder: Path) -> int:
    """Remove the temporary files (``*.tmp``) under ``folder`` that an interrupted writer
    left behind; return how many. Call it where one process owns the folder."""
    stale = [p for p in folder.rglob(f"*{TMP_SUFFIX}") if p.is_file()] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def read_json(path: Path, remedy: str) -> Any:
    """The JSON the pipeline wrote at ``path``; a damaged file stops with one sentence that
    names it and says what to do (``remedy``, e.g. "delete it and run notebook 02 again")."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        reason = err.msg if isinstance(err, json.JSONDecodeError) else "not text"
        raise UserError(f"{path} is damaged ({reason}): {remedy}.") from None


def save_json(obj: Any, path: Path) -> Path:
    """Write ``obj`` as indented, key-sorted JSON (dataclasses and Paths allowed), atomically."""
    def default(o: Any) -> Any:
        if hasattr(o, "__dataclass_fields__"):
            return asdict(o)
        if isinstance(o, (Path, np.generic)):
            return o.item() if isinstance(o, np.generic) else str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=default) + "\n").encode())
    return path
