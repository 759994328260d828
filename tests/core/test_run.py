"""The papermill runner: discovery, parameters, and failures reported in a few lines."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import nbformat
import pytest

from helpers.config import Layout, check_parameters
from helpers.errors import UserError
from helpers.notebook.progress import ProgressEcho
from helpers.notebook.run import discover, main, parse_parameters, run_series


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
    layout = Layout.of("x", tmp_path / "root")
    with pytest.raises(UserError) as info:
        run_series(nbs, layout, {})
    message = str(info.value)
    assert "02_bad failed" in message and "ZeroDivisionError" in message
    assert len(message.splitlines()) <= 4
    assert not marker.exists()
    # the web pages: the failed notebook's error shown, the index true to where the run stopped
    assert "ZeroDivisionError" in (layout.executed_dir / "02_bad.html").read_text()
    index = (layout.executed_dir / "index.html").read_text()
    rows = re.findall(r'<tr>\s*<td>(?:<a href="([^"]+)">)?(\w+)<.*?<td class="[\w-]+">([\w ]+)</td>',
                      index, re.S)
    assert rows == [("01_ok.html", "01_ok", "ok"), ("02_bad.html", "02_bad", "failed"),
                    ("", "03_never", "not run")]
    assert (layout.executed_dir / "01_ok.html").is_file()


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


@pytest.mark.parametrize("parameter, message", [
    ("IMAGE_SIZE=0", "IMAGE_SIZE must be a multiple of 32 from 32 up"),
    ("IMAGE_SIZE=-5", "IMAGE_SIZE must be a multiple of 32 from 32 up"),
    ("SEEDS=abc", "SEEDS must be whole numbers"), ("SEEDS=-1", "SEEDS must be whole numbers"),
    ("SEEDS=4.5", "SEEDS must be whole numbers"), ("SEEDS=", "SEEDS must be whole numbers"),
    ("SEED=-1", "SEED must be a whole number"), ("BATCH_SIZE=0", "BATCH_SIZE must be"),
    ("LR_SCRATCH=-1e-3", "LR_SCRATCH must be"), ("GAN_ITERATIONS=0", "GAN_ITERATIONS must be")])
def test_main_stops_a_bad_parameter_before_the_first_notebook(
        parameter: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--profile", "smoke", "--root", str(tmp_path), "--notebooks", "01,02", "-p", parameter]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {message}") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # no notebook ran: nothing written under the root


@pytest.mark.parametrize("written, seeds", [("43", [43]), ("42,43", [42, 43]),
                                            ("[42,43]", [42, 43]), ("[42, 43]", [42, 43])])
def test_seeds_written_on_the_command_line_reach_the_grid(written: str, seeds: list[int]) -> None:
    from helpers.training.grid import plan_grid  # what notebook 06 calls with its SEEDS

    parameters = parse_parameters(["SEEDS=" + written])  # what papermill hands the notebook
    check_parameters("smoke", parameters)
    jobs = plan_grid("chest_xray", "smoke", frameworks="pytorch", scenarios="baseline",
                     seeds=parameters["SEEDS"])
    assert [j.seed for j in jobs] == seeds


def test_progress_echo_passes_progress_lines_and_throttles_redraws() -> None:
    out, now = io.StringIO(), [0.0]
    echo = ProgressEcho(out, every=30, clock=lambda: now[0])
    echo.write("profile smoke, dataset chest_xray\nsome warning\nEpoch 1/6\n")
    echo.write("2/2 - 3s - 1s/step - accuracy: 0.5 - loss: 0.69 - val_loss: 0.7\n")
    for step in range(1, 5):  # a tqdm bar redrawn in place, 10 s apart: the first shown
        now[0] = 10.0 * step
        echo.write(f"\repoch 1 (phase 1):  {25 * step}%|##  | {step}/4 [00:{step}0<00:30]")
    echo.write("\repoch 1 (phase 1): 100%|####| 4/4 [00:40<00:00, loss=0.69, val_loss=0.7]\n")
    lines = out.getvalue().splitlines()
    assert lines == ["    Epoch 1/6",
                     "    2/2 - 3s - 1s/step - accuracy: 0.5 - loss: 0.69 - val_loss: 0.7",
                     "    epoch 1 (phase 1):  25%|##  | 1/4 [00:10<00:30]",
                     "    epoch 1 (phase 1): 100%|####| 4/4 [00:40<00:00, loss=0.69, val_loss=0.7]"]


@pytest.mark.notebook
def test_the_console_shows_cells_and_training_progress_not_other_output(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nb = write_notebook(tmp_path / "01_train.ipynb", "print('versions and other chatter')",
                        "from tqdm import tqdm\nimport time\n"
                        "for _ in tqdm(range(3), desc='epoch 1 (phase 1)', mininterval=0):\n"
                        "    time.sleep(0.05)\n"
                        "print('Epoch 2/2')")
    run_series([nb], Layout.of("x", tmp_path / "root"), {})
    out = capfd.readouterr().out
    assert "[1/1] 01_train" in out
    assert "  cell 2/3: print('versions and other chatter')" in out
    assert "  cell 3/3: from tqdm import tqdm" in out
    assert "epoch 1 (phase 1): 100%" in out and "    Epoch 2/2" in out
    assert "chatter\n" not in out.replace("chatter')", "")


@pytest.mark.notebook
def test_log_output_echoes_every_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nb = write_notebook(tmp_path / "01_talk.ipynb", "print('versions and other chatter')")
    run_series([nb], Layout.of("x", tmp_path / "root"), {}, log_output=True)
    assert "versions and other chatter\n" in capfd.readouterr().out
