"""Checking speed, as a user sees it: `flowmetal check` as a whole process.

- `check-10k`: a cold `python -m flowmetal check FILE` of a generated
  10,000-line Flowmetal program, against a cold `python -c` that reads and
  `ast.parse`s a Python file of the same shape and length. Both are whole
  processes, so the figure includes interpreter start-up, imports and loading
  the grammar: what a CI job or a pre-commit hook pays. Target: <= 10x.
- `startup`: `python -m flowmetal --version` as a process, in milliseconds:
  the fixed cost of every command. Target: <= 300 ms (informational).

Both sides of `check-10k` run interleaved (one run of each in turn) so that
the machine's noise falls on both alike; the figure is the ratio of medians.
The generated files are written to a temporary directory.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import programs

PARSE_PYTHON = "import ast, sys; ast.parse(open(sys.argv[1], encoding='utf-8').read(), sys.argv[1])"


def _time_process(argv: list[str]) -> float:
    """Seconds taken by one run of `argv` as a process; it must exit 0."""
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return elapsed


def run(quick: bool = False) -> list[dict]:
    lines = 1_000 if quick else 10_000
    repeats = 2 if quick else 7
    flow_text, py_text = programs.flowmetal(lines), programs.python(lines)
    assert len(flow_text.splitlines()) == len(py_text.splitlines()) == lines
    with tempfile.TemporaryDirectory(prefix="flowmetal-bench-") as tmp:
        flow_path, py_path = Path(tmp) / "generated.flow", Path(tmp) / "generated.py"
        flow_path.write_text(flow_text, encoding="utf-8")
        py_path.write_text(py_text, encoding="utf-8")
        check = [sys.executable, "-m", "flowmetal", "check", str(flow_path)]
        parse = [sys.executable, "-c", PARSE_PYTHON, str(py_path)]
        flow_times, py_times = [], []
        for _ in range(repeats):
            py_times.append(_time_process(parse))
            flow_times.append(_time_process(check))
    flow, py = statistics.median(flow_times), statistics.median(py_times)

    version = [sys.executable, "-m", "flowmetal", "--version"]
    start_times = [_time_process(version) for _ in range(3 if quick else 11)]
    startup = statistics.median(start_times)
    return [
        {"name": f"check-{lines // 1000}k", "value": flow, "reference": py, "ratio": flow / py,
         "target": 10.0, "unit": "x ast.parse",
         "detail": f"check process {flow * 1000:.0f} ms, python -c ast.parse process "
                   f"{py * 1000:.0f} ms (median of {repeats})"},
        {"name": "startup", "value": startup, "reference": None, "ratio": startup * 1000,
         "target": 300.0, "unit": "ms",
         "detail": f"python -m flowmetal --version as a process, median of {len(start_times)} (informational)"},
    ]
