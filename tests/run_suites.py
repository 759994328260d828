"""Run the test suite as five pytest processes, two at a time, and print one closing line.

TensorFlow and torch must not share a process (TensorFlow >= 2.20 loaded before Triton,
which the CUDA build of torch pulls in, crashes it: tensorflow issue 124205), so the
folders mirror the package's process split: ``core`` (helpers' framework-free
subpackages; its notebook tests, which run the notebooks in kernels of their own, are a
suite apart), ``keras``, ``torch`` and ``app`` (the page loads a run's framework in its own
process) each get a process of their own.

One suite keeps about one core busy (``/usr/bin/time``: 100% of 200% on a 2-core machine),
so on two or more cores the suites run in two lanes side by side, of about the same length;
a lane's suites run one after another. Each suite's output is printed whole when it ends;
each has its own temporary folder, removed when everything passed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TESTS = Path(__file__).resolve().parent
NOTEBOOKS = TESTS / "core" / "test_notebooks.py"
SUITES = {"core": (str(TESTS / "core"), f"--ignore={NOTEBOOKS}"),  # pytest's arguments
          "notebooks": (str(NOTEBOOKS),), **{s: (str(TESTS / s),) for s in ("keras", "torch", "app")}}
LANES = (("notebooks", "torch", "app"), ("core", "keras"))  # 8.8 and 9.2 min one at a time
NO_TESTS = 5  # pytest's exit code when a suite collects nothing
_print_lock = threading.Lock()


def run_suite(name: str, base: Path) -> tuple[int, dict[str, int]]:
    """Run one suite's pytest process; print its output once it ends; return its exit code
    and outcome counts (-rs: every skip says why; the ten slowest tests, to keep the time)."""
    cmd = [sys.executable, "-m", "pytest", "-rs", "--durations=10", f"--basetemp={base / name}",
           *SUITES[name], *sys.argv[1:]]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    with _print_lock:
        print(f"\n=== {name} tests ===\n{proc.stdout}", end="", flush=True)
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    last = lines[-1] if lines else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", last)}
    return (0 if proc.returncode == NO_TESTS else proc.returncode), counts


def run_lanes(lanes: tuple[tuple[str, ...], ...], base: Path) -> dict[str, tuple[int, dict[str, int]]]:
    """Every suite's outcome; the lanes run side by side, a lane's suites one after another."""
    def lane(names: tuple[str, ...]) -> dict[str, tuple[int, dict[str, int]]]:
        return {name: run_suite(name, base) for name in names}

    with ThreadPoolExecutor(len(lanes)) as pool:
        return {name: outcome for done in pool.map(lane, lanes) for name, outcome in done.items()}


def main() -> int:
    lanes = LANES if (os.cpu_count() or 1) > 1 else (sum(LANES, ()),)
    print("Suites " + " | ".join(", ".join(lane) for lane in lanes)
          + " (lanes side by side); each prints when it ends.", flush=True)
    base = Path(tempfile.mkdtemp(prefix="imbalance-med-tests-"))
    outcomes = run_lanes(lanes, base)
    total: dict[str, int] = {}
    for _, counts in outcomes.values():
        for k, v in counts.items():
            key = "failed" if k.startswith("error") else k
            total[key] = total.get(key, 0) + v
    code = max(code for code, _ in outcomes.values())
    if code == 0:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"\nThe failed suites' temporary files are in {base}")
    print(f"\n{total.get('passed', 0)} passed, {total.get('failed', 0)} failed, "
          f"{total.get('skipped', 0)} skipped")
    return code


if __name__ == "__main__":
    sys.exit(main())
