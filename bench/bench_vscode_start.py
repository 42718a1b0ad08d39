"""Cold start in VS Code itself: a .flow file opened, to its first diagnostic shown.

    python bench/bench_vscode_start.py [--runs N]

Installs the extension's .vsix (scripts/vsix) into a fresh code-server
user-data directory, opens a workspace, opens `demo.flow` (one error in it)
with Quick Open, as a user does, and waits for the error's squiggle and for
the status bar's Problems count (bench/vscode_start.js drives headless
Chromium with playwright-core; code-server is set up as the end-to-end test
sets it up, by tests/editors/code_server_kit.py). Each run is a fresh code-server process;
Chromium's profile (its cache) is kept from one run to the next, as a user's
browser keeps it. Three kinds of start:

- `first, no bytecode`: the first start after installing, the language
  server's own packages with no bytecode written yet (its dependencies
  compiled), as after an editable install (`PYTHONPYCACHEPREFIX` points at
  a directory that holds only theirs).
- `first after install`: the same, with the bytecode written.
- `again` (median of N, 5 by default): code-server started again.

The times come from Playwright's clock (the page asked for, the workbench
drawn, Enter pressed in Quick Open, the squiggle in the DOM), code-server's
logs (its extension host started; the extension's activation) and the
extension's own start-up trace (`flowmetal.trace.startup`, startup.js: the
bundle loaded, activate(), the server spawned, the API token read, the server
initialized, the first diagnostics received), all on this machine's clock.
The figure, `vscode-cold-start`, is from Enter to the squiggle, median of
the `again` runs. Target: <= 1.5 s.

Needs what tests/editors/test_vscode_code_server.py needs (code-server,
Chromium, node and npm; FLOWMETAL_CODE_SERVER, CHROME); without them, and in
`bench/run.py --quick`, it reports nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "editors"))  # code-server set up as the end-to-end test sets it up

from code_server_kit import CodeServer, available, build_vsix, chrome, playwright_modules  # noqa: E402

PROGRAM = """(defpackage demo
  (require [flowmetal.log :refer [log!]])
  (defn main [who : str? n : int?] : int?
    (log! (str "hi " who))
    (+ n "one")))
"""
TARGET = 1.5

# The parts of a start, each from one mark to the next (the marks: see `_marks`).
PARTS = [
    ("page asked for -> workbench drawn", "page", "workbench"),
    ("page asked for -> extension host up", "page", "exthost"),
    ("Enter in Quick Open -> activation event", "open", "activation"),
    ("activation event -> bundle read", "activation", "loaded"),
    ("bundle read -> its modules evaluated", "loaded", "required"),
    ("modules evaluated -> activate()", "required", "activate"),
    ("activate() -> server spawned", "activate", "client"),
    ("activate() -> API token read", "activate", "token"),
    ("server spawned -> initialized", "client", "initialized"),
    ("initialized -> first diagnostics", "initialized", "diagnostics"),
    ("first diagnostics -> squiggle", "diagnostics", "squiggle"),
    ("Enter in Quick Open -> squiggle", "open", "squiggle"),
    ("Enter in Quick Open -> Problems count", "open", "problems"),
    ("page asked for -> squiggle", "page", "squiggle"),
]


class Install(CodeServer):
    """The extension installed in a fresh code-server user-data directory, and a workspace."""

    def __init__(self, where: Path, vsix: Path, pycache: Path) -> None:
        super().__init__(where, vsix, settings={"flowmetal.trace.startup": True},
                         env={"PYTHONPYCACHEPREFIX": str(pycache)}, unset=("PYTHONDONTWRITEBYTECODE",))
        (self.workspace / "demo.flow").write_text(PROGRAM, encoding="utf-8")
        self.profile = where / "chromium"

    def start(self, modules: Path, pause: float = 0) -> dict[str, float]:
        """One fresh code-server: the marks of its start (seconds since the page was asked for)."""
        logs_before = set((self.user / "logs").glob("*")) if (self.user / "logs").exists() else set()
        with self.running() as url:
            done = subprocess.run(["node", str(HERE / "vscode_start.js"), str(modules), url, str(self.workspace),
                                   "demo.flow", str(self.profile), str(pause)],
                                  capture_output=True, text=True, timeout=180, env=dict(os.environ, CHROME=chrome()))
            if done.returncode != 0:
                raise RuntimeError(f"vscode_start.js failed: {done.stderr[-2000:]}")
            page = {k: v / 1000 for k, v in json.loads(done.stdout).items()}
            [logs] = set((self.user / "logs").glob("*")) - logs_before
            extension = _wait_for_trace(logs, "diagnostics")
        marks = {**page, **extension, **_host_marks(logs)}
        return {name: at - page["page"] for name, at in marks.items()}


def _wait_for_trace(logs: Path, last: str, wait: float = 10.0) -> dict[str, float]:
    """The extension's start-up trace (seconds since the epoch), once it has reached `last`."""
    deadline = time.monotonic() + wait
    marks: dict[str, float] = {}
    while time.monotonic() < deadline:
        for path in logs.glob("exthost*/flowmetal.flowmetal/*.log"):
            for match in re.finditer(r"startup (\w+) (\d+)", path.read_text(errors="replace")):
                marks[match.group(1)] = int(match.group(2)) / 1000
        if last in marks:
            return marks
        time.sleep(0.1)
    raise RuntimeError(f"no `startup {last}` in the extension's output channel, under {logs}")


def _local(stamp: str) -> float:
    """A time in code-server's logs (local time, milliseconds) as seconds since the epoch."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def _host_marks(logs: Path) -> dict[str, float]:
    """From code-server's extension host log: when it started, and when it activated this extension."""
    marks = {}
    for path in logs.glob("exthost*/remoteexthost.log"):
        for line in path.read_text(errors="replace").splitlines():
            stamp = line[:23]
            if "Extension host with pid" in line:
                marks.setdefault("exthost", _local(stamp))
            elif "_doActivateExtension flowmetal.flowmetal" in line:
                marks.setdefault("activation", _local(stamp))
    return marks


def _parts(marks: dict[str, float]) -> list[tuple[str, float | None]]:
    return [(name, marks[b] - marks[a] if a in marks and b in marks else None) for name, a, b in PARTS]


def _without_package_bytecode(prefix: Path) -> Path:
    """A PYTHONPYCACHEPREFIX holding the bytecode of the language server's imports but not that of
    flowmetal's own packages: as an install that compiled its dependencies but not the package
    (an editable one, as the README's)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    done = subprocess.run([sys.executable, "-c", "import flowmetal, flowmetal_lsp, flowmetal.cli, flowmetal_lsp.server; "
                           "print(flowmetal.__path__[0]); print(flowmetal_lsp.__path__[0])"],
                          env=env, capture_output=True, text=True, check=True)
    for package in done.stdout.split():
        shutil.rmtree(prefix / Path(package).relative_to("/"), ignore_errors=True)
    return prefix


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _table(columns: dict[str, list[tuple[str, float | None]]]) -> str:
    names = [name for name, _, _ in PARTS]
    width = max(map(len, names))
    lines = [" " * width + "".join(f"  {title:>26}" for title in columns)]
    for i, name in enumerate(names):
        cells = [parts[i][1] for parts in columns.values()]
        lines.append(f"{name:<{width}}" + "".join(f"  {'-' if c is None else f'{c * 1000:.0f} ms':>26}"
                                                   for c in cells))
    return "\n".join(lines)


def measure(runs: int = 5, pause: float = 0, out=sys.stderr) -> dict:
    modules, vsix = playwright_modules(), build_vsix()
    with tempfile.TemporaryDirectory(prefix="flowmetal-bench-vscode-") as tmp:
        tmp = Path(tmp)
        columns = {}
        pycache = _without_package_bytecode(tmp / "pycache")
        first_cold = Install(tmp / "a", vsix, pycache=pycache)
        columns["first, no bytecode"] = _parts(first_cold.start(modules))
        again = Install(tmp / "b", vsix, pycache=pycache)  # with the bytecode the first one wrote
        columns["first after install"] = _parts(again.start(modules))
        starts = [_parts(again.start(modules, pause)) for _ in range(runs)]
        columns[f"again (median of {runs})"] = [(name, _median([s[i][1] for s in starts]))
                                                for i, (name, _, _) in enumerate(PARTS)]
    print(f"installing the .vsix: {again.install_time * 1000:.0f} ms", file=out)
    print(_table(columns), file=out)
    total = dict(columns[f"again (median of {runs})"])["Enter in Quick Open -> squiggle"]
    first = dict(columns["first, no bytecode"])["Enter in Quick Open -> squiggle"]
    print(f"vscode-cold-start: {total:.2f} s, {total / TARGET:.2f} of the {TARGET} s target "
          f"(first after install, no bytecode: {first:.2f} s)", file=out)
    return {"columns": columns, "total": total, "first": first}


def run(quick: bool = False) -> list[dict]:
    if quick or not available():
        return []  # a minute of code-server starts, and nothing to start them with
    found = measure()
    return [{"name": "vscode-cold-start", "value": found["total"], "reference": TARGET, "ratio": found["total"],
             "target": TARGET, "unit": "s",
             "detail": f"Enter in Quick Open to the squiggle, median of 5; first after install with no "
                       f"bytecode {found['first']:.2f} s"}]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="starts after the first two (median)")
    parser.add_argument("--pause", type=float, default=0,
                        help="in those, seconds between the workbench drawn and Quick Open (a user's pause)")
    args = parser.parse_args()
    if not available():
        sys.exit("code-server, chromium, node or npm is missing (tests/editors/install_code_server.sh)")
    measure(args.runs, args.pause, out=sys.stdout)
