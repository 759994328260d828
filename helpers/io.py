"""Writing files so that an interruption never leaves half of one: atomic writes and JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
