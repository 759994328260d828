"""Profiles and the on-disk layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.config import (
    GAN_SETTINGS,
    PROFILES,
    REPO_ROOT,
    Layout,
    check_parameters,
    check_seed,
    get_gan_settings,
    get_profile,
    list_items,
    mixed_precision,
    parse_seeds,
)
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
    p = get_profile("smoke", IMAGE_SIZE=96, epochs_head=None)
    assert p.image_size == 96 and p.epochs_head == PROFILES["smoke"].epochs_head
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


def one_sentence(error: pytest.ExceptionInfo[UserError]) -> str:
    """The error's message, checked to be one line ending in a full stop."""
    message = str(error.value)
    assert "\n" not in message and message.endswith(".")
    return message


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_passes_its_own_checks(name: str) -> None:
    assert get_profile(name) == PROFILES[name] and PROFILES[name].image_size % 32 == 0
    assert get_gan_settings(name) == GAN_SETTINGS[name]


@pytest.mark.parametrize("size", [32, 96, 224, 288])
def test_image_sizes_in_steps_of_32_are_accepted(size: int) -> None:
    assert get_profile("smoke", image_size=size).image_size == size


@pytest.mark.parametrize("size", [0, -5, 16, 48, 100, 64.0, "64", True])
def test_other_image_sizes_are_one_sentence_naming_the_allowed_ones(size: object) -> None:
    with pytest.raises(UserError) as error:
        get_profile("cpu", IMAGE_SIZE=size)
    assert one_sentence(error).startswith("IMAGE_SIZE must be a multiple of 32 from 32 up")


@pytest.mark.parametrize("given, seeds", [(42, (42,)), ("43", (43,)), ("42,43", (42, 43)),
                                          ("[42, 43]", (42, 43)), ("(42, 43)", (42, 43)),
                                          ([42, 43], (42, 43)), ((44,), (44,)),
                                          (["42", "43"], (42, 43)), ("43, 42, 43", (43, 42)),
                                          (0, (0,)), (2**32 - 1, (2**32 - 1,))])
def test_seeds_are_accepted_in_every_written_form(given: object, seeds: tuple[int, ...]) -> None:
    assert parse_seeds(given) == seeds
    assert get_profile("smoke", SEEDS=given).seeds == seeds


@pytest.mark.parametrize("given", ["abc", "-1", -1, "4.5", 4.5, 42.0, "", " ", [], "[]", True,
                                   [42, "x"], "42;43", 2**32])
def test_bad_seeds_are_one_sentence(given: object) -> None:
    with pytest.raises(UserError) as error:
        parse_seeds(given)
    assert one_sentence(error).startswith("SEEDS must be whole numbers from 0 to 4294967295, "
                                          "written 42, '42,43' or [42, 43]")
    with pytest.raises(UserError, match="SEEDS must be"):
        get_profile("cpu", seeds=given)


@pytest.mark.parametrize("given", [-1, "x", 4.5, None, False])
def test_a_bad_seed_is_one_sentence(given: object) -> None:
    assert check_seed(7) == 7 and check_seed("7") == 7
    with pytest.raises(UserError) as error:
        check_seed(given)
    assert one_sentence(error).startswith("SEED must be a whole number from 0")


@pytest.mark.parametrize("field, value, allowed", [
    ("batch_size", 0, "a whole number of at least 1"),
    ("batch_size", 4.5, "a whole number of at least 1"),
    ("epochs_scratch", -1, "a whole number of at least 0"),
    ("epochs_head", -2, "a whole number of at least 0"),
    ("epochs_finetune", "many", "a whole number of at least 0"),
    ("lr_scratch", 0, "a number above 0"),
    ("lr_head", -1e-4, "a number above 0"),
    ("lr_finetune", float("nan"), "a number above 0"),
    ("patience", 0, "a whole number of at least 1"),
    ("lr_patience", 0, "a whole number of at least 1"),
    ("warmup_epochs", -0.5, "a number of at least 0"),
    ("weight_decay", float("inf"), "a number of at least 0"),
    ("num_workers", -1, "a whole number of at least 0")])
def test_impossible_profile_numbers_are_one_sentence(field: str, value: object, allowed: str) -> None:
    with pytest.raises(UserError) as error:
        get_profile("cpu", **{field: value})
    assert one_sentence(error) == f"{field.upper()} must be {allowed}, not {value!r}."


def test_zero_epochs_of_one_phase_and_zero_warm_up_stay_allowed() -> None:
    profile = get_profile("cpu", epochs_head=0, epochs_scratch=0, warmup_epochs=0, weight_decay=0)
    assert (profile.epochs_head, profile.epochs_scratch) == (0, 0)  # the protocol skips the phase


@pytest.mark.parametrize("field, value, allowed", [
    ("iterations", 0, "a whole number of at least 1"),
    ("batch_size", -8, "a whole number of at least 1"),
    ("width", 2.5, "a whole number of at least 1"),
    ("checkpoint_every", 0, "a whole number of at least 1"),
    ("lr", 0.0, "a number above 0"),
    ("beta1", 1.0, "a number from 0 to below 1"),
    ("beta2", -0.1, "a number from 0 to below 1")])
def test_impossible_gan_numbers_are_one_sentence(field: str, value: object, allowed: str) -> None:
    with pytest.raises(UserError) as error:
        get_gan_settings("cpu", **{field: value})
    assert one_sentence(error) == f"GAN_{field.upper()} must be {allowed}, not {value!r}."


def test_check_parameters_reads_profile_gan_and_seed_parameters_only() -> None:
    check_parameters("smoke", {"IMAGE_SIZE": 64, "SEEDS": "42,43", "GAN_ITERATIONS": 3,
                               "SEED": 1, "N_BOOT": 0, "image_size": 0})  # not these names
    for bad, name in (({"IMAGE_SIZE": 0}, "IMAGE_SIZE"), ({"SEEDS": "abc"}, "SEEDS"),
                      ({"GAN_WIDTH": 0}, "GAN_WIDTH"), ({"SEED": -1}, "SEED"),
                      ({"BATCH_SIZE": -1}, "BATCH_SIZE")):
        with pytest.raises(UserError, match=f"^{name} must be"):
            check_parameters("smoke", bad)


@pytest.mark.parametrize("given, items", [("a,b", ["a", "b"]), (" a , b ,", ["a", "b"]),
                                          ("[a, b]", ["a", "b"]), ("['a', \"b\"]", ["a", "b"]),
                                          ("", []), ("[]", []), (["a", 1], ["a", 1]),
                                          (("a",), ["a"]), (7, [7]), (None, [None])])
def test_list_parameters_split_one_way(given: object, items: list) -> None:
    assert list_items(given) == items
