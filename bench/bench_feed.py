"""The change feed: what stamping every change to a run costs the commits that make it.

    .venv/bin/python bench/bench_feed.py [--quick] [--postgres URL]

Every transaction that changes a run stamps it with the change sequence's next
value (`Store.changes`). On PostgreSQL the stamp is the writing transaction's id
(`PostgresStore`); the other way to get values that become visible in commit
order is a one-row counter that every such transaction updates, holding its lock
until it commits. Both are measured here, against no stamp at all (what commits
cost before the feed), through the store's own `commit` (a run's batch of events
and its new state: the executor's path):

- `feed-pg-W` (W = 1, 4, 8): W threads, each with its own store object (its own
  connection from the pool) and its own claimed run, commit one event at a time
  for a fixed time; the figure is commits a second without a stamp divided by
  commits a second with the transaction's id (target: within 10%).
- `feed-pg-counter-W`: the same with the locked counter instead (the way not
  taken; informational): every commit waits for the one before it.
- `feed-sqlite`: one writer on an SQLite file (SQLite's writers queue anyway;
  the stamp is the highest value so far plus one, from the index), with
  `synchronous=OFF`: the statements' own cost, where the stamp's share is
  largest (flushing to disk takes milliseconds and varies more than that).

The PostgreSQL server: `--postgres`, else `FLOWMETAL_TEST_POSTGRES`, else a
throwaway one started with `scripts/postgres` (bench_pg.py's). Each figure is
the median of 3 rounds of 2 s, the ways of stamping taking turns, after an
untimed warm-up. `--quick` runs one round of 0.3 s, to check that the
benchmark works.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from flowmetal.runtime.store import PostgresStore, SQLiteStore, Store, open_store  # noqa: E402

from bench_pg import _fresh_database, _server  # noqa: E402

STAMPS = {
    "none": "NULL",
    "xid": PostgresStore._stamp,
    # The way not taken: a counter row, locked by the first stamp of a transaction until it commits.
    "counter": "flowmetal_feed_next()",
}
COUNTER = [
    'CREATE TABLE IF NOT EXISTS "feed_counter" ("n" BIGINT NOT NULL)',
    "INSERT INTO feed_counter SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM feed_counter)",
    "CREATE OR REPLACE FUNCTION flowmetal_feed_next() RETURNS bigint LANGUAGE sql AS "
    "'UPDATE feed_counter SET n = n + 1 RETURNING n'",
]


def _rate(location: str, kind: type[Store], stamp: str, writers: int, seconds: float) -> float:
    """Commits a second of `writers` threads, each committing one event at a time to its own run."""
    old = kind._stamp
    kind._stamp = stamp
    # SQLite without waiting for the disk: its commits' time is then the statements', the stamp's
    # share at its largest (with `synchronous=FULL`, the disk's flushes bury it in their noise).
    stores = [SQLiteStore(location, synchronous="OFF") if kind is SQLiteStore else open_store(location)
              for _ in range(writers)]
    try:
        program = stores[0].put_sources({"bench.flow": "(defpackage bench)"})
        runs = []
        for i, store in enumerate(stores):
            run_id = store.create_run("bench/main", [], program, "code")
            runs.append(store.claim(f"w{i}", 3600, run_id=run_id))
        counts = [0] * writers
        start = threading.Barrier(writers + 1)
        stop = threading.Event()

        def write(i: int) -> None:
            store, run = stores[i], runs[i]
            start.wait()
            while not stop.is_set():
                store.commit(run, f"w{i}", [("log", None, {"message": "tick"}, 1)])
                counts[i] += 1

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - began)
    finally:
        kind._stamp = old
        for store in stores:
            store.close()


def _rates(location: str, kind: type[Store], stamps: dict[str, str], writers: int, seconds: float,
           rounds: int) -> dict[str, float]:
    """The median rate of each way of stamping, over `rounds` rounds that take turns (so that the
    machine's noise falls on all alike), after an untimed warm-up."""
    for stamp in stamps.values():
        _rate(location, kind, stamp, writers, 0.2)
    rates: dict[str, list[float]] = {name: [] for name in stamps}
    for _ in range(rounds):
        for name, stamp in stamps.items():
            rates[name].append(_rate(location, kind, stamp, writers, seconds))
    return {name: statistics.median(values) for name, values in rates.items()}


def run(quick: bool = False, postgres: str | None = None) -> list[dict]:
    seconds, rounds = (0.3, 1) if quick else (2.0, 3)
    results = []
    with tempfile.TemporaryDirectory(prefix="flowmetal-bench-feed-") as tmp:
        path = str(Path(tmp) / "feed.db")
        SQLiteStore(path).close()
        rates = _rates(path, SQLiteStore, {"none": "NULL", "max": SQLiteStore._stamp}, 1, seconds, rounds)
        bare, stamped = rates["none"], rates["max"]
        results.append({"name": "feed-sqlite", "ratio": bare / stamped, "target": 1.1, "unit": "x no stamp",
                        "detail": f"{stamped:.0f} commits/s stamped, {bare:.0f} without"})
    with _server(postgres) as (server, why_not):
        if server is None:
            print(f"no PostgreSQL server ({why_not}): only SQLite measured", file=sys.stderr)
            return results
        for writers in (1, 4, 8):
            location = _fresh_database(server, "flowmetal_bench_feed")
            store = open_store(location)
            with store.transaction() as conn:
                for statement in COUNTER:
                    conn.execute(statement)
            store.close()
            rates = _rates(location, PostgresStore, STAMPS, writers, seconds, rounds)
            results.append({"name": f"feed-pg-{writers}", "ratio": rates["none"] / rates["xid"], "target": 1.1,
                            "unit": "x no stamp", "detail": f"{rates['xid']:.0f} commits/s stamped with the "
                                                            f"transaction's id, {rates['none']:.0f} without"})
            results.append({"name": f"feed-pg-counter-{writers}", "ratio": rates["none"] / rates["counter"],
                            "target": float("inf"), "unit": "x no stamp",
                            "detail": f"{rates['counter']:.0f} commits/s with a locked counter (informational)"})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", help="a PostgreSQL server's superuser URL")
    args = parser.parse_args()
    for r in run(args.quick, args.postgres):
        print(f"{r['name']:<20} {r['ratio']:6.2f} {r['unit']:<11} target <= {r['target']:<5} {r['detail']}")


if __name__ == "__main__":
    main()
