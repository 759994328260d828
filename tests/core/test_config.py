"""Profiles and the on-disk layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.config import PROFILES, REPO_ROOT, Layout, get_profile, mixed_precision
from helpers.errors import UserError
from helpers.io import save_json


def test_profiles_grow_from_smoke_to_full() -> None:
    smoke, cpu, full = PROFILES["smoke"], PROFILES["cpu"], PROFILES["full"]
    assert smoke.image_size < cpu.image_size < full.image_size == 224
    assert smoke.weights == PROFILES["demo"].weights == "none" and full.weights == "imagenet"
    assert (full.epochs_head, full.epochs_finetune, full.patience) == (50, 30, 10)
    assert smoke.epochs_scratch < cpu.epochs_scratch < PROFILES["demo"].epochs_scratch
    assert smoke.precision == "float32"  # the tests' numbers do not depend on the chip


def test_mixed_precision_only_where_the_chip_has_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    auto, off = get_profile("cpu"), get_profile("cpu", precision="float32")
    assert mixed_precision(auto, "cuda") and not mixed_precision(off, "cuda")
    monkeypatch.setattr("helpers.config.cpu_has_bf16", lambda: False)
    assert not mixed_precision(auto, "cpu")
    monkeypatch.setattr("helpers.config.cpu_has_bf16", lambda: True)
    assert mixed_precision(auto, "cpu") and not mixed_precision(off, "cpu")
    with pytest.raises(UserError, match="PRECISION"):
        mixed_precision(get_profile("cpu", precision="fp8"), "cpu")


def test_get_profile_overrides_and_errors() -> None:
    p = get_profile("smoke", IMAGE_SIZE=48, epochs_head=None)
    assert p.image_size == 48 and p.epochs_head == PROFILES["smoke"].epochs_head
    with pytest.raises(UserError, match="Unknown profile 'huge'"):
        get_profile("huge")
    with pytest.raises(UserError, match="Unknown profile setting"):
        get_profile("cpu", colour="red")


def test_layout_paths(tmp_path: Path) -> None:
    layout = Layout.of("chest_xray", tmp_path)
    assert layout.split_csv == tmp_path / "data/splits/chest_xray.csv"
    assert layout.split_config.name == "chest_xray.json"
    assert layout.cache_path("a/b c.jpg", 64) == tmp_path / "data/processed/chest_xray/64px/a/b c.jpg.png"
    assert layout.results("keras-baseline-scratch-seed42") == (
        tmp_path / "results/chest_xray/runs/keras-baseline-scratch-seed42")
    assert layout.checkpoints("x").parent == tmp_path / "checkpoints/chest_xray/runs"
    assert layout.reports("audit") == tmp_path / "results/chest_xray/audit"
    assert Layout.of("x", "").root == REPO_ROOT


def test_save_json_roundtrip(tmp_path: Path) -> None:
    path = save_json({"profile": PROFILES["smoke"], "where": tmp_path}, tmp_path / "c/config.json")
    data = json.loads(path.read_text())
    assert data["profile"]["image_size"] == PROFILES["smoke"].image_size and data["where"] == str(tmp_path)
