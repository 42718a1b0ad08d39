"""The other examples, run for real: an approval with a timeout, and retries with backoff
against a flaky service on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import ROOT

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

sys.path.insert(0, str(ROOT / "examples"))
import flaky_service  # noqa: E402

APPROVAL = (ROOT / "examples" / "approval.flow").read_text(encoding="utf-8")


def _run(store: SQLiteStore, args: list[str]) -> str:
    sources = {"approval.flow": APPROVAL}
    return store.create_run("examples.approval/request-approval", args, store.put_sources(sources),
                            code_hash(sources))


def _drive(store: SQLiteStore, run_id: str, seconds: float = 10) -> str:
    executor = Executor(store)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.run_once(run_id)
        run = store.get_run(run_id)
        if run.status in ("completed", "failed", "cancelled"):
            return run.result
        time.sleep(0.02)
    raise AssertionError(f"{run_id} did not end: {store.get_run(run_id).status}")


def test_an_answered_approval(tmp_path):
    store = SQLiteStore(tmp_path / "store.db")
    approved, rejected = _run(store, ['"deploy v2"']), _run(store, ['"drop table"'])
    for run_id in (approved, rejected):
        Executor(store).run_once(run_id)
    for run_id, answer in ((approved, "approve"), (rejected, "no way")):
        (log,) = [e for e in store.events(run_id) if e.kind == "log"]
        token = log.data["message"].rsplit("/callback/", 1)[1]
        assert store.deliver_callback(token, answer) == "delivered"
    assert _drive(store, approved) == "+approved+"
    assert _drive(store, rejected) == "+rejected+"


def test_an_approval_nobody_answers_expires(tmp_path):
    store = SQLiteStore(tmp_path / "store.db")
    run_id = _run(store, ['"deploy v3"', "(duration 0 +minutes+)"])
    assert _drive(store, run_id) == "+expired+"


def test_retries_with_backoff_against_a_flaky_service(tmp_path):
    service = flaky_service.serve(port=0, failures=2)
    url = f"http://127.0.0.1:{service.server_port}/data"
    try:
        result = subprocess.run([sys.executable, "-m", "flowmetal", "run", str(ROOT / "examples" / "flaky.flow"),
                                 "fetch", json.dumps(url)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        seen = list(flaky_service.Handler.seen)
    finally:
        service.shutdown()
    assert (result.returncode, result.stdout) == (0, '"the data"\n'), result.stderr
    # Three attempts, each its own step with its own key.
    assert len(seen) == 3 and len(set(seen)) == 3 and all(":" in key for key in seen)
