"""Reading speed: the reader against CPython's own parser, measured side by side.

- `read-10k`: reading a generated 10,000-line Flowmetal program, against
  `ast.parse` of a Python file of the same shape and length. Target: <= 6x.
- `read-form`: reading one 20-line top-level form. Target: <= 1 ms.

Both sides run in this process, interleaved (one run of each in turn) so that
the machine's noise falls on both alike; the figure is the ratio of medians.
The garbage collector is left as each side leaves it (the reader pauses it).
"""

from __future__ import annotations

import ast
import statistics
import time

from flowmetal.lang.syntax import read

import programs


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(quick: bool = False) -> list[dict]:
    lines = 1_000 if quick else 10_000
    repeats = 3 if quick else 11
    flow_text, py_text = programs.flowmetal(lines), programs.python(lines)
    assert len(flow_text.splitlines()) == len(py_text.splitlines()) == lines
    tree = read(flow_text, "generated.flow")
    assert not tree.diagnostics, tree.diagnostics[:3]
    flow_times, py_times = [], []
    for _ in range(repeats):
        py_times.append(_time(lambda: ast.parse(py_text)))
        flow_times.append(_time(lambda: read(flow_text)))
    flow, py = statistics.median(flow_times), statistics.median(py_times)

    form = programs.one_form(20)
    assert not read(form).diagnostics
    form_times = [_time(lambda: read(form)) for _ in range(50 if quick else 500)]
    form_median = statistics.median(form_times)
    return [
        {"name": f"read-{lines // 1000}k", "value": flow, "reference": py, "ratio": flow / py,
         "target": 6.0, "unit": "x ast.parse",
         "detail": f"reader {flow * 1000:.0f} ms, ast.parse {py * 1000:.0f} ms (median of {repeats})"},
        {"name": "read-form", "value": form_median, "reference": None, "ratio": form_median * 1000,
         "target": 1.0, "unit": "ms",
         "detail": f"one 20-line form, median of {len(form_times)}"},
    ]
