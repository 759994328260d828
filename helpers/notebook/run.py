"""Run the notebook series headless with papermill.

    python -m helpers.notebook.run --dataset chest_xray [--data-dir PATH] [--profile smoke|cpu|full]
                          [--notebooks 01,02] [--root DIR] [--seed 42] [-p KEY=VALUE ...]

Notebooks run in order; each executed copy lands in ``results/<dataset>/executed/`` with
its HTML page beside it and ``index.html`` linking them (``helpers.notebook.html_report``); the
console shows each code cell as it starts and the training's progress (``--log-output``:
every line the notebooks print); the run stops at the first failing notebook and prints
that cell's error in a few lines. Parameters that set a profile field, a GAN setting or
the seed (``IMAGE_SIZE``, ``SEEDS``, ``GAN_ITERATIONS``, ``SEED``) are checked before the
first notebook starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from helpers.config import PROFILES, REPO_ROOT, Layout, check_parameters
from helpers.errors import UserError
from helpers.io import save_json

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def discover(selection: str | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The series' notebooks in order; ``selection`` like "01,03" keeps those numbers."""
    found = sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return found
    wanted = [s.strip().zfill(2) for s in selection.split(",") if s.strip()]
    by_number = {p.name[:2]: p for p in found}
    unknown = [w for w in wanted if w not in by_number]
    if unknown:
        raise UserError(f"No notebook numbered {', '.join(unknown)}: choose from "
                        f"{', '.join(sorted(by_number))}.")
    return [by_number[w] for w in sorted(set(wanted))]


_LITERALS = {"true": True, "false": False, "null": None}


def typed(value: str) -> Any:
    """'42' -> 42, '1e-4' -> 0.0001, 'true'/'false'/'null' -> bool/None, else the string."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return _LITERALS.get(value.lower(), value)


def parse_parameters(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict of typed values (see ``typed``)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"Parameter {pair!r} is not KEY=VALUE: write it like -p EPOCHS_HEAD=2.")
        params[key.strip()] = typed(value.strip())
    return params


def failure_summary(notebook: Path, error: Exception, executed: Path) -> str:
    """A few lines: which notebook and cell failed, and the error itself."""
    ename = getattr(error, "ename", type(error).__name__)
    evalue = getattr(error, "evalue", str(error))
    if ename == "UserError":
        return f"{notebook.stem}: {evalue}"
    cell = getattr(error, "exec_count", None)
    source = (getattr(error, "source", "") or "").strip().splitlines()
    lines = [f"{notebook.stem} failed" + (f" in cell [{cell}]" if cell else "") + f": {ename}: {evalue}"]
    if source:
        lines.append("  cell begins: " + source[0][:120])
    lines.append(f"  executed copy with the full traceback: {executed}")
    return "\n".join(lines)


# The kernel's own start-up log (a "TCP without encryption" warning on every start) is
# noise here: the kernel listens on localhost only. Its errors still show.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def echo_options(log_output: bool) -> dict[str, Any]:
    """Where papermill writes the kernels' stdout and stderr: the console as they are
    (``log_output``), or by default filters that keep the progress lines (``helpers.notebook.progress``)."""
    from helpers.notebook.progress import ProgressEcho

    if log_output:
        return {"stdout_file": sys.stdout, "stderr_file": sys.stderr}
    return {"stdout_file": ProgressEcho(), "stderr_file": ProgressEcho()}


def run_series(notebooks: Sequence[Path], layout: Layout, parameters: dict[str, Any],
               log_output: bool = False, overrides: Collection[str] = ()) -> list[dict[str, Any]]:
    """Execute ``notebooks`` in order, showing each code cell as it starts and the training's
    progress (or, ``log_output``, every line); raise UserError with a short summary on the
    first failure. Each executed notebook, failed or not, is also exported as HTML and the
    index rewritten (``overrides``: the parameters given with ``-p``, marked so there)."""
    import papermill as pm  # imported here: the rest of helpers does not need it

    from helpers.notebook.html_report import SeriesReport
    from helpers.notebook.progress import ENGINE

    layout.executed_dir.mkdir(parents=True, exist_ok=True)
    report = SeriesReport.plan(notebooks, layout.executed_dir, parameters, overrides)
    # Kernels inherit this; a user's own value wins. TensorFlow's C++ log lines (a spurious
    # "failed call to cuInit" error on every CPU run) reach the console from the kernels,
    # and its real errors arrive as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    timings: list[dict[str, Any]] = []
    for position, nb in enumerate(notebooks):
        executed = layout.executed_dir / nb.name
        print(f"[{position + 1}/{len(notebooks)}] {nb.stem}", flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(executed), parameters=parameters,
                                cwd=str(nb.parent), kernel_name="python3", engine_name=ENGINE,
                                progress_bar=False, extra_arguments=KERNEL_ARGUMENTS,
                                **echo_options(log_output))
        except BaseException as error:  # an interrupted notebook is reported too, then re-raised
            report.finish(position, "failed", round(time.perf_counter() - start, 1), executed)
            if isinstance(error, pm.PapermillExecutionError):
                raise UserError(failure_summary(nb, error, executed)) from None
            raise
        seconds = round(time.perf_counter() - start, 1)
        report.finish(position, "ok", seconds, executed)
        timings.append({"notebook": nb.stem, "seconds": seconds})
        print(f"    done in {seconds} s -> {executed}", flush=True)
    return timings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers.notebook.run",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="chest_xray",
                        help="chest_xray, brain_tumor, brain_mri, or a name for your own folder")
    parser.add_argument("--data-dir", default="",
                        help="folder with one sub-folder per class, 'kaggle' to download, "
                             "or empty for the bundled sample")
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--notebooks", default=None, help="comma-separated numbers, e.g. 01,02")
    parser.add_argument("--root", default="", help="folder for every output (default: the repository)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="a notebook parameter, e.g. -p EPOCHS_HEAD=2 (repeatable)")
    parser.add_argument("--log-output", action="store_true",
                        help="echo every line the notebooks print (default: each cell as it "
                             "starts and the training's progress)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        layout = Layout.of(args.dataset, args.root)
        notebooks = discover(args.notebooks)
        if not notebooks:
            raise UserError(f"No notebooks found in {NOTEBOOK_DIR}.")
        parameters = {"PROFILE": args.profile, "DATASET": args.dataset,
                      "DATA_DIR": str(Path(args.data_dir).expanduser().resolve())
                      if args.data_dir not in ("", "kaggle") else args.data_dir,
                      "ROOT": str(layout.root), "SEED": args.seed}
        overrides = parse_parameters(args.parameter)
        parameters.update(overrides)
        check_parameters(parameters["PROFILE"], parameters)
        start = time.perf_counter()
        timings = run_series(notebooks, layout, parameters, args.log_output, overrides)
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    total = round(time.perf_counter() - start, 1)
    save_json({"parameters": parameters, "notebooks": timings, "seconds": total},
              layout.executed_dir / "run.json")
    print(f"All {len(notebooks)} notebook(s) ran in {total} s; executed copies in {layout.executed_dir}, "
          f"open {layout.executed_dir / 'index.html'} in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
