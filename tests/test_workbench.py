"""The workbench's feed of changes (`flowmetal.ide.workbench.Workbench.changes`), on a real store.

Runs progress in another thread (its own store connection, as another process
would) while the feed is read as fast as it can be: every event of every run
must be reported exactly once, in order, and every run's last report must be
its final state.
"""

from __future__ import annotations

import threading
import time

from flowmetal.ide.workbench import Workbench
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage feed
  (require [flowmetal.time :refer [sleep! make-duration +milliseconds+]]
           [flowmetal.log :refer [log!]])
  (defn ticks [n : int?] : int?
    (if (= n 0)
      0
      (do (log! (str "tick " n))
          (sleep! (make-duration 1 +milliseconds+))
          (+ 1 (ticks (- n 1)))))))
"""


def test_every_event_is_reported_once_in_order_while_runs_progress(tmp_path):
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    sources = {"feed.flow": PROGRAM}
    stored = store.put_sources(sources)
    bench = Workbench(str(path))
    assert bench.changes().runs == []  # the first look takes stock

    run_ids = [store.create_run("feed/ticks", [str(n)], stored, code_hash(sources)) for n in (30, 40, 50)]
    done = threading.Event()

    def work() -> None:
        own = SQLiteStore(path)
        executor = Executor(own)
        while not all(own.get_run(r).status == "completed" for r in run_ids):
            if executor.run_once() is None:
                time.sleep(0.001)
        own.close()
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    reported: dict[str, list[int]] = {r: [] for r in run_ids}
    last: dict[str, str] = {}
    looks = 0
    while True:
        finished = done.is_set()
        changes = bench.changes()
        looks += 1
        for run in changes.runs:
            last[run.id] = run.status
        for run, event in changes.events:
            reported[run.id].append(event.seq)
            assert event.span is not None, (run.id, event.kind)
        if finished:
            break
    worker.join()
    for run_id in run_ids:
        logged = [e.seq for e in store.events(run_id)]
        assert reported[run_id] == logged, run_id
        assert last[run_id] == "completed"
    assert looks > 10  # the feed was read while the runs went on, not once at the end
    bench.close()
    store.close()


def test_a_change_stamped_by_a_clock_behind_the_others_is_reported(tmp_path):
    """Machines' clocks disagree: a worker whose clock is an hour behind claims a run after
    another's was seen. The feed follows the store's sequence, not the times stamped."""
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    stored = store.put_sources({"feed.flow": PROGRAM})
    bench = Workbench(str(path))
    assert bench.changes().runs == []
    ahead, behind = (store.create_run("feed/ticks", ["1"], stored, code_hash({"feed.flow": PROGRAM}))
                     for _ in range(2))
    assert {r.id for r in bench.changes().runs} == {ahead, behind}
    store.claim("ahead", 30, run_id=ahead)
    assert [(r.id, r.status) for r in bench.changes().runs] == [(ahead, "running")]
    store.claim("behind", 30, now=time.time() - 3600, run_id=behind)
    assert [(r.id, r.status) for r in bench.changes().runs] == [(behind, "running")]
    assert bench.changes().runs == []
    bench.close()
    store.close()


CALLBACK = """\
(defpackage hook
  (require [http.callback :refer [make-callback! get-callback! callback-url]]
           [flowmetal.log :refer [log!]])
  (defn wait-for-it [] : str?
    (let [cb (make-callback!)]
      (log! (callback-url cb))
      (get-callback! cb))))
"""


def test_a_run_started_in_the_editor_takes_its_callback_after_the_editor_closed(tmp_path):
    """The editor's worker builds callback URLs on the store's public URL (SPEC section 6),
    never on a port of its own: closed while its run waits, the callback still reaches the
    run through a `flowmetal serve` of the store, started later on that URL."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    store.set_public_url(f"http://127.0.0.1:{port}")
    bench = Workbench(str(path))
    run_id = bench.start({"hook.flow": CALLBACK}, "hook/wait-for-it", [])
    deadline = time.monotonic() + 60
    while not [e for e in store.events(run_id) if e.kind == "log"]:
        assert time.monotonic() < deadline, "the run never asked for its callback"
        time.sleep(0.05)
    (log,) = [e for e in store.events(run_id) if e.kind == "log"]
    url = log.data["message"]
    assert url.startswith(f"http://127.0.0.1:{port}/callback/")
    bench.close()  # the editor closes: nothing listens there now
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWMETAL_STORE", "FLOWMETAL_PUBLIC_URL")}
    serve = subprocess.Popen([sys.executable, "-m", "flowmetal", "serve", "--store", str(path), "--port", str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert "listening on" in serve.stdout.readline()
        request = urllib.request.Request(url, data=json.dumps("done").encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(request, timeout=30).status == 200
        while store.get_run(run_id).status != "completed":
            assert time.monotonic() < deadline + 60, store.get_run(run_id)
            time.sleep(0.05)
    finally:
        serve.terminate()
        serve.wait(30)
    assert store.get_run(run_id).result == '"\\"done\\""'


def test_runs_are_counted_by_qualified_entry_whether_started_by_name_or_package_and_name(tmp_path):
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    sources = {"feed.flow": PROGRAM}
    stored = store.put_sources(sources)
    bench = Workbench(str(path))
    assert bench.entry_counts() == {}
    for entry in ("feed/ticks", "ticks", "feed/ticks"):  # `ticks` alone names the one package's function
        store.create_run(entry, ["1"], stored, code_hash(sources))
    store.create_run("other/main", [], store.put_sources({"other.flow": "(defpackage other)"}), "x")
    assert bench.entry_counts() == {"feed/ticks": 3, "other/main": 1}
    assert bench.entry_counts() == {entry: len(bench.runs(entry)) for entry in ("feed/ticks", "other/main")}
