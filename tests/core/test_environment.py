"""The environment record of every run: library versions, device, CPU, native bfloat16."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import sklearn

from helpers.environment import environment, package_versions, version


def test_the_record_holds_the_versions_the_device_and_the_cpus_bfloat16(
        monkeypatch: pytest.MonkeyPatch) -> None:
    record = environment("pytorch", "cpu: float32")
    versions = record["versions"]
    assert versions["python"] == platform.python_version()
    assert versions["numpy"] == np.__version__ and versions["scikit-learn"] == sklearn.__version__
    assert versions["opencv-python-headless"].startswith(cv2.__version__)
    assert {"torch", "torchvision"} <= set(versions) and "tensorflow" not in versions
    assert record["device"] == "cpu: float32" and record["cpu"]
    for native in (True, False):
        monkeypatch.setattr("helpers.environment.cpu_has_bf16", lambda native=native: native)
        assert environment("sklearn", "cpu")["cpu_bf16"] is native


def test_each_framework_records_its_own_libraries() -> None:
    assert {"tensorflow", "keras"} <= set(environment("keras", "cpu: float32")["versions"])
    assert not {"torch", "tensorflow"} & set(environment("sklearn", "cpu")["versions"])
    with pytest.raises(ValueError, match="jax"):
        environment("jax", "cpu")


def test_a_missing_package_says_so() -> None:
    assert package_versions(("no-such-package-here",))["no-such-package-here"] == "not installed"


def test_an_imported_torch_records_its_build(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "torch" not in sys.modules  # the framework-free suite: the metadata's version
    assert version("torch") == metadata.version("torch")
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(__version__="2.14.1+cpu"))
    assert environment("pytorch", "cpu")["versions"]["torch"] == "2.14.1+cpu"
