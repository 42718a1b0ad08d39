"""What the command line prints of runs: what `flowmetal run` says on stderr while it
drives a run (`Progress`), a run's log for `flowmetal trace` (human or JSON,
optionally following it) and the list of runs for `flowmetal runs`, each line of
it through `terminal.shown`.

`Progress` says the run's id at once, then what the run waits for each time that
changes, read from the run's new events (and, for a step, its row in the store):

    step 2: POST http://127.0.0.1:8765/jobs                  a request, sent by the connector
    step 5: POST http://127.0.0.1:8765/jobs (attempt 2)      the same request, again
    POST http://...: connection refused, retry 2 in 1 s (at 14:03:05)
                                                             a timer set right after a failed
                                                             request: the wait before retrying it
    step 4: sleep until 14:03:05 (in 3 s)                    any other timer
    step 7: waiting for a callback at http://127.0.0.1:8700/callback/... (timeout at 17:03:02, in 3 h)
    step 3: waiting for a connector for acme.billing/charge! (none is running: start ...)

On a terminal that is one line rewritten in place (`\r` and erase-line), its
countdown kept current, and cleared at the end; otherwise plain lines, one per
change (never the same twice in a row), each `flowmetal run: ...`.

For people, the trace shows due times as local times and cuts long values (at
`VALUE_WIDTH` characters, with `…` and the full length); it ends, for a run
still waiting, with what it waits on, and says when no live process serves that
step's endpoint (the store's presence table). JSON is complete and unchanged.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import sys
import time

from flowmetal.cli.terminal import shown
from flowmetal.runtime.driving import FINAL, local_time, qualified_entry, waiting_on
from flowmetal.runtime.store import Run, SQLiteStore

# Endpoints the runtime answers itself; any other is performed by a connector.
IN_PLACE = {"flowmetal.time/now!", "flowmetal.log/log!", "http.callback/make-callback!", "flowmetal.run/start-run!",
            "flowmetal.run/cancel-run!", "flowmetal.retry/jitter!", "flowmetal.task/spawn!", "flowmetal.task/cancel!"}
RECEIVE = "flowmetal.signal/receive!"
AWAIT_RUN = "flowmetal.run/await-run!"  # waits for a child run, which this process runs too (`wait_for`)
SLEEP, TIMEOUT, CALLBACK = "flowmetal.time/sleep!", "flowmetal.time/with-timeout!", "http.callback/get-callback!"
REQUESTS = {"http.request/get!": "GET", "http.request/post!": "POST", "http.request/put!": "PUT",
            "http.request/delete!": "DELETE"}
FAILURES = ("connection-error", "dns-error", "response-error")
# What the operating system says of a failed connection ("Connection refused"), the last part of
# the connector's message for it: said alone, lower-cased.
_OS_REASONS = {os.strerror(n).lower() for n in range(1, 134)}
_CALLBACK_URL = re.compile(r'^\(callback "([^"\\]*)"\)$')


def clock(when: float) -> str:
    """A wall-clock time, local: `14:03:05`, with the date when it is not today."""
    local = time.localtime(when)
    if time.strftime("%Y-%m-%d", local) != time.strftime("%Y-%m-%d"):
        return time.strftime("%Y-%m-%d %H:%M:%S", local)
    return time.strftime("%H:%M:%S", local)


def until(when: float, now: float) -> str:
    """How long until `when`: `3 s`, `12 min`, `3 h`, `1 h 30 min`, `4 days`."""
    left = when - now
    if left <= 0:
        return "now"
    if left < 120:
        return f"{math.ceil(left)} s"
    hours, minutes = divmod(round(left / 60), 60)
    if hours == 0:
        return f"{minutes} min"
    if hours < 48:
        return f"{hours} h" if minutes == 0 else f"{hours} h {minutes} min"
    return f"{round(left / 86400)} days"


class Progress:
    """What `flowmetal run` says on stderr of one run (`wait_for`'s `status`).

    `served`: the endpoints a connector of this process performs; `store_arg`: the store as
    the user names it, for the commands it suggests."""

    def __init__(self, store: SQLiteStore, run_id: str, served: frozenset[str] = frozenset(),
                 store_arg: str | None = None, stream=None, live: bool | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.served = served
        self.store_arg = shlex.quote(store_arg or store.path)
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.after = 0                        # the last event read
        self.open: dict[int, dict] = {}       # the steps requested and not yet answered
        self.failures: dict[str, int] = {}    # failed attempts of each request ("POST url")
        self.failed: tuple[str, str] | None = None  # the request that just failed, and why
        self.last = None                      # what was said last (a key without countdowns)
        self.shown = ""                       # the live line as it stands

    # -- saying it --

    def started(self, entry: str) -> None:
        self._line(f"run {self.run_id}: {entry}")

    def __call__(self, run: Run) -> None:
        if run.next_seq - 1 > self.after:
            self._read()
        key = self.describe(run, None)
        if self.live:
            text = self.describe(run, time.time())
            if text != self.shown:
                width = self._width()
                self.shown = text
                if len(text) > width:  # a wrapped line could not be rewritten in place
                    text = text[:width - 1] + "\u2026"
                self.stream.write("\r\x1b[K" + shown(text))
                self.stream.flush()
        elif key != self.last:
            self._line(self.describe(run, time.time()))
        self.last = key

    def clear(self) -> None:
        """Take the live line away (the run ended, or this process stops driving it)."""
        if self.live and self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = ""

    def note(self, text: str) -> None:
        """Say something once, as a line of its own."""
        self._line(text)

    def left(self, run: Run) -> None:
        """Say how to go on with a run this process stopped driving (Ctrl-C)."""
        self.clear()
        state = {"waiting": "is waiting", "pending": "is checkpointed"}.get(run.status, f"is {run.status}")
        self._line(f"run {run.id} {state}; resume it with `flowmetal worker --store {self.store_arg}` or "
                   f"`flowmetal serve --store {self.store_arg}`; `flowmetal trace {run.id} --store "
                   f"{self.store_arg}` shows it")

    def _line(self, text: str) -> None:
        if self.live and self.shown:
            self.stream.write("\r\x1b[K")
            self.shown = ""
        self.stream.write(shown(f"flowmetal run: {text}") + "\n")
        self.stream.flush()

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return max(20, columns - 1) if columns else 79  # 0: a terminal that does not say

    # -- reading the run --

    def _read(self) -> None:
        for event in self.store.events(self.run_id, self.after):
            self.after = event.seq
            step, data = event.step, event.data
            if event.kind == "step-requested" and step is not None:
                endpoint = data.get("endpoint")
                if endpoint in IN_PLACE:
                    continue
                if endpoint not in (SLEEP, TIMEOUT) and self.failed is not None:
                    self.failed = None  # the run went on to wait for something else
                self.open[step] = {"endpoint": endpoint, "args": data.get("args") or {}}
            elif event.kind == "timer-set" and step in self.open:
                self.open[step]["due"] = data.get("due")
            elif event.kind in ("step-completed", "timer-cancelled") and step in self.open:
                done = self.open.pop(step)
                if done["endpoint"] == TIMEOUT:  # its inner waits ended with it
                    self.open = {s: w for s, w in self.open.items() if s < step}
                elif done["endpoint"] in REQUESTS and event.kind == "step-completed":
                    self._answered(step, done)

    def _request(self, step: int, wait: dict) -> str:
        if "request" not in wait:
            url = "?"
            row = self.store.step(self.run_id, step)
            try:
                from flowmetal.runtime.values import decode
                url = decode(json.loads(row["args"])["url"])
            except (TypeError, ValueError, KeyError):
                pass
            wait["request"] = f"{REQUESTS[wait['endpoint']]} {url}"
        return wait["request"]

    def _answered(self, step: int, wait: dict) -> None:
        """A request's answer: remember a failure, to say it with the wait before the retry."""
        request = self._request(step, wait)
        row = self.store.step(self.run_id, step)
        try:
            from flowmetal.runtime.values import RecordValue, decode
            value = decode(json.loads(row["result"]))
        except (TypeError, ValueError, KeyError):
            return
        if not (isinstance(value, RecordValue) and value.record in FAILURES):
            return
        self.failures[request] = self.failures.get(request, 0) + 1
        if value.record == "response-error":
            inner = value.values[0]
            reason = f"HTTP {inner.values[0]}" if isinstance(inner, RecordValue) else "an error response"
        else:
            reason = str(value.values[0])
            if reason.startswith(request + ": "):
                reason = reason[len(request) + 2:]
            last = reason.rsplit(": ", 1)[-1].lower()
            if last in _OS_REASONS:
                reason = last
        self.failed = (request, reason)

    # -- what it waits for --

    def describe(self, run: Run, now: float | None) -> str:
        """What the run waits for, in a line; `now` None: without the countdowns (what changes
        by itself), to tell whether anything else changed."""
        def at(due: float) -> str:
            return clock(due) if now is None else f"{clock(due)}, in {until(due, now)}"

        waits = [(s, w) for s, w in self.open.items() if w["endpoint"] != TIMEOUT]
        timeouts = [w["due"] for w in self.open.values() if w["endpoint"] == TIMEOUT and w.get("due")]
        limit = f" (timeout at {at(min(timeouts))})" if timeouts else ""
        if not waits:
            return f"{run.status}{limit}"
        # Awaiting tasks is waiting for what they wait for: those are the waits said.
        outside = [(st, w) for st, w in waits if not w["endpoint"].startswith("flowmetal.task/await")] or waits
        step, wait = max(outside)
        line = self._one(step, wait, now, at, limit)
        if len(outside) > 1:  # tasks wait for several things at once: the latest, and how many more
            kinds: dict[str, int] = {}
            for other_step, other in outside:
                if other_step != step:
                    kind = _KINDS.get(other["endpoint"], "step")
                    kinds[kind] = kinds.get(kind, 0) + 1
            more = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(kinds.items()))
            line += f" (and {len(outside) - 1} more: {more})"
        return line

    def _one(self, step: int, wait: dict, now: float | None, at, limit: str) -> str:
        """One wait, in words."""
        endpoint = wait["endpoint"]
        if endpoint == SLEEP:
            due = wait.get("due") or 0
            if self.failed is not None:
                request, reason = self.failed
                retry = self.failures.get(request, 1)
                when = f"at {clock(due)}" if now is None else f"in {until(due, now)} (at {clock(due)})"
                return f"{request}: {reason}, retry {retry} {when}{limit}"
            countdown = "" if now is None else f" (in {until(due, now)})"
            return f"step {step}: sleep until {clock(due)}{countdown}{limit}"
        if endpoint == RECEIVE:
            name = wait["args"].get("name", "")
            return (f"step {step}: waiting for the signal {name} (send it with `flowmetal signal RUN NAME JSON` "
                    f"or POST /api/runs/RUN/signals/NAME){limit}")
        if endpoint == AWAIT_RUN:
            child = str(wait["args"].get("c", "")).removeprefix("#<run ").removesuffix(">")
            return f"step {step}: waiting for child run {child}{limit}"
        if endpoint == CALLBACK:
            found = _CALLBACK_URL.match(str(wait["args"].get("cb", "")))
            where = f" at {found.group(1)}" if found else ""
            return f"step {step}: waiting for a callback{where}{limit}"
        if endpoint in REQUESTS:
            request = self._request(step, wait)
            attempt = self.failures.get(request, 0) + 1
            return f"step {step}: {request}{f' (attempt {attempt})' if attempt > 1 else ''}{limit}"
        if endpoint in self.served:
            return f"step {step}: {endpoint}{limit}"
        row = self.store.step(self.run_id, step)
        if row is not None and row["status"] == "claimed":
            return f"step {step}: {endpoint}, taken by a connector{limit}"
        if endpoint not in self.store.unserved(self.run_id):  # a live process elsewhere serves it
            return f"step {step}: {endpoint}, for the connector that serves it{limit}"
        return (f"step {step}: waiting for a connector for {endpoint} (none is running: start "
                f"`flowmetal connector MODULE --store {self.store_arg}` or `flowmetal serve --store "
                f"{self.store_arg}`){limit}")


# How the other waits of a run of several tasks are counted on the progress line.
_KINDS = {SLEEP: "timer", CALLBACK: "callback", AWAIT_RUN: "child run", RECEIVE: "signal",
          **{endpoint: "request" for endpoint in REQUESTS}}

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
    step_files: dict[int, str] = {}  # the file of each step's request (its `span`), for its other events
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
                # The line is in the file the event's span names (a program of several files), or
                # its step's request's; else the run's own file.
                span = event.data.get("span")
                name = span.split(":", 1)[0] if isinstance(span, str) and span.split(":", 1)[0] in lines else None
                if name is not None and event.kind == "step-requested" and event.step is not None:
                    step_files[event.step] = name
                name = name or step_files.get(event.step) or main
                text = lines[name][event.line - 1].strip() if event.line <= len(lines[name]) else ""
                where = str(event.line) if name == main else f"{name}:{event.line}"
                source = f"  | {where}: {_cut(text)}"
            stamp = time.strftime("%H:%M:%S", time.localtime(event.time)) + f".{int(event.time * 1000) % 1000:03d}"
            details = " ".join(f"{k}={_value(k, v, event.time)}" for k, v in event.data.items()
                               if k not in ("trace", "task"))
            step = f"#{event.step} " if event.step is not None else ""
            # A spawned task's events say whose they are; the entry's own (task 0) need not.
            task = f"[task {event.data['task']}] " if event.data.get("task") else ""
            print(shown(f"{event.seq:>4} {stamp} {task}{step}{event.kind} {details}{source}".rstrip()))
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


def in_tree_order(runs: list[Run]) -> list[tuple[Run, int]]:
    """Runs (oldest first) with each one's child runs right after it, theirs after them:
    (run, depth), depth 0 for a run whose parent is not among them."""
    ids = {r.id for r in runs}
    kids: dict[str, list[Run]] = {}
    for r in runs:
        if r.parent in ids:
            kids.setdefault(r.parent, []).append(r)
    out: list[tuple[Run, int]] = []
    todo = [(r, 0) for r in reversed(runs) if r.parent not in ids]
    while todo:  # depth first, without recursion
        run, depth = todo.pop()
        out.append((run, depth))
        todo += [(k, depth + 1) for k in reversed(kids.get(run.id, []))]
    return out


def print_runs(store: SQLiteStore, as_json: bool = False, terminal: bool = False, width: int = 100,
               runs: list[Run] | None = None) -> int:
    """The runs (`flowmetal runs`; `runs`, else every run), oldest first, each child run right after the run that
    started it. JSON: a list of {id, entry, status, result, error} (SPEC section 6),
    `parent` (the id of the run that started it, null for a top-level run) and `unserved`,
    the endpoints the run waits on that no live process serves. For people, on a terminal: a
    header and aligned columns, a child's id indented under its parent, each line cut at the
    terminal's width; otherwise one line a run of tab-separated fields: id, status, entry
    (`package/name`), start (ISO 8601, local, with its offset), its outcome (the value, the
    error's first line, or for a waiting run a note on the endpoints no live process
    serves), and its parent's id (empty for a top-level run)."""
    runs = store.list_runs() if runs is None else runs
    unserved = store.unserved_steps([r.id for r in runs if r.status == "waiting"])
    if as_json:
        json.dump([{"id": r.id, "entry": r.entry, "status": r.status, "result": r.result, "error": r.error,
                    "parent": r.parent, "unserved": sorted({e for _, e in unserved.get(r.id, [])})} for r in runs],
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    entries: dict = {}
    rows = []
    for r, depth in in_tree_order(runs):
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
            rows.append(("  " * depth + r.id, r.status, entry, local_time(r.created), outcome))
        else:
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(r.created))
            started = started[:-2] + ":" + started[-2:]
            print("\t".join(shown(field).replace("\t", "\\u0009") for field in (r.id, r.status, entry, started,
                                                                                 outcome, r.parent or "")))
    if terminal:
        header = ("RUN", "STATUS", "ENTRY", "STARTED", "OUTCOME")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        for row in [header, *rows]:
            line = "  ".join(f"{field:<{widths[i]}}" for i, field in enumerate(row[:4])) + "  " + row[4]
            line = shown(line.rstrip())
            print(line if len(line) <= width else line[:max(width - 1, 20)] + "…")
    return 0
