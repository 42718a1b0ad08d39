"""Wake-ups: how a loop that found no work sleeps until there may be some.

Every loop that waits for work (the worker's executor, serve's executors, a connector, the
editor's embedded worker) sleeps on a `Wakeup`: until its interval has passed, or until it
is woken, whichever comes first. What wakes it:

- on PostgreSQL, a notification: each transaction that makes work runnable (a run created,
  released or woken; a step left for a connector) sends one inside itself, delivered only if
  it commits (`Store._notify`), and the process's listening connection sets the events of
  the loops it concerns (`pgstore.Listener`). A notification can still be lost (the
  listening connection dropped, the server restarted), and a lease running out is never
  announced: so the loop polls too, at `LISTENING_POLL` seconds at the least while the
  listener is connected, at its own interval while it is not, and sleeps no later than the
  next due time (`Store.next_wake(leases=True)`: a timer, or a lease another process may
  take over);
- on SQLite, nothing from other processes: the loop polls at its own interval, as it always
  did (the processes of one machine share the file; a process wakes its own loops, as
  serve's API does);
- `set()`, by the process itself (a signal handler stopping the loop).
"""

from __future__ import annotations

import threading

LISTENING_POLL = 5.0   # seconds: the longest a loop sleeps while notifications reach it
STOP_LOOK = 0.1        # seconds between looks at a `stop` that is not this wake-up's own


class Wakeup:
    """The event a loop sleeps on, set by the store's notifications that concern it: runs
    (`runs`), steps of `endpoints`. `event`: an event of the caller's to use (one that the
    process sets itself, too)."""

    def __init__(self, store, runs: bool = False, endpoints=None, event: threading.Event | None = None) -> None:
        self.event = event if event is not None else threading.Event()
        listen = getattr(store, "listen", None)
        self._subscription = listen(self.event, runs=runs, endpoints=endpoints) if listen is not None else None

    @property
    def listening(self) -> bool:
        """Whether notifications reach this loop now (PostgreSQL, its listener connected)."""
        return self._subscription is not None and self._subscription.listening

    def interval(self, poll: float) -> float:
        """The longest to sleep without looking: `poll`, or `LISTENING_POLL` while listening."""
        return max(poll, LISTENING_POLL) if self.listening else poll

    def set(self) -> None:
        self.event.set()

    def clear(self) -> None:
        """Before looking for work: what is said from now on wakes the next sleep."""
        self.event.clear()

    def sleep(self, seconds: float, stop=None) -> bool:
        """Sleep up to `seconds`, until woken (True) or `stop` (an event or a callable) says to
        end. Without notifications and with an event as `stop`, this is `stop.wait`, as before."""
        if self._subscription is None and isinstance(stop, threading.Event):
            stop.wait(seconds)
            return self.event.is_set()
        if stop is None:
            return self.event.wait(seconds)
        import time
        deadline = time.monotonic() + seconds
        while not _stopped(stop):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.event.wait(min(left, STOP_LOOK)):
                return True
        return self.event.is_set()

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None


def set_from_handler(*events) -> None:
    """Set `events` from a signal handler. Setting an event takes its lock, which the main
    thread (where handlers run) may hold at that very instant, inside a wait on the same event:
    setting it there would wait for itself forever. A short-lived thread sets them instead."""
    threading.Thread(target=lambda: [event.set() for event in events], name="flowmetal-signal",
                     daemon=True).start()


def _stopped(stop) -> bool:
    is_set = getattr(stop, "is_set", None)
    return bool(is_set()) if is_set is not None else bool(stop())
