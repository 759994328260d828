"""One process at a time on a run or a root's data phase: a held lock names its holder, a
dead holder's lock is free at once, and two grids on one root train each run once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.config import Layout
from helpers.errors import UserError
from helpers.locks import Busy, holding, lock_path


def _holder(layout: Layout, name: str) -> subprocess.Popen:
    """Another process that takes the lock and keeps it until it is killed."""
    code = ("import sys, time\n"
            "from helpers.config import Layout\n"
            "from helpers.locks import hold\n"
            f"hold(Layout.of({layout.dataset!r}, {str(layout.root)!r}), {name!r}, 'x')\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_names_its_holder_and_a_dead_holder_s_lock_is_free(tmp_path: Path) -> None:
    layout = Layout.of("toy", tmp_path)
    holder = _holder(layout, "run-a")
    try:
        with pytest.raises(Busy, match=f"Training run-a is in progress in another process "
                                       f"\\(pid {holder.pid} on .* since \\d\\d:\\d\\d\\)"), \
                holding(layout, "run-a", "Training run-a"):
            pass
        with holding(layout, "run-b", "Training run-b"):  # another name is another lock
            pass
    finally:
        holder.kill()  # killed: no clean-up of its own
        holder.wait()
    # the dead holder's lock is taken over; taking it again within a process is a no-op
    with holding(layout, "run-a", "Training run-a"), holding(layout, "run-a", "Training run-a"):
        note = json.loads(lock_path(layout, "run-a").with_suffix(".json").read_text())
        assert note["pid"] != holder.pid
    assert not lock_path(layout, "run-a").with_suffix(".json").exists()
    assert issubclass(Busy, UserError)  # a notebook shows it as one sentence
