"""Tasks (`flowmetal.task`, docs/language.md "Tasks") on a real store.

The cases are data: `tests/testdata/tasks/*.flow`, each zero-parameter `defn`
followed by `;=> LITERAL` or `;=> fault: TEXT` (as the eval golden files). Each
is a durable run on a real SQLite store, driven by the executor until it ends,
its waits real timers; then its log is replayed (`replay --verify`), which must
reproduce it exactly. The other tests look at what the store and the log keep:
the task of every event, cancelled waits, a resume in another executor.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from flowmetal.lang.analysis import check_sources
from flowmetal.lang.forms import lower
from flowmetal.lang.syntax import read
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.replay import replay
from flowmetal.runtime.store import SQLiteStore

DATA = Path(__file__).resolve().parent.parent / "testdata" / "tasks"
EXPECTATION = re.compile(r"^\s*;=>\s?(?P<text>.*?)\s*$")
FINAL = ("completed", "failed", "cancelled")


def cases(path: Path) -> list[tuple[str, int, str]]:
    text = path.read_text(encoding="utf-8")
    expected = {n: m.group("text") for n, line in enumerate(text.splitlines(), 1) if (m := EXPECTATION.match(line))}
    found = []
    for package in lower(read(text, path.name)).packages:
        for d in package.definitions:
            if d.form == "defn" and not d.params and d.node.span.end_line + 1 in expected:
                found.append((f"{package.name}/{d.name}", d.node.span.end_line + 1, expected[d.node.span.end_line + 1]))
    return found


CASES = [(path, *case) for path in sorted(DATA.glob("*.flow")) for case in cases(path)]


def drive(store: SQLiteStore, run_id: str, deadline: float = 30.0):
    """Advance the run, each time in a new executor (as after a restart), until it ends."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        Executor(store).run_once(run_id)
        run = store.get_run(run_id)
        if run.status in FINAL:
            return run
        if run.wake_at is not None:
            time.sleep(max(0.0, min(run.wake_at - time.time(), 0.05)))
    raise AssertionError(f"run {run_id} did not end in {deadline} s")


def start(store: SQLiteStore, sources: dict[str, str], entry: str) -> str:
    return store.create_run(entry, [], store.put_sources(sources), code_hash(sources))


def ends_as_expected(run, expected: str, where: str) -> None:
    """The run ended as its case's `;=>` line says: with that value, or a fault saying that."""
    if expected.startswith("fault:"):
        assert run.status == "failed", f"{where}: {run.status} {run.result}"
        assert expected[len("fault:"):].strip().lower() in run.error.lower(), f"{where}: {run.error}"
    else:
        assert run.status == "completed", f"{where}: {run.error}"
        assert run.result == expected, where


@pytest.mark.parametrize("path, entry, line, expected", CASES, ids=[f"{c[0].name}::{c[1]}" for c in CASES])
def test_task_case(tmp_path: Path, path: Path, entry: str, line: int, expected: str):
    store = SQLiteStore(tmp_path / "store.db")
    run_id = start(store, {path.name: path.read_text(encoding="utf-8")}, entry)
    run = drive(store, run_id)
    where = f"{path.name}:{line}: {entry}"
    ends_as_expected(run, expected, where)
    events = store.events(run_id)
    assert all("task" in e.data for e in events), [e.kind for e in events if "task" not in e.data]
    again = replay(store, run_id, verify=True)
    assert again.divergence is None, f"{where}: {again.divergence}"
    if run.status == "completed":
        assert again.value == run.result


def test_the_corpus_is_there_and_checks_cleanly():
    assert len(CASES) >= 18
    for path in DATA.glob("*.flow"):
        found = check_sources({path.name: path.read_text(encoding="utf-8")})
        assert not found, [f"{d.span.line}: {d.code} {d.message}" for d in found]


ENDING = """\
(defpackage ending
  (require [flowmetal.task :refer [spawn!]]
           [flowmetal.time :refer [sleep! duration +seconds+]])
  (defendpoint charge! [n : int?] : int? "Performed by a connector.")
  (defn main []
    (spawn! (fn [] (sleep! (duration 100 +seconds+))))
    (spawn! (fn [] (charge! 5)))
    (sleep! (duration 0 +seconds+))
    :done))
"""


def test_tasks_still_going_when_the_entry_returns_are_cancelled_with_what_they_wait_for(tmp_path: Path):
    store = SQLiteStore(tmp_path / "store.db")
    run_id = start(store, {"ending.flow": ENDING}, "ending/main")
    run = drive(store, run_id)
    assert (run.status, run.result) == ("completed", ":done")
    events = store.events(run_id)
    cancelled = sorted(e.data["task"] for e in events if e.kind == "task-cancelled")
    assert cancelled == [1, 2]
    # Nothing is left for a connector or a timer: the pending step and the timer are cancelled.
    steps = store.conn.execute("SELECT endpoint, status FROM steps WHERE run_id=? AND endpoint<>''",
                               (run_id,)).fetchall()
    assert [(s["endpoint"], s["status"]) for s in steps] == [("ending/charge!", "cancelled")]
    timers = store.conn.execute("SELECT status FROM timers WHERE run_id=?", (run_id,)).fetchall()
    assert {t["status"] for t in timers} <= {"cancelled", "fired"} and "cancelled" in {t["status"] for t in timers}


def test_each_event_names_its_task(tmp_path: Path):
    path = DATA / "tasks.flow"
    store = SQLiteStore(tmp_path / "store.db")
    run_id = start(store, {path.name: path.read_text(encoding="utf-8")}, "tasks.cases/all-in-order")
    drive(store, run_id)
    by_kind = [(e.kind, e.data["task"]) for e in store.events(run_id)
               if e.kind in ("task-spawned", "timer-set", "task-completed", "run-completed")]
    assert by_kind[:3] == [("task-spawned", 0)] * 3
    assert sorted(t for k, t in by_kind if k == "timer-set") == [1, 2, 3]
    # The tasks end in the order of their naps (10, 30, 60 ms), the run last.
    assert [t for k, t in by_kind if k in ("task-completed", "run-completed")] == [2, 3, 1, 0]


def test_a_run_with_many_waiting_tasks_is_plain_data_and_resumes_anywhere(tmp_path: Path):
    """Every wait suspends the run and each advance is a new executor (`drive`): the tasks'
    stacks go through the store's snapshot each time, as after a crash."""
    path = DATA / "tasks.flow"
    store = SQLiteStore(tmp_path / "store.db")
    run_id = start(store, {path.name: path.read_text(encoding="utf-8")}, "tasks.cases/the-waits-overlap")
    Executor(store).run_once(run_id)
    snapshot = store.snapshot(run_id)
    assert store.get_run(run_id).status == "waiting"
    # The entry awaits the twenty (kept in the head), each on its timer (a part of its own).
    assert [w["kind"] for w in snapshot["waits"].values()] == ["tasks"] and snapshot["parted"] == 20
    waits = [json.loads(r["state"]) for r in store.conn.execute(
        "SELECT state FROM snapshot_parts WHERE run_id=? AND key LIKE 'w%'", (run_id,)).fetchall()]
    assert sorted(w["kind"] for w in waits) == ["timer"] * 20
    tasks = store.conn.execute("SELECT COUNT(*) FROM snapshot_parts WHERE run_id=? AND key LIKE 't%'",
                               (run_id,)).fetchone()[0]
    assert tasks + 1 == 21  # the twenty and the entry; the current one is in the head
    run = drive(store, run_id)
    assert run.result == "1000"


TWO_CHARGES = """\
(defpackage charges
  (require [flowmetal.task :refer [spawn! await-all!]])
  (defendpoint charge! [n : int?] : int? "Performed by a connector.")
  (defn main []
    (reduce + 0 (await-all! [(spawn! (fn [] (charge! 1))) (spawn! (fn [] (charge! 2)))]))))
"""


def test_an_answer_that_comes_while_the_run_runs_is_not_lost(tmp_path: Path):
    """Task 1's step is answered; while the executor gives it that answer (the run is
    `running`, which no answer wakes), task 2's is answered too, after the executor's last
    look. The commit that makes the run wait sees it and wakes the run."""
    class Late(SQLiteStore):
        looks = None  # counted once both steps are requested

        def finished_steps(self, run_id, steps):
            rows = super().finished_steps(run_id, steps)
            if Late.looks is None:
                return rows
            Late.looks += 1
            if Late.looks == 2:  # the look that finds nothing more: then task 2's answer comes
                self.complete_step(run_id, charge_steps[1], "2")
            return rows
    store = Late(tmp_path / "store.db")
    run_id = start(store, {"charges.flow": TWO_CHARGES}, "charges/main")
    Executor(store).run_once(run_id)
    charge_steps = sorted(r["step"] for r in store.conn.execute(
        "SELECT step FROM steps WHERE run_id=? AND endpoint='charges/charge!'", (run_id,)).fetchall())
    assert len(charge_steps) == 2
    store.complete_step(run_id, charge_steps[0], "1")
    Late.looks = 0
    Executor(store).run_once(run_id)
    run = store.get_run(run_id)
    assert run.status == "waiting" and run.wake_at is not None and run.wake_at <= time.time()
    assert drive(store, run_id).result == "3"


def test_the_trace_says_which_task_did_what(tmp_path: Path):
    import subprocess
    import sys
    path = DATA / "tasks.flow"
    store = SQLiteStore(tmp_path / "store.db")
    run_id = start(store, {path.name: path.read_text(encoding="utf-8")}, "tasks.cases/awaited-in-the-order-they-end")
    drive(store, run_id)
    env = {k: v for k, v in __import__("os").environ.items() if k != "FLOWMETAL_STORE"}
    lines = subprocess.run([sys.executable, "-m", "flowmetal", "trace", run_id, "--store", str(tmp_path / "store.db")],
                           capture_output=True, text=True, timeout=60, env=env).stdout.splitlines()
    spawned = [line for line in lines if " task-spawned " in line]
    assert len(spawned) == 2 and all("[task" not in line for line in spawned)  # the entry's own
    naps = [line for line in lines if " timer-set " in line]
    assert sorted(line.split("[task ")[1][0] for line in naps) == ["1", "2"]
    assert not any("task=" in line for line in lines)
