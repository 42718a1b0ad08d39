"""What `flowmetal run` says on stderr while it drives a run: the run's id at once, then
what the run waits for each time that changes (plain lines without a terminal; one live
line, rewritten in place and cleared at the end, on a pseudo-terminal), the value alone
on stdout. Real processes on real stores; lines read as they come."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from conftest import ROOT
from running import ID_LINE, Running, clean_env, free_port

from flowmetal.runtime.store import SQLiteStore

sys.path.insert(0, str(ROOT / "examples"))
import wilson_service  # noqa: E402

PROGRAM = """\
(defpackage prog
  (require [flowmetal.time :refer [sleep! make-duration +milliseconds+]])
  (defendpoint charge! [n : int?] : int? "A connector answers.")
  (defn nap [] : int? (sleep! (make-duration 400 +milliseconds+)) 1)
  (defn pay [] : int? (+ 1 (charge! 3))))
"""


def due_of(store: Path, run_id: str) -> float:
    (event,) = SQLiteStore(store).events(run_id, kind="timer-set")
    return event.data["due"]


def test_without_a_terminal_each_change_is_one_plain_line(tmp_path: Path):
    (tmp_path / "prog.flow").write_text(PROGRAM)
    result = subprocess.run([sys.executable, "-m", "flowmetal", "run", "prog.flow", "nap", "--store", "s.db"],
                            cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "1\n"), result.stderr
    first, *rest = result.stderr.splitlines()
    run_id, entry = ID_LINE.fullmatch(first).groups()
    due = time.strftime("%H:%M:%S", time.localtime(due_of(tmp_path / "s.db", run_id)))
    assert (entry, rest) == ("nap", [f"flowmetal run: step 1: sleep until {due} (in 1 s)"])


TASKS = """\
(defpackage naps
  (require [flowmetal.time :refer [sleep! make-duration +milliseconds+]]
           [flowmetal.task :refer [spawn! await-all!]])
  (defn nap [ms : int?] : int? (sleep! (make-duration ms +milliseconds+)) ms)
  (defn naps [] : int?
    (reduce + 0 (await-all! [(spawn! (fn [] (nap 300))) (spawn! (fn [] (nap 600)))]))))
"""


def test_tasks_waiting_at_once_are_said_as_the_latest_wait_and_how_many_more(tmp_path: Path):
    (tmp_path / "naps.flow").write_text(TASKS)
    result = subprocess.run([sys.executable, "-m", "flowmetal", "run", "naps.flow", "naps", "--store", "s.db"],
                            cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "900\n"), result.stderr
    first, *rest = result.stderr.splitlines()
    # Both tasks sleep (the later timer said, the other counted); then the one left.
    assert re.fullmatch(r"flowmetal run: step 5: sleep until \d\d:\d\d:\d\d \(in \d+ s\) \(and 1 more: 1 timer\)",
                        rest[0]), rest
    assert re.fullmatch(r"flowmetal run: step 5: sleep until \d\d:\d\d:\d\d \(in \d+ s\)", rest[-1]), rest


def test_an_endpoint_no_part_of_this_process_serves_says_how_to_serve_it(tmp_path: Path):
    (tmp_path / "prog.flow").write_text(PROGRAM)
    running = Running("run", "prog.flow", "pay", "--store", "s.db", cwd=tmp_path)
    try:
        run_id = running.wait_line(ID_LINE.pattern).group(1)
        running.wait_line("charge!")
        running.signal(signal.SIGINT)
        assert running.finish() == 130
    finally:
        running.kill()
    assert running.lines == [
        f"flowmetal run: run {run_id}: pay",
        "flowmetal run: step 1: waiting for a connector for prog/charge! (none is running: start "
        "`flowmetal connector MODULE --store s.db` or `flowmetal serve --store s.db`)",
        f"flowmetal run: run {run_id} is waiting; resume it with `flowmetal worker --store s.db` or "
        f"`flowmetal serve --store s.db`; `flowmetal trace {run_id} --store s.db` shows it",
    ]
    assert running.stdout == ""


def test_on_a_terminal_one_live_line_is_rewritten_and_cleared(tmp_path: Path):
    (tmp_path / "prog.flow").write_text(PROGRAM)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    try:
        proc = subprocess.Popen([sys.executable, "-m", "flowmetal", "run", "prog.flow", "nap", "--store", "s.db"],
                                cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the other side closed: the process is gone
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        stdout = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(master)
    text = out.decode()
    run_id = re.match(r"flowmetal run: run ([0-9a-f]{16}): nap\r\n", text).group(1)
    due = time.strftime("%H:%M:%S", time.localtime(due_of(tmp_path / "s.db", run_id)))
    live = text[text.index("\n") + 1:]
    # Written in place (no line break), counted down, and taken away at the end.
    assert live.startswith(f"\r\x1b[Kstep 1: sleep until {due} (in "), repr(live)
    assert "\n" not in live and live.endswith("\r\x1b[K"), repr(live)
    assert stdout == b"1\n"


def test_wilson_against_a_refused_port_shows_each_retry_and_its_error(tmp_path: Path):
    held = socket.socket()  # bound, not listening: connections to it are refused
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    url = f"http://127.0.0.1:{port}/jobs"
    public = f"http://127.0.0.1:{free_port()}"
    running = Running("run", str(ROOT / "examples" / "wilson.flow"), "job", '"host-1"', "[+reboot+]",
                      "(duration 1 +hours+)", json.dumps(url), "--store", "s.db", cwd=tmp_path,
                      env=clean_env(FLOWMETAL_PUBLIC_URL=public))
    service = None
    try:
        running.wait_line(r"retry 2 in")
        held.close()
        service = wilson_service.serve(port=port, delay=0.2)  # the next attempt gets through
        assert running.finish() == 0, running.lines
    finally:
        running.kill()
        held.close()
        if service is not None:
            service.shutdown()
    assert running.stdout == '{"host" "host-1" "stages" ["reboot"] "status" "done"}\n'
    first, *rest = running.lines
    assert ID_LINE.fullmatch(first).group(2) == "job"
    *attempts, callback = rest
    # Each attempt, then its error and the retry it waits for, until one gets through.
    retries = len(attempts) // 2
    assert retries >= 2 and len(attempts) == 2 * retries + 1, rest
    for n in range(retries + 1):
        step = 2 + 4 * n  # each retry: `retry!`'s jitter!, log! and sleep!, then the request again
        assert attempts[2 * n] == f"flowmetal run: step {step}: POST {url}" + (f" (attempt {n + 1})" if n else "")
        if n < retries:
            assert re.fullmatch(rf"flowmetal run: POST {re.escape(url)}: connection refused, retry {n + 1} "
                                rf"in \d+ s \(at \d\d:\d\d:\d\d\)", attempts[2 * n + 1]), attempts[2 * n + 1]
    assert re.fullmatch(rf"flowmetal run: step {5 + 4 * retries}: waiting for a callback at "
                        rf"{re.escape(public)}/callback/[\w-]+ \(timeout at \d\d:\d\d:\d\d, in 1 h\)", callback), callback


def test_a_run_waiting_for_a_signal_names_it_and_how_to_send_it(tmp_path: Path):
    (tmp_path / "wait.flow").write_text(
        "(defpackage wait\n"
        "  (require [flowmetal.signal :refer [receive!]])\n"
        "  (defn approval [] (receive! \"approve\")))\n")
    running = Running("run", "wait.flow", "approval", "--store", "s.db", cwd=tmp_path)
    try:
        run_id = running.wait_line(ID_LINE.pattern).group(1)
        running.wait_line("waiting for the signal")
        sent = subprocess.run([sys.executable, "-m", "flowmetal", "signal", run_id, "approve", '{"by": "ann"}',
                               "--store", "s.db"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                              timeout=60)
        assert sent.returncode == 0, sent.stderr
        assert running.finish() == 0
    finally:
        running.kill()
    assert running.lines[1] == ('flowmetal run: step 1: waiting for the signal "approve" (send it with '
                                '`flowmetal signal RUN NAME JSON` or POST /api/runs/RUN/signals/NAME)')
    assert running.stdout == '{"by" "ann"}\n'
