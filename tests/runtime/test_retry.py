"""`flowmetal.retry/retry!` in durable runs on a real store: an endpoint that fails and then
answers (performed here, as a connector would, through the store), the durable timers
between attempts, the trace of each attempt, and replay giving the same waits again."""

from __future__ import annotations

import json
import re
import time

import pytest

from procs import flowmetal

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.jitter import jitter
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.replay import replay
from flowmetal.runtime.store import SQLiteStore
from flowmetal.runtime.values import RecordValue, encode

PROGRAM = """\
(defpackage rt
  (require [flowmetal.retry :refer [retry!]]
           [flowmetal.time :refer [make-duration with-timeout! timeout? +milliseconds+ +seconds+]]
           [http.request :refer [connection-error?]])

  (defendpoint fetch! [what : str?] : (union? [str? connection-error?]))

  (defn fetch [] : (union? [str? connection-error?])
    (retry! (fn [] (fetch! "data"))
            :backoff (make-duration 4 +milliseconds+)
            :max-backoff (make-duration 6 +milliseconds+)))

  (defn fetch-three-times [] : (union? [str? connection-error?])
    (retry! (fn [] (fetch! "data")) :attempts 3 :backoff (make-duration 2 +milliseconds+)))

  (defn fetch-until-not-busy [] : (union? [str? connection-error?])
    (retry! (fn [] (fetch! "data"))
            :retry-on (fn [answer] (= answer "busy"))
            :backoff (make-duration 2 +milliseconds+)))

  (defn fetch-within [] : (union? [str? connection-error? timeout?])
    (with-timeout! (make-duration 1 +seconds+)  ; long enough for a busy machine to answer the first fetch
      (fn [] (retry! (fn [] (fetch! "data")) :backoff (make-duration 10 +seconds+))))))
"""

REFUSED = RecordValue("http.request", "connection-error", ("message",), ("connection refused",))
REFUSED_LITERAL = '(connection-error "connection refused")'
LOG = re.compile(r"^attempt (\d+) of (\d+) failed: (.*); (?:retrying after \(duration (\d+) \+milliseconds\+\)|giving up)$")


@pytest.fixture
def store(tmp_path):
    return SQLiteStore(tmp_path / "store.db")


def start(store: SQLiteStore, entry: str) -> str:
    sources = {"rt.flow": PROGRAM}
    return store.create_run(entry, [], store.put_sources(sources), code_hash(sources))


def run_with_answers(store: SQLiteStore, entry: str, answers: list) -> str:
    """Drive a run of `entry`, answering its `fetch!` steps with `answers` in turn, as a
    connector would, each time with a new executor (as another process would)."""
    run_id = start(store, entry)
    answers = list(answers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        Executor(store).run_once(run_id)
        run = store.get_run(run_id)
        if run.status in ("completed", "failed", "cancelled"):
            return run_id
        for step in store.pending_steps("rt/fetch!"):
            assert step["run_id"] == run_id
            store.complete_step(run_id, step["step"], json.dumps(encode(answers.pop(0))))
        time.sleep(0.005)
    raise AssertionError(f"the run did not end: {store.get_run(run_id)}")


def requested(store: SQLiteStore, run_id: str, endpoint: str) -> list:
    return [e for e in store.events(run_id) if e.kind == "step-requested" and e.data["endpoint"] == endpoint]


def logs(store: SQLiteStore, run_id: str) -> list[str]:
    return [e.data["message"] for e in store.events(run_id) if e.kind == "log"]


def test_two_failures_then_an_answer_take_three_attempts_with_durable_sleeps_between(store):
    run_id = run_with_answers(store, "rt/fetch", [REFUSED, REFUSED, "the data"])
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", '"the data"')
    fetches = requested(store, run_id, "rt/fetch!")
    assert len(fetches) == 3
    # One durable timer between each two attempts, set and fired.
    sleeps = requested(store, run_id, "flowmetal.time/sleep!")
    assert len(sleeps) == 2
    for sleep in sleeps:
        timer = store.timer(run_id, sleep.step)
        assert timer is not None and timer["status"] == "fired"
        assert fetches[0].step < sleep.step < fetches[-1].step
    # Each failed attempt is a line of the trace, with the value and the wait after it:
    # between half and all of 4 ms, then of 8 ms capped at 6 ms.
    lines = [LOG.match(message) for message in logs(store, run_id)]
    assert [(m[1], m[2], m[3]) for m in lines] == [("1", "5", REFUSED_LITERAL), ("2", "5", REFUSED_LITERAL)]
    waits = [int(m[4]) for m in lines]
    assert 2 <= waits[0] <= 4 and 3 <= waits[1] <= 6
    assert [s.data["args"]["d"] for s in sleeps] == [f"(duration {w} +milliseconds+)" for w in waits]
    # The retry's own steps stand at the call of `retry!` in the run's file (not inside the
    # standard package), so the trace shows the line that asked for them.
    retry_line = PROGRAM.splitlines().index("    (retry! (fn [] (fetch! \"data\"))") + 1
    assert {s.line for s in sleeps} == {retry_line}
    assert all(s.data["span"].startswith(f"rt.flow:{retry_line}:") for s in sleeps)


def test_the_jitter_is_derived_from_the_run_and_the_step(store):
    run_id = run_with_answers(store, "rt/fetch", [REFUSED, REFUSED, "the data"])
    events = store.events(run_id)
    results = {e.step: e.data["result"] for e in events if e.kind == "step-completed"}
    jitters = requested(store, run_id, "flowmetal.retry/jitter!")
    assert [j.data["args"] for j in jitters] == [{"n": "3"}, {"n": "4"}]  # half the cap, and one
    for j in jitters:
        assert results[j.step] == str(jitter(run_id, j.step, int(j.data["args"]["n"])))


def test_when_the_attempts_run_out_the_last_error_is_the_value(store):
    run_id = run_with_answers(store, "rt/fetch-three-times", [REFUSED] * 3)
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", REFUSED_LITERAL)
    assert len(requested(store, run_id, "rt/fetch!")) == 3
    assert len(requested(store, run_id, "flowmetal.time/sleep!")) == 2
    assert logs(store, run_id)[-1] == f"attempt 3 of 3 failed: {REFUSED_LITERAL}; giving up"


def test_retry_on_decides_what_is_tried_again(store):
    # "busy" is retried; an error is not, since this retry-on does not accept it.
    run_id = run_with_answers(store, "rt/fetch-until-not-busy", ["busy", "busy", REFUSED])
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", REFUSED_LITERAL)
    assert len(requested(store, run_id, "rt/fetch!")) == 3
    assert [LOG.match(m)[3] for m in logs(store, run_id)] == ["busy", "busy"]


def test_replays_of_a_retried_run_give_the_same_waits_and_verify(store, tmp_path):
    run_id = run_with_answers(store, "rt/fetch", [REFUSED, REFUSED, REFUSED, "the data"])
    first, second = replay(store, run_id, verify=True), replay(store, run_id, verify=True)
    assert first.divergence is None and first.value == '"the data"'
    assert first.lines == second.lines
    replayed_sleeps = [line for line in first.lines if "flowmetal.time/sleep!" in line]
    recorded = [s.data["args"]["d"] for s in requested(store, run_id, "flowmetal.time/sleep!")]
    assert len(replayed_sleeps) == 3 and [line.split("d=", 1)[1] for line in replayed_sleeps] == recorded
    # And through the command line, as a user would check it.
    result = flowmetal("replay", run_id, "--verify", "--store", str(tmp_path / "store.db"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "replay reproduces the run" in result.stdout + result.stderr


def test_with_timeout_ends_a_retry_in_the_middle_of_its_sleep(store):
    run_id = run_with_answers(store, "rt/fetch-within", [REFUSED])
    run = store.get_run(run_id)
    assert (run.status, run.result) == ("completed", "+timeout+")
    assert len(requested(store, run_id, "rt/fetch!")) == 1
    (sleep,) = requested(store, run_id, "flowmetal.time/sleep!")
    assert 5000 <= int(sleep.data["args"]["d"].split()[1]) <= 10000  # abandoned: not waited for
