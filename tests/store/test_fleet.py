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
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from fleet_kit import (FINAL, ROOT, Balancer, Wilson, check_runs, expected, serve, sources, wait_until,
                       worker)

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
    wilson = Wilson(tmp_path)
    serves = []
    balancer = Balancer(lambda: [s.url for s in serves])
    serves += [serve(f"serve-{i}", postgres_url, tmp_path, balancer.url).start() for i in (1, 2)]
    workers = [worker(f"worker-{i}", postgres_url, tmp_path).start() for i in (1, 2)]
    fleet = serves + workers
    runs: dict[str, str] = {}
    try:
        count, kills_until = 200, time.monotonic() + 40
        next_kill = time.monotonic() + rng.uniform(0.5, 2.0)
        progress = []
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
                victim = rng.choice(fleet)
                victim.restart()  # SIGKILL, then started again: one process is down at a time
                progress.append(sum(r.next_seq for r in store.list_runs()))
                next_kill = time.monotonic() + rng.uniform(0.5, 2.0)
        # The kills fell while there was work to do: the logs grew between most of them.
        assert sum(1 for a, b in zip(progress, progress[1:]) if b > a) > len(progress) // 2, progress
        assert all(p.kills for p in fleet), [(p.name, p.kills) for p in fleet]
        # A run held by a killed serve waits out its lease (30 s) before another takes it over.
        wait_until(lambda: all_ended(store, count), "every run to end", timeout=120, every=0.5)
        check_runs(store, runs, wilson)
    finally:
        for process in fleet:
            process.kill9()
        balancer.close()
        wilson.close()
        store.close()
