"""Deep recursion without a traceback: a walk that outgrows Python's stack is run again
on a thread that has room for it.

The reader is iterative and reads brackets nested to any depth. The layers after
it (lowering to forms, checking, the editor's answers, printing and storing
values) recurse over what they walk, a few Python frames a level, and Python
allows 1,000 frames by default: about 200 nested `if`s would end in
`RecursionError`. Rewriting every walk as a loop with its own stack would turn
clear code into bookkeeping, so instead:

    call(fn, *args)   fn(*args) here, as usual; if it raises RecursionError,
                      fn(*args) again on a fresh thread with a `STACK_SIZE` stack
                      and a recursion limit of `RECURSION_LIMIT` frames

Normal programs never pay more than a `try`. `fn` must be safe to run again
after a `RecursionError`: a walk that builds its result from scratch, or a pure
one. Calls made from inside the deep thread run there directly.

How deep is enough: `flowmetal.forms` refuses (FM203) a form nested more than
`MAX_NESTING` levels inside a definition, so every later walk over the program
is bounded by a few frames a level (at most 7 today: 12,000 levels take 84,000
frames), and `RECURSION_LIMIT` leaves room above that. What is not bounded by
the program's shape (a type grown through a long chain of `let`s, a value built
at run time) may still exceed it; each layer turns that last `RecursionError`
into a diagnostic or a fault (`active()` tells it that no deeper stack is left).

Python has one recursion limit for all threads, so it is raised only while a
deep call runs (counted: the last one to finish restores it), which happens only
for a program or value nested deeper than Python's default allows. Threads that
run meanwhile get the raised limit with their own stack: Flowmetal's deep work
runs here, and what else a process does recurses little (a JSON document some
65,000 levels deep, parsed on an 8 MiB stack during such a call, would be
needed to exhaust it).
"""

from __future__ import annotations

import sys
import threading

MAX_NESTING = 12_000           # levels of forms inside a definition (FM203 beyond)
RECURSION_LIMIT = 120_000      # frames, on the deep thread
STACK_SIZE = 512 << 20         # bytes of the deep thread's stack (reserved, used as it grows)

_state = threading.local()
_lock = threading.Lock()
_raised = 0                    # deep calls running
_saved_limit = 0               # the limit to restore when the last one ends


def active() -> bool:
    """Whether this thread is a deep one: a `RecursionError` here has no deeper stack to go to."""
    return getattr(_state, "deep", False)


def call(fn, *args, **kwargs):
    """`fn(*args, **kwargs)`; run again on a deep thread if it runs out of recursion here."""
    if active():
        return fn(*args, **kwargs)
    try:
        return fn(*args, **kwargs)
    except RecursionError:
        pass
    return run_deep(fn, *args, **kwargs)


def run_deep(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` on a deep thread (here, when this is one), its result or its exception."""
    if active():
        return fn(*args, **kwargs)
    outcome: list = []

    def main() -> None:
        _state.deep = True
        try:
            outcome.append((True, fn(*args, **kwargs)))
        except BaseException as error:  # handed to the caller, who decides
            outcome.append((False, error))

    _raise_limit()
    try:
        thread = _start(main)
        if thread is None:  # no memory for such a stack: as deep as this thread goes, then
            raise RecursionError("maximum recursion depth exceeded (no deeper stack could be made)")
        thread.join()
    finally:
        _restore_limit()
    ok, value = outcome[0]
    if ok:
        return value
    raise value.with_traceback(value.__traceback__)


def _start(main) -> threading.Thread | None:
    with _lock:  # the stack size is a setting of the threading module: set it for this thread only
        previous = threading.stack_size()
        try:
            threading.stack_size(STACK_SIZE)
            thread = threading.Thread(target=main, name="flowmetal-deep", daemon=True)
            thread.start()
        except (RuntimeError, ValueError, MemoryError):
            return None
        finally:
            threading.stack_size(previous)
    return thread


def _raise_limit() -> None:
    global _raised, _saved_limit
    with _lock:
        if _raised == 0:
            _saved_limit = sys.getrecursionlimit()
            if _saved_limit < RECURSION_LIMIT:
                sys.setrecursionlimit(RECURSION_LIMIT)
        _raised += 1


def _restore_limit() -> None:
    global _raised
    with _lock:
        _raised -= 1
        if _raised == 0 and sys.getrecursionlimit() == RECURSION_LIMIT and _saved_limit < RECURSION_LIMIT:
            try:
                sys.setrecursionlimit(_saved_limit)
            except RecursionError:  # this thread is deeper than that right now: leave it raised
                pass


__all__ = ["MAX_NESTING", "RECURSION_LIMIT", "STACK_SIZE", "active", "call", "run_deep"]
