"""What the command line prints of runs: the live status line of `flowmetal run`
on a terminal, a run's log for `flowmetal trace` (human or JSON, optionally
following it) and the list of runs for `flowmetal runs`, each line of it through
`terminal.shown`.

For people, the trace shows due times as local times and cuts long values (at
`VALUE_WIDTH` characters, with `…` and the full length); it ends, for a run
still waiting, with what it waits on, and says when no live process serves that
step's endpoint (the store's presence table). JSON is complete and unchanged.
"""

from __future__ import annotations

import json
import sys
import time

from flowmetal.cli.terminal import shown
from flowmetal.runtime.driving import FINAL, local_time, qualified_entry, waiting_on
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


VALUE_WIDTH = 200  # characters of one value a trace line shows; the rest is said by its length
TIMES = ("due", "wake_at")  # event fields that are moments (epoch seconds), shown as local times


def _value(key: str, value, at: float) -> str:
    """One field of an event, for people: a moment as local time and how far after the event,
    anything else as it is (JSON for non-strings), cut at `VALUE_WIDTH`."""
    if key in TIMES and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{_clock(value)} (in {_span(value - at)})"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _cut(text)


def _cut(text: str, width: int = VALUE_WIDTH) -> str:
    if len(text) <= width:
        return text
    return f"{text[:width]}… ({len(text):,} characters)"


def _clock(at: float) -> str:
    """A moment as local time to the millisecond, with its date when it is not today's."""
    stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"
    if time.strftime("%Y-%m-%d", time.localtime(at)) != time.strftime("%Y-%m-%d"):
        stamp = time.strftime("%Y-%m-%d ", time.localtime(at)) + stamp
    return stamp


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.3g} s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.0f} s"


def print_events(store: SQLiteStore, run: Run, as_json: bool = False, follow: bool = False) -> int:
    """Print a run's log (`flowmetal trace`): a line per event with its source line, or one JSON
    array; `follow` goes on until the run ends. For people, a run not ended is followed by a
    line saying what it waits on. The exit status."""
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
                source = f"  | {event.line}: {_cut(text)}"
            stamp = time.strftime("%H:%M:%S", time.localtime(event.time)) + f".{int(event.time * 1000) % 1000:03d}"
            details = " ".join(f"{k}={_value(k, v, event.time)}" for k, v in event.data.items() if k not in ("trace",))
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
    elif current.status not in FINAL:
        for line in waiting_lines(store, current):
            print(shown(line))
    return 0


def waiting_lines(store: SQLiteStore, run: Run) -> list[str]:
    """The trace's last lines for a run that has not ended: what it waits on, and whether any
    live process serves each step's endpoint."""
    if run.status != "waiting":
        return [f"{run.status}: " + ("waiting for a worker to claim it" if run.status == "pending"
                                     else f"held by {run.owner or 'a worker'}")]
    unserved = {step for step, _ in store.unserved_steps([run.id]).get(run.id, [])}
    out = []
    for what in waiting_on(store, run):
        number = what.split()[1] if what.startswith("step ") else None
        if number is not None and number.isdigit() and int(number) in unserved:
            what += " — no live process serves it"
        out.append(f"waiting: {what}")
    return out or ["waiting"]


def print_runs(store: SQLiteStore, as_json: bool = False, terminal: bool = False, width: int = 100) -> int:
    """The runs (`flowmetal runs`), oldest first. JSON: a list of {id, entry, status, result,
    error} (SPEC section 6) and `unserved`, the endpoints the run waits on that no live
    process serves. For people, on a terminal: a header and aligned columns, each line cut
    at the terminal's width; otherwise one line a run of tab-separated fields: id, status,
    entry (`package/name`), start (ISO 8601, local, with its offset), and its outcome (the
    value, the error's first line, or for a waiting run a note on the endpoints no live
    process serves)."""
    runs = store.list_runs()
    unserved = store.unserved_steps([r.id for r in runs if r.status == "waiting"])
    if as_json:
        json.dump([{"id": r.id, "entry": r.entry, "status": r.status, "result": r.result, "error": r.error,
                    "unserved": sorted({e for _, e in unserved.get(r.id, [])})} for r in runs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    entries: dict = {}
    rows = []
    for r in runs:
        if r.status == "completed":
            outcome = r.result or ""
        elif r.status == "failed":
            outcome = (r.error or "").split("\n")[0]
        elif r.id in unserved:
            steps = ", ".join(f"step {n} {e}" for n, e in unserved[r.id])
            outcome = f"waits on {steps}: no live process serves it"
        else:
            outcome = ""
        entry = qualified_entry(r.entry, store, r, entries)
        if terminal:
            rows.append((r.id, r.status, entry, local_time(r.created), outcome))
        else:
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(r.created))
            started = started[:-2] + ":" + started[-2:]
            print("\t".join(shown(field).replace("\t", "\\u0009") for field in (r.id, r.status, entry, started,
                                                                                 outcome)))
    if terminal:
        header = ("RUN", "STATUS", "ENTRY", "STARTED", "OUTCOME")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        for row in [header, *rows]:
            line = "  ".join(f"{field:<{widths[i]}}" for i, field in enumerate(row[:4])) + "  " + row[4]
            line = shown(line.rstrip())
            print(line if len(line) <= width else line[:max(width - 1, 20)] + "…")
    return 0
