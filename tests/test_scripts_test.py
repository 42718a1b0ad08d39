"""`scripts/test` and `scripts/postgres` wait out a package lock another apt or dpkg holds
rather than failing.

Their `apt_get` function (scripts/lib/apt.sh, which both source) is run by bash,
as the scripts run it, with a stand-in `apt-get` on PATH that fails as apt does
while the lock is held, then succeeds.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPTS = {name: (ROOT / "scripts" / name).read_text(encoding="utf-8") for name in ("test", "postgres")}
FUNCTION = re.search(r"^apt_get\(\) \{\n.*?^\}\n", (ROOT / "scripts" / "lib" / "apt.sh").read_text(encoding="utf-8"),
                     re.M | re.S).group(0)
LOCKED = ("E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)\n"
          "E: Unable to lock directory /var/lib/apt/lists/\n")


def run_apt_get(tmp_path: Path, failures: int, message: str, *args: str) -> subprocess.CompletedProcess:
    """`apt_get ARGS` with an apt-get that fails `failures` times with `message`."""
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "apt-get"
    fake.write_text(f"""#!/bin/bash
echo "$*" >> {tmp_path}/calls
n=$(wc -l < {tmp_path}/calls)
if [ "$n" -le {failures} ]; then printf "%s" {shlex.quote(message)} >&2; exit 100; fi
echo done
""")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "APT_LOCK_RETRY_SECONDS": "0"}
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n{FUNCTION}\napt_get \"$@\"", "apt_get", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_the_scripts_ask_apt_to_wait_for_the_dpkg_lock():
    assert "-o DPkg::Lock::Timeout=600" in FUNCTION
    for script in SCRIPTS.values():
        assert "lib/apt.sh" in script
        assert re.findall(r"^\s+apt-get .*$", script, re.M) == []  # every call goes through apt_get
        assert "apt_get install" in script


def test_a_held_lock_is_waited_for_then_the_command_goes_on(tmp_path):
    result = run_apt_get(tmp_path, 2, LOCKED, "install", "-y", "emacs-nox")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["-o DPkg::Lock::Timeout=600 install -y emacs-nox"] * 3
    assert result.stderr.count("waiting for the lock another apt or dpkg holds") == 2


@pytest.mark.parametrize("failures", [1, 25])
def test_another_error_or_a_lock_never_released_fails_with_apt_s_message(tmp_path, failures):
    message = "E: Unable to locate package emacs-nox\n" if failures == 1 else LOCKED
    result = run_apt_get(tmp_path, failures, message, "install", "-y", "emacs-nox")
    assert result.returncode == 1
    assert result.stderr.endswith(message)
    assert len((tmp_path / "calls").read_text().splitlines()) == (1 if failures == 1 else 20)
