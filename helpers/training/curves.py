"""A run's training curves as TensorBoard event files, readable while it trains: the
classifiers' history columns per epoch (``runs.drive``, both frameworks under the same
tags) and the WGAN-GP's losses per iteration (``helpers.torch.gan``), in
``results/<dataset>/runs/<run>/tensorboard/`` (``Layout.tensorboard``).

One writer for both frameworks, so the tags are the same by construction, written by hand
around tensorboard's own record framing (``RecordWriter``) and event protos: tensorboard's
writers (``tensorboard.summary.Writer``, and torch's ``SummaryWriter`` built on the same
file writer) open their files through TensorFlow whenever it is installed
(``tensorboard.compat.tf``), which would load it into a PyTorch process, and the two never
share one; Keras' ``TensorBoard`` callback names its curves ``epoch_loss`` under ``train/``
and ``validation/`` and counts each phase's epochs from 0.

Each training session (a process that trains the run) writes one event file, opened at its
first step:

- step 1 is a fresh start (a new run, ``RESUME=False``, other settings): the folder's older
  event files are removed, so an earlier training of the run leaves no curve behind;
- a later step is a resume: the file starts with TensorBoard's restart marker at that step
  (``SessionLog.START``, what ``purge_step`` of torch's writer writes), so TensorBoard drops
  what earlier files hold at that step and after, and shows each step once, with the value
  trained last (TensorBoard 2.21's fast loader and its Python one alike; the tests check
  the Python one, through the server).
  The WGAN-GP trains again the iterations after its last checkpoint: their replayed values
  replace the first ones. A classifier writes an epoch after its checkpoint, so a resumed
  run replays none; one stopped between the two writes resumes after that epoch, and its
  curve lacks that one point (``history.csv`` has every epoch).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter

from helpers.training.protocols import HISTORY_COLUMNS

EPOCH_TAGS = [c for c in HISTORY_COLUMNS if c not in ("epoch", "phase")]  # a classifier's scalars
EVENT_FILES = "events.out.tfevents.*"  # how TensorBoard recognises its files (it reads *tfevents*)


class Curves:
    """Scalars per step of one training session in ``directory`` (module docstring):
    called with a history row, it writes the row's ``tags`` at step ``row[step]`` and
    flushes, so TensorBoard shows the point at once."""

    def __init__(self, directory: Path, step: str, tags: Sequence[str]) -> None:
        self.directory, self.step, self.tags = Path(directory), step, list(tags)
        self._records: RecordWriter | None = None  # the open file, from the first step on

    def __call__(self, row: Mapping[str, Any]) -> None:
        step = int(row[self.step])
        records = self._records or self._open(step)
        values = [Summary.Value(tag=tag, simple_value=float(row[tag])) for tag in self.tags]
        _write(records, Event(step=step, summary=Summary(value=values)))

    def _open(self, first_step: int) -> RecordWriter:
        """The session's event file, opened with the session marker at its first step (a
        restart marker from the second session on); a fresh start (step 1) removes the
        older files."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if first_step <= 1:
            for old in self.directory.glob(EVENT_FILES):
                old.unlink()
        # the seconds first, zero-padded: TensorBoard reads a folder's files in name order
        name = f"events.out.tfevents.{time.time():017.6f}.{socket.gethostname()}.{os.getpid()}"
        self._records = RecordWriter((self.directory / name).open("wb"))
        _write(self._records, Event(file_version="brain.Event:2"))
        _write(self._records, Event(step=first_step, session_log=SessionLog(status=SessionLog.START)))
        return self._records

    def close(self) -> None:
        """Close the session's file (nothing to do when no step was written)."""
        if self._records is not None:
            self._records.close()
            self._records = None

    def __enter__(self) -> Curves:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def _write(records: RecordWriter, event: Event) -> None:
    """One event, stamped with the time, on disk at once."""
    event.wall_time = time.time()
    records.write(event.SerializeToString())
    records.flush()
