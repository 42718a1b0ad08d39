"""The store's contract, one suite for every kind of store: an SQLite file and a PostgreSQL
database (the `postgres_url` fixture: skipped without a server unless one is required).

Each test says what a store does, through its methods only, so that the two cannot drift.
Lease expiry is made with leases that have run out when taken (a negative lease), and due
times are put on either side of the store's own clock (`store.clock()`): PostgreSQL
compares with the database's clock and ignores a `now` given by the caller.
"""

from __future__ import annotations

import json
import threading

import pytest

from flowmetal.runtime.store import (CALLBACK_WAIT, SCHEMA_VERSION, SIGNAL_WAIT, LeaseLost, StoreError, child_id,
                                     open_store)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(location):
    opened = open_store(location)
    yield opened
    opened.close()


@pytest.fixture
def other(location, store):
    """A second store object on the same store: another process, as far as the store can tell."""
    opened = open_store(location)
    yield opened
    opened.close()


def new_run(store, entry: str = "demo/main") -> str:
    return store.create_run(entry, ["1"], store.put_sources({"demo.flow": "(defpackage demo)"}), "code")


def claimed(store, worker: str = "w", lease: float = 30.0):
    """A new run, claimed by `worker`."""
    run_id = new_run(store)
    run = store.claim(worker, lease, run_id=run_id)
    assert run is not None and run.id == run_id
    return run


def waiting(store, steps=(), callbacks=(), **more) -> str:
    """A run now waiting on `steps` ((step, endpoint, args as JSON text)), released by its worker."""
    run = claimed(store)
    store.commit(run, "w", [("step-requested", step, {}, 1) for step, _, _ in steps], status="waiting",
                 release=True, steps=[(step, endpoint, args, f"{run.id}:{step}") for step, endpoint, args in steps],
                 callbacks=callbacks, **more)
    return run.id


def runnable(store, run_id: str) -> bool:
    """Whether a worker would take the run now (and give it back at once if it did)."""
    run = store.claim("probe", 30, run_id=run_id)
    if run is None:
        return False
    store.commit(run, "probe", [], status="waiting", wake_at=None, release=True)
    return True


# -- schema -----------------------------------------------------------------------------------------

def test_a_fresh_store_is_at_the_current_version_with_one_id_for_every_process(store, other):
    assert store.version() == SCHEMA_VERSION
    assert len(store.store_id()) == 32 and other.store_id() == store.store_id()


def test_a_store_of_a_newer_version_is_refused_and_left_as_it_is(location, store):
    with store.transaction() as conn:
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    for readonly in (False, True):
        with pytest.raises(StoreError, match="written by a newer Flowmetal") as refused:
            open_store(location, readonly=readonly)
        assert f"up to {SCHEMA_VERSION}" in str(refused.value)
    assert store.version() == SCHEMA_VERSION + 1


# -- runs, claims and leases -----------------------------------------------------------------------

def test_a_new_run_is_claimed_once(store, other):
    run_id = new_run(store)
    run = store.get_run(run_id)
    assert (run.status, run.entry, run.args, run.next_seq, run.parent) == ("pending", "demo/main", ["1"], 2, None)
    assert store.find_run(run_id[:6]).id == run_id
    assert [e.kind for e in store.events(run_id)] == ["run-started"]
    taken = store.claim("a", 30)
    assert (taken.id, taken.status, taken.owner) == (run_id, "running", "a")
    assert other.claim("b", 30) is None and store.claim("a", 30) is None
    assert store.get_run(run_id).owner == "a" and store.has_unfinished_runs()


def test_claiming_one_run_by_id_leaves_the_others(store):
    first, second = new_run(store), new_run(store)
    assert store.claim("w", 30, run_id=second).id == second
    assert store.claim("w", 30, run_id=second) is None
    assert store.get_run(first).status == "pending"


def test_an_expired_lease_lets_another_worker_take_the_run_over(store, other):
    run = claimed(store, "a", lease=-1)  # run out as soon as taken
    assert store.others_runnable("another run")
    taken = other.claim("b", 30)
    assert (taken.id, taken.owner) == (run.id, "b") and taken.epoch > run.epoch


@pytest.mark.parametrize("second_worker", ["b", "a"])  # another worker, or the same name in a new claim
def test_a_holder_that_lost_its_lease_can_neither_commit_nor_renew(store, other, second_worker):
    stale = claimed(store, "a", lease=-1)
    fresh = other.claim(second_worker, 30)
    assert fresh.id == stale.id
    with pytest.raises(LeaseLost):
        store.commit(stale, "a", [("log", None, {"message": "stale"}, 1)], status="completed", result="1")
    with pytest.raises(LeaseLost):
        store.heartbeat(stale, "a", 30)
    other.heartbeat(fresh, second_worker, 30)
    other.commit(fresh, second_worker, [("run-completed", None, {}, None)], status="completed", result="2",
                 release=True)
    run = store.get_run(stale.id)
    assert (run.status, run.result) == ("completed", "2")
    assert [e.kind for e in store.events(run.id)] == ["run-started", "run-completed"]


def test_a_commit_records_events_and_the_snapshot_in_order(store):
    run = claimed(store)
    state = {"machine": {"frames": [1, 2, 3]}, "text": "ünïcode ✓"}
    store.commit(run, "w", [("log", None, {"message": "one"}, 3), ("log", None, {"message": "two"}, 4)],
                 snapshot=state)
    store.commit(run, "w", [("run-completed", None, {"value": "3"}, None)], status="completed", result="3",
                 release=True)
    assert [(e.seq, e.kind, e.data.get("message"), e.line) for e in store.events(run.id)] == [
        (1, "run-started", None, None), (2, "log", "one", 3), (3, "log", "two", 4), (4, "run-completed", None, None)]
    assert [e.seq for e in store.events(run.id, after=1, until=3, kind="log")] == [2, 3]
    assert store.snapshot(run.id) == state and store.snapshot("nothing") is None
    ended = store.get_run(run.id)
    assert (ended.status, ended.result, ended.owner, ended.next_seq) == ("completed", "3", None, 5)
    assert not store.has_unfinished_runs()


def test_a_state_in_parts_is_written_read_and_deleted_by_key(store, other):
    run = claimed(store)
    head = {"machine": {"tasks": {"next": 3}}}
    store.commit(run, "w", [], snapshot=head, parts={"t1": '{"frames": [1]}', "t2": '{"frames": [2]}',
                                                     "e0": '["env"]'})
    assert other.snapshot(run.id) == head
    assert other.snapshot_parts(run.id, ["t1", "t2", "e0", "t9"]) == {
        "t1": '{"frames": [1]}', "t2": '{"frames": [2]}', "e0": '["env"]'}  # a key not stored is absent
    # A later commit rewrites one part, deletes another, leaves the rest as they were.
    store.commit(run, "w", [], snapshot=head, parts={"t1": '{"frames": [1, 1]}', "t2": None})
    assert other.snapshot_parts(run.id, ["t1", "t2", "e0"]) == {"t1": '{"frames": [1, 1]}', "e0": '["env"]'}
    assert other.snapshot_parts(run.id, [f"e{i}" for i in range(1200)]) == {"e0": '["env"]'}  # many keys at once
    assert other.snapshot_parts("nothing", ["t1"]) == {}


# -- timers and due times --------------------------------------------------------------------------

@pytest.mark.parametrize("due_in, is_runnable", [(3600, False), (-1, True)])
def test_a_waiting_run_is_runnable_once_its_wake_time_is_due(store, due_in, is_runnable):
    run = claimed(store)
    wake = store.clock() + due_in
    store.commit(run, "w", [("timer-set", 2, {"due": wake}, 1)], status="waiting", wake_at=wake, release=True,
                 timers=[(2, wake)])
    assert store.timer(run.id, 2)["status"] == "set" and store.timer(run.id, 2)["due"] == pytest.approx(wake)
    assert store.next_wake() == pytest.approx(wake)
    assert runnable(store, run.id) is is_runnable


def test_the_next_due_time_with_leases_is_also_when_a_running_run_may_be_taken_over(store):
    assert store.next_wake() is None and store.next_wake(leases=True) is None
    held = claimed(store, lease=600)
    assert store.next_wake() is None  # nothing waits
    assert store.next_wake(leases=True) == pytest.approx(held.lease_until, abs=1)
    run = claimed(store, lease=600)
    wake = store.clock() + 60
    store.commit(run, "w", [], status="waiting", wake_at=wake, release=True, timers=[(2, wake)])
    assert store.next_wake() == pytest.approx(wake) and store.next_wake(leases=True) == pytest.approx(wake)


def test_a_timer_cancelled_or_fired_says_so(store):
    run = claimed(store)
    store.commit(run, "w", [], timers=[(2, store.clock() + 60), (3, store.clock() + 60)], cancelled_steps=[2])
    store.commit(run, "w", [], fired_timers=[3])
    assert (store.timer(run.id, 2)["status"], store.timer(run.id, 3)["status"]) == ("cancelled", "fired")


# -- callbacks -------------------------------------------------------------------------------------

def _callback_wait(store, token: str = "tok") -> str:
    return waiting(store, steps=[(2, CALLBACK_WAIT, json.dumps({"token": token}))], callbacks=[(token, 2)])


def test_a_callback_is_delivered_once_and_wakes_its_run(store, other):
    run_id = _callback_wait(store)
    assert not runnable(store, run_id)
    assert other.deliver_callback("tok", '{"paid": true}') == "delivered"
    assert other.deliver_callback("tok", '{"paid": false}') == "duplicate"
    assert other.deliver_callback("no-such-token", "{}") == "unknown"
    step = store.step(run_id, 2)
    assert (step["status"], json.loads(step["result"])) == ("completed", '{"paid": true}')
    assert store.callback("tok")["body"] == '{"paid": true}'
    assert runnable(store, run_id)


def test_a_callback_delivered_before_the_wait_is_recorded_completes_it(store):
    run = claimed(store)
    store.commit(run, "w", [], callbacks=[("early", 2)])  # made; the run goes on computing
    assert store.deliver_callback("early", '"body"') == "kept"
    store.commit(run, "w", [], status="waiting", release=True,
                 steps=[(2, CALLBACK_WAIT, json.dumps({"token": "early"}), f"{run.id}:2")])
    assert store.step(run.id, 2)["status"] == "completed" and runnable(store, run.id)


def test_a_callback_for_an_ended_run_is_gone(store):
    run_id = _callback_wait(store)
    assert store.request_cancel(run_id) == "cancelled"
    assert store.deliver_callback("tok", "{}") == "gone"
    assert store.callback("tok")["delivered"] is None


# -- steps -----------------------------------------------------------------------------------------

def test_a_step_result_is_applied_once_and_wakes_the_run(store, other):
    run_id = waiting(store, steps=[(2, "acme/charge!", '{"amount": 3}')])
    assert [s["step"] for s in store.pending_steps("acme/charge!")] == [2]
    assert store.complete_step(run_id, 2, '"ok"')
    assert not other.complete_step(run_id, 2, '"again"') and not other.fail_step(run_id, 2, "late")
    assert not store.complete_step(run_id, 99, '"unknown step"')
    assert store.finished_steps(run_id, [2, 3])[0]["result"] == '"ok"'
    assert store.pending_steps() == [] and runnable(store, run_id)


def test_a_step_is_claimed_by_one_connector_and_completed_only_under_its_claim(store, other):
    run_id = waiting(store, steps=[(2, "acme/charge!", '{"amount": 3}'), (3, "acme/mail!", "{}")])
    claims = store.claim_steps(["acme/charge!"], "c1", 30)
    assert [(c["run_id"], c["step"], c["args"], c["key"]) for c in claims] == [
        (run_id, 2, {"amount": 3}, f"{run_id}:2")]
    assert other.claim_steps(["acme/charge!"], "c2", 30) == []
    assert store.renew_step_leases("c1", [(run_id, 2)], 30) == {(run_id, 2)}
    assert not other.complete_claimed_step(run_id, 2, "c2", '"not mine"')
    assert store.complete_claimed_step(run_id, 2, "c1", '"charged"')
    assert store.step(run_id, 2)["result"] == '"charged"'
    assert store.open_steps(["acme/mail!"]) == 1


def test_a_step_whose_claim_ran_out_goes_to_another_connector(store, other):
    run_id = waiting(store, steps=[(2, "acme/charge!", "{}")])
    assert len(store.claim_steps(["acme/charge!"], "c1", -1)) == 1
    assert [c["step"] for c in other.claim_steps(["acme/charge!"], "c2", 30)] == [2]
    assert not store.fail_claimed_step(run_id, 2, "c1", "too late")
    assert other.fail_claimed_step(run_id, 2, "c2", "the service said no")
    assert (store.step(run_id, 2)["status"], store.step(run_id, 2)["error"]) == ("failed", "the service said no")


def test_a_connector_that_claimed_a_step_again_cannot_record_its_first_claims_result(store, other):
    run_id = waiting(store, steps=[(2, "acme/charge!", "{}")])
    [first] = store.claim_steps(["acme/charge!"], "c1", -1)  # the first request's claim lapses
    [second] = other.claim_steps(["acme/charge!"], "c1", 30)  # the same connector claims the step again
    assert second["epoch"] > first["epoch"] and second["key"] == first["key"]
    stale, fresh = (run_id, 2, first["epoch"]), (run_id, 2, second["epoch"])
    assert store.renew_step_leases("c1", [stale, fresh], 30) == {fresh}
    assert not store.complete_claimed_step(run_id, 2, "c1", '"first request"', first["epoch"])
    assert not store.fail_claimed_step(run_id, 2, "c1", "first request", first["epoch"])
    assert store.release_steps("c1", [stale]) == 0
    assert store.step(run_id, 2)["status"] == "claimed"
    assert other.complete_claimed_step(run_id, 2, "c1", '"second request"', second["epoch"])
    assert not other.complete_claimed_step(run_id, 2, "c1", '"again"', second["epoch"])  # once
    assert (store.step(run_id, 2)["status"], store.step(run_id, 2)["result"]) == ("completed", '"second request"')


def test_steps_given_back_are_pending_again(store):
    run_id = waiting(store, steps=[(2, "acme/charge!", "{}")])
    store.claim_steps(["acme/charge!"], "c1", 30)
    assert store.release_steps("c1", [(run_id, 2)]) == 1
    assert store.step(run_id, 2)["status"] == "pending"


def test_a_refused_result_or_failure_says_why(store, other):
    run_id = waiting(store, steps=[(2, "acme/charge!", "{}"), (3, "acme/charge!", "{}"), (4, "acme/mail!", "{}")])
    assert store.complete_step(run_id, 99, '"x"').outcome == "unknown"
    assert store.fail_claimed_step("no-such-run", 2, "c1", "x").outcome == "unknown"
    claims = store.claim_steps(["acme/charge!"], "c1", -1, limit=1)  # its lease ran out at once
    assert [c["step"] for c in claims] == [2]
    assert [c["step"] for c in other.claim_steps(["acme/charge!"], "c2", 30, limit=1)] == [2]
    lost = store.complete_claimed_step(run_id, 2, "c1", '"late"')
    assert (lost.outcome, lost.holder) == ("lost", "c2") and "`c2`" in lost.reason
    assert store.complete_claimed_step(run_id, 3, "c1", '"never claimed"').outcome == "lost"
    assert other.complete_claimed_step(run_id, 2, "c2", '"charged"')
    done = store.fail_step(run_id, 2, "too late")
    assert (done.outcome, done.status) == ("done", "completed") and "completed already" in done.reason
    store.claim_steps(["acme/mail!"], "c1", 30)
    assert store.release_steps("c1", [(run_id, 4)]) == 1
    given_back = store.complete_claimed_step(run_id, 4, "c1", '"after giving it back"')
    assert (given_back.outcome, given_back.holder) == ("lost", None)
    assert store.request_cancel(run_id) == "cancelled"
    assert other.complete_step(run_id, 3, '"x"').outcome == "cancelled"
    assert store.step(run_id, 3)["result"] is None and store.step(run_id, 4)["result"] is None


def test_the_runtimes_own_waits_are_never_handed_to_a_connector(store):
    _callback_wait(store)
    assert store.claim_steps([CALLBACK_WAIT, SIGNAL_WAIT], "c", 30) == []


# -- signals ---------------------------------------------------------------------------------------

def test_signals_queue_in_order_and_a_key_sends_once(store, other):
    run_id = new_run(store)
    assert [(s.outcome, s.seq) for s in (store.send_signal(run_id, "go", '{"n": 1}'),
                                        other.send_signal(run_id, "go", '{"n": 2}', key="k"),
                                        store.send_signal(run_id, "go", '{"n":2}', key="k"))] == [
        ("queued", 1), ("queued", 2), ("duplicate", 2)]
    conflict = store.send_signal(run_id, "stop", "{}", key="k")
    assert (conflict.outcome, conflict.seq, conflict.name) == ("conflict", 2, "go")
    assert [(s["seq"], s["body"], s["step"]) for s in store.signals(run_id)] == [
        (1, '{"n": 1}', None), (2, '{"n": 2}', None)]
    assert store.next_signal(run_id, "go")["seq"] == 1 and store.next_signal(run_id, "go", skip=[1])["seq"] == 2


@pytest.mark.parametrize("case, outcome", [("unknown", "unknown"), ("ended", "ended")])
def test_a_signal_to_no_run_or_an_ended_one_is_refused(store, case, outcome):
    run_id = "no-such-run"
    if case == "ended":
        run_id = new_run(store)
        store.request_cancel(run_id)
    sent = store.send_signal(run_id, "go", "{}")
    assert sent.outcome == outcome and (case != "ended" or sent.status == "cancelled")


def test_a_signal_wakes_a_run_waiting_for_it_and_is_consumed_with_its_commit(store):
    run_id = waiting(store, steps=[(2, SIGNAL_WAIT, json.dumps({"name": "go"}))])
    assert not runnable(store, run_id)
    store.send_signal(run_id, "go", '"now"')
    run = store.claim("w2", 30, run_id=run_id)
    assert run is not None
    store.commit(run, "w2", [("step-completed", 2, {}, 1)], signals=[(1, 2)], completed_steps=[(2, '"now"')])
    assert store.signals(run_id)[0]["step"] == 2 and store.next_signal(run_id, "go") is None


# -- child runs ------------------------------------------------------------------------------------

def test_a_child_run_is_made_with_its_parents_step_and_cancelled_with_it(store):
    parent = claimed(store)
    kid = child_id(parent.id, 2)
    store.commit(parent, "w", [("step-completed", 2, {}, 1)], children=[(kid, "demo/child", ["2"])],
                 status="waiting", release=True, awaited_children=[kid])
    child = store.get_run(kid)
    assert (child.parent, child.entry, child.args, child.status, child.program) == (
        parent.id, "demo/child", ["2"], "pending", parent.program)
    assert [c.id for c in store.children(parent.id)] == [kid]
    assert [r.parent for r in store.list_runs()] == [None, parent.id]
    grandchild = store.claim("w", 30, run_id=kid)
    store.commit(grandchild, "w", [], children=[(child_id(kid, 3), "demo/child", ["3"])], status="waiting",
                 release=True)
    assert [d.id for d in store.descendants(parent.id)] == [kid, child_id(kid, 3)]
    assert store.request_cancel(parent.id) == "cancelled"
    assert {r.id: r.status for r in store.list_runs()} == {
        parent.id: "cancelled", kid: "cancelled", child_id(kid, 3): "cancelled"}


def test_a_child_that_ends_wakes_its_waiting_parent(store):
    parent = claimed(store)
    kid = child_id(parent.id, 2)
    store.commit(parent, "w", [], children=[(kid, "demo/child", [])], status="waiting", release=True,
                 awaited_children=[kid])
    assert not runnable(store, parent.id)
    child = store.claim("w", 30, run_id=kid)
    store.commit(child, "w", [], status="completed", result="1", release=True)
    assert runnable(store, parent.id)


def test_a_running_run_is_asked_to_stop(store):
    run = claimed(store)
    assert store.request_cancel(run.id) == "cancelling" and store.cancel_requested(run.id)
    assert not store.cancel_requested(new_run(store))
    with pytest.raises(StoreError, match="no run"):
        store.request_cancel("no-such-run")


# -- presence and settings --------------------------------------------------------------------------

def test_presence_says_which_live_processes_serve_which_endpoints(store, other):
    run_id = waiting(store, steps=[(2, "acme/charge!", "{}"), (3, "acme/mail!", "{}")])
    assert store.unserved(run_id) == ["acme/charge!", "acme/mail!"]
    other.announce("billing", "connector", ["acme/charge!"], pid=7, host="h")
    other.announce("billing", "connector", ["acme/charge!"], pid=8, host="h")  # refreshed, not doubled
    assert [(p["name"], p["pid"], p["endpoints"]) for p in store.presence()] == [("billing", 8, ["acme/charge!"])]
    assert store.unserved(run_id) == ["acme/mail!"]
    other.withdraw("billing")
    assert store.presence() == [] and store.unserved(run_id) == ["acme/charge!", "acme/mail!"]


def test_the_public_url_is_a_setting_every_process_reads(store, other):
    assert store.public_url() == "http://127.0.0.1:8700" and store.setting("public_url") is None
    assert store.set_public_url("http://127.0.0.1:9000") is None
    assert other.set_public_url("https://flows.example") == "http://127.0.0.1:9000"
    assert store.public_url() == "https://flows.example"


def test_a_run_key_names_one_run(store, other):
    assert store.run_key("k") is None
    assert store.record_run_key("k", "fp1", "run1") == ("run1", "fp1")
    assert other.record_run_key("k", "fp2", "run2") == ("run1", "fp1")


# -- the change feed ------------------------------------------------------------------------------

def test_the_change_token_moves_with_every_commit_and_only_then(store, other):
    run_id = new_run(store)
    token = store.change_token()
    assert store.change_token() == token and store.get_run(run_id) is not None  # reading changes nothing
    assert store.change_token() == token
    other.send_signal(run_id, "go", "{}")
    moved = store.change_token()
    assert moved != token
    store.request_cancel(run_id)  # this store object's own commit too
    assert store.change_token() != moved


def test_runs_updated_since_a_time_are_listed(store):
    old = new_run(store)
    run = claimed(store)
    stamp = store.get_run(run.id).updated
    assert run.id in [r.id for r in store.list_runs(since=stamp)]
    assert store.list_runs(since=stamp + 3600) == []
    assert [r.id for r in store.list_runs()] == [old, run.id]


def test_runs_are_counted_by_entry_and_program_whatever_their_status(store):
    assert store.count_runs() == []
    other_program = store.put_sources({"demo.flow": "(defpackage demo) ; changed"})
    for _ in range(3):
        new_run(store)
    claimed(store)  # running: counted too
    new_run(store, "demo/other")
    store.create_run("demo/main", ["2"], other_program, "code")
    demo = store.put_sources({"demo.flow": "(defpackage demo)"})
    assert sorted(store.count_runs(), key=lambda c: (c[0], c[2])) == [
        ("demo/main", other_program, 1), ("demo/main", demo, 4), ("demo/other", demo, 1)]


def test_runs_are_listed_narrowed_by_status_entry_and_the_last_recorded(store):
    main = [new_run(store) for _ in range(3)]
    bare = new_run(store, "main")               # started with the function's name alone
    other = new_run(store, "demo.x/main")        # another package's `main`
    almost = new_run(store, "demo/mainly")
    running = claimed(store)                     # demo/main, running
    ids = lambda runs: [r.id for r in runs]      # noqa: E731
    assert ids(store.list_runs(statuses=["running"])) == [running.id]
    assert ids(store.list_runs(statuses=["pending", "running"], last=2)) == [almost, running.id]
    assert ids(store.list_runs(statuses=[])) == [] and ids(store.list_runs(entries=[])) == []
    assert ids(store.list_runs(entries=["demo/main"])) == [*main, running.id]
    assert ids(store.list_runs(entries=["main"])) == [*main, bare, other, running.id]  # any package's
    assert ids(store.list_runs(entries=["Main"])) == []                               # exact case
    assert ids(store.list_runs(entries=["demo/main", "main"], last=3)) == [bare, other, running.id]
    assert ids(store.list_runs(last=1)) == [running.id]
    assert ids(store.list_runs(last=100)) == ids(store.list_runs())


def test_an_empty_store_has_no_changes_and_reading_moves_no_cursor(store):
    assert store.changes(0) == ([], 0) and store.change_cursor() == 0
    run_id = new_run(store)
    runs, cursor = store.changes(0)
    assert [r.id for r in runs] == [run_id] and cursor > 0
    assert store.changes(cursor) == ([], cursor) and store.changes(cursor) == ([], cursor)
    assert store.change_cursor() == cursor


def test_every_change_to_a_run_is_read_once_in_the_order_of_the_sequence(store, other):
    read = []

    def look(cursor):
        runs, moved = store.changes(cursor)
        assert moved >= cursor and [r.change_seq for r in runs] == sorted(r.change_seq for r in runs)
        assert all(cursor < r.change_seq <= moved for r in runs)
        read.append([(r.id, r.status) for r in runs])
        return moved

    cursor = look(0)
    a, b = new_run(store), new_run(other)                                      # created
    cursor = look(cursor)
    run = store.claim("w", 30, run_id=a)                                       # claimed
    store.heartbeat(run, "w", 30)                                              # a lease renewed: no change
    cursor = look(cursor)
    store.commit(run, "w", [("step-requested", 2, {}, 1)], status="waiting", release=True,
                 steps=[(2, "acme/charge!", "{}", f"{a}:2")])                 # new events, waiting
    cursor = look(cursor)
    other.complete_step(a, 2, '"ok"')                                          # woken
    cursor = look(cursor)
    claimed_b = other.claim("v", 30, run_id=b)
    store.request_cancel(b)                                                    # a cancel asked for
    cursor = look(cursor)
    other.commit(claimed_b, "v", [("run-cancelled", None, {}, None)], status="cancelled")  # ended
    store.request_cancel(a)                                                    # cancelled at once
    cursor = look(cursor)
    assert read == [[], [(a, "pending"), (b, "pending")], [(a, "running")], [(a, "waiting")], [(a, "waiting")],
                    [(b, "running")], [(b, "cancelled"), (a, "cancelled")]]
    assert store.changes(cursor) == ([], cursor)
    assert store.get_run(a).change_seq == cursor and store.change_cursor() == cursor


def test_a_change_committed_after_a_later_one_is_not_missed(location, store, other):
    """Two writers: the one that took the lower value commits after the other. A reader between
    the two commits must not move its cursor past the value still in flight."""
    first, second = (waiting(store, steps=[(2, "acme/charge!", "{}")]) for _ in range(2))
    reader = open_store(location)
    try:
        _, cursor = reader.changes(0)
        ahead = store.transaction()
        conn = ahead.__enter__()
        try:
            store._wake(conn, first, store.clock())  # the lower value, taken first, committed last
            behind = threading.Thread(target=other.complete_step, args=(second, 2, '"ok"'))
            behind.start()
            if location.startswith("postgresql"):  # SQLite's writers queue: the second commits after
                behind.join()
                runs, moved = reader.changes(cursor)
                assert [r.id for r in runs] == [] and moved == cursor
        finally:
            ahead.__exit__(None, None, None)
        behind.join()
        runs, moved = reader.changes(cursor)
        assert [r.id for r in runs] == [first, second] and moved > cursor
        assert reader.get_run(first).change_seq < reader.get_run(second).change_seq
        assert reader.changes(moved) == ([], moved)
    finally:
        reader.close()


def test_runs_recorded_before_the_change_sequence_are_stamped_in_the_order_they_changed(location, store):
    a, b = new_run(store), new_run(store)
    store.request_cancel(a)  # changed after b
    with store.transaction() as conn:  # the store as it was at version 9
        conn.execute('DROP INDEX "runs_by_change"')
        conn.execute('ALTER TABLE "runs" DROP COLUMN "change_seq"')
        conn.execute("UPDATE meta SET value='9' WHERE key='schema_version'")
    old = open_store(location, readonly=True)
    try:
        assert [r.id for r in old.changes(0)[0]] == [a, b] and old.changes(5) == (old.list_runs(), 5)
    finally:
        old.close()
    migrated = open_store(location)
    try:
        assert migrated.version() == SCHEMA_VERSION
        runs, cursor = migrated.changes(0)
        assert sorted(r.id for r in runs) == sorted([a, b]) and cursor > 0
        if not location.startswith("postgresql"):  # PostgreSQL stamps them all with the migration's id
            assert [r.id for r in runs] == [b, a]
        c = new_run(migrated)
        assert [r.id for r in migrated.changes(cursor)[0]] == [c]
    finally:
        migrated.close()


# -- a wait and what ends it, at the same moment ---------------------------------------------------
# Whichever commits first, the run must wake: the wait's commit sees what came, or what came sees
# the wait. Each case: what the run recorded before (while running), the commit of its wait, and
# what ends the wait, done from another store object at the same moment.

WAKE_RACES = {
    "a callback delivered": (
        lambda run_id: {"callbacks": [(f"tok-{run_id}", 2)]},
        lambda run_id: {"steps": [(2, CALLBACK_WAIT, json.dumps({"token": f"tok-{run_id}"}), f"{run_id}:2")]},
        lambda other, run_id: other.deliver_callback(f"tok-{run_id}", '"body"')),
    "a signal sent": (
        lambda run_id: {},
        lambda run_id: {"steps": [(2, SIGNAL_WAIT, json.dumps({"name": "go"}), f"{run_id}:2")]},
        lambda other, run_id: other.send_signal(run_id, "go", "{}")),
    "a step's result": (
        lambda run_id: {"steps": [(2, "acme/charge!", "{}", f"{run_id}:2")]},
        lambda run_id: {},  # any finished step the run has not taken wakes it: no need to name it
        lambda other, run_id: other.complete_step(run_id, 2, '"ok"')),
}


@pytest.mark.parametrize("case", list(WAKE_RACES))
def test_a_wait_and_what_ends_it_at_the_same_moment_always_wake_the_run(store, other, case):
    before, wait, wake = WAKE_RACES[case]
    for _ in range(15):
        run = claimed(store)
        store.commit(run, "w", [], **before(run.id))
        both = threading.Barrier(2)

        def waker():
            both.wait()
            wake(other, run.id)
        thread = threading.Thread(target=waker)
        thread.start()
        both.wait()
        store.commit(run, "w", [], status="waiting", release=True, **wait(run.id))
        thread.join()
        assert runnable(store, run.id), case


def test_a_parents_wait_and_its_childs_end_at_the_same_moment_always_wake_the_parent(store, other):
    for _ in range(15):
        parent = claimed(store)
        kid = child_id(parent.id, 2)
        store.commit(parent, "w", [], children=[(kid, "demo/child", [])])
        child = other.claim("w2", 30, run_id=kid)
        both = threading.Barrier(2)

        def end_child():
            both.wait()
            other.commit(child, "w2", [], status="completed", result="1", release=True)
        thread = threading.Thread(target=end_child)
        thread.start()
        both.wait()
        store.commit(parent, "w", [], status="waiting", release=True, awaited_children=[kid])
        thread.join()
        assert runnable(store, parent.id)


# -- steps performed in the run's own process (`commit`'s inline_steps and inline_results) ----------------

def test_an_inline_step_has_no_row_until_its_result_is_recorded_once(store, other):
    run = claimed(store, "w")
    got = store.commit(run, "w", [("step-requested", 1, {}, 1)], inline_steps=[(1, "a/b!", "{}", f"{run.id}:1")])
    assert got == {1: 1}
    assert store.step(run.id, 1) is None  # held by the run's lease alone
    assert other.claim_steps(["a/b!"], "connector", 30) == []  # no connector is told of it
    store.commit(run, "w", [("step-completed", 1, {}, 1)],
                 inline_results=[(1, "a/b!", '{"n": 1}', f"{run.id}:1", "completed", "7")],
                 status="completed", result="7", release=True)
    row = store.step(run.id, 1)
    assert ({k: row[k] for k in ("status", "result", "error", "claimed_by", "endpoint", "args", "key")}
            == {"status": "applied", "result": "7", "error": None, "claimed_by": "w", "endpoint": "a/b!",
                "args": '{"n": 1}', "key": f"{run.id}:1"})
    assert row["completed"] is not None


def test_a_step_the_store_knows_is_not_performed_inline(store, other):
    run = claimed(store, "w")
    store.commit(run, "w", [], steps=[(1, "a/b!", "{}", f"{run.id}:1")])  # asked of a connector
    assert store.commit(run, "w", [], inline_steps=[(1, "a/b!", "{}", f"{run.id}:1")]) == {}
    assert store.commit(run, "w", [], snapshot={"at": 1}, inline_steps=[(1, "a/b!", "{}", f"{run.id}:1")]) == {}
    assert store.step(run.id, 1)["status"] == "pending"


def test_a_commit_of_more_than_inline_steps_treats_them_alike(store, other):
    """(On PostgreSQL, a commit with any other change takes the transaction, not the function.)"""
    run = claimed(store, "w")
    store.commit(run, "w", [], steps=[(1, "a/b!", "{}", f"{run.id}:1")])
    got = store.commit(run, "w", [("step-requested", 2, {}, 1)], timers=[(9, 4e9)], snapshot={"at": 2},
                       inline_steps=[(2, "a/b!", "{}", f"{run.id}:2"), (1, "a/b!", "{}", f"{run.id}:1")])
    assert got == {2: 1} and store.step(run.id, 2) is None and store.snapshot(run.id) == {"at": 2}
    with pytest.raises(LeaseLost):  # a result for a step the store knows
        store.commit(run, "w", [("step-completed", 1, {}, 1)], timers=[(10, 4e9)],
                     inline_results=[(1, "a/b!", "{}", f"{run.id}:1", "completed", "1")])
    assert store.step(run.id, 1)["status"] == "pending" and store.get_run(run.id).next_seq == 3
    store.commit(run, "w", [("step-completed", 2, {}, 1)], timers=[(11, 4e9)],
                 inline_results=[(2, "a/b!", "{}", f"{run.id}:2", "completed", "5")])
    row = store.step(run.id, 2)
    assert (row["status"], row["result"], row["claimed_by"]) == ("applied", "5", "w")


def test_commits_of_inline_steps_alone_record_what_any_commit_records(store, other):
    """(On PostgreSQL such a commit is one server-side function: the same rows, the same refusals.)"""
    run = claimed(store, "w")
    state = {"machine": {"frames": [1, 2]}, "text": "ünïcode ✓ \u2028"}
    got = store.commit(run, "w", [("log", None, {"message": "hé", "_time": 1234.5}, 3),
                                  ("step-requested", 1, {"endpoint": "a/b!"}, 4)],
                       snapshot=state, inline_steps=[(1, "a/b!", '{"n": 1}', f"{run.id}:1")])
    assert got == {1: 1} and store.snapshot(run.id) == state
    got = store.commit(run, "w", [("step-completed", 1, {"result": "\"é\""}, 4), ("step-requested", 2, {}, 5)],
                       snapshot=json.dumps({"at": 2}),
                       inline_results=[(1, "a/b!", '{"n": 1}', f"{run.id}:1", "completed", '"é"')],
                       inline_steps=[(2, "a/b!", "{}", f"{run.id}:2"), (1, "a/b!", "{}", f"{run.id}:1")])
    assert got == {2: 1}  # step 1 is known now (its result): not performed again
    store.commit(run, "w", [("step-failed", 2, {}, 5)],
                 inline_results=[(2, "a/b!", "{}", f"{run.id}:2", "failed", "boom")])
    events = store.events(run.id)
    assert [(e.seq, e.kind, e.step, e.line) for e in events] == [
        (1, "run-started", None, None), (2, "log", None, 3), (3, "step-requested", 1, 4),
        (4, "step-completed", 1, 4), (5, "step-requested", 2, 5), (6, "step-failed", 2, 5)]
    assert events[1].time == 1234.5 and events[1].data == {"message": "hé"}
    assert events[2].time >= run.created - 60 and events[3].data == {"result": '"é"'}
    assert store.snapshot(run.id) == {"at": 2}
    assert [(s["status"], s["result"], s["error"], s["claimed_by"], s["args"]) for s in (
        store.step(run.id, 1), store.step(run.id, 2))] == [
        ("applied", '"é"', None, "w", '{"n": 1}'), ("applied", None, "boom", "w", "{}")]
    assert store.get_run(run.id).next_seq == 7 and store.get_run(run.id).status == "running"
    # Refused as a whole: a result for a step another performs, then a run another worker took over.
    store.commit(run, "w", [], steps=[(3, "a/b!", "{}", f"{run.id}:3")])
    assert [t["step"] for t in other.claim_steps(["a/b!"], "connector", 30)] == [3]
    with pytest.raises(LeaseLost):
        store.commit(run, "w", [("step-completed", 3, {}, 6)],
                     inline_results=[(3, "a/b!", "{}", f"{run.id}:3", "completed", "1")],
                     inline_steps=[(4, "a/b!", "{}", f"{run.id}:4")], snapshot={"lost": True})
    assert store.get_run(run.id).next_seq == 7 and store.step(run.id, 4) is None
    assert store.step(run.id, 3)["status"] == "claimed" and store.snapshot(run.id) == {"at": 2}
    store.commit(run, "w", [], status="pending", release=True)
    assert other.claim("other", 30, run_id=run.id) is not None
    with pytest.raises(LeaseLost):
        store.commit(run, "w", [("log", None, {}, 1)], inline_steps=[(5, "a/b!", "{}", f"{run.id}:5")])
    assert store.get_run(run.id).next_seq == 7


def test_an_inline_result_is_refused_once_another_worker_took_the_run(store, other):
    run = claimed(store, "w", lease=-1)  # its lease runs out at once: another worker may take the run
    store.commit(run, "w", [("step-requested", 1, {}, 1)], inline_steps=[(1, "a/b!", "{}", f"{run.id}:1")])
    again = other.claim("w2", 30, run_id=run.id)
    assert again is not None and again.epoch == run.epoch + 1
    # The new holder asks a connector for the step (`Executor.resume_inline`); one performs it.
    other.commit(again, "w2", [], steps=[(1, "a/b!", "{}", f"{run.id}:1")], status="waiting", release=True)
    taken = other.claim_steps(["a/b!"], "connector", 30)
    assert [(t["step"], t["key"]) for t in taken] == [(1, f"{run.id}:1")]
    with pytest.raises(LeaseLost):
        store.commit(run, "w", [("step-completed", 1, {}, 1)],
                     inline_results=[(1, "a/b!", "{}", f"{run.id}:1", "completed", "7")],
                     status="completed", result="7", release=True)
    assert store.get_run(run.id).status == "waiting"  # nothing of it kept
    assert [e.kind for e in store.events(run.id)] == ["run-started", "step-requested"]
    assert other.complete_claimed_step(run.id, 1, "connector", "8", taken[0]["epoch"])
    assert store.step(run.id, 1)["result"] == "8"
