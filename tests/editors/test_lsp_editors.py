"""Real editors drive the real language server: Emacs + eglot and Neovim's LSP client.

Each editor runs headless as a subprocess, starts `python -m flowmetal lsp`
(this Python, passed as FLOWMETAL_PYTHON) and works on copies, in a scratch
directory (FLOWMETAL_LSP_TEST_DIR), of

- `broken/naptime.flow` (tests/editors/data/): calls `sleep` where only `sleep!`
  is defined. The editor must show the diagnostic "unknown name `sleep`; did you
  mean `sleep!`?" over `sleep` on line 11, answer hover on a `defn` with its
  signature and docstring, and, once `sleep` is corrected to `sleep!` in the
  buffer, drop the diagnostic and hover the endpoint;
- `workspace/app.flow` and `workspace/lib.flow` (tests/testdata/lsp/): hover on
  `norm` in app.flow shows its signature and docstring from lib.flow, and
  go-to-definition lands in lib.flow.

Emacs also runs a function from the editor (eglot-runs-test.el, in
FLOWMETAL_LSP_TEST_DIR/runs): `flowmetal-run` on a function that logs, sleeps
300 ms and answers; the trace buffer filled live by `flowmetal/traceEvent` up
to `run-completed`; the runs buffer kept up to date by `flowmetal/runUpdated`;
replay and cancel from it; an event's location and the state there
(`flowmetal/stateAt`). The Emacs side sets `flowmetal-store` (sent as
initializationOptions); this side reads that store with the command line and
finds the run there, completed. And a run the command line left in a project's
store is listed as not run here, stays pending, and runs once the user trusts
the store (`flowmetal-trust-store`).

The checks live in the editor scripts (eglot-lsp-test.el, nvim-lsp-test.lua);
these tests assert on the editors' exit status and show their output (with
the JSON-RPC exchange, for Emacs) when they fail.

Without the editor (`emacs` with eglot, or `nvim`) a test is skipped, except
in CI (CI=true), where a missing editor is a failure.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODE = pathlib.Path("editors/emacs/flowmetal-mode.el")
ERT = pathlib.Path("tests/editors/eglot-lsp-test.el")
RUNS_ERT = pathlib.Path("tests/editors/eglot-runs-test.el")
NVIM_SCRIPT = pathlib.Path("tests/editors/nvim-lsp-test.lua")
BROKEN = ROOT / "tests" / "editors" / "data" / "naptime.flow"
WORKSPACE = ROOT / "tests" / "testdata" / "lsp"
TIMEOUT = 60

EGLOT_LOAD = pathlib.Path("tests/editors/eglot-load.el")  # what the test files load eglot with


def _missing(message: str):
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _require_tool(name: str, packages: str) -> str:
    path = shutil.which(name)
    if path is None:
        _missing(f"`{name}` is not installed (apt-get install -y {packages})")
    return path


@pytest.fixture
def scratch(tmp_path: pathlib.Path) -> dict[str, str]:
    """Copies of the programs, and an environment that points the editors at them."""
    work = tmp_path / "work"
    (work / "broken").mkdir(parents=True)
    shutil.copy(BROKEN, work / "broken" / BROKEN.name)
    shutil.copytree(WORKSPACE, work / "workspace")
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = os.path.dirname(sys.executable)
    return dict(
        os.environ,
        FLOWMETAL_PYTHON=sys.executable,
        FLOWMETAL_LSP_TEST_DIR=str(work),
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
        HOME=str(home),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )


def _run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run an editor in its own process group; kill the group (editor and server) after it."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{command[0]} did not finish within {TIMEOUT} s; its output:\n{output}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode, output


def _emacs_with_eglot(env: dict[str, str]) -> str:
    emacs = _require_tool("emacs", "emacs-nox elpa-eglot")
    probe = subprocess.run([emacs, "--batch", "-Q", "-l", str(EGLOT_LOAD), "--eval",
                            "(kill-emacs (if (flowmetal-test-load-eglot) 0 1))"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=TIMEOUT)
    if probe.returncode != 0:
        _missing("eglot is not available to Emacs (apt-get install -y elpa-eglot)")
    return emacs


def _run_ert(ert: pathlib.Path, env: dict[str, str], tests: int) -> str:
    """Emacs with eglot runs the ERT file's tests, which must be `tests` and all pass: its output."""
    emacs = _emacs_with_eglot(env)
    # (eglot first: the mode requires it.)
    status, output = _run([emacs, "--batch", "-Q", "-l", str(EGLOT_LOAD), "-f", "flowmetal-test-load-eglot",
                           "-l", str(MODE), "-l", str(ert),
                           "-f", "ert-run-tests-batch-and-exit"], env)
    assert status == 0, output
    ran = re.search(r"Ran (\d+) tests?, (\d+) results? as expected, (\d+) unexpected", output)
    assert ran and ran.group(1) == ran.group(2) == str(tests) and ran.group(3) == "0", output
    return output


def test_emacs_eglot_diagnostics_hover_and_definition(scratch):
    _run_ert(ERT, scratch, tests=2)


def test_neovim_lsp_diagnostics_hover_and_definition(scratch):
    nvim = _require_tool("nvim", "neovim")
    status, output = _run([nvim, "--headless", "-n", "-i", "NONE", "-u", str(NVIM_SCRIPT)], scratch)
    assert status == 0, output
    lines = output.strip().splitlines()
    assert lines and lines[-1] == "PASSED", output
    assert not any(line.startswith("FAIL") for line in lines), output
    assert sum(line.startswith("ok ") for line in lines) >= 20, output


def test_emacs_runs_a_function_and_follows_its_trace(scratch):
    output = _run_ert(RUNS_ERT, scratch, tests=3)
    run_id = re.search(r"^run ([0-9a-f]+)$", output, re.MULTILINE)
    assert run_id, output

    # The run is in the store Emacs configured, not in the default one.
    store = pathlib.Path(scratch["FLOWMETAL_LSP_TEST_DIR"]) / "runs" / "state" / "runs.db"
    assert store.is_file(), output
    listed = subprocess.run([sys.executable, "-m", "flowmetal", "runs", "--store", str(store),
                             "--format", "json"], env=scratch, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert listed.returncode == 0, listed.stderr
    runs = {run["id"]: run for run in json.loads(listed.stdout)}
    assert run_id.group(1) in runs, listed.stdout
    run = runs[run_id.group(1)]
    assert (run["entry"], run["status"], run["result"]) == ("demo.nap/nap", "completed", "41"), run
