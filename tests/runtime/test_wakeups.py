"""Signal handlers set events without waiting for the events' own locks.

A worker stopped with SIGTERM while its main thread sat inside `Event.wait` once hung for
good: the handler, run on that thread, called `Event.set`, whose lock the same thread held.
"""

from __future__ import annotations

import threading

from flowmetal.runtime.wakeups import set_from_handler


def test_a_handler_sets_events_whose_lock_its_own_thread_holds():
    stop, wakeup = threading.Event(), threading.Event()
    with stop._cond, wakeup._cond:  # the main thread inside a wait on them, as the signal arrives
        set_from_handler(stop, wakeup)  # returns at once: `stop.set()` here would never return
        assert not stop.is_set()
    assert stop.wait(10) and wakeup.wait(10)
