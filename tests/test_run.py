"""The papermill runner: discovery, parameters, and failures reported in a few lines."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from helpers.config import Layout
from helpers.errors import UserError
from helpers.run import discover, main, parse_parameters, run_series


def write_notebook(path: Path, *cells: str) -> Path:
    """A notebook whose first cell is the tagged parameters cell."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = "cpu"\nDATASET = "x"\nSEED = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_discover_orders_and_selects(tmp_path: Path) -> None:
    for name in ("02_b.ipynb", "01_a.ipynb", "10_c.ipynb", "notes.ipynb"):
        write_notebook(tmp_path / name)
    assert [p.name for p in discover(None, tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    assert [p.name for p in discover("2,1", tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    with pytest.raises(UserError, match="No notebook numbered 03"):
        discover("03", tmp_path)


def test_parse_parameters_types_values() -> None:
    got = parse_parameters(["EPOCHS=2", "LR=1e-4", "WEIGHTS=none", "FLAG=true", "X=null", "EMPTY="])
    assert got == {"EPOCHS": 2, "LR": 1e-4, "WEIGHTS": "none", "FLAG": True, "X": None, "EMPTY": ""}
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_parameters(["oops"])


@pytest.mark.notebook
def test_run_series_executes_in_order_with_parameters(tmp_path: Path) -> None:
    out = tmp_path / "seen.txt"
    nbs = [write_notebook(tmp_path / "01_a.ipynb", f"open({str(out)!r}, 'a').write(f'{{DATASET}}{{SEED}};')"),
           write_notebook(tmp_path / "02_b.ipynb", f"open({str(out)!r}, 'a').write('second')")]
    layout = Layout.of("x", tmp_path / "root")
    timings = run_series(nbs, layout, {"DATASET": "chest", "SEED": 7})
    assert out.read_text() == "chest7;second"
    assert [t["notebook"] for t in timings] == ["01_a", "02_b"]
    executed = json.loads((layout.executed_dir / "01_a.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])


@pytest.mark.notebook
def test_run_series_stops_at_first_failure_with_short_message(tmp_path: Path) -> None:
    marker = tmp_path / "ran_third"
    nbs = [write_notebook(tmp_path / "01_ok.ipynb", "x = 1"),
           write_notebook(tmp_path / "02_bad.ipynb", "x = 1", "1 / 0"),
           write_notebook(tmp_path / "03_never.ipynb", f"open({str(marker)!r}, 'w')")]
    with pytest.raises(UserError) as info:
        run_series(nbs, Layout.of("x", tmp_path / "root"), {})
    message = str(info.value)
    assert "02_bad failed" in message and "ZeroDivisionError" in message
    assert len(message.splitlines()) <= 4
    assert not marker.exists()


@pytest.mark.notebook
def test_user_error_in_a_notebook_is_one_sentence(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "01_user.ipynb",
                        "from helpers.errors import UserError, show_user_errors_briefly\n"
                        "show_user_errors_briefly()\n"
                        "raise UserError('Set KAGGLE_KEY or pass a folder.')")
    with pytest.raises(UserError) as info:
        run_series([nb], Layout.of("x", tmp_path / "root"), {})
    assert str(info.value) == "01_user: Set KAGGLE_KEY or pass a folder."
    cells = json.loads((tmp_path / "root/results/x/executed/01_user.ipynb").read_text())["cells"]
    error = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"][0]
    assert error["traceback"] == ["UserError: Set KAGGLE_KEY or pass a folder."]


def test_main_reports_bad_selection_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--notebooks", "99"]) == 1
    assert "No notebook numbered 99" in capsys.readouterr().err
