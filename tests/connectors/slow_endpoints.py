"""Python endpoints that take their time, for the tests of leases, concurrency and stopping:
each call is counted in a file named by the run (a line per call, written as the call
starts), so a test can tell how often a step was performed, by which process."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flowmetal.connectors.sdk import endpoint


def _count(calls: str, step) -> None:
    with open(calls, "a", encoding="utf-8") as out:
        out.write(f"{step.key} {os.getpid()}\n")


@endpoint("acme.slow/slow!")
def slow(calls, seconds, step):
    _count(calls, step)
    time.sleep(seconds)
    return f"slept {seconds:g} s"


@endpoint("acme.slow/held!")
def held(calls, release, step):
    """Returns once the file `release` exists (or after 30 s, so that nothing hangs for ever)."""
    _count(calls, step)
    deadline = time.monotonic() + 30
    while not Path(release).exists():
        if time.monotonic() > deadline:
            return "gave up"
        time.sleep(0.02)
    return "released"


@endpoint("acme.slow/quick!")
def quick(n):
    return n + 1
