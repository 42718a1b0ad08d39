"""Pure computation: `fib(25)` in Flowmetal against CPython's plain recursion.

`fib-25`: the evaluator on `(fib 25)` (a pure function, so the fast path of
compiled closures; see flowmetal/runtime/fast.py), start-up and the program's
checking excluded, against the same function in Python; medians, interleaved.
Target: <= 30x.
"""

from __future__ import annotations

import statistics
import time

from flowmetal.runtime import evaluate

PROGRAM = """\
(defpackage bench.fib
  (defn fib [n : int?] : int?
    (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))
  (defn main [n : int?] : int? (fib n)))
"""


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def run(quick: bool = False) -> list[dict]:
    n = 18 if quick else 25
    evaluate(PROGRAM, "bench.fib/main", [2])  # checks and compiles the program once
    ours, theirs = [], []
    for _ in range(1 if quick else 5):
        start = time.perf_counter()
        value = evaluate(PROGRAM, "bench.fib/main", [n])
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        expected = fib(n)
        theirs.append(time.perf_counter() - start)
        assert value == expected
    a, b = statistics.median(ours), statistics.median(theirs)
    return [{"name": f"fib-{n}", "value": a, "reference": b, "ratio": a / b, "target": 30.0,
             "unit": "x CPython", "detail": f"evaluator {a * 1000:.0f} ms, CPython {b * 1000:.1f} ms (median)"}]
