"""A fleet on one PostgreSQL store, as real processes (`fleet_kit`): two `serve`s behind a
load balancer (the public URL) and two `worker`s, running runs that sleep, post a job to the
examples' fake wilson service and wait for its callback.

- Each process killed with SIGKILL at random instants (and started again) while hundreds
  of runs go through: every run completes once with the right value, each step is applied
  once, each callback delivered once, each job asked under one idempotency key. The seed
  is printed (shown on failure); `FLOWMETAL_FLEET_SEED` replays one.
- A worker paused (SIGSTOP) past its lease, then continued (SIGCONT): the store refused
  what it tried to commit for the run another worker took over (`LeaseLost`, in its log),
  every step was applied once, and it carries on with other runs.
- PostgreSQL restarted (fast shutdown) under load: the processes reconnect and carry on,
  and every run completes once.
- A copy taken with `pg_dump` while runs wait for callbacks, restored into another
  database and served there: the runs go on and complete once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from fleet_kit import (FINAL, ROOT, Balancer, Charges, Fleet, Wilson, check_runs, serve, sources,
                       wait_until, worker)

from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import open_store


def start_run(balancer: Balancer, host: str, nap: int, service: str) -> str:
    """Start a run through the public URL, as a client that retries: one Idempotency-Key for
    every attempt, so a serve killed mid-request never makes the run twice."""
    import httpx
    key = str(uuid.uuid4())
    body = {"sources": sources(), "entry": "fleet.test/reboot", "args": [f'"{host}"', str(nap), f'"{service}"']}
    for _ in range(20):
        try:
            answer = httpx.post(balancer.url + "/api/runs", json=body, headers={"Idempotency-Key": key}, timeout=30)
        except httpx.TransportError:
            continue
        if answer.status_code in (200, 201):
            return answer.json()["id"]
        assert answer.status_code >= 500, answer.text  # a serve that died mid-request: again
    raise AssertionError(f"the run of {host} could not be started")


def all_ended(store, count: int) -> bool:
    runs = store.list_runs()
    return len(runs) >= count and all(r.status in FINAL for r in runs)


def test_a_fleet_killed_at_random_instants_completes_every_run_once(tmp_path: Path, postgres_url: str):
    seed = int(os.environ.get("FLOWMETAL_FLEET_SEED") or random.randrange(2**32))
    print(f"fleet seed: {seed} (FLOWMETAL_FLEET_SEED={seed} replays it)")
    rng = random.Random(seed)
    store = open_store(postgres_url)  # migrated once here, before the fleet starts
    fleet = Fleet.start(postgres_url, tmp_path)
    balancer, wilson = fleet.balancer, fleet.wilson
    runs: dict[str, str] = {}
    try:
        count, kills_until = 200, time.monotonic() + 40
        next_kill = time.monotonic() + rng.uniform(0.5, 2.0)
        progress, victims = [], []
        stored = store.put_sources(sources())
        while len(runs) < count or time.monotonic() < kills_until:
            if len(runs) < count:
                # New runs keep coming, so that every process is busy whenever it is killed:
                # most recorded directly (checking a program costs a serve's CPU), every tenth
                # started through the public URL, retried under its Idempotency-Key.
                host, nap = f"host-{len(runs) + 1}", rng.randrange(20, 200)
                if len(runs) % 10 == 0:
                    run_id = start_run(balancer, host, nap, wilson.url)
                else:
                    run_id = store.create_run("fleet.test/reboot", [f'"{host}"', str(nap), f'"{wilson.url}"'],
                                              stored, code_hash(sources()))
                runs[run_id] = host
                time.sleep(rng.uniform(0.0, 0.3))
            else:
                time.sleep(0.05)
            if time.monotonic() >= next_kill:
                if not victims:  # each process in turn, in a random order each round
                    victims = rng.sample(fleet.processes, len(fleet.processes))
                victim = victims.pop()
                victim.restart()  # SIGKILL, then started again: one process is down at a time
                progress.append(sum(r.next_seq for r in store.list_runs()))
                next_kill = time.monotonic() + rng.uniform(0.5, 2.0)
        # The kills fell while there was work to do: the logs grew between most of them.
        assert sum(1 for a, b in zip(progress, progress[1:]) if b > a) > len(progress) // 2, progress
        assert all(p.kills for p in fleet.processes), [(p.name, p.kills) for p in fleet.processes]
        # A run held by a killed serve waits out its lease (30 s) before another takes it over.
        wait_until(lambda: all_ended(store, count), "every run to end", timeout=120, every=0.5)
        check_runs(store, runs, wilson)
    finally:
        fleet.close()
        store.close()


PAUSED = """\
(defpackage paused.test
  (defendpoint charge! [amount : int?] : int? "Charge, outside the interpreter.")
  (defn spin [i : int? total : int?] : int?
    (if (= i 0) total (spin (- i 1) (+ total (mod i 7)))))
  (defn crunch [n : int? rounds : int?] : int?
    (let [a (charge! n)
          s (spin rounds 0)
          b (charge! (+ n 1))]
      (+ a b s))))
"""


def spun(rounds: int) -> int:
    return sum(i % 7 for i in range(1, rounds + 1))


def test_a_worker_paused_past_its_lease_cannot_commit_after_another_took_over(tmp_path: Path, postgres_url: str):
    store = open_store(postgres_url)
    sources = {"paused.flow": PAUSED}
    stored = store.put_sources(sources)
    service = Charges(postgres_url, "paused.test/charge!")
    service.start()
    first = worker("first", postgres_url, tmp_path, lease=1.0).start()
    second = worker("second", postgres_url, tmp_path, lease=1.0)
    rounds = 3_000_000  # seconds of computing, between the two steps
    try:
        run_id = store.create_run("paused.test/crunch", ["10", str(rounds)], stored, code_hash(sources))

        def computing(pid: int) -> bool:
            # Holding the run, with the first step's result and the second step not asked yet.
            run, done = store.get_run(run_id), store.step(run_id, 1)
            return (run.status == "running" and f":{pid}:" in (run.owner or "") and done is not None
                    and done["status"] in ("completed", "applied") and store.step(run_id, 2) is None)
        wait_until(lambda: computing(first.proc.pid), "the first worker to compute between the steps", timeout=60)
        first.signal(signal.SIGSTOP)
        second.start()
        # The first's lease runs out; the second takes the run over and completes it.
        wait_until(lambda: store.get_run(run_id).status in FINAL, "the run to end", timeout=120, every=0.1)
        run = store.get_run(run_id)
        assert (run.status, run.result) == ("completed", str(20 + 22 + spun(rounds))), (run.status, run.error)
        assert f"run {run_id} paused.test/crunch: claimed" in second.logged()
        events_before = [(e.seq, e.kind, e.step) for e in store.events(run_id)]
        first.signal(signal.SIGCONT)
        # What the first worker did meanwhile is refused: it says it lost the run, and the run's
        # log is as the second left it.
        wait_until(lambda: f"run {run_id}: left to another worker (its lease ran out)" in first.logged(),
                   "the first worker to find its lease lost", timeout=60)
        assert [(e.seq, e.kind, e.step) for e in store.events(run_id)] == events_before
        kinds = Counter(e.kind for e in store.events(run_id))
        assert kinds["run-completed"] == 1 and kinds["step-completed"] == 2, kinds
        assert [store.step(run_id, s)["status"] for s in (1, 2)] == ["applied", "applied"]
        assert set(service.seen.values()) == {1} and len(service.seen) == 2
        # The first worker carries on: with the second stopped, it alone completes a new run.
        assert second.stop() == 0
        later = store.create_run("paused.test/crunch", ["100", "10"], stored, code_hash(sources))
        wait_until(lambda: store.get_run(later).status in FINAL, "the first worker's next run", timeout=60)
        assert (store.get_run(later).status, store.get_run(later).result) == ("completed", str(200 + 202 + spun(10)))
        assert f"run {later} paused.test/crunch: claimed" in first.logged()
        assert first.proc.poll() is None
    finally:
        if first.proc.poll() is None:
            first.signal(signal.SIGCONT)
        first.kill9()
        second.kill9()
        service.stop.set()
        store.close()


def test_restarting_postgresql_under_load_loses_nothing(tmp_path: Path, own_postgres):
    directory, url = own_postgres
    store = open_store(url)
    fleet = Fleet.start(url, tmp_path)
    wilson = fleet.wilson
    runs: dict[str, str] = {}
    stored = store.put_sources(sources())
    try:
        for restart in range(2):
            for i in range(30):
                host = f"host-{restart}-{i}"
                runs[store.create_run("fleet.test/reboot", [f'"{host}"', str(20 * (i % 5)), f'"{wilson.url}"'],
                                      stored, code_hash(sources()))] = host
            # Restarted while runs are being claimed, sleeping, posting and called back.
            wait_until(lambda: sum(r.status == "completed" for r in store.list_runs()) >= 30 * restart + 5,
                       "some runs to complete", timeout=60)
            done = subprocess.run([str(ROOT / "scripts" / "postgres"), "restart", directory], capture_output=True,
                                  text=True, timeout=180)
            assert done.returncode == 0, done.stderr
        wait_until(lambda: all_ended(store, len(runs)), "every run to end", timeout=120, every=0.5)
        check_runs(store, runs, wilson)
        # Every process lived through the restarts, and they were felt: some store call failed.
        processes = fleet.processes
        assert [p.proc.poll() for p in processes] == [None] * len(processes), [p.logged()[-2000:] for p in processes]
        # ...and said so in one line each time, as for any error a user can act on: no traceback.
        for process in fleet.workers:
            assert "Traceback" not in process.logged(), process.logged()[-3000:]
    finally:
        fleet.close()
        store.close()


def test_a_store_restored_from_a_copy_taken_under_load_goes_on(tmp_path: Path, postgres_url: str):
    """`pg_dump` while runs wait for their callbacks; the copy restored into another database
    and served there: the runs go on from where the copy found them, and the callbacks the
    service sends meanwhile (through the public URL) reach them there."""
    bin_dir = Path("/usr/lib/postgresql/15/bin")
    wilson = Wilson(tmp_path, delay=1.0)
    backends: list[str] = []
    balancer = Balancer(lambda: list(backends), patience=60)  # no serve at first: callbacks wait
    store = open_store(postgres_url)
    store.set_public_url(balancer.url)
    stored = store.put_sources(sources())
    runs = {store.create_run("fleet.test/reboot", [f'"host-{i}"', "20", f'"{wilson.url}"'], stored,
                             code_hash(sources())): f"host-{i}" for i in range(6)}
    first = worker("first", postgres_url, tmp_path).start()
    restored = postgres_url.rsplit("/", 1)[0] + f"/restored_{uuid.uuid4().hex[:8]}"
    fleet = Fleet(wilson, balancer, [first])
    try:
        def waiting_for_callbacks() -> bool:
            return all(any("started job" in e.data.get("message", "") for e in store.events(run_id, kind="log"))
                       and store.get_run(run_id).status == "waiting" for run_id in runs)
        wait_until(waiting_for_callbacks, "every run to wait for its callback")
        copy = tmp_path / "store.dump"
        dumped = subprocess.run([str(bin_dir / "pg_dump"), "-Fc", "-d", postgres_url, "-f", str(copy)],
                                capture_output=True, text=True, timeout=120)
        assert dumped.returncode == 0, dumped.stderr
        first.kill9()
        import psycopg
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{restored.rsplit("/", 1)[1]}"')
        loaded = subprocess.run([str(bin_dir / "pg_restore"), "-d", restored, str(copy)], capture_output=True,
                                text=True, timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        again = open_store(restored)
        try:
            server = serve("restored-serve", restored, tmp_path, balancer.url).start()
            fleet.processes.append(server)
            backends.append(server.url)
            wait_until(lambda: all_ended(again, len(runs)), "the restored runs to end", timeout=90, every=0.2)
            check_runs(again, runs, wilson)
        finally:
            again.close()
    finally:
        fleet.close()
        store.close()
        import psycopg
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{restored.rsplit("/", 1)[1]}" WITH (FORCE)')
