"""Start-up: `flowmetal run` of a one-line function on a fresh store, as a whole process.

- `run-startup`: `python -m flowmetal run one.flow one/main` with a new store
  each time (so the store is created and migrated too), against a bare
  `python -c pass` of the same interpreter. Target: <= 10x.

Both are whole processes, interleaved (one of each in turn), medians of 11.
Compiled bytecode is used as an installed package has it: a first run writes
it (the children are started without PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROGRAM = "(defpackage one (defn main [] : int? 1))\n"


def _time_process(argv: list[str], env: dict, cwd: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return elapsed


def run(quick: bool = False) -> list[dict]:
    repeats = 2 if quick else 11
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="flowmetal-bench-") as tmp:
        (Path(tmp) / "one.flow").write_text(PROGRAM, encoding="utf-8")

        def flowmetal_run(i: int) -> list[str]:
            return [sys.executable, "-m", "flowmetal", "run", "one.flow", "one/main", "--store", f"store-{i}.db"]
        bare = [sys.executable, "-c", "pass"]
        _time_process(flowmetal_run(-1), env, tmp)  # writes the bytecode, if it was not there
        ours, theirs = [], []
        for i in range(repeats):
            theirs.append(_time_process(bare, env, tmp))
            ours.append(_time_process(flowmetal_run(i), env, tmp))
    a, b = statistics.median(ours), statistics.median(theirs)
    return [{"name": "run-startup", "value": a, "reference": b, "ratio": a / b, "target": 10.0,
             "unit": "x python", "detail": f"flowmetal run {a * 1000:.0f} ms, python -c pass {b * 1000:.0f} ms "
                                           f"(processes, median of {repeats})"}]
