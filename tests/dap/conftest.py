from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from dap_kit import PROGRAMS, Client

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
