"""Re-checking after a one-form edit, against a cold check of the same program.

`recheck-10k`: in a generated 10,000-line program, the time from an edit inside
one definition (the body of a `defn`) to its file's fresh diagnostics, as a
share of a cold analysis of the whole program in the same process. Target:
<= 2%. Both are medians (cold: of 3 runs; edits: of 41, at definitions spread
over the file, alternating a type error and its repair).
"""

from __future__ import annotations

import statistics
import time

from flowmetal.lang.analysis import Workspace, standard_modules

import programs


def run(quick: bool = False) -> list[dict]:
    lines = 1_000 if quick else 10_000
    text = programs.flowmetal(lines)
    standard_modules()
    cold_times = []
    for _ in range(1 if quick else 3):
        start = time.perf_counter()
        workspace = Workspace()
        workspace.set_file("generated.flow", text)
        assert workspace.diagnostics("generated.flow") == []
        cold_times.append(time.perf_counter() - start)
    cold = statistics.median(cold_times)

    edits = 5 if quick else 41
    units = text.count("(defn step-")
    edit_times = []
    for n in range(edits):
        unit = ((n // 2) * 7919) % units
        current = workspace.text("generated.flow")
        if n % 2 == 0:  # break one unit: a string where a number belongs
            old, new = str(unit), f'"{unit}"'
        else:           # and repair it
            old, new = f'"{unit}"', str(unit)
        at = current.index(f"(+ x {old})") + len("(+ x ")
        start = time.perf_counter()
        workspace.edit("generated.flow", at, at + len(old), new)
        found = workspace.diagnostics("generated.flow")
        edit_times.append(time.perf_counter() - start)
        assert len(found) == (1 if n % 2 == 0 else 0), found
    assert workspace.stats["full"] == 1, workspace.stats
    recheck = statistics.median(edit_times)
    return [{"name": f"recheck-{lines // 1000}k", "value": recheck, "reference": cold,
             "ratio": 100 * recheck / cold, "target": 2.0, "unit": "% of cold",
             "detail": f"edit to diagnostics {recheck * 1000:.1f} ms, cold analysis {cold * 1000:.0f} ms "
                       f"(medians; {workspace.stats['incremental']} incremental edits, none from scratch)"}]
