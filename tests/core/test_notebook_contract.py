"""The notebook contract: badge, title, parameters, setup cell, no outputs, and every
notebook executed by the notebook tests unless an opt-out below says why."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from helpers.notebook import contract
from helpers.notebook.run import discover

NOTEBOOKS = discover()
TESTS = Path(__file__).resolve().parent
# Notebooks the notebook tests do not execute, each with its reason (none today).
OPT_OUT: dict[str, str] = {}


def exercised() -> set[str]:
    """Notebook numbers that tests/core/test_notebooks.py hands the runner (its "NN" or "NN,NN"
    strings, in ``run`` calls or their parameters)."""
    source = (TESTS / "test_notebooks.py").read_text()
    calls = re.findall(r'"(\d\d(?:,\d\d)*)"', source)
    return {number for call in calls for number in call.split(",")}


def test_the_series_is_all_there() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_keeps_the_contract(path: Path) -> None:
    assert contract.problems(path) == []


def test_the_readme_links_every_notebook_to_colab() -> None:
    assert contract.readme_problems(NOTEBOOKS) == []


def test_the_profile_table_in_the_docs_is_the_one_config_makes(tmp_path: Path) -> None:
    assert contract.profile_table_problems() == []
    stale = tmp_path / "running.md"
    stale.write_text(contract.PROFILE_DOC.read_text().replace("| `demo` |", "| `demo` | 16 |"))
    assert contract.profile_table_problems(stale) != []
    assert contract.sync_profile_table(stale) and contract.profile_table_problems(stale) == []
    assert not contract.sync_profile_table(stale)  # idempotent


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_executed_by_the_notebook_tests(path: Path) -> None:
    assert path.name[:2] in exercised() or path.stem in OPT_OUT


def test_the_check_finds_a_broken_notebook(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    nb.cells = nb.cells[1:]  # no badge
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="x")]
    broken = tmp_path / NOTEBOOKS[0].name
    nbformat.write(nb, broken)
    found = contract.problems(broken)
    assert any("badge" in p for p in found) and "stored outputs" in found


def test_sync_restores_the_contract_and_is_idempotent(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS[2], as_version=4)
    nb.cells = [c for c in nb.cells if "setup" not in c.metadata.get("tags", [])][1:]
    broken = tmp_path / NOTEBOOKS[2].name
    nbformat.write(nb, broken)
    assert contract.sync_notebook(broken)
    assert contract.problems(broken) == []
    assert broken.read_text() == NOTEBOOKS[2].read_text()
    assert not contract.sync_notebook(broken)


def test_a_new_address_rewrites_every_badge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = tmp_path / "README.md"
    readme.write_bytes(contract.README.read_bytes())
    monkeypatch.setattr(contract, "REPOSITORY", "https://github.com/someone/fork")
    monkeypatch.setattr(contract, "BRANCH", "dev")
    assert contract.sync_readme(readme)
    assert contract.readme_problems(NOTEBOOKS, readme) == []
    assert "/github/someone/fork/blob/dev/notebooks/01_download_data.ipynb" in readme.read_text()
    with pytest.raises(contract.UserError, match="GitHub only"):
        contract.colab_folder("https://gitlab.com/a/b")
