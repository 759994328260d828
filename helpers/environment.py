"""What a run's numbers depend on besides its settings: the library versions, the device,
the CPU and whether it computes bfloat16 natively.

Every run's config.json records it under ``environment`` (docs/guarantees.md says what it
explains). It never decides whether a run is trained again: ``RunFolder.trained_with``
compares the recorded ``settings`` only, so a run from another machine or library version,
or from before this record existed, still counts as finished.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from helpers.config import cpu_has_bf16

VERSIONS = ("numpy", "pandas", "scikit-learn", "imbalanced-learn", "opencv-python-headless",
            "pillow", "matplotlib", "papermill")
FRAMEWORK_VERSIONS = {"keras": ("tensorflow", "keras"),
                      "pytorch": ("torch", "torchvision", "torch-fidelity"),
                      "sklearn": ()}
BUILD_TAGGED = ("torch", "torchvision")  # their __version__ names the build ("2.14.1+cu130",
# "2.14.1+cpu"); the package metadata leaves it out


def version(name: str) -> str:
    """An installed distribution's version ("not installed" when missing); torch and
    torchvision, once imported, with their build."""
    if name in BUILD_TAGGED and name in sys.modules:
        return str(sys.modules[name].__version__)
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages the series depends on, and of ``extra``."""
    return {"python": platform.python_version(), **{name: version(name) for name in VERSIONS + extra}}


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def environment(framework: str, device: str) -> dict[str, Any]:
    """The record of where a run of ``framework`` ("keras", "pytorch", "sklearn") ran:
    library versions, ``device`` (the framework's description of it), the CPU, its native
    bfloat16 and the platform."""
    if framework not in FRAMEWORK_VERSIONS:
        raise ValueError(f"Unknown framework {framework!r}: one of {list(FRAMEWORK_VERSIONS)}.")
    return {"versions": package_versions(FRAMEWORK_VERSIONS[framework]), "device": device,
            "cpu": cpu_model(), "cpu_bf16": cpu_has_bf16(), "platform": platform.platform()}
