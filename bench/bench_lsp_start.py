"""Cold start of the language server: a new `flowmetal lsp` to the first diagnostics of a file.

What an editor waits for when it opens a `.flow` file and starts the server, as
a raw stdio client sees it (no client library in the way), in fresh processes:

- `lsp-cold-start`: spawning `python -m flowmetal lsp`, `initialize`, then
  `initialized` and `didOpen` of a small file with one error, to the first
  `publishDiagnostics` for it. Median of 7. Target: <= 1.5 s.

Its detail splits the time: Python's own start (`python -c pass`), the
imports of the server's start-up path (`import flowmetal_lsp.server`, timed
inside a process), the rest of the way to the `initialize` answer, and from there to
the first diagnostics (reading the workspace, the standard packages and the
file, checking it). `python bench/bench_lsp_start.py --imports` prints the
slowest imports of the start-up path (`python -X importtime`) instead.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROGRAM = """(defpackage demo
  (require [flowmetal.log :refer [log!]])
  (defn main [who : str? n : int?] : int?
    (log! (str "hi " who))
    (+ n "one")))
"""


def _send(proc: subprocess.Popen, message: dict) -> None:
    body = json.dumps(message).encode()
    proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    proc.stdin.flush()


def _receive(proc: subprocess.Popen) -> dict:
    length = None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the language server closed its output")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return json.loads(proc.stdout.read(length))


def cold_start(folder: Path, env: dict) -> dict[str, float]:
    """One fresh server: seconds from its spawn to the `initialize` answer and to the first diagnostics."""
    uri = (folder / "demo.flow").as_uri()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "flowmetal", "lsp"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=folder)
    try:
        _send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": os.getpid(), "rootUri": folder.as_uri(), "capabilities": {},
            "workspaceFolders": [{"uri": folder.as_uri(), "name": "bench"}]}})
        while "id" not in (answer := _receive(proc)) or answer.get("id") != 1:
            pass
        initialized = time.perf_counter()
        _send(proc, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
        _send(proc, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "flowmetal", "version": 1, "text": PROGRAM}}})
        while True:
            message = _receive(proc)
            if message.get("method") == "textDocument/publishDiagnostics" and message["params"]["uri"] == uri \
                    and message["params"]["diagnostics"]:
                break
        diagnosed = time.perf_counter()
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
        _send(proc, {"jsonrpc": "2.0", "method": "exit"})
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"initialize": initialized - start, "diagnostics": diagnosed - start}


def _process(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, capture_output=True)
    return time.perf_counter() - start


IMPORTS = ("import time; start = time.perf_counter(); import flowmetal.cli, flowmetal_lsp.server; "
           "print(time.perf_counter() - start)")


def _imports(env: dict) -> float:
    """The imports of the start-up path, timed inside the process (its exit, long with that many
    classes to free, is no part of a server's start)."""
    done = subprocess.run([sys.executable, "-c", IMPORTS], check=True, env=env, capture_output=True, text=True)
    return float(done.stdout)


def slowest_imports(env: dict, count: int = 15) -> list[tuple[float, str]]:
    """The modules of the start-up path that take longest to import themselves (seconds, name)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import flowmetal.cli, flowmetal_lsp.server"],
                          env=env, capture_output=True, text=True, check=True)
    found = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if match:
            found.append((int(match.group(1)) / 1e6, match.group(3)))
    return sorted(found, reverse=True)[:count]


def run(quick: bool = False) -> list[dict]:
    repeats = 1 if quick else 7
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "FLOWMETAL_STORE", "FLOWMETAL_TOKEN")}
    with tempfile.TemporaryDirectory(prefix="flowmetal-bench-start-") as tmp:
        folder = Path(tmp)
        (folder / "demo.flow").write_text(PROGRAM, encoding="utf-8")
        cold_start(folder, env)  # writes the bytecode, if it was not there
        starts, bare, imports = [], [], []
        for _ in range(repeats):
            bare.append(_process([sys.executable, "-c", "pass"], env))
            imports.append(_imports(env))
            starts.append(cold_start(folder, env))
    python, imported = statistics.median(bare), statistics.median(imports)
    imported += python
    initialize = statistics.median(s["initialize"] for s in starts)
    total = statistics.median(s["diagnostics"] for s in starts)
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    return [{"name": "lsp-cold-start", "value": total, "reference": 1.0, "ratio": total, "target": 1.5,
             "unit": "s", "detail": f"python {ms(python)}, imports {ms(imported - python)}, "
                                    f"to initialize {ms(initialize - imported)}, "
                                    f"to first diagnostics {ms(total - initialize)} (median of {repeats})"}]


if __name__ == "__main__":
    if "--imports" in sys.argv:
        for seconds, name in slowest_imports(dict(os.environ)):
            print(f"{seconds * 1000:7.1f} ms  {name}")
    else:
        for result in run(quick="--quick" in sys.argv):
            print(f"{result['name']}: {result['value']:.3f} s  ({result['detail']})")
