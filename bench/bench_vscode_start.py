"""Cold start in VS Code itself: a .flow file opened, to its first diagnostic shown.

    python bench/bench_vscode_start.py [--runs N]

Installs the extension's .vsix (scripts/vsix) into a fresh code-server
user-data directory, opens a workspace, opens `demo.flow` (one error in it)
with Quick Open, as a user does, and waits for the error's squiggle and for
the status bar's Problems count (bench/vscode_start.js drives headless
Chromium with playwright-core). Each run is a fresh code-server process;
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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("FLOWMETAL_VSCODE_TEST_CACHE", ROOT / "editors" / "vscode" / ".test-cache"))
E2E_PACKAGES = {"playwright-core": "1.65.1"}  # as tests/editors/test_vscode_code_server.py
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


def code_server() -> str | None:
    given = os.environ.get("FLOWMETAL_CODE_SERVER")
    if given:
        return given if os.access(given, os.X_OK) else None
    found = CACHE / "code-server" / "node_modules" / ".bin" / "code-server"
    return str(found) if found.exists() else None


def chrome() -> str | None:
    found = os.environ.get("CHROME", "/usr/bin/chromium")
    return found if os.access(found, os.X_OK) else None


def _playwright() -> Path:
    """node_modules with playwright-core (installed once, where the end-to-end test keeps it)."""
    where = CACHE / "e2e"
    manifest = {"name": "flowmetal-vscode-e2e", "private": True, "dependencies": E2E_PACKAGES}
    stamp = where / ".installed.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == manifest):
        where.mkdir(parents=True, exist_ok=True)
        (where / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=where, check=True, capture_output=True)
        stamp.write_text(json.dumps(manifest))
    return where / "node_modules"


def _vsix() -> Path:
    out = CACHE / "flowmetal.vsix"
    subprocess.run(["bash", str(ROOT / "scripts" / "vsix"), str(out)], check=True, capture_output=True,
                   env=dict(os.environ, FLOWMETAL_VSCODE_TEST_CACHE=str(CACHE)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Install:
    """The extension installed in a fresh code-server user-data directory, and a workspace."""

    def __init__(self, where: Path, vsix: Path, pycache: Path) -> None:
        self.where = where
        home = where / "home"
        home.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("FLOWMETAL_STORE", "FLOWMETAL_TOKEN", "PYTHONDONTWRITEBYTECODE")}
        self.env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                        XDG_DATA_HOME=str(home / ".local" / "share"), XDG_CACHE_HOME=str(home / ".cache"),
                        XDG_STATE_HOME=str(home / ".local" / "state"), PYTHONPYCACHEPREFIX=str(pycache))
        self.workspace = where / "ws"
        (self.workspace / ".vscode").mkdir(parents=True)
        (self.workspace / "demo.flow").write_text(PROGRAM, encoding="utf-8")
        (self.workspace / ".vscode" / "settings.json").write_text(json.dumps({
            "flowmetal.server.path": sys.executable,
            "flowmetal.server.args": ["-m", "flowmetal", "lsp"],
            "flowmetal.trace.startup": True,
        }))
        self.user = where / "user-data"
        (self.user / "User").mkdir(parents=True)
        (self.user / "User" / "settings.json").write_text(json.dumps({
            "workbench.startupEditor": "none", "telemetry.telemetryLevel": "off", "workbench.tips.enabled": False,
        }))
        self.profile = where / "chromium"
        self.common = [code_server(), "--user-data-dir", str(self.user), "--extensions-dir", str(where / "extensions")]
        start = time.perf_counter()
        subprocess.run(self.common + ["--install-extension", str(vsix)], env=self.env, check=True,
                       capture_output=True, timeout=120)
        self.install_time = time.perf_counter() - start

    def start(self, modules: Path, pause: float = 0) -> dict[str, float]:
        """One fresh code-server: the marks of its start (seconds since the page was asked for)."""
        port = _free_port()
        config = self.where / "code-server.yaml"
        config.write_text(f"bind-addr: 127.0.0.1:{port}\nauth: none\ncert: false\n")
        logs_before = set((self.user / "logs").glob("*")) if (self.user / "logs").exists() else set()
        with open(self.where / "code-server.log", "a") as log:
            proc = subprocess.Popen(self.common + ["--config", str(config), "--disable-telemetry",
                                                   "--disable-update-check", "--disable-workspace-trust",
                                                   str(self.workspace)],
                                    env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("code-server did not start: see " + str(self.where / "code-server.log"))
                    time.sleep(0.1)
            done = subprocess.run(["node", str(HERE / "vscode_start.js"), str(modules), url, str(self.workspace),
                                   "demo.flow", str(self.profile), str(pause)],
                                  capture_output=True, text=True, timeout=180, env=dict(os.environ, CHROME=chrome()))
            if done.returncode != 0:
                raise RuntimeError(f"vscode_start.js failed: {done.stderr[-2000:]}")
            page = {k: v / 1000 for k, v in json.loads(done.stdout).items()}
            [logs] = set((self.user / "logs").glob("*")) - logs_before
            extension = _wait_for_trace(logs, "diagnostics")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # code-server, its extension host, the language server
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
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
    modules, vsix = _playwright(), _vsix()
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
    if quick or not (code_server() and chrome() and shutil.which("node") and shutil.which("npm")):
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
    if not (code_server() and chrome() and shutil.which("node") and shutil.which("npm")):
        sys.exit("code-server, chromium, node or npm is missing (tests/editors/install_code_server.sh)")
    measure(args.runs, args.pause, out=sys.stdout)
