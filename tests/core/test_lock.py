"""requirements-lock.txt (``make lock``) pins every requirement of requirements.txt, each at
a version inside its range, and pins nothing but exact versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from helpers.config import REPO_ROOT


def requirements(path: Path) -> list[Requirement]:
    """The requirement lines of a pip requirements file (comments, blank lines, pip-compile's
    indented annotations and option lines left out)."""
    lines = (line.split(" #")[0].strip() for line in path.read_text().splitlines()
             if line.strip() and not line.startswith((" ", "#", "-")))
    return [Requirement(line) for line in lines]


def exact_pin(requirement: Requirement) -> Version | None:
    """The version a requirement pins exactly (one ``==`` without a wildcard, no URL), or None."""
    specifiers = list(requirement.specifier)
    if requirement.url or len(specifiers) != 1:
        return None
    spec = specifiers[0]
    if spec.operator != "==" or spec.version.endswith(".*"):
        return None
    return Version(spec.version)


def pins(path: Path) -> dict[str, Version | None]:
    """Each requirement of a file by its canonical name: the version it pins (None: not exact)."""
    return {canonicalize_name(r.name): exact_pin(r) for r in requirements(path)}


LOCK = pins(REPO_ROOT / "requirements-lock.txt")
RANGES = requirements(REPO_ROOT / "requirements.txt")


def test_the_lock_pins_only_exact_versions() -> None:
    assert len(LOCK) > len(RANGES)  # the lock holds the dependencies of the dependencies too
    assert [name for name, version in LOCK.items() if version is None] == []


@pytest.mark.parametrize("requirement", RANGES, ids=str)
def test_the_lock_pins_each_requirement_inside_its_range(requirement: Requirement) -> None:
    version = LOCK.get(canonicalize_name(requirement.name))
    assert version is not None, f"{requirement.name} is not pinned: run make lock"
    assert requirement.specifier.contains(version, prereleases=True), \
        f"{requirement.name}=={version} is outside {requirement}: run make lock"


def test_the_checks_see_a_pin_outside_its_range_and_a_range_in_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\nNumPy==1.25.0\n    # via -r requirements.txt\n"
                    "torch>=2.3\npandas==2.*\n--extra-index-url file:///x\n")
    found = pins(lock)
    assert found == {"numpy": Version("1.25.0"), "torch": None, "pandas": None}
    assert not Requirement("numpy>=1.26").specifier.contains(found["numpy"], prereleases=True)
