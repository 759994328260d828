"""One process at a time on a run, or on the data phase of a root: a lock file per name
(``filelock``: the operating system's lock, released when its process ends, so a lock of a
dead process is free at once) and a note of who holds it.

A second process that finds a lock held does not wait: ``Busy`` says who holds it, and the
caller skips that work (the grid) or stops with the sentence (a notebook).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from helpers.config import Layout
from helpers.errors import UserError
from helpers.io import read_json, save_json

DATA_PHASE = "data"  # the lock of notebook 02 on a root (split, cache, training rows)
_HELD: dict[Path, FileLock] = {}  # this process's locks: taking one again is a no-op
_KEPT: list[AbstractContextManager[None]] = []  # locks held until the process ends


class Busy(UserError):
    """Another process holds the lock."""


def lock_path(layout: Layout, name: str) -> Path:
    """The lock file of a run (its name) or of the data phase on a root."""
    return layout.root / "locks" / layout.dataset / f"{name}.lock"


def _holder(path: Path) -> str:
    """Who holds a lock, as its note says ("pid 12 on host since 14:05")."""
    try:
        note = read_json(path.with_suffix(".json"), "")
        since = time.strftime("%H:%M", time.localtime(note["since"]))
        return f"pid {note['pid']} on {note['host']} since {since}"
    except (UserError, OSError, KeyError, TypeError):
        return "another process"


@contextmanager
def holding(layout: Layout, name: str, what: str) -> Iterator[None]:
    """Hold the lock ``name`` while the block runs; ``Busy`` (one sentence naming ``what``
    and the holder) when another process holds it. Re-entrant within a process."""
    path = lock_path(layout, name)
    if path in _HELD:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise Busy(f"{what} is in progress in another process ({_holder(path)}): it is skipped "
                   f"here; wait for it, or stop that process.") from None
    _HELD[path] = lock
    try:
        save_json({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()},
                  path.with_suffix(".json"))
        yield
    finally:
        path.with_suffix(".json").unlink(missing_ok=True)
        del _HELD[path]
        lock.release()


def hold(layout: Layout, name: str, what: str) -> None:
    """Take the lock ``name`` until this process ends (a notebook's data phase: the kernel
    holds it across cells); ``Busy`` as in ``holding``."""
    context = holding(layout, name, what)
    context.__enter__()
    _KEPT.append(context)  # kept: the lock ends with the process
