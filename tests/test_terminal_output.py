"""What programs and runs print on a terminal is inert: escape sequences, C1 controls, bidi
overrides and lone surrogates from a source file, a `log!` line or a value are shown as
`\\uXXXX` escapes by `check`, `run`, `runs`, `trace` and `replay` (run as real processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flowmetal.cli.terminal import shown

ESC = "\x1b"
# A clear-screen, a title change (OSC), a C1 CSI, a right-to-left override.
NASTY = f"{ESC}[2J{ESC}]0;pwned\x07\x9b31m\u202e"

PROGRAM = f"""\
(defpackage tty
  (require [flowmetal.log :refer [log!]])
  (defn shout [] : str?
    (log! "{NASTY}")
    "{NASTY}"))
"""

BROKEN = f"""\
(defpackage tty
  (defn f [] : int? (+ 1 "{NASTY}")))
"""


def flowmetal(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "FLOWMETAL_STORE": str(cwd / "store.db")})


def inert(text: str) -> bool:
    return not any(c in text for c in (ESC, "\x07", "\x9b", "\u202e"))


@pytest.mark.parametrize("text, expected", [
    ("plain text\tand a tab", "plain text\tand a tab"),
    (f"{ESC}[31mred", "\\u001b[31mred"),
    ("two\nlines\r", "two\\u000alines\\u000d"),
    ("\u202eevil", "\\u202eevil"),
    ("lone \ud800", "lone \\ud800"),
    ("csi \x9b", "csi \\u009b"),
])
def test_shown_escapes_what_could_act_on_a_terminal(text, expected):
    assert shown(text) == expected


def test_check_run_runs_trace_and_replay_print_nothing_a_terminal_would_obey(tmp_path):
    (tmp_path / "tty.flow").write_text(PROGRAM, encoding="utf-8")
    (tmp_path / "broken.flow").write_text(BROKEN, encoding="utf-8")
    outputs = []
    checked = flowmetal("check", "broken.flow", cwd=tmp_path)
    assert checked.returncode == 1 and "FM" in checked.stdout
    outputs.append(checked.stdout + checked.stderr)
    ran = flowmetal("run", "tty.flow", "shout", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    outputs.append(ran.stdout + ran.stderr)
    runs = flowmetal("runs", cwd=tmp_path)
    (run_id,) = [line.split()[0] for line in runs.stdout.splitlines()]
    outputs.append(runs.stdout)
    trace = flowmetal("trace", run_id, cwd=tmp_path)
    assert trace.returncode == 0, trace.stderr
    assert "\\u001b[2J" in trace.stdout  # the log line, shown escaped
    outputs.append(trace.stdout)
    replayed = flowmetal("replay", run_id, cwd=tmp_path)
    outputs.append(replayed.stdout + replayed.stderr)
    for out in outputs:
        assert inert(out), repr(out)
