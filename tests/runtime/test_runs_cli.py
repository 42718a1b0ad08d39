"""Durable runs through the command line: run, --detach and worker, runs, trace, replay, cancel."""

from __future__ import annotations

import json
import re
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest

from procs import flowmetal


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path

PROGRAM = textwrap.dedent("""\
    (defpackage demo
      (require [flowmetal.time :refer [sleep! make-duration +milliseconds+ now!]]
               [flowmetal.log :refer [log!]])
      (defenum stage +reboot+ +reinstall+)
      (defn main [name : str? stages : (list? stage?)] : str?
        (log! (str "hello " name))
        (sleep! (make-duration 200 +milliseconds+))
        (str "done " name " " (count stages)))
      (defn broken [x : int?] : int?
        (pick x))
      (defn pick [x : int?] : int?
        (match x
          [1 10]))
      (defn long [] : nil?
        (sleep! (make-duration 60000 +milliseconds+))))
    """)


def write(workdir: Path, text: str = PROGRAM) -> Path:
    path = workdir / "demo.flow"
    path.write_text(text)
    return path


def test_run_drives_a_run_to_its_value(workdir):
    write(workdir)
    result = flowmetal("run", "demo.flow", "main", '"host-1"', "[+reboot+ +reinstall+]", cwd=workdir)
    assert (result.returncode, result.stdout) == (0, '"done host-1 2"\n'), result.stderr
    assert (workdir / ".flowmetal" / "store.db").is_file()
    runs = json.loads(flowmetal("runs", "--format", "json", cwd=workdir).stdout)
    assert [(r["entry"], r["status"], r["result"], r["error"]) for r in runs] == [
        ("main", "completed", '"done host-1 2"', None)]


def test_a_failed_run_exits_1_with_a_flowmetal_stack_trace(workdir):
    write(workdir)
    result = flowmetal("run", "demo.flow", "demo/broken", "2", cwd=workdir)
    assert result.returncode == 1
    (run,) = json.loads(flowmetal("runs", "--format", "json", cwd=workdir).stdout)
    assert result.stderr.splitlines() == [f"flowmetal run: run {run['id']}: demo/broken",
                                          "fault: no match clause fits 2", "  in demo/pick, line 12",
                                          "  in demo/broken, line 10"]
    assert run["status"] == "failed" and run["error"].startswith("fault: no match clause fits 2")
    events = json.loads(flowmetal("trace", run["id"], "--format", "json", cwd=workdir).stdout)
    assert events[-1]["kind"] == "run-failed"
    assert events[-1]["trace"] == [{"package": "demo", "function": "pick", "line": 12},
                                   {"package": "demo", "function": "broken", "line": 10}]


def test_detach_then_a_worker_runs_it_and_the_trace_tells_everything(workdir):
    write(workdir)
    store = str(workdir / "s.db")
    detached = flowmetal("run", "--store", store, "demo.flow", "main", '"x"', "[]", "--detach", cwd=workdir)
    run_id = detached.stdout.strip()
    assert detached.returncode == 0 and len(run_id) == 16
    assert json.loads(flowmetal("runs", "--format", "json", "--store", store, cwd=workdir).stdout)[0]["status"] == "pending"
    flowmetal("worker", "--once", "--store", store, cwd=workdir)
    time.sleep(0.3)
    flowmetal("worker", "--once", "--store", store, cwd=workdir)
    events = json.loads(flowmetal("trace", run_id[:6], "--format", "json", "--store", store, cwd=workdir).stdout)
    kinds = [e["kind"] for e in events]
    assert kinds == ["run-started", "step-requested", "log", "step-completed", "step-requested", "timer-set",
                     "timer-fired", "step-completed", "run-completed"]
    assert [e["seq"] for e in events] == list(range(1, 10))
    assert all(isinstance(e["time"], float) for e in events)
    sleep = events[4]
    assert (sleep["endpoint"], sleep["args"], sleep["line"], sleep["key"]) == (
        "flowmetal.time/sleep!", {"d": "(duration 200 +milliseconds+)"}, 7, f"{run_id}:2")
    assert sleep["span"] == "demo.flow:7:5-7:48"
    assert [e["line"] for e in events if e["step"] == 2] == [7, 7, 7, 7]  # request, timer set and fired, result
    human = flowmetal("trace", run_id, "--store", store, cwd=workdir).stdout
    assert "| 7: (sleep! (make-duration 200 +milliseconds+))" in human
    assert events[-1]["result"] == '"done x 0"'


def test_replay_verifies_and_names_the_first_divergence(workdir):
    write(workdir)
    flowmetal("run", "demo.flow", "main", '"x"', "[]", cwd=workdir)
    run_id = json.loads(flowmetal("runs", "--format", "json", cwd=workdir).stdout)[0]["id"]
    ok = flowmetal("replay", run_id, "--verify", cwd=workdir)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == '"done x 0"'
    assert "replay reproduces the run (2 steps)" in ok.stderr
    # Someone edits the stored source: the sleep is now 300 ms.
    db = sqlite3.connect(workdir / ".flowmetal" / "store.db")
    db.execute("UPDATE sources SET text = replace(text, '200 +milliseconds+', '300 +milliseconds+')")
    db.commit()
    db.close()
    bad = flowmetal("replay", run_id, "--verify", cwd=workdir)
    assert bad.returncode == 1
    assert "diverges at step 2 at demo.flow:7:5" in bad.stderr
    assert "(duration 300 +milliseconds+)" in bad.stderr


def test_cancel_a_waiting_run(workdir):
    write(workdir)
    run_id = flowmetal("run", "demo.flow", "long", "--detach", cwd=workdir).stdout.strip()
    flowmetal("worker", "--once", cwd=workdir)
    assert json.loads(flowmetal("runs", "--format", "json", cwd=workdir).stdout)[0]["status"] == "waiting"
    result = flowmetal("cancel", run_id, cwd=workdir)
    assert result.stdout == f"{run_id} cancelled\n"
    assert json.loads(flowmetal("runs", "--format", "json", cwd=workdir).stdout)[0]["status"] == "cancelled"
    events = json.loads(flowmetal("trace", run_id, "--format", "json", cwd=workdir).stdout)
    assert events[-1]["kind"] == "run-cancelled"


def test_programs_with_errors_and_bad_arguments_are_refused_before_anything_is_recorded(workdir):
    write(workdir, PROGRAM.replace("(count stages)", "(count stages 1)"))
    result = flowmetal("run", "demo.flow", "main", '"x"', "[]", cwd=workdir)
    assert result.returncode == 2
    assert "FM401" in result.stderr and "nothing was run" in result.stderr
    assert not (workdir / ".flowmetal").exists()
    write(workdir)
    for args, message in [(["main", "1", "[]"], "argument `name` of `main` must be str?, not 1"),
                          (["nope"], "no function `nope` in package `demo`"),
                          (["main", '"x"', "[+rebooot+]"], "`+rebooot+` is no enum member known in `demo`"),
                          (["main", '"x'], "unterminated string")]:
        result = flowmetal("run", "demo.flow", *args, cwd=workdir)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_store_of_an_unknown_version_is_refused(workdir):
    write(workdir)
    flowmetal("run", "demo.flow", "main", '"x"', "[]", "--detach", cwd=workdir)
    db = sqlite3.connect(workdir / ".flowmetal" / "store.db")
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    result = flowmetal("runs", cwd=workdir)
    assert result.returncode == 2
    assert "schema version 99, written by a newer Flowmetal" in result.stderr


def test_trace_follow_prints_events_as_the_run_goes_on(workdir):
    import subprocess
    import sys
    write(workdir)
    run_id = flowmetal("run", "demo.flow", "main", '"f"', "[]", "--detach", cwd=workdir).stdout.strip()
    follower = subprocess.Popen([sys.executable, "-m", "flowmetal", "trace", run_id, "--follow"], cwd=workdir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert follower.poll() is None  # still following: the run has not ended
    flowmetal("worker", "--once", cwd=workdir)
    time.sleep(0.3)
    flowmetal("worker", "--once", cwd=workdir)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    kinds = [line.split()[2] if not line.split()[2].startswith("#") else line.split()[3]
             for line in out.splitlines() if line[:4].strip().isdigit()]
    assert kinds[0] == "run-started" and kinds[-1] == "run-completed" and "timer-fired" in kinds


def test_on_a_terminal_run_shows_its_progress_live(workdir):
    import shutil
    import subprocess
    import sys
    if shutil.which("script") is None:
        pytest.skip("no `script` to give the run a terminal")
    write(workdir)
    command = f'{sys.executable} -m flowmetal run demo.flow main \'"tty"\' \'[]\''
    result = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=workdir, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    screen = result.stdout
    assert re.search(r"[\r\n]\x1b\[Kstep 2: sleep until \d\d:\d\d:\d\d \(in \d+ s\)", screen), repr(screen)
    assert screen.rstrip().endswith('\x1b[K"done tty 0"')  # the live line cleared before the value
