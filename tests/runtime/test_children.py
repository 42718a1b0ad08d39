"""Child runs (`flowmetal.run`, docs/language.md "Child runs") on a real store.

The cases are data: `tests/testdata/children/*.flow`, each zero-parameter `defn`
followed by `;=> LITERAL` or `;=> fault: TEXT` (as `tests/runtime/test_tasks.py`).
Each is a durable run on a real SQLite store, driven with its children (each
advance in a new executor, as after a restart) until it ends; then it and every
child are replayed from their logs (`replay --verify`), which must reproduce them.
The other tests look at what the store keeps: the children's rows and parents,
the events, what a parent's end does to its children.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flowmetal.lang.analysis import check_sources
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.replay import replay
from flowmetal.runtime.store import SQLiteStore, child_id
from tests.runtime.test_tasks import FINAL, cases, ends_as_expected

DATA = Path(__file__).resolve().parent.parent / "testdata" / "children"
CASES = [(path, *case) for path in sorted(DATA.glob("*.flow")) for case in cases(path)]


def drive(store: SQLiteStore, run_id: str, deadline: float = 30.0):
    """Advance the run and its children, each advance in a new executor, until the run ends."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for rid in [run_id, *(c.id for c in store.descendants(run_id))]:
            Executor(store).run_once(rid)
        run = store.get_run(run_id)
        if run.status in FINAL:
            return run
        wakes = [r.wake_at for r in [run, *store.descendants(run_id)] if r.wake_at is not None]
        if wakes:
            time.sleep(max(0.0, min(min(wakes) - time.time(), 0.05)))
    raise AssertionError(f"run {run_id} did not end in {deadline} s")


def start(store: SQLiteStore, sources: dict[str, str], entry: str, args=()) -> str:
    return store.create_run(entry, list(args), store.put_sources(sources), code_hash(sources))


def settle(store: SQLiteStore, run_id: str, deadline: float = 10.0) -> None:
    """Let the children left going end (cancelled by their parent's end)."""
    end = time.monotonic() + deadline
    while any(c.status not in FINAL for c in store.descendants(run_id)):
        assert time.monotonic() < end, [(c.id, c.status) for c in store.descendants(run_id)]
        for c in store.descendants(run_id):
            Executor(store).run_once(c.id)


@pytest.mark.parametrize("path, entry, line, expected", CASES, ids=[f"{c[0].name}::{c[1]}" for c in CASES])
def test_child_case(tmp_path: Path, path: Path, entry: str, line: int, expected: str):
    store = SQLiteStore(tmp_path / "store.db")
    run_id = start(store, {path.name: path.read_text(encoding="utf-8")}, entry)
    run = drive(store, run_id)
    where = f"{path.name}:{line}: {entry}"
    ends_as_expected(run, expected, where)
    settle(store, run_id)
    for r in [run, *store.descendants(run_id)]:
        assert all("task" in e.data for e in store.events(r.id)), (r.id, [e.kind for e in store.events(r.id)])
        again = replay(store, r.id, verify=True)
        assert again.divergence is None, f"{where}: run {r.id}: {again.divergence}"
        if r.status == "completed":
            assert again.value == r.result, f"{where}: run {r.id}"


def test_the_corpus_is_there_and_checks_cleanly():
    assert len(CASES) >= 15
    for path in DATA.glob("*.flow"):
        found = check_sources({path.name: path.read_text(encoding="utf-8")})
        assert not found, [f"{d.span.line}: {d.code} {d.message}" for d in found]


FAMILY = """\
(defpackage family
  (require [flowmetal.run :refer [start-run! await-run!]]
           [flowmetal.time :refer [sleep! duration +seconds+]])
  (defn nap [n : int?] : int? (sleep! (duration n +seconds+)) n)
  (defn middle [] : int? (await-run! (start-run! nap 600)))
  (defn main [] : int? (await-run! (start-run! middle))))
"""


def test_cancelling_a_run_cancels_its_children_and_theirs(tmp_path: Path):
    store = SQLiteStore(tmp_path / "store.db")
    run_id = start(store, {"family.flow": FAMILY}, "family/main")
    for _ in range(10):
        for rid in [run_id, *(c.id for c in store.descendants(run_id))]:
            Executor(store).run_once(rid)
    family = [store.get_run(run_id), *store.descendants(run_id)]
    assert [r.status for r in family] == ["waiting"] * 3
    assert [r.entry for r in family] == ["family/main", "family/middle", "family/nap"]
    assert [r.parent for r in family] == [None, run_id, family[1].id]
    assert store.request_cancel(run_id) == "cancelled"
    assert [store.get_run(r.id).status for r in family] == ["cancelled"] * 3
    assert all(store.events(r.id)[-1].kind == "run-cancelled" for r in family)
    timers = store.conn.execute("SELECT status FROM timers WHERE run_id=?", (family[2].id,)).fetchall()
    assert [t["status"] for t in timers] == ["cancelled"]


def test_a_child_that_ends_before_its_parent_records_its_wait_wakes_the_parent(tmp_path: Path):
    """The executor looked at the child (still going), then the child ended, then the parent
    commits its wait: the commit sees the child's end and wakes the parent at once."""
    store = SQLiteStore(tmp_path / "store.db")
    sources = {"family.flow": FAMILY}
    parent = store.get_run(start(store, sources, "family/main"))
    kid = child_id(parent.id, 1)
    run = store.claim("w", 30.0, run_id=parent.id)
    store.commit(run, "w", [], children=[(kid, "family/nap", ["0"])])
    store.claim("w2", 30.0, run_id=kid)
    store.commit(store.get_run(kid), "w2", [], status="completed", result="0", release=True)
    assert store.get_run(parent.id).wake_at is None  # it was running: nothing to wake yet
    store.commit(run, "w", [], status="waiting", wake_at=None, release=True, awaited_children=[kid])
    woken = store.get_run(parent.id)
    assert woken.status == "waiting" and woken.wake_at is not None and woken.wake_at <= time.time()
