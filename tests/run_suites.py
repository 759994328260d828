"""Run the test suite as four pytest processes, one per folder, and print one closing line.

TensorFlow and torch must not share a process (TensorFlow >= 2.20 loaded before Triton,
which the CUDA build of torch pulls in, crashes it: tensorflow issue 124205), so the
folders mirror the package's process split: ``core`` (helpers' framework-free
subpackages), ``keras``, ``torch`` and ``app`` (the page loads a run's framework in its
own process) each get a process of their own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SUITES = ("core", "keras", "torch", "app")  # folders under tests/, one process each
NO_TESTS = 5  # pytest's exit code when a suite collects nothing


def run_suite(name: str) -> tuple[int, dict[str, int]]:
    """Run one folder's pytest process; return its exit code and outcome counts."""
    print(f"\n=== {name} tests ===", flush=True)
    cmd = [sys.executable, "-m", "pytest", "-rs", "--durations=10", str(TESTS / name),
           *sys.argv[1:]]  # -rs: every skip says why; the ten slowest tests, to keep the time
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    print(proc.stdout, end="", flush=True)
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    last = lines[-1] if lines else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", last)}
    return (0 if proc.returncode == NO_TESTS else proc.returncode), counts


def main() -> int:
    total: dict[str, int] = {}
    codes = []
    for name in SUITES:
        code, counts = run_suite(name)
        codes.append(code)
        for k, v in counts.items():
            key = "failed" if k.startswith("error") else k
            total[key] = total.get(key, 0) + v
    print(f"\n{total.get('passed', 0)} passed, {total.get('failed', 0)} failed, "
          f"{total.get('skipped', 0)} skipped")
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
