"""The Quick start's fake wilson service binds its port before it detaches: a port someone
else holds stops the Quick start's `&&` chain with a clear message instead of letting the
run talk to whatever holds it. Real processes, real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from conftest import ROOT

SERVICE = ROOT / "examples" / "wilson_service.py"


def start(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SERVICE), "--background", *args], capture_output=True, text=True,
                          timeout=60)


def test_a_port_another_socket_holds_is_a_clear_error_and_exit_1():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = start("--port", str(port), "--exit-after", "30")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"wilson_service: error: port {port} of 127.0.0.1 is already in use (another "
                             f"service, or a fake wilson service started earlier: stop it, or choose another "
                             f"--port)\n")


def test_on_a_free_port_it_detaches_and_answers():
    result = start("--port", "0", "--exit-after", "60")
    assert result.returncode == 0, result.stderr
    found = re.fullmatch(r"fake wilson service on (http://127\.0\.0\.1:\d+/jobs), in the background "
                         r"\(process (\d+)\)\n", result.stdout)
    assert found, result.stdout
    url, pid = found.group(1), int(found.group(2))
    try:
        # bound before the parent exited: it answers at once (the accept queue holds the connection)
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert (answer.status, json.loads(answer.read())) == (200, [])
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # it is not our child: poll until it has gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)


def test_the_quick_start_starts_it_in_the_background_within_its_chain():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "examples/wilson_service.py --background --exit-after 60 && .venv/bin/flowmetal run" in readme
