"""What the command line prints of runs: the live status line of `flowmetal run`
on a terminal, and a run's log for `flowmetal trace` (human or JSON, optionally
following it), each line of it through `terminal.shown`.
"""

from __future__ import annotations

import json
import sys
import time

from flowmetal.cli.terminal import shown
from flowmetal.runtime.driving import FINAL
from flowmetal.runtime.store import Run, SQLiteStore


class StatusLine:
    """`flowmetal run`'s live line on stderr (`wait_for`'s `status`): the run's id and status,
    its last step and what it waits on, and the time since it started."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, run: Run) -> None:
        sys.stderr.write("\r\x1b[K" + _status_line(self.store, run, time.monotonic() - self.started))
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        """Take the line away once the run has ended."""
        if self.shown:
            sys.stderr.write("\r\x1b[K")


def _status_line(store: SQLiteStore, run: Run, elapsed: float) -> str:
    events = store.events(run.id, max(0, run.next_seq - 5))
    last = next((e for e in reversed(events) if e.kind == "step-requested"), None)
    what = f"step {last.step}: {last.data.get('endpoint')}" if last else "starting"
    waiting = ""
    if run.status == "waiting" and run.wake_at:
        waiting = f", wakes in {max(0.0, run.wake_at - time.time()):.1f}s"
    return f"{run.id} {run.status} ({what}{waiting}) {elapsed:.1f}s"


def print_events(store: SQLiteStore, run: Run, as_json: bool = False, follow: bool = False) -> int:
    """Print a run's log (`flowmetal trace`): a line per event with its source line, or one JSON
    array; `follow` goes on until the run ends. The exit status."""
    sources = store.get_sources(run.program)
    lines = {name: text.splitlines() for name, text in sources.items()}
    main = next(iter(sources))
    after = 0
    collected = []
    while True:
        for event in store.events(run.id, after):
            after = event.seq
            record = {"seq": event.seq, "time": event.time, "kind": event.kind, "line": event.line,
                      "step": event.step, **event.data}
            if as_json:
                collected.append(record)
                continue
            source = ""
            if event.line:
                text = lines[main][event.line - 1].strip() if event.line <= len(lines[main]) else ""
                source = f"  | {event.line}: {text}"
            stamp = time.strftime("%H:%M:%S", time.localtime(event.time)) + f".{int(event.time * 1000) % 1000:03d}"
            details = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in event.data.items()
                               if k not in ("trace",))
            step = f"#{event.step} " if event.step is not None else ""
            print(shown(f"{event.seq:>4} {stamp} {step}{event.kind} {details}{source}".rstrip()))
            for frame in event.data.get("trace", []):
                print(shown(f"       in {frame['package']}/{frame['function']}, line {frame['line']}"))
        current = store.get_run(run.id)
        if not follow or current.status in FINAL:
            break
        sys.stdout.flush()
        time.sleep(0.2)
    if as_json:
        json.dump(collected, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0
