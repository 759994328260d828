"""Run the test suite as four pytest processes and print one closing line.

TensorFlow and torch must not share a process (TensorFlow >= 2.20 loaded before Triton,
which the CUDA build of torch pulls in, crashes it: tensorflow issue 124205), so the Keras
tests, the torch tests, the app's tests (the page loads a run's framework in its own
process) and everything else each get a process of their own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SUITES = {
    "core": ["--ignore-glob=*test_keras_*", "--ignore-glob=*test_torch_*",
             "--ignore-glob=*test_app*"],
    "keras": sorted(str(p) for p in TESTS.glob("test_keras_*.py")),
    "torch": sorted(str(p) for p in TESTS.glob("test_torch_*.py")),
    "app": sorted(str(p) for p in TESTS.glob("test_app*.py")),
}
NO_TESTS = 5  # pytest's exit code when a suite collects nothing


def run_suite(name: str, args: list[str]) -> tuple[int, dict[str, int]]:
    """Run one pytest process; return its exit code and outcome counts."""
    if name != "core" and not args:
        return 0, {}
    print(f"\n=== {name} tests ===", flush=True)
    cmd = [sys.executable, "-m", "pytest", "-rs", "--durations=10",
           str(TESTS) if name == "core" else "", *args,
           *sys.argv[1:]]  # -rs: every skip says why; the ten slowest tests, to keep the time
    proc = subprocess.run([c for c in cmd if c], stdout=subprocess.PIPE, text=True)
    print(proc.stdout, end="", flush=True)
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    last = lines[-1] if lines else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", last)}
    return (0 if proc.returncode == NO_TESTS else proc.returncode), counts


def main() -> int:
    total: dict[str, int] = {}
    codes = []
    for name, args in SUITES.items():
        code, counts = run_suite(name, args)
        codes.append(code)
        for k, v in counts.items():
            key = "failed" if k.startswith("error") else k
            total[key] = total.get(key, 0) + v
    print(f"\n{total.get('passed', 0)} passed, {total.get('failed', 0)} failed, "
          f"{total.get('skipped', 0)} skipped")
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
