"""The scalars of TensorBoard event folders, as TensorBoard's ``EventAccumulator`` reads them.

``python tests/tensorboard_events.py FOLDER...`` prints ``{folder: {tag: [[step, value],
...]}}`` as JSON. tensorboard reads files through TensorFlow whenever it is installed, which
must never load into a torch process; here tensorboard's own switch
(``tensorboard.compat.notf``) makes it use its bundled stand-in, which reads local files as
well and spares TensorFlow's seconds of loading. The switch holds for a whole process, so
tests run this in one of its own (``conftest.read_curves``).
"""

from __future__ import annotations

import json
import sys
from types import ModuleType

sys.modules["tensorboard.compat.notf"] = ModuleType("tensorboard.compat.notf")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402 - after the switch


def scalars(folder: str) -> dict[str, list[list[float]]]:
    """Every scalar tag of the folder's event files -> its (step, value) points."""
    events = EventAccumulator(folder)
    events.Reload()
    return {tag: [[e.step, e.value] for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


if __name__ == "__main__":
    print(json.dumps({folder: scalars(folder) for folder in sys.argv[1:]}))
