"""A run's trace spans and its state at any event (`flowmetal.runtime.inspect`), on a real store.

The state at an event comes from the snapshot for the step a run waits on, and
from replaying the log for the others; both must give the same answer, and the
answer must be what the program had in scope at that point.
"""

from __future__ import annotations

import time

import pytest

from flowmetal.runtime import inspect
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash, load
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage insp
  (require [flowmetal.time :refer [sleep! make-duration with-timeout! timeout? +milliseconds+]]
           [http.callback :refer [make-callback! get-callback! callback-url]]
           [flowmetal.log :refer [log!]])

  (defn shout [word : str?] : str?
    (let [loud (str word "!")]
      (log! loud)
      loud))

  (defn each [words : (list? str?)] : (list? str?)
    (let [word "outer"
          said (map (fn [w] (str (shout w))) words)]
      (let [word "inner"]
        (log! word)
        said)))

  (defn patient [] : (union? [str? timeout?])
    (let [cb (make-callback!)
          got (with-timeout! (make-duration 100 +milliseconds+) (fn [] (get-callback! cb)))]
      (log! (if (timeout? got) "gave up" got))
      got))

  (defn waits [n : int?] : str?
    (let [cb (make-callback!)
          m (* n 3)]
      (get-callback! cb)))

  (defn divide [n : int?] : int?
    (let [z (- n n)]
      (log! "dividing")
      (+ 1 (mod n z))))

  (defn broken [n : int?] : int?
    (let [k (+ n 1)]
      (log! "about to fail")
      (match k
        [1 10]))))
"""


@pytest.fixture
def store(tmp_path):
    found = SQLiteStore(tmp_path / "store.db")
    yield found
    found.close()


def start(store: SQLiteStore, entry: str, *args: str) -> str:
    sources = {"insp.flow": PROGRAM}
    return store.create_run(entry, list(args), store.put_sources(sources), code_hash(sources))


def drive(store: SQLiteStore, run_id: str, until=("completed", "failed"), timeout: float = 10.0):
    executor = Executor(store)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.run_once(run_id)
        run = store.get_run(run_id)
        if run.status in until:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} is {store.get_run(run_id).status}")


def look(store: SQLiteStore, run_id: str):
    run = store.get_run(run_id)
    program = load(store.get_sources(run.program))
    events = store.events(run_id)
    return run, program, events


def state(store: SQLiteStore, run_id: str, seq: int, snapshot: bool = True) -> inspect.State:
    run, program, events = look(store, run_id)
    return inspect.state_at(program, run, events, seq, store.snapshot(run_id) if snapshot else None)


def named(items) -> dict[str, tuple[str, str]]:
    return {b.name: (b.type, b.value) for b in items}


def test_every_event_has_the_span_of_its_cause(store):
    run_id = start(store, "insp/each", '["a" "b"]')
    assert drive(store, run_id).result == '["a!" "b!"]'
    run, program, events = look(store, run_id)
    traced = inspect.trace(program, run, events)
    assert [t.seq for t in traced] == [e.seq for e in events]
    texts = [(t.kind, t.span.text) for t in traced]
    assert texts[0] == ("run-started", "each")
    assert texts[-1] == ("run-completed", "each")
    assert ("log", "(log! loud)") in texts and ("step-completed", "(log! word)") in texts


def test_state_inside_a_closure_called_by_map(store):
    run_id = start(store, "insp/each", '["a" "b"]')
    drive(store, run_id)
    run, program, events = look(store, run_id)
    second = [e for e in events if e.kind == "step-requested"][1]   # (log! loud) for "b"
    found = state(store, run_id, second.seq)
    assert [f.function for f in found.frames] == ["insp/shout", "fn", "insp/each"]
    assert named(found.bindings) == {"word": ("str?", '"b"'), "loud": ("str?", '"b!"')}
    assert named(found.frames[1].bindings)["w"][1] == '"b"'
    outer = named(found.frames[2].bindings)
    assert outer["words"] == ("(list? str?)", '["a" "b"]') and outer["word"][1] == '"outer"'
    assert "said" not in outer  # still being computed
    assert found.frames[2].span.text.startswith("(let [word \"outer\"")  # map called it: its pending let
    last = [e for e in events if e.kind == "step-requested"][-1]   # (log! word) in the inner let
    inner = named(state(store, run_id, last.seq).bindings)
    assert inner["word"][1] == '"inner"' and inner["said"][1] == '["a!" "b!"]'  # the shadowing name once


def test_a_waiting_run_from_its_snapshot_and_from_replay_agree(store):
    run_id = start(store, "insp/waits", "7")
    assert drive(store, run_id, until=("waiting",)).status == "waiting"
    run, program, events = look(store, run_id)
    wait = [e for e in events if e.kind == "step-requested"][-1]
    from_snapshot = state(store, run_id, wait.seq)
    from_replay = state(store, run_id, wait.seq, snapshot=False)
    assert (from_snapshot.source, from_replay.source) == ("snapshot", "replay")
    assert named(from_snapshot.bindings) == named(from_replay.bindings)
    assert named(from_snapshot.bindings)["m"] == ("int?", "21")
    assert [f.function for f in from_snapshot.frames] == [f.function for f in from_replay.frames] == ["insp/waits"]
    assert from_snapshot.span.text == from_replay.span.text == "(get-callback! cb)"


def test_a_timeout_that_fired(store):
    run_id = start(store, "insp/patient")
    assert drive(store, run_id).result == "+timeout+"
    run, program, events = look(store, run_id)
    fired = next(e for e in events if e.kind == "timer-fired")
    assert state(store, run_id, fired.seq).result is None  # not in the log yet at that event
    timed_out = next(e for e in events if e.kind == "step-completed" and e.step == fired.step)
    at = state(store, run_id, timed_out.seq)
    assert at.step == fired.step and at.result == "+timeout+"
    assert "cb" in named(at.bindings)
    log = next(e for e in events if e.kind == "log")
    assert named(state(store, run_id, log.seq).bindings)["got"] == ("(union? [str? timeout?])", "+timeout+")


def test_a_failed_run_shows_where_it_faulted(store):
    run_id = start(store, "insp/broken", "5")
    run = drive(store, run_id)
    assert run.status == "failed" and "no match clause fits 6" in run.error
    run, program, events = look(store, run_id)
    traced = inspect.trace(program, run, events)
    assert traced[-1].kind == "run-failed" and traced[-1].span.text.startswith("(match k")
    at = state(store, run_id, events[-1].seq)
    assert "no match clause fits 6" in at.error
    assert [f.function for f in at.frames] == ["insp/broken"]
    assert named(at.bindings) == {"n": ("int?", "5"), "k": ("int?", "6")}


def test_the_start_and_the_end(store):
    run_id = start(store, "insp/shout", '"hey"')
    drive(store, run_id)
    run, program, events = look(store, run_id)
    first = state(store, run_id, 1)
    assert first.source == "start" and named(first.bindings) == {"word": ("str?", '"hey"')}
    last = state(store, run_id, events[-1].seq)
    assert last.value == '"hey!"' and last.frames == []
    with pytest.raises(inspect.InspectError, match=f"has no event {len(events) + 1}: its events are 1 to"):
        state(store, run_id, len(events) + 1)


def test_a_fault_inside_a_built_in_is_at_its_call(store):
    run_id = start(store, "insp/divide", "4")
    run = drive(store, run_id)
    assert run.status == "failed"
    assert "line 0" not in run.error and "in insp/divide, line 32" in run.error, run.error
    run, program, events = look(store, run_id)
    assert inspect.trace(program, run, events)[-1].span.text == "(mod n z)"
    at = state(store, run_id, events[-1].seq)
    assert at.span.text == "(mod n z)" and named(at.bindings) == {"n": ("int?", "4"), "z": ("int?", "0")}


def test_stepping_through_a_run_with_kept_replays_gives_the_states_of_fresh_replays(store):
    run_id = start(store, "insp/each", '["a" "b" "c" "d" "e" "f" "g"]')
    drive(store, run_id)
    run, program, events = look(store, run_id)

    def shape(found: inspect.State):
        return (found.step, found.result, found.span and found.span.text,
                [(f.function, f.span and f.span.text, named(f.bindings)) for f in found.frames])
    fresh = [shape(inspect.state_at(program, run, events, e.seq)) for e in events]
    assert len({s[0] for s in fresh if s[0] is not None}) == 8  # eight log! steps went by
    replays = inspect.Replays(every=2)
    seqs = [e.seq for e in events]
    forward = [shape(inspect.state_at(program, run, events, seq, None, replays)) for seq in seqs]
    assert forward == fresh
    backward = [shape(inspect.state_at(program, run, events, seq, None, replays)) for seq in reversed(seqs)]
    assert backward == fresh[::-1]
    # Going back started from a checkpoint taken on the way, not from the run's start.
    inspect.state_at(program, run, events, seqs[-3], None, replays)
    inspect.state_at(program, run, events, seqs[-6], None, replays)
    walk = replays._walks[run_id][0]
    assert walk.start_from is not None and walk.start_from["steps"] >= 2


@pytest.mark.parametrize("entry, args, until", [
    ("insp/patient", [], ("completed",)),          # a with-timeout! that fires, across checkpoints
    ("insp/broken", ["5"], ("failed",)),           # a fault at the end
    ("insp/waits", ["2"], ("waiting",)),           # still waiting
])
def test_checkpoints_every_step_change_no_state(store, entry, args, until):
    run_id = start(store, entry, *args)
    drive(store, run_id, until=until)
    run, program, events = look(store, run_id)

    def shape(found: inspect.State):
        return (found.step, found.result, found.error, found.span and found.span.text,
                [(f.function, named(f.bindings)) for f in found.frames])
    fresh = [shape(inspect.state_at(program, run, events, e.seq)) for e in events]
    replays = inspect.Replays(every=1)
    seqs = [e.seq for e in events]
    for order in (seqs, seqs[::-1], seqs):
        got = [shape(inspect.state_at(program, run, events, seq, None, replays)) for seq in order]
        assert got == [fresh[seq - 1] for seq in order]


RECORDS = """\
(defpackage shop
  (require [flowmetal.log :refer [log!]])
  (defrecord item [sku : str?, cents : int?])
  (defrecord order [id : str?, lines : (list? item?)])
  (defn place [] : int?
    (let [o (order "o-1" [(item "a" 1) (item "b" 2)])]
      (log! "placing")
      2)))
"""


def test_the_fields_of_the_records_in_scope_are_named(store):
    """A literal prints a record without its fields' names: the state gives them beside it."""
    sources = {"shop.flow": RECORDS}
    run_id = store.create_run("shop/place", [], store.put_sources(sources), code_hash(sources))
    drive(store, run_id)
    run, program, events = look(store, run_id)
    [log] = [e for e in events if e.kind == "log"]
    got = inspect.state_at(program, run, events, log.seq)
    assert named(got.bindings)["o"][1] == '(order "o-1" [(item "a" 1) (item "b" 2)])'
    assert got.records == {"order": ["id", "lines"], "item": ["sku", "cents"]}
