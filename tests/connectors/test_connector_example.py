"""docs/connectors.md's example, run as it says: `flowmetal connector examples/shop_connector.py`
and `flowmetal run examples/shop.flow total ...` as real processes on one real store. The
document shows the example files verbatim."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "connectors.md").read_text(encoding="utf-8")
PROGRAM = ROOT / "examples" / "shop.flow"
MODULE = ROOT / "examples" / "shop_connector.py"
ENV = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}


def test_the_document_shows_the_example_files_as_they_are():
    blocks = re.findall(r"```(\w+)\n(.*?)```", DOC, re.S)
    assert ("clojure", PROGRAM.read_text(encoding="utf-8")) in blocks
    assert ("python", MODULE.read_text(encoding="utf-8")) in blocks


@pytest.fixture
def connector(tmp_path):
    """`flowmetal connector examples/shop_connector.py` serving a fresh store, once it says so."""
    store = tmp_path / "store.db"
    log = tmp_path / "connector.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flowmetal", "connector", "examples/shop_connector.py",
                                 "--store", str(store)], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "serving examples.shop/price!" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        yield store, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run(store: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowmetal", "run", "examples/shop.flow", "total", *args,
                           "--store", str(store)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)


def without_progress(stderr: str) -> str:
    """Stderr less the lines saying what the run waits for (`flowmetal run: ...`)."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not line.startswith("flowmetal run: "))


def test_a_run_calling_the_endpoint_completes_with_what_the_connector_returns(connector):
    store, proc, log = connector
    result = run(store, '["apple" "pear"]')
    assert (result.returncode, result.stdout, without_progress(result.stderr)) == (0, "215\n", "")
    failed = run(store, '["apple" "kiwi"]')
    assert failed.returncode == 1 and failed.stdout == ""
    assert without_progress(failed.stderr).startswith("fault: `examples.shop/price!` raised LookupError: no price for 'kiwi' "
                                    "(at shop_connector.py:18)\n  in examples.shop/total, line 11")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130, log.read_text()
