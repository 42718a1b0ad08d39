"""The DBOS half of `bench_steps.py` and `bench_pg.py`, run by a python that has DBOS.

    bench/.venv-dbos/bin/python bench/dbos_side.py DIR STEPS REPEATS
    .venv/bin/python bench/dbos_side.py postgresql://USER@HOST:PORT/DB STEPS REPEATS

Times a DBOS Transact workflow of STEPS sequential steps (each returns
`time.time()`), REPEATS times, on an SQLite system database in DIR, or on the
PostgreSQL database of the URL (which DBOS makes when it does not exist), and
prints one JSON object: the seconds of each run (from starting the workflow to
having its result), the durability settings DBOS's connections ran with, and
DBOS's version.

DBOS itself sets neither `journal_mode` nor `synchronous` on SQLite, so every
connection its engine opens is given `journal_mode=WAL` and `synchronous=FULL`
here (the settings of Flowmetal's store), through a SQLAlchemy `connect`
listener registered before DBOS makes its engine. One workflow is run first,
untimed, so that the first run pays no one-off cost (imports, caches, pool).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from importlib.metadata import version
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event


@event.listens_for(sa.engine.Engine, "connect")
def _durable(dbapi_conn, _record) -> None:
    if type(dbapi_conn).__module__.startswith("sqlite3"):
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=FULL")


def main() -> int:
    target, steps, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from dbos import DBOS

    postgres = target.startswith("postgresql://")
    url = target if postgres else f"sqlite:///{Path(target) / 'dbos-system.db'}"
    dbos = DBOS(config={"name": "bench-steps", "system_database_url": url, "log_level": "WARNING"})

    @DBOS.step()
    def now() -> float:
        return time.time()

    @DBOS.workflow()
    def loop(n: int) -> int:
        acc = 0
        for _ in range(n):
            acc += int(now() * 1000) % 2
        return acc

    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    try:
        loop(10)  # warm-up, untimed
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = loop(steps)
            times.append(time.perf_counter() - start)
            assert 0 <= result <= steps
        engine = dbos._sys_db.engine  # the system database's own engine: what it ran with
        with engine.connect() as conn:
            if postgres:
                settings = {name: conn.exec_driver_sql(f"SHOW {name}").scalar()
                            for name in ("fsync", "synchronous_commit", "server_version")}
                step_rows = conn.exec_driver_sql("SELECT COUNT(*) FROM dbos.operation_outputs").scalar()
            else:
                synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
                settings = {"journal_mode": conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(synchronous, synchronous),
                            "sqlite": __import__("sqlite3").sqlite_version}
                step_rows = conn.exec_driver_sql("SELECT COUNT(*) FROM operation_outputs").scalar()
    finally:
        DBOS.destroy()
    print(json.dumps({"times": times, "steps": steps, **settings, "step_rows": step_rows, "dbos": version("dbos")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
