"""The package's shape: framework-free layers import no framework; the module map is whole."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

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


def _imports(path: Path) -> set[str]:
    """The helpers modules a module imports, anywhere in it (deferred imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("helpers"):
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("helpers")}
    return found


def test_no_two_modules_import_each_other_even_through_others() -> None:
    root = Path(helpers.__file__).parent
    modules = {"helpers." + ".".join(p.relative_to(root).with_suffix("").parts): p
               for p in root.rglob("*.py") if p.name != "__init__.py"}
    graph = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    assert len(graph) > 40 and sum(map(len, graph.values())) > 60  # the walk saw the package
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            assert state.get(nxt) != 1, " -> ".join([*path, name, nxt])
            if nxt not in state:
                visit(nxt, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
