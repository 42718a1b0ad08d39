"""`match` on the fast path: `(fib 25)` written with `match`, through `flowmetal run`.

- `fib-match-25`: `flowmetal run` of `(fib 25)` written with `match` (as the
  seed writes it), less its start-up (the same command for `(fib 0)`), against
  CPython's plain recursion. Target: <= 30x.
- `fib-if-25` (informational): the same with `if`, measured the same way.

The runs are whole processes on fresh stores (the executor's slices and
budget included); each figure is the median of the differences, the commands
interleaved.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MATCH = """\
(defpackage bench.fib
  (defn fib [n : int?] : int?
    (match n
      [0 0]
      [1 1]
      [_ (+ (fib (- n 1)) (fib (- n 2)))]))
  (defn main [n : int?] : int? (fib n)))
"""

IF = """\
(defpackage bench.fib
  (defn fib [n : int?] : int?
    (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))
  (defn main [n : int?] : int? (fib n)))
"""


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def _run(folder: str, name: str, n: int, i: int, env: dict) -> float:
    argv = [sys.executable, "-m", "flowmetal", "run", name, "bench.fib/main", str(n), "--store", f"s-{name}-{n}-{i}.db"]
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=folder)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0 and result.stdout.strip() == str(fib(n)), result.stderr
    return elapsed


def run(quick: bool = False) -> list[dict]:
    n = 18 if quick else 25
    repeats = 1 if quick else 7
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out: dict[str, list[float]] = {"match": [], "if": [], "python": []}
    with tempfile.TemporaryDirectory(prefix="flowmetal-bench-") as tmp:
        (Path(tmp) / "match.flow").write_text(MATCH, encoding="utf-8")
        (Path(tmp) / "if.flow").write_text(IF, encoding="utf-8")
        _run(tmp, "match.flow", 0, -1, env)  # writes the bytecode, if it was not there
        for i in range(repeats):
            for kind in ("match", "if"):
                base = _run(tmp, f"{kind}.flow", 0, i, env)
                spent = _run(tmp, f"{kind}.flow", n, i, env) - base
                out[kind].append(max(spent, 1e-6) if quick else spent)  # quick: a smoke test, noise may win
            start = time.perf_counter()
            fib(n)
            out["python"].append(time.perf_counter() - start)
    py = statistics.median(out["python"])
    results = []
    for kind, target in (("match", 30.0), ("if", 30.0)):
        ours = statistics.median(out[kind])
        results.append({"name": f"fib-{kind}-{n}", "value": ours, "reference": py, "ratio": ours / py,
                        "target": target, "unit": "x CPython",
                        "detail": f"flowmetal run less its start-up {ours * 1000:.0f} ms, CPython {py * 1000:.1f} ms "
                                  f"(median of {repeats})" + ("" if kind == "match" else " (informational)")})
    return results
