"""Waiting in tests for something another process or thread does: `until`.

One helper for every test that starts real processes: it polls, so a slow machine
only makes a test slower, never wrong, and a timeout says what was awaited."""

from __future__ import annotations

import time


def until(predicate, what: str = "a condition", timeout: float = 30.0, every: float = 0.05):
    """The first truthy value `predicate()` answers, looked for every `every` seconds; an
    AssertionError naming `what` when `timeout` seconds pass without one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
