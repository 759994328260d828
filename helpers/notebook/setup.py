"""The first code cell of every notebook: profile, layout, seeds, versions."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from helpers.config import Layout, Profile, check_seed, get_profile, seed_everything
from helpers.errors import show_user_errors_briefly

_VERSIONS = ("numpy", "pandas", "scikit-learn", "imbalanced-learn", "opencv-python-headless",
             "pillow", "matplotlib", "papermill")


@dataclass(frozen=True)
class Context:
    """What a notebook needs after its parameters cell."""

    profile: Profile
    layout: Layout
    data_dir: str
    seed: int


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages the series depends on (missing ones say so)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONS + extra:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def setup(*, profile: str, dataset: str, root: str = "", data_dir: str = "", seed: int = 42,
          versions: tuple[str, ...] = (), **overrides: Any) -> Context:
    """Check the seed, resolve the profile (None overrides keep its values; a value out of
    bounds is a UserError: ``config.get_profile``), seed everything, print versions."""
    show_user_errors_briefly()
    seed = check_seed(seed)
    seed_everything(seed)
    ctx = Context(get_profile(profile, **overrides), Layout.of(dataset, root), data_dir, seed)
    print(" | ".join(f"{k} {v}" for k, v in package_versions(versions).items()))
    print(f"profile {ctx.profile.name}, dataset {dataset}, root {ctx.layout.root}, seed {seed}",
          file=sys.stdout)
    return ctx
