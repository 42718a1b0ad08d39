"""What an operator reads of runs, through the real command line: `runs` (for people on a
terminal, in tab-separated lines otherwise, JSON), `trace` (local due times, long values
cut, what a waiting run waits on), `cancel` of a run that has ended or does not exist, and
the note on a run waiting on an endpoint no live process serves, which goes while a
`flowmetal connector` for it runs and comes back when it stops."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from procs import flowmetal
from tests.waits import until

PROGRAM = textwrap.dedent("""\
    (defpackage demo
      (require [flowmetal.time :refer [sleep! make-duration +milliseconds+]]
               [flowmetal.log :refer [log!]])
      (defn main [n : int?] : int?
        (sleep! (make-duration 200 +milliseconds+))
        (* n 2))
      (defn chatty [s : str?] : int?
        (log! s)
        (count s)))
    """)

BILLING = textwrap.dedent("""\
    (defpackage acme.billing
      (defendpoint charge! [amount : int?] : int?)
      (defn pay [n : int?] : int? (charge! n)))
    """)

CHARGE = textwrap.dedent("""\
    import time
    from pathlib import Path

    from flowmetal.connectors.sdk import endpoint


    @endpoint("acme.billing/charge!")
    def charge(amount):
        deadline = time.monotonic() + 30
        while not Path("release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return amount * 2
    """)


def detach(cwd: Path, file: str, *args: str) -> str:
    started = flowmetal("run", file, *args, "--detach", cwd=cwd)
    assert started.returncode == 0, started.stderr
    return started.stdout.strip()


def listed(cwd: Path) -> dict[str, dict]:
    out = flowmetal("runs", "--format", "json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return {r["id"]: r for r in json.loads(out.stdout)}


def on_a_terminal(cwd: Path, *args: str) -> str:
    """A command's output when its stdout is a terminal (a pseudo-terminal of 100 columns)."""
    import fcntl
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWMETAL_STORE", "COLUMNS")}
    proc = subprocess.Popen([sys.executable, "-m", "flowmetal", *args], cwd=cwd, stdout=slave, stderr=subprocess.PIPE,
                            env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed: the process has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(30) == 0, proc.stderr.read()
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_runs_for_people_and_for_programs(tmp_path):
    (tmp_path / "demo.flow").write_text(PROGRAM)
    ran = flowmetal("run", "demo.flow", "main", "4", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (run_id,) = listed(tmp_path)
    # Piped: one line a run, tab-separated: id, status, entry (fully qualified), start, outcome.
    lines = flowmetal("runs", cwd=tmp_path).stdout.splitlines()
    assert len(lines) == 1
    fields = lines[0].split("\t")
    assert fields[:3] == [run_id, "completed", "demo/main"] and fields[4:] == ["8", ""]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", fields[3]), fields[3]
    # On a terminal: a header, aligned columns, the start as a local time.
    shown = on_a_terminal(tmp_path, "runs").splitlines()
    assert re.fullmatch(r"RUN +STATUS +ENTRY +STARTED +OUTCOME", shown[0]), shown
    assert re.fullmatch(rf"{run_id}  completed  demo/main  \d\d:\d\d:\d\d  8", shown[1]), shown
    assert shown[0].index("ENTRY") == shown[1].index("demo/main")
    # JSON keeps its fields, and adds `parent` (null: a top-level run) and `unserved`.
    assert listed(tmp_path)[run_id] == {"id": run_id, "entry": "main", "status": "completed", "result": "8",
                                        "error": None, "parent": None, "unserved": []}


def test_runs_narrowed_by_status_entry_and_the_last_started(tmp_path):
    (tmp_path / "demo.flow").write_text(PROGRAM)
    (tmp_path / "other.flow").write_text(PROGRAM.replace("(defpackage demo", "(defpackage other"))
    doubled = [detach(tmp_path, "demo.flow", "main", str(n)) for n in (1, 2, 3)]  # recorded as `main`
    counted = detach(tmp_path, "demo.flow", "demo/chatty", '"hi"')
    theirs = detach(tmp_path, "other.flow", "other/main", "5")
    worked = flowmetal("worker", "--once", cwd=tmp_path)
    assert worked.returncode == 0, worked.stderr
    cancelled = detach(tmp_path, "demo.flow", "demo/main", "9")
    assert flowmetal("cancel", cancelled, cwd=tmp_path).returncode == 0

    def ids(*options: str) -> list[str]:
        out = flowmetal("runs", *options, cwd=tmp_path)
        assert (out.returncode, out.stderr) == (0, ""), out.stderr
        return [line.split("\t")[0] for line in out.stdout.splitlines()]
    assert ids("--status", "completed") == [*doubled, counted, theirs]
    assert ids("--status", "cancelled") == [cancelled]
    assert ids("--status", "failed") == []
    assert ids("--status", "cancelled,completed", "--last", "2") == [theirs, cancelled]
    assert ids("--status", "pending", "--status", "cancelled") == [cancelled]
    assert ids("--entry", "demo/main") == [*doubled, cancelled]   # started as `main` or `demo/main`
    assert ids("--entry", "main") == [*doubled, theirs, cancelled]  # any package's `main`
    assert ids("--entry", "demo/main", "--status", "completed", "--last", "1") == [doubled[-1]]
    assert ids("--last", "1") == [cancelled]
    assert [r["id"] for r in json.loads(flowmetal("runs", "--entry", "chatty", "--format", "json",
                                                  cwd=tmp_path).stdout)] == [counted]
    for options, message in ((["--status", "done"], "argument --status: no run state 'done'"),
                             (["--last", "0"], "argument --last: must be 1 or more, not 0"),
                             (["--last", "x"], "argument --last: not a whole number: 'x'"),
                             (["--entry", "demo/"], "argument --entry: not a function: 'demo/'")):
        refused = flowmetal("runs", *options, cwd=tmp_path)
        assert refused.returncode == 2 and refused.stdout == "" and message in refused.stderr, refused.stderr


def test_trace_shows_due_times_as_local_times_and_cuts_long_values(tmp_path):
    (tmp_path / "demo.flow").write_text(PROGRAM)
    assert flowmetal("run", "demo.flow", "main", "1", cwd=tmp_path).returncode == 0
    assert flowmetal("run", "demo.flow", "chatty", json.dumps("x" * 5000), cwd=tmp_path).returncode == 0
    slept, chatty = listed(tmp_path)
    events = json.loads(flowmetal("trace", slept, "--format", "json", cwd=tmp_path).stdout)
    (timer,) = [e for e in events if e["kind"] == "timer-set"]
    due = time.strftime("%H:%M:%S", time.localtime(timer["due"])) + f".{int(timer['due'] * 1000) % 1000:03d}"
    human = flowmetal("trace", slept, cwd=tmp_path).stdout
    (line,) = [line for line in human.splitlines() if "timer-set" in line]
    assert f"due={due} (in 0.2 s)" in line and str(timer["due"]) not in line
    long = flowmetal("trace", chatty, cwd=tmp_path).stdout
    (logged,) = [line for line in long.splitlines() if " log " in line]
    assert f"message={'x' * 200}… (5,000 characters)" in logged and len(logged) < 400
    (message,) = [e["message"] for e in json.loads(flowmetal("trace", chatty, "--format", "json",
                                                             cwd=tmp_path).stdout) if e["kind"] == "log"]
    assert message == "x" * 5000  # JSON: complete


def test_cancel_of_an_ended_or_unknown_run_is_an_error(tmp_path):
    (tmp_path / "demo.flow").write_text(PROGRAM)
    assert flowmetal("run", "demo.flow", "main", "1", cwd=tmp_path).returncode == 0
    (run_id,) = listed(tmp_path)
    ended = flowmetal("cancel", run_id, cwd=tmp_path)
    assert (ended.returncode, ended.stdout) == (1, "")
    assert ended.stderr == (f"flowmetal cancel: error: run `{run_id}` has ended already (completed): there is "
                            f"nothing to cancel\n")
    assert listed(tmp_path)[run_id]["status"] == "completed"
    unknown = flowmetal("cancel", "nosuchrun", cwd=tmp_path)
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr.startswith("flowmetal cancel: error: no run `nosuchrun`")


def test_a_run_waiting_on_an_endpoint_nobody_serves_says_so(tmp_path):
    (tmp_path / "billing.flow").write_text(BILLING)
    (tmp_path / "charge.py").write_text(CHARGE)
    first, second = detach(tmp_path, "billing.flow", "pay", "5"), detach(tmp_path, "billing.flow", "pay", "7")
    assert flowmetal("worker", "--once", "--no-connectors", cwd=tmp_path).returncode == 0
    note = "waits on step 1 acme.billing/charge!: no live process serves it"
    lines = [line.split("\t") for line in flowmetal("runs", cwd=tmp_path).stdout.splitlines()]
    assert [(f[0], f[1], f[4]) for f in lines] == [(first, "waiting", note), (second, "waiting", note)]
    assert [r["unserved"] for r in listed(tmp_path).values()] == [["acme.billing/charge!"]] * 2
    trace = flowmetal("trace", first, cwd=tmp_path).stdout.splitlines()
    assert trace[-1] == "waiting: step 1 acme.billing/charge! — no live process serves it"

    # A connector for it: one step in its hands, the other pending but served all the same.
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    connector = subprocess.Popen([sys.executable, "-m", "flowmetal", "connector", "charge.py", "--concurrency", "1",
                                  "--grace", "0.1"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: all(r["unserved"] == [] for r in listed(tmp_path).values()), "the connector's presence")
        assert all(f[4] == "" for f in (line.split("\t") for line in
                                        flowmetal("runs", cwd=tmp_path).stdout.splitlines()))
        assert flowmetal("trace", second, cwd=tmp_path).stdout.splitlines()[-1] == \
            "waiting: step 1 acme.billing/charge!"
    finally:
        connector.send_signal(signal.SIGINT)
        connector.wait(30)
    # Stopped, it said so: nobody serves the endpoint again.
    assert [r["unserved"] for r in listed(tmp_path).values()] == [["acme.billing/charge!"]] * 2
