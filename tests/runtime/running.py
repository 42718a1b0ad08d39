"""`flowmetal run` as a process to watch: its stderr read line by line as it comes (on a
thread, so a test waits for a line with a deadline, never a fixed sleep), signals sent to it,
and the fixtures the progress and interrupt tests share."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ID_LINE = re.compile(r"flowmetal run: run ([0-9a-f]{16}): (.+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**more: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMETAL_")}
    env.update(more)
    return env


class Running:
    """A `flowmetal` command started with its stderr (and stdout) piped and read as it comes."""

    def __init__(self, *args: str, cwd: Path, env: dict | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "flowmetal", *args], cwd=cwd,
                                     env=env if env is not None else clean_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stdout = ""

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, pattern: str, timeout: float = 60) -> re.Match:
        """The first line from now on that matches `pattern` (a regex, `re.search`)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s; stderr so far: {self.lines}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the process ended without a line matching {pattern!r}: {self.lines}")
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the end; the exit status. Every line of stderr is then in `lines`."""
        self.stdout = self.proc.stdout.read()
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        while True:
            line = self._queue.get_nowait() if not self._queue.empty() else None
            if line is None:
                break
            self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def run_until_done(store: Path, run_id: str, timeout: float = 60) -> dict:
    """Poll the store until the run ended: its row."""
    import sqlite3
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = sqlite3.connect(store)
        try:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        finally:
            conn.close()
        if row is not None and row["status"] in ("completed", "failed", "cancelled"):
            return dict(row)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end in {timeout} s")
