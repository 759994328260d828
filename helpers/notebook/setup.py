"""The first code cell of every notebook: profile, layout, seeds, versions."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from helpers.config import Layout, Profile, check_seed, get_profile, seed_everything
from helpers.environment import package_versions
from helpers.errors import show_user_errors_briefly


@dataclass(frozen=True)
class Context:
    """What a notebook needs after its parameters cell."""

    profile: Profile
    layout: Layout
    data_dir: str
    seed: int


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
