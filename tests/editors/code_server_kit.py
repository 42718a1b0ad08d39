"""code-server with the Flowmetal extension installed, for the tests and the benchmark that drive VS Code itself.

What test_vscode_code_server.py and bench/bench_vscode_start.py both need, in one place: where
code-server and Chromium are (`code_server()`, `chrome()`), playwright-core installed once into
the test cache (`playwright_modules()`), the .vsix scripts/vsix builds (`build_vsix()`), and
`CodeServer`: a user-data directory of its own (a scratch HOME, no run settings from the caller's
environment) with the .vsix installed, a workspace whose settings run the language server with
this Python, and `running()`, a code-server process on a free loopback port, stopped with its
process group (its extension host and the language server go with it). The pages are driven by
the JavaScript drivers beside this file, through code_server_kit.js.

Errors are RuntimeErrors naming the step that failed, with its output: the caller (a pytest
fixture, the benchmark) shows them as they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FLOWMETAL_VSCODE_TEST_CACHE", ROOT / "editors" / "vscode" / ".test-cache"))
E2E_PACKAGES = {"playwright-core": "1.65.1"}

# The run settings a caller's environment could give the language server: a test's are its own.
RUN_SETTINGS = ("FLOWMETAL_STORE", "FLOWMETAL_PUBLIC_URL", "FLOWMETAL_TOKEN")


def code_server() -> str | None:
    """code-server: $FLOWMETAL_CODE_SERVER, or the one install_code_server.sh put in the cache."""
    given = os.environ.get("FLOWMETAL_CODE_SERVER")
    if given:
        return given if os.access(given, os.X_OK) else None
    found = CACHE / "code-server" / "node_modules" / ".bin" / "code-server"
    return str(found) if found.exists() else None


def chrome() -> str | None:
    """Chromium: $CHROME, or Debian's /usr/bin/chromium."""
    found = os.environ.get("CHROME", "/usr/bin/chromium")
    return found if os.access(found, os.X_OK) else None


def available() -> bool:
    """Whether VS Code can be driven here: code-server, Chromium, node and npm."""
    return bool(code_server() and chrome() and shutil.which("node") and shutil.which("npm"))


def _run(what: str, command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stdout}\n{done.stderr}")
    return done


def playwright_modules() -> Path:
    """node_modules with playwright-core, installed with npm into the cache once."""
    where = CACHE / "e2e"
    where.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "flowmetal-vscode-e2e", "private": True, "dependencies": E2E_PACKAGES}
    stamp = where / ".installed.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == manifest):
        (where / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _run("npm install", ["npm", "install", "--no-audit", "--no-fund"], cwd=where, timeout=600,
             env=dict(os.environ, npm_config_update_notifier="false"))
        stamp.write_text(json.dumps(manifest))
    return where / "node_modules"


def build_vsix() -> Path:
    """The extension packaged as users get it: the bundled .vsix scripts/vsix builds (or has built)."""
    out = CACHE / "flowmetal.vsix"
    _run("scripts/vsix", ["bash", str(ROOT / "scripts" / "vsix"), str(out)], timeout=600,
         env=dict(os.environ, FLOWMETAL_VSCODE_TEST_CACHE=str(CACHE)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CodeServer:
    """code-server's directories under `where`, the .vsix installed; a workspace `where/ws`.

    `settings` are the workspace's settings beside the server's command; `env` is added to the
    environment code-server (and so the language server) runs in, after `unset` is taken out of it.
    """

    def __init__(self, where: Path, vsix: Path, settings: dict | None = None, env: dict | None = None,
                 unset: tuple[str, ...] = ()) -> None:
        self.where = where
        home = where / "home"
        home.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items() if k not in RUN_SETTINGS + unset}
        self.env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                        XDG_DATA_HOME=str(home / ".local" / "share"), XDG_CACHE_HOME=str(home / ".cache"),
                        XDG_STATE_HOME=str(home / ".local" / "state"), **(env or {}))
        self.workspace = where / "ws"
        (self.workspace / ".vscode").mkdir(parents=True)
        (self.workspace / ".vscode" / "settings.json").write_text(json.dumps({
            "flowmetal.server.path": sys.executable,
            "flowmetal.server.args": ["-m", "flowmetal", "lsp"],
            **(settings or {}),
        }))
        self.user = where / "user-data"
        (self.user / "User").mkdir(parents=True)
        (self.user / "User" / "settings.json").write_text(json.dumps({
            "workbench.startupEditor": "none", "telemetry.telemetryLevel": "off", "workbench.tips.enabled": False,
        }))
        self.log = where / "code-server.log"
        self.common = [code_server(), "--user-data-dir", str(self.user), "--extensions-dir", str(where / "extensions")]
        start = time.perf_counter()
        _run("installing the .vsix", self.common + ["--install-extension", str(vsix)], env=self.env, timeout=120)
        self.install_time = time.perf_counter() - start

    @contextlib.contextmanager
    def running(self):
        """A fresh code-server process on the workspace: its URL, until it is stopped."""
        port = free_port()
        config = self.where / "code-server.yaml"
        config.write_text(f"bind-addr: 127.0.0.1:{port}\nauth: none\ncert: false\n")
        with open(self.log, "a") as log:
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
                        raise RuntimeError(f"code-server did not start:\n{self.log.read_text()[-4000:]}") from None
                    time.sleep(0.1)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # code-server, its extension host, the language server
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
