"""What the runtime commands of the command line do, kept out of `flowmetal.cli`
so that the command line stays a thin layer of argument parsing.

- `program_files(FILE)`: a run's program is FILE and, from the `*.flow` files
  beside it, those defining the packages it requires (transitively). Their
  sources are stored with the run, so editing the files later changes nothing
  in flight. Only what FILE needs is read: a file beside it that is broken,
  huge or unreadable changes nothing unless it may define a package FILE
  requires.
- `wait_for`: drive one run in this process until it ends, sleeping until its
  next timer; on a terminal, a live status line (the step, what it waits on,
  for how long).
- `print_events`: a run's log, human or JSON, optionally following it.
- `work`: the worker loop.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from flowmetal.forms import head_symbol, is_symbol
from flowmetal.resolve import STANDARD_NAMES
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.store import Run, SQLiteStore
from flowmetal.syntax import Kind, Seq, read
from flowmetal.terminal import shown

FINAL = ("completed", "failed", "cancelled")


def file_packages(text: str, name: str) -> tuple[set[str], set[str]]:
    """The packages a file defines, and those it requires: the heads of its `defpackage` and
    `require` forms, as the reader gives them (nothing deeper is walked, so no nesting and no
    broken text elsewhere in the file matters)."""
    defined: set[str] = set()
    required: set[str] = set()
    for form in read(text, name).forms:
        if head_symbol(form) != "defpackage" or len(form.forms) < 2 or not is_symbol(form.forms[1]):
            continue
        defined.add(form.forms[1].text)
        for item in form.forms[2:]:
            if head_symbol(item) != "require":
                continue
            for spec in item.forms[1:]:
                if is_symbol(spec):
                    required.add(spec.text)
                elif type(spec) is Seq and spec.kind is Kind.VECTOR and spec.forms and is_symbol(spec.forms[0]):
                    required.add(spec.forms[0].text)
    return defined, required


def program_files(file: str, read=None) -> dict[str, str]:
    """FILE and the files beside it that define the packages it requires, transitively (the
    standard packages come from the standard library: a file beside FILE does not replace
    one). `read(path)` gives a file's text (an editor passes its unsaved buffers); by
    default, the file on disk.

    Other files are read only for a package that no file taken so far defines, and then one
    at a time until one defines it: first those named after it (`acme.lib.flow` or
    `lib.flow` for `acme.lib`), then the others, smallest first. A file that cannot be read
    (or, on disk, is no regular file: a pipe would never end) is passed over; only when a
    required package is then defined by no file that could be read is it an error
    (`OSError`) naming those files. A package defined nowhere is left for the checker to
    report, as any unknown package is."""
    path = Path(file)
    on_disk = read is None
    if on_disk:
        if not path.is_file():
            raise OSError(f"{file}: no such file" if not path.exists() else f"{file}: not a regular file")
        read = lambda p: p.read_text(encoding="utf-8")  # noqa: E731
    try:
        text = read(path)
    except FileNotFoundError:
        raise OSError(f"{file}: no such file") from None
    sources = {path.name: text}
    defined, wanted = file_packages(text, path.name)
    missing = wanted - defined - STANDARD_NAMES
    if not missing:
        return sources
    siblings = [p for p in path.parent.glob("*.flow") if p.name != path.name]
    scanned: dict[str, tuple[str, set[str], set[str]] | None] = {}
    unreadable: dict[str, str] = {}

    def scan(other: Path):
        if other.name not in scanned:
            try:
                if on_disk and not other.is_file():
                    raise OSError("not a regular file")
                other_text = read(other)
            except (OSError, UnicodeDecodeError) as error:
                scanned[other.name] = None
                unreadable[other.name] = _reason(error)
            else:
                scanned[other.name] = (other_text, *file_packages(other_text, other.name))
        return scanned[other.name]

    unfound: set[str] = set()
    while missing:
        package = min(missing)
        found = next((other for other in _candidates(siblings, package)
                      if other.name not in sources and (info := scan(other)) is not None and package in info[1]),
                     None)
        if found is None:
            unfound.add(package)
            missing.discard(package)
            continue
        other_text, d, r = scanned[found.name]
        sources[found.name] = other_text
        defined |= d
        missing = (missing | (r - STANDARD_NAMES)) - defined - unfound
    if unfound and unreadable:
        packages = ", ".join(f"`{p}`" for p in sorted(unfound))
        files = "; ".join(f"{name}: {why}" for name, why in sorted(unreadable.items()))
        raise OSError(f"{path.name} requires {packages}, which no file beside it that could be read defines "
                      f"(could not read {files})")
    return sources


def _candidates(siblings: list[Path], package: str) -> list[Path]:
    """The files that may define `package`, most likely first: named after it, then by size."""
    named = {f"{package}.flow", f"{package.rpartition('.')[2]}.flow"}

    def size(p: Path) -> int:
        try:
            return p.stat().st_size
        except OSError:  # a buffer of the editor's only
            return 0
    return sorted(siblings, key=lambda p: (p.name not in named, size(p), p.name))


def _reason(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not valid UTF-8"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error)


def prepare_run(sources: dict[str, str], entry: str, args: list[str]) -> str:
    """Check a program, its entry and its arguments as a new run needs them: the code hash.
    Raises `ProgramError`, `LiteralError` or `KeyError` when the run could not start."""
    from flowmetal.runtime.literals import read_literal
    from flowmetal.runtime.program import code_hash, load
    program = load(sources)
    check_entry(program, entry, [read_literal(text, program, program.package_of(entry)[0]) for text in args])
    return code_hash(sources)


def record_run(store: SQLiteStore, sources: dict[str, str], entry: str, args: list[str], code: str,
               origin: str | None = None) -> str:
    """Record a pending run of a prepared program (`prepare_run`): its id."""
    return store.create_run(entry, list(args), store.put_sources(sources), code, origin=origin)


def check_entry(program, entry: str, args: list) -> None:
    """Refuse a run that could not start: no such function, wrong arguments' number or types."""
    from flowmetal.runtime.builtins import is_instance
    from flowmetal.runtime.values import literal
    from flowmetal.types import show
    package, name = program.package_of(entry)
    scope = program.scopes.get(package)
    symbol = scope.decls.get(name) if scope else None
    if symbol is None or symbol.kind != "function":
        raise KeyError(f"no function `{name}` in package `{package}`")
    params = symbol.sig.params
    required = sum(1 for p in params if not p.optional)
    if not required <= len(args) <= len(params):
        takes = f"{required}" if required == len(params) else f"{required} to {len(params)}"
        raise KeyError(f"`{name}` takes {takes} arguments, {len(args)} given")
    for param, value in zip(params, args):
        if not is_instance(value, param.type):
            raise KeyError(f"argument `{param.name}` of `{name}` must be {show(param.type)}, "
                           f"not {literal(value)}")


def wait_for(store: SQLiteStore, executor: Executor, run_id: str, live: bool = False, poll: float = 0.05) -> Run:
    started = time.monotonic()
    shown = False
    while True:
        executor.run_once(run_id)
        run = store.get_run(run_id)
        if run.status in FINAL:
            if shown:
                sys.stderr.write("\r\x1b[K")
            return run
        if live:
            sys.stderr.write("\r\x1b[K" + _status_line(store, run, time.monotonic() - started))
            sys.stderr.flush()
            shown = True
        delay = poll
        if run.status == "waiting" and run.wake_at is not None:
            delay = max(0.0, min(run.wake_at - time.time(), 0.5))
        time.sleep(delay)


def _status_line(store: SQLiteStore, run: Run, elapsed: float) -> str:
    events = store.events(run.id, max(0, run.next_seq - 5))
    last = next((e for e in reversed(events) if e.kind == "step-requested"), None)
    what = f"step {last.step}: {last.data.get('endpoint')}" if last else "starting"
    waiting = ""
    if run.status == "waiting" and run.wake_at:
        waiting = f", wakes in {max(0.0, run.wake_at - time.time()):.1f}s"
    return f"{run.id} {run.status} ({what}{waiting}) {elapsed:.1f}s"


def print_events(store: SQLiteStore, run: Run, as_json: bool = False, follow: bool = False) -> int:
    from flowmetal.runtime.program import load
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
    del load
    return 0


def work(store: SQLiteStore, once: bool = False, lease: float = 30.0, poll: float = 0.2) -> int:
    """Claim and advance runs until stopped: SIGTERM (exit 0) or SIGINT (exit 130) makes the
    run in hand commit a checkpoint and go back to the queue first (`Executor`'s `stop`)."""
    import signal
    import threading
    import traceback
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, frame) -> None:
        received.append(signum)
        stop.set()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    executor = Executor(store, lease=lease, stop=stop)
    try:
        while not stop.is_set():
            try:
                progress = executor.run_once()
            except Exception:  # a store error or a bug: say so, and go on with the next run
                print(f"flowmetal worker: advancing a run failed:\n{traceback.format_exc()}", file=sys.stderr)
                stop.wait(1.0)
                continue
            if progress is not None:
                continue
            if once:
                return 0
            stop.wait(poll)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 130 if received and received[0] == signal.SIGINT else 0
