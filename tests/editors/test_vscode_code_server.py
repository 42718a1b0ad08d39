"""The Flowmetal extension in VS Code itself: code-server, driven by headless Chromium.

The extension is packaged as users get it (scripts/vsix: `vsce package`, the
scripts bundled into one file by esbuild), the .vsix installed into
code-server (`--install-extension`), and used on a workspace holding a small
program, as a user would (vscode_code_server.js, with playwright-core): the
Run lens of a function with parameters, its argument boxes (checked as they
are typed, Escape going back), the run followed
live in the Runs view, an event clicked for its source and its state in the
State view, Replay from the run's inline button, the Trace lens (counting the
run) and Show All
Runs; then a run with tasks (fleet.flow), its task lanes in the Runs view, one
opened; Alt+Down/Alt+Up through its events, the filter; then shop.flow: a
record unfolded in the State view, a run waiting on a timer, a run that fails
(announced, red, its fault's line marked). The screenshots runs-view-tasks.png,
state-record.png and failed-run-window.png are docs/images/vscode-runs-tasks.png,
vscode-state-record.png and vscode-failed-run.png. The server is the real one, `python -m flowmetal lsp` with this Python.

Skipped unless code-server and Chromium are installed: code-server as
$FLOWMETAL_CODE_SERVER (the executable) or under
editors/vscode/.test-cache/code-server/ (tests/editors/install_code_server.sh
puts it there), Chromium as $CHROME or /usr/bin/chromium (Debian's
`chromium`). With them, the test installs playwright-core with npm into
editors/vscode/.test-cache/e2e/ once, and builds the .vsix unless scripts/test
just did. The test takes about a minute.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from code_server_kit import CodeServer, available, build_vsix, chrome, playwright_modules

HERE = pathlib.Path(__file__).resolve().parent

DEMO = (HERE / "data" / "demo.flow").read_text(encoding="utf-8")
FLEET = (HERE / "data" / "fleet.flow").read_text(encoding="utf-8")
SHOP = (HERE / "data" / "shop.flow").read_text(encoding="utf-8")


pytestmark = pytest.mark.skipif(
    not available(),
    reason="code-server or chromium is not installed (tests/editors/install_code_server.sh, apt-get install chromium)",
)


@pytest.fixture(scope="module")
def e2e_modules():
    """node_modules with playwright-core."""
    return playwright_modules()


@pytest.fixture(scope="module")
def vsix():
    """The extension packaged as users get it: the bundled .vsix scripts/vsix builds (or has built)."""
    return build_vsix()


@pytest.fixture
def code_server(vsix, tmp_path):
    """code-server on a scratch workspace with the extension installed: (url, workspace)."""
    server = CodeServer(tmp_path, vsix, settings={"flowmetal.store": "runs/store.db"})
    for name, text in (("demo.flow", DEMO), ("fleet.flow", FLEET), ("shop.flow", SHOP)):
        (server.workspace / name).write_text(text, encoding="utf-8")
    with server.running() as url:
        yield url, server.workspace


def _drive(script: str, e2e_modules, url: str, workspace, shots, *args: str) -> dict:
    """A driver's steps by name, once it has run through (a failure shows its steps and screenshots)."""
    result = subprocess.run(
        ["node", str(HERE / script), str(e2e_modules), url, str(workspace), str(shots), *args],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, CHROME=chrome()),
    )
    report = json.loads(result.stdout) if result.stdout.startswith("{") else {"steps": [], "error": result.stderr}
    assert result.returncode == 0 and report["error"] is None, (
        f"{report['error']}\nsteps: {json.dumps(report['steps'], ensure_ascii=False, indent=1)}\n"
        f"screenshots in {shots}\n{result.stderr[-2000:]}")
    return {step["name"]: step for step in report["steps"]}


def test_run_and_trace_in_vscode(code_server, e2e_modules, tmp_path):
    url, workspace = code_server
    shots = tmp_path / "screenshots"
    shots.mkdir()
    steps = _drive("vscode_code_server.js", e2e_modules, url, workspace, shots)

    assert steps["lenses"]["lenses"].count("▶ Run…") == 2  # helper and main take arguments
    assert "▶ Run" in steps["lenses"]["lenses"]  # hello does not
    boxes = steps["arguments"]["boxes"]
    assert [box["title"] for box in boxes] == ["Run demo/main (1/2)", 'Run demo/main (2/2) · who = "ann"']
    assert boxes[0]["prompt"].startswith("who : str?") and boxes[1]["prompt"].startswith("n : int?")
    assert steps["arguments"]["wrong"] == '`n` must be int?, not "three"'  # checked by the server as typed
    back = steps["arguments"]["back"]  # Escape on the second: the first again, with its answer
    assert back["title"] == "Run demo/main (1/2)" and back["value"] == '"ann"'

    rows = steps["runs"]["rows"]
    assert rows[0].startswith("demo/main") and "completed" in rows[0]
    assert rows[1] == '#1 run-starteddemo/main "ann" 3'
    assert re.fullmatch(r"#9 run-completed→ 7 · \+[\d.]+ m?s", rows[-1]), rows
    # The run: its status, how long it took, when it started and ended.
    assert re.fullmatch(r"demo/maincompleted · [\d.]+ m?s · \d\d:\d\d:\d\d–\d\d:\d\d:\d\d", rows[0]), rows
    # A step's request and completion: one row, with its result, its duration, and when, from the start.
    assert any(re.fullmatch(r"#\d+ sleep! \(duration 10 \+milliseconds\+\)→ nil · \d+ ms · \+[\d.]+ m?s", row)
               for row in rows), rows
    assert any(re.fullmatch(r"#\d+ timerfired after \d+ ms · \+[\d.]+ m?s", row) for row in rows), rows
    assert not any("step-requested" in row or "step-completed" in row for row in rows)

    state = steps["state"]["rows"]
    # The value first, its type after it.
    assert state == ["result = nil", "demo/helperdemo.flow:6 (here)", "n = 3int?", "twice = 6int?",
                     "demo/maindemo.flow:10", 'who = "ann"str?', "n = 3int?"]
    assert steps["state"]["selected"] >= 1  # the sleep! call is selected in the editor
    # ... and its line marked as a debugger marks the current line.
    [mark] = steps["state"]["marked"]
    assert mark["line"] == 1 + DEMO.splitlines().index("      (sleep! (make-duration 10 +milliseconds+))")

    assert "reproduces (2 steps replayed, value 7)" in steps["replay"]["message"]
    assert steps["traceLens"]["lens"] == "Trace (1 run)"
    assert steps["traceLens"]["header"].split() == ["RUNS", "entry:demo/main"]
    assert "showAll" in steps
    assert (workspace / "runs" / "store.db").is_file()  # the store the settings name

    # The run with tasks: its own events, then its tasks' lanes, the one opened with its events.
    # (The list draws only the rows in sight: before the lane is opened, and once it is, at its end.)
    before = steps["tasks"]["before"]
    start = before.index(next(row for row in before if row.startswith("fleet/reboot-all")))
    assert before[start + 1] == "#1 run-startedfleet/reboot-all"
    assert any(row.startswith("#3 task-spawned→ task 1 · +") for row in before)
    # The fan-in: await-all! and the tasks' results, when both were done.
    assert any(row.startswith('#11 await-all! [#<task 2> #<task 3>]→ ["web-1 up" "web-2 up"] · ') for row in before)
    ended = next(i for i, row in enumerate(before) if row.startswith("#37 run-completed"))
    assert ended < before.index("task 1cancelled · spawned at #3")
    rows = steps["tasks"]["rows"]
    assert "task 2completed → \"web-1 up\" · spawned at #6" in rows
    lane = rows.index("task 3completed → \"web-2 up\" · spawned at #9")
    assert rows[lane + 1].startswith('#22 log! "rebooting web-2"→ nil · ')
    assert rows[lane + 3].startswith("#25 sleep! (duration 10 +milliseconds+)→ nil · ")
    assert rows[lane + 5].startswith("#29 task-completed→ \"web-2 up\" · +")
    assert not any(row.startswith("#25 ") for row in rows[:lane])  # task 3's events are in its lane only
    # Its event's state says which task.
    assert steps["tasks"]["state"].startswith("fleet/reboot-all · task 3 #25 sleep!")

    # Alt+Down and Alt+Up: the next and previous event, the State view following.
    keys = steps["keys"]
    assert keys["afterDown"].startswith("fleet/reboot-all · task 3 #26 timer")
    assert keys["selected"].startswith("#26 timerfired after")  # back up from #29
    # The filter: the view's header says it; only the runs that pass are listed.
    assert steps["filter"]["header"].split("\n") == ["RUNS", "status:completed entry:demo/main ann"]
    assert [row.split("completed")[0] for row in steps["filter"]["rows"]] == ["demo/main"]

    # A record, unfolded, its fields named; the run started before it folded.
    record = steps["record"]
    assert record["folded"] == 0
    assert record["state"][2:] == [
        'o = (order "o-1" [(item "sku-1" 1250) (item "sku-2" 990)])order?', 'id = "o-1"',
        'lines = [(item "sku-1" 1250) (item "sku-2" 990)]2 items', '[0] = (item "sku-1" 1250)item',
        'sku = "sku-1"', "cents = 1250", '[1] = (item "sku-2" 990)item']
    assert not any(row.startswith("fleet/reboot-all") and "#" in row for row in record["runs"][1:5])
    # A run waiting: its status, how long its step has waited, when its timer is due.
    waiting = steps["waiting"]
    assert waiting["run"].startswith("shop/napwaiting · ")
    assert re.fullmatch(r"#\d+ sleep! \(duration 2 \+seconds\+\)waiting [\d.]+ m?s · \+[\d.]+ m?s", waiting["step"])
    assert re.fullmatch(r"#\d+ timerdue \d\d:\d\d:\d\d \(in [\d.]+ m?s\) · \+[\d.]+ m?s", waiting["timer"])
    assert waiting["fired"].startswith(("#3 timerfired after 2.0 s", "#3 timerfired after 2.1 s"))
    # A failed run: announced; its failing event shown, its line red, its label red.
    failed = steps["failed"]
    assert failed["toast"] == "Flowmetal: shop/split failed: fault: division by zero"
    assert failed["state"][0] == "error: fault: division by zero"
    [mark] = failed["marked"]
    assert mark["line"] == 1 + SHOP.splitlines().index("    (mod n (- n n))))")
    assert mark["background"] != steps["state"]["marked"][0]["background"]  # red, not the current line's
    assert failed["colours"]["run"] != failed["colours"]["fine"]
    for name in ("runs-view-tasks.png", "state-record.png", "failed-run.png"):
        assert (shots / name).is_file(), name


def _binding(rows: list[str], name: str, value: str) -> bool:
    """Whether the Variables view's rows show `name` bound to `value` (`n = 3`)."""
    return any(row.split() == [name, "=", value] for row in rows)


def test_debug_a_recorded_run_in_vscode(code_server, e2e_modules, tmp_path):
    """A run recorded by `flowmetal run` in the workspace's store, debugged from the Runs view."""
    url, workspace = code_server
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    done = subprocess.run([sys.executable, "-m", "flowmetal", "run", "demo.flow", "main", '"ann"', "3", "--store",
                           "runs/store.db"], cwd=workspace, capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip() == "7", done.stderr
    line = 1 + DEMO.splitlines().index("      (sleep! (make-duration 10 +milliseconds+))")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    steps = _drive("vscode_code_server_debug.js", e2e_modules, url, workspace, shots, str(line))

    assert "Debug…" in steps["breakpoint"]["lenses"]  # beside "▶ Run…"
    stopped = steps["stopped"]
    # A frame's row: its function, its file, and line:column.
    assert stopped["frame"].split() == ["demo/helper", "demo.flow", f"{line}:7"]
    assert any(row.startswith("demo/main") for row in stopped["stack"])  # the caller, below it
    assert _binding(stopped["variables"], "twice", "6") and _binding(stopped["variables"], "n", "3")
    assert any(label.startswith("Step Back") for label in stopped["toolbar"])
    back = steps["stepBack"]
    assert back["frame"].split() == ["demo/helper", "demo.flow", f"{line - 1}:5"]  # the `let` that binds `twice`
    assert not _binding(back["variables"], "twice", "6") and _binding(back["variables"], "n", "3")
    assert (shots / "debugging.png").is_file()
