"""The notebooks' setup cell: the profile and the seed checked as the parameters cell set them."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.errors import UserError
from helpers.notebook.setup import setup


def test_setup_resolves_the_profile_with_the_parameters_cells_values(tmp_path: Path) -> None:
    ctx = setup(profile="smoke", dataset="x", root=str(tmp_path), seed=7, image_size=64,
                batch_size=None)
    assert (ctx.profile.image_size, ctx.profile.batch_size, ctx.seed) == (64, 8, 7)


@pytest.mark.parametrize("values, message", [({"seed": -1}, "SEED must be"),
                                             ({"image_size": 0}, "IMAGE_SIZE must be"),
                                             ({"image_size": -5}, "IMAGE_SIZE must be"),
                                             ({"epochs_scratch": -1}, "EPOCHS_SCRATCH must be")])
def test_a_bad_parameter_stops_the_setup_cell(values: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"^{message}"):
        setup(profile="smoke", dataset="x", root=str(tmp_path), **values)
