"""A small DAP client for the tests: a real `flowmetal dap` process over stdio.

`Client.request` sends a request and returns its response; events are kept in
order and `Client.event(name)` waits for the next one of that name. The marked
lines of a test program (`;; @name`) are found by `markers`.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from flowmetal.dap.wire import Writer, read_message

PROGRAMS = Path(__file__).parent / "programs"
TIMEOUT = 30.0


def markers(path: Path) -> dict[str, int]:
    """`;; @name` on a line -> that line's number (1-based)."""
    found = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for name in re.findall(r";; @([\w-]+)", line):
            found[name] = number
    return found


class Client:
    def __init__(self, cwd: Path) -> None:
        env = {**os.environ}
        env.pop("FLOWMETAL_STORE", None)
        self.process = subprocess.Popen([sys.executable, "-m", "flowmetal", "dap"], cwd=cwd, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.writer = Writer(self.process.stdin)
        self.seq = 0
        self.responses: dict[int, queue.Queue] = {}
        self.events: queue.Queue = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            message = read_message(self.process.stdout)
            if message is None:
                self.events.put(None)
                return
            if message["type"] == "response":
                self.responses.setdefault(message["request_seq"], queue.Queue()).put(message)
            elif message["type"] == "event":
                if message["event"] == "output":
                    self.output.append(message["body"]["output"])
                self.events.put(message)

    def request(self, command: str, arguments: dict | None = None, ok: bool = True) -> dict:
        self.seq += 1
        seq = self.seq
        box = self.responses.setdefault(seq, queue.Queue())
        self.writer.write({"seq": seq, "type": "request", "command": command, "arguments": arguments or {}})
        response = box.get(timeout=TIMEOUT)
        if ok:
            assert response["success"], f"{command} failed: {response.get('message')}"
        return response

    def event(self, name: str) -> dict:
        """The next event called `name` (the others before it are skipped)."""
        while True:
            message = self.events.get(timeout=TIMEOUT)
            assert message is not None, f"the adapter ended before a `{name}` event; stderr: " + \
                self.process.stderr.read().decode(errors="replace")[-2000:]
            if message["event"] == name:
                return message["body"]

    # -- conveniences --

    def launch(self, breakpoints: dict[str, list] | None = None, functions: list[str] | None = None,
               filters: list[str] | None = None, **arguments) -> dict:
        self.request("initialize", {"adapterID": "flowmetal", "linesStartAt1": True, "columnsStartAt1": True})
        self.request("launch", arguments)
        self.event("initialized")
        answers = {}
        for path, lines in (breakpoints or {}).items():
            wanted = [line if isinstance(line, dict) else {"line": line} for line in lines]
            answers[path] = self.request("setBreakpoints", {"source": {"path": str(path)},
                                                            "breakpoints": wanted})["body"]["breakpoints"]
        if functions is not None:
            self.request("setFunctionBreakpoints", {"breakpoints": [{"name": n} for n in functions]})
        self.request("setExceptionBreakpoints", {"filters": filters or []})
        self.request("configurationDone")
        return answers

    def move(self, command: str) -> dict:
        self.request(command, {"threadId": 1})
        return self.event("stopped")

    def top(self, thread: int = 1) -> dict:
        return self.request("stackTrace", {"threadId": thread})["body"]["stackFrames"][0]

    def variables(self, frame_id: int | None = None, thread: int = 1) -> dict[str, dict]:
        if frame_id is None:
            frame_id = self.top(thread)["id"]
        scope = self.request("scopes", {"frameId": frame_id})["body"]["scopes"][0]
        return self.children(scope["variablesReference"])

    def children(self, reference: int) -> dict[str, dict]:
        found = self.request("variables", {"variablesReference": reference})["body"]["variables"]
        return {v["name"]: v for v in found}

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.request("disconnect", {}, ok=False)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()


# Fixtures (imported by the test modules: a conftest.py here would shadow tests/conftest.py's
# `from conftest import ...` when the whole suite is collected).
RUNS = {"main": ["3"], "broken": ["5"], "fan": ["0"], "shapes": ["4"]}


@pytest.fixture(scope="session")
def recorded(tmp_path_factory):
    """A store holding one recorded run of each entry of `RUNS` (by `flowmetal run`): (folder, ids)."""
    folder = tmp_path_factory.mktemp("dap")
    shutil.copy(PROGRAMS / "debugged.flow", folder / "debugged.flow")
    ids = {}
    for entry, args in RUNS.items():
        env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
        done = subprocess.run([sys.executable, "-m", "flowmetal", "run", "debugged.flow", entry, *args,
                               "--store", "store.db"], cwd=folder, capture_output=True, text=True, env=env,
                              timeout=60)
        assert done.returncode in (0, 1), done.stderr
        ids[entry] = done.stderr.split("run ", 1)[1].split(":", 1)[0]
    return folder, ids


@pytest.fixture
def client(recorded):
    found = Client(recorded[0])
    yield found
    found.close()
