"""Python endpoints for the tests of steps performed in the worker's own process
(`flowmetal worker --connector`): each call is counted, by its idempotency key, in the file
$INLINE_CALLS (one line a call, written in one `write`, so a process killed at any instant
leaves whole lines); `pause!` stops for a while the first time it is called for a key."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flowmetal.connectors.sdk import current_step, endpoint


def _count(tag: str = "") -> None:
    fd = os.open(os.environ["INLINE_CALLS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{current_step().key} {os.getpid()}{tag}\n".encode())
    finally:
        os.close(fd)


@endpoint("acme.count/double!")
def double(n):
    _count()
    return n * 2


@endpoint("acme.count/boom!")
def boom(n):
    _count()
    raise ValueError(f"no double for {n}")


@endpoint("acme.count/slow!")
def slow(seconds):
    _count()
    time.sleep(seconds)
    return seconds


@endpoint("acme.count/pause!")
def pause(n):
    """The first call for a key marks it ($INLINE_MARKS/KEY) and then sleeps 4 s; later ones return at once."""
    mark = Path(os.environ["INLINE_MARKS"]) / current_step().key.replace(":", "-")
    first = not mark.exists()
    _count(" first" if first else "")
    if first:
        mark.write_text(str(os.getpid()))
        time.sleep(4)
    return n * 2
