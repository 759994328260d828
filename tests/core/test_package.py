"""The package's shape: framework-free layers import no framework; the module map is whole."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import helpers

FRAMEWORK_SIDES = ("helpers.keras", "helpers.torch")


def test_importing_helpers_and_its_framework_free_subpackages_imports_no_framework() -> None:
    code = ("import importlib, json, pkgutil, sys, helpers\n"
            "names = [m.name for m in pkgutil.walk_packages(helpers.__path__, 'helpers.')\n"
            f"         if not m.name.startswith({FRAMEWORK_SIDES!r})]\n"
            "for name in names:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps([names, sorted(k for k in ('tensorflow', 'torch', 'keras') "
            "if k in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, frameworks = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"helpers.data", "helpers.training", "helpers.analysis", "helpers.notebook",
            "helpers.data.splits", "helpers.training.runs", "helpers.analysis.app"} <= set(names)
    assert frameworks == []


def test_the_module_map_names_every_subpackage() -> None:
    subpackages = {m.name for m in pkgutil.iter_modules(helpers.__path__) if m.ispkg}
    assert subpackages == {"data", "training", "analysis", "notebook", "keras", "torch"}
    for name in subpackages:
        assert f"helpers.{name}" in helpers.__doc__, name
