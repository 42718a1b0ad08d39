"""Emacs runs a function through the language server and follows its trace live.

Emacs (headless, with eglot and editors/emacs/flowmetal-mode.el) starts
`python -m flowmetal lsp` (this Python, passed as FLOWMETAL_PYTHON) in a
scratch directory (FLOWMETAL_LSP_TEST_DIR) and runs the checks of
eglot-runs-test.el: `flowmetal-run` on a function that logs, sleeps 300 ms and
answers; the trace buffer filled live by `flowmetal/traceEvent` up to
`run-completed`; the runs buffer kept up to date by `flowmetal/runUpdated`;
replay and cancel from it; an event's location (the endpoint call) and the
state there (`flowmetal/stateAt`).

The Emacs side sets `flowmetal-store`, which the mode sends as
initializationOptions; this side then reads that store with the command line
and finds the run there, completed.

Without `emacs` with eglot the test is skipped, except in CI (CI=true), where
a missing editor is a failure.
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
ERT = pathlib.Path("tests/editors/eglot-runs-test.el")
TIMEOUT = 60

# Loads eglot the way eglot-runs-test.el does: built in (Emacs 29+), or the
# Debian package's copy, which `emacs -Q` does not activate by itself.
EGLOT_PROBE = """
(kill-emacs
 (if (or (require 'eglot nil t)
         (progn
           (require 'package)
           (let ((package-directory-list
                  (append package-directory-list '("/usr/share/emacs/site-lisp/elpa"))))
             (package-activate-all))
           (require 'eglot nil t)))
     0 1))
"""


def _missing(message: str):
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def scratch(tmp_path: pathlib.Path) -> dict[str, str]:
    """An empty scratch directory, and an environment that points Emacs at it."""
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = os.path.dirname(sys.executable)
    env = dict(
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
    env.pop("FLOWMETAL_STORE", None)
    return env


def _run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run Emacs in its own process group; kill the group (Emacs and server) after it."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"emacs did not finish within {TIMEOUT} s; its output:\n{output}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode, output


def test_emacs_runs_a_function_and_follows_its_trace(scratch):
    emacs = shutil.which("emacs")
    if emacs is None:
        _missing("`emacs` is not installed (apt-get install -y emacs-nox elpa-eglot)")
    probe = subprocess.run([emacs, "--batch", "-Q", "--eval", EGLOT_PROBE], env=scratch,
                           capture_output=True, text=True, timeout=TIMEOUT)
    if probe.returncode != 0:
        _missing("eglot is not available to Emacs (apt-get install -y elpa-eglot)")

    status, output = _run([emacs, "--batch", "-Q", "-l", str(MODE), "-l", str(ERT),
                           "-f", "ert-run-tests-batch-and-exit"], scratch)
    assert status == 0, output
    ran = re.search(r"Ran (\d+) tests?, (\d+) results? as expected, (\d+) unexpected", output)
    assert ran and ran.group(1) == ran.group(2) == "1" and ran.group(3) == "0", output
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
