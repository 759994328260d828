"""What a headless run shows on the console: each code cell as it starts, and the
training's own progress lines (epochs, losses, time left), not the notebooks' other output.

``ProgressEcho`` is a file papermill writes a kernel's stdout or stderr to; it passes on
the lines that ``PROGRESS`` recognises: tqdm bars (the PyTorch epochs, the WGAN-GP, the
scenario grid, the image cache), Keras' ``Epoch n/N`` and per-epoch loss lines, and the
grid's status lines. A bar redrawn in place is shown once every ``every`` seconds and when
it finishes. ``ConsoleEngine`` is papermill's own engine, announcing each code cell.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from papermill.engines import NBClientEngine, papermill_engines

PROGRESS = re.compile(r"\d+%\|"  # a tqdm bar
                      r"|^Epoch \d+/\d+$"  # Keras, an epoch begins
                      r"|^\d+/\d+ - .*\bloss: "  # Keras (verbose=2), an epoch's result
                      r"|^Grid\b")  # the scenario grid's status (notebook 06)
ENGINE = "console"


class ProgressEcho:
    """A write-only text file that echoes the progress lines of what is written to it."""

    def __init__(self, out: TextIO | None = None, every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.every, self.clock = out or sys.stdout, every, clock
        self._partial = ""
        self._last_redraw = -math.inf

    def write(self, text: str) -> int:
        *segments, self._partial = re.split(r"(?<=[\r\n])", self._partial + text)
        for segment in segments:
            self._show(segment.strip(), final=segment.endswith("\n"))
        return len(text)

    def _show(self, line: str, final: bool) -> None:
        """Echo ``line`` if it is progress; a redraw (not ``final``) at most every ``every`` s."""
        if not PROGRESS.search(line):
            return
        if not final:
            if self.clock() - self._last_redraw < self.every:
                return
            self._last_redraw = self.clock()
        print(f"    {line}", file=self.out, flush=True)

    def flush(self) -> None:
        self.out.flush()


def first_line(source: str, width: int = 100) -> str:
    """A cell's first non-blank line, shortened to ``width``."""
    line = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


class ConsoleEngine(NBClientEngine):
    """papermill's nbclient engine, printing ``cell i/n: first line`` as each code cell starts."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        code = [i for i, cell in enumerate(nb_man.nb.cells) if cell.cell_type == "code"]
        start = nb_man.cell_start

        def announce(cell: Any, cell_index: int | None = None, **kw: Any) -> None:
            if cell_index in code:
                print(f"  cell {code.index(cell_index) + 1}/{len(code)}: {first_line(cell.source)}",
                      flush=True)
            start(cell, cell_index, **kw)

        nb_man.cell_start = announce
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


papermill_engines.register(ENGINE, ConsoleEngine)
