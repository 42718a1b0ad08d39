"""Helpers for the runtime's tests: the command line as a real process, on a real store file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path



def flowmetal(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("FLOWMETAL_STORE", None)
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


