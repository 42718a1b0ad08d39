"""Starting and driving runs: the runtime's API for the command line, the HTTP
server and the editor's workbench, which all start runs the same way.

- `program_files(FILE)`: a run's program is FILE and, from the `*.flow` files
  beside it, those defining the packages it requires (transitively). Their
  sources are stored with the run, so editing the files later changes nothing
  in flight. Only what FILE needs is read: a file beside it that is broken,
  huge or unreadable changes nothing unless it may define a package FILE
  requires. The standard packages it uses are stored with it too
  (`Program.stored`), so a run resumed after an upgrade runs the standard code
  it started with.
- `prepare_run` and `check_entry`: a run refused before it is recorded (a
  program with errors, no such function, arguments of the wrong number or
  type); `record_run`: the pending run in the store.
- `wait_for`: drive one run in this process until it ends, sleeping until its
  next timer, or until told to stop (`flowmetal run`, and its Ctrl-C).
- `work`: the worker loop (`flowmetal worker`): SIGTERM and SIGINT become its
  executor's stop; a connector handed in runs beside it; a line of log for each
  run claimed and left; `once` ends when nothing is due soon (`ONCE_HORIZON`).
  Idle, it sleeps until the next due time, a notification that a run is
  runnable (PostgreSQL), or its polling interval (`flowmetal.runtime.wakeups`).
- `waiting_on`, `qualified_entry`, `local_time`: what a run waits on, its entry
  as `package/name`, a moment as local time, in words for people.

What the command line prints of runs is in `flowmetal.cli.run_output`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Collection
from pathlib import Path

from flowmetal.lang.forms import head_symbol, is_symbol
from flowmetal.lang.resolve import STANDARD_NAMES
from flowmetal.lang.syntax import Kind, Seq, read
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import is_standard
from flowmetal.runtime.store import Run, SQLiteStore, StoreError
from flowmetal.runtime.wakeups import Wakeup, set_from_handler

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


def program_files(file: str, read=None, unreadable: dict[str, str] | None = None) -> dict[str, str]:
    """FILE and the files beside it that define the packages it requires, transitively (the
    standard packages come from the standard library: a file beside FILE does not replace
    one). `read(path)` gives a file's text (an editor passes its unsaved buffers); by
    default, the file on disk.

    Other files are read only for a package that no file taken so far defines, and then one
    at a time until one defines it: first those named after it (`acme.lib.flow` or
    `lib.flow` for `acme.lib`), then the others, smallest first. A file that cannot be read
    (or, on disk, is no regular file: a pipe would never end) is passed over; only when a
    required package is then defined by no file that could be read is it an error
    (`OSError`) naming those files, or, when `unreadable` is given (`flowmetal check`, which
    reports them), those files' names and why they could not be read are put there. A
    package defined nowhere is left for the checker to report, as any unknown package is."""
    path = Path(file)
    on_disk = read is None
    if on_disk:
        if not path.is_file():
            raise OSError(f"{file}: no such file" if not path.exists()
                          else f"{file}: is a directory, not a program's file" if path.is_dir()
                          else f"{file}: not a regular file")
        read = lambda p: p.read_text(encoding="utf-8")  # noqa: E731
    try:
        text = read(path)
    except FileNotFoundError:
        raise OSError(f"{file}: no such file") from None
    except UnicodeDecodeError as error:
        raise OSError(f"{file}: not valid UTF-8: byte 0x{error.object[error.start]:02x} (at byte {error.start}) "
                      f"cannot start or continue a character") from None
    sources = {path.name: text}
    defined, wanted = file_packages(text, path.name)
    missing = wanted - defined - STANDARD_NAMES
    if not missing:
        return sources
    siblings = [p for p in path.parent.glob("*.flow") if p.name != path.name]
    scanned: dict[str, tuple[str, set[str], set[str]] | None] = {}
    skipped: dict[str, str] = {}  # the files that could not be read, and why

    def scan(other: Path):
        if other.name not in scanned:
            try:
                if on_disk and not other.is_file():
                    raise OSError("not a regular file")
                other_text = read(other)
            except (OSError, UnicodeDecodeError) as error:
                scanned[other.name] = None
                skipped[other.name] = _reason(error)
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
    if unfound and skipped and unreadable is not None:
        unreadable.update(skipped)
    elif unfound and skipped:
        packages = ", ".join(f"`{p}`" for p in sorted(unfound))
        files = "; ".join(f"{name}: {why}" for name, why in sorted(skipped.items()))
        raise OSError(f"{file} requires {packages}, which no file beside it that could be read defines "
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
    return prepare(sources, entry, args)[0]


def prepare(sources: dict[str, str], entry: str, args: list[str], first: str | None = None):
    """`prepare_run`, with a bare entry name looked up first among the packages of the file
    `first` (the one the user named; `Program.package_of`): (code hash, program, the entry as
    the run is to record it)."""
    from flowmetal.runtime.literals import read_literal
    from flowmetal.runtime.program import load_new
    program = load_new(sources)
    package, _ = program.package_of(entry, first)
    check_entry(program, entry, [read_literal(text, program, package) for text in args], first)
    return program.stored_hash, program, program.entry_name(entry, first)


def record_run(store: SQLiteStore, sources: dict[str, str], entry: str, args: list[str], code: str,
               origin: str | None = None) -> str:
    """Record a pending run of a prepared program (`prepare`): its id. `sources` is what the run
    stores, the prepared program's `stored` (its files and the standard packages it uses)."""
    return store.create_run(entry, list(args), store.put_sources(sources), code, origin=origin)


def check_entry(program, entry: str, args: list, first: str | None = None) -> None:
    """Refuse a run that could not start: no such function (with the nearest name), wrong
    arguments' number or types."""
    from flowmetal.lang.types import show
    from flowmetal.runtime.primitives import is_instance
    from flowmetal.runtime.program import did_you_mean
    from flowmetal.runtime.values import literal
    package, name = program.package_of(entry, first)
    scope = program.scopes.get(package)
    symbol = scope.decls.get(name) if scope else None
    if symbol is None or symbol.kind != "function":
        if scope is None:
            raise KeyError(f"no package `{package}` in the program"
                           + did_you_mean(package, [s.name for s in program.scopes.values() if not s.standard]))
        raise KeyError(f"no function `{name}` in package `{package}`"
                       + did_you_mean(name, program.function_names([scope])))
    params = symbol.sig.params
    required = sum(1 for p in params if not p.optional)
    if not required <= len(args) <= len(params):
        takes = f"{required}" if required == len(params) else f"{required} to {len(params)}"
        noun = "argument" if takes == "1" else "arguments"
        raise KeyError(f"`{name}` takes {takes} {noun}, {len(args)} given")
    for param, value in zip(params, args):
        if not is_instance(value, param.type):
            raise KeyError(f"argument `{param.name}` of `{name}` must be {show(param.type)}, "
                           f"not {literal(value)}")


def wait_for(store: SQLiteStore, executor: Executor, run_id: str, status=None, poll: float = 0.05,
             stop=None) -> Run:
    """Drive one run (and the child runs it starts) in this process until it ends, sleeping until
    its next timer. `status(run)`, when given, is called each time the run has advanced and not
    ended (the command line says what it waits for). `stop` (a `threading.Event`, the executor's own `stop` too), once set,
    ends the wait early: the executor has checkpointed and released the run, which is returned
    as it is then (`pending` or `waiting`, for any worker to resume)."""
    while True:
        family = [run_id]
        if stop is None or not stop.is_set():
            executor.run_once(run_id)
            # The child runs it started (`flowmetal.run`), theirs too: in this process as well, unless
            # a worker took them first.
            family += [c.id for c in store.descendants(run_id) if c.status not in FINAL]
            for child in family[1:]:
                if stop is None or not stop.is_set():
                    executor.run_once(child)
        run = store.get_run(run_id)
        if run.status in FINAL or (stop is not None and stop.is_set()):
            return run
        if status is not None:
            status(run)
        delay = poll
        going = [r for r in map(store.get_run, family) if r is not None and r.status not in FINAL]
        if going and all(r.status == "waiting" and r.wake_at is not None for r in going):
            delay = max(0.0, min(min(r.wake_at for r in going) - time.time(), 0.5))
        # In short sleeps: a signal handler that sets `stop` does not cut a sleep short.
        deadline = time.monotonic() + delay
        while (stop is None or not stop.is_set()) and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, poll))


ONCE_HORIZON = 10.0  # seconds: `work(once=True)` waits for a timer due within this, not a later one


def work(store: SQLiteStore, once: bool = False, lease: float = 30.0, poll: float = 0.2, connector=None,
         log=None, inline=None) -> int:
    """Claim and advance runs until stopped: SIGTERM (exit 0) or SIGINT (exit 130) makes the
    run in hand commit a checkpoint and go back to the queue first (`Executor`'s `stop`).

    `connector(stop, log)`, when given, makes the connector to run beside the executor (the
    command line gives the HTTP request connector's, `connectors.requests_thread`,
    which is a layer above this one): something with `start()`, `join()`, `endpoints` and
    `busy(store)` (whether a step of its is still to be performed or in flight). `once`: stop
    when nothing is left that this worker would do soon: no run is runnable, no run waits on
    a timer due within `ONCE_HORIZON` seconds, and the connector is not busy. Runs waiting on
    anything else (a callback, an endpoint another process serves, a later timer) stay
    waiting. `log(line)` is told of each run claimed and how each advance left it (default:
    stderr; the connector is given it too). `inline`: the endpoints this worker performs in the
    run's own process (`Executor`'s `inline`; the command line's `--connector` modules)."""
    import signal
    import threading
    import traceback
    if log is None:
        def log(line: str) -> None:
            print(f"flowmetal worker: {line}", file=sys.stderr, flush=True)
    stop = threading.Event()
    received: list[int] = []

    wakeup = Wakeup(store, runs=True)

    def on_signal(signum, frame) -> None:
        received.append(signum)
        set_from_handler(stop, wakeup)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    executor = Executor(_Claims(store, log), lease=lease, stop=stop, inline=inline)
    requests = connector(stop, log) if connector is not None else None
    here = (lambda: frozenset(requests.endpoints)) if requests is not None else frozenset
    try:
        if requests is not None:
            requests.start()
        while not stop.is_set():
            try:
                wakeup.clear()
                progress = executor.run_once()
                if progress is not None:
                    log(_left(store, progress, here))
                    continue
                listening = wakeup.listening
                delay = wakeup.interval(poll)
                wake = store.next_wake()
                # Told of everything else, it must still wake for a lease another process may take over.
                due = store.next_wake(leases=True) if listening else wake
                now = store.clock() if due is not None else 0.0  # due times are on the store's clock
                if due is not None:
                    delay = max(0.0, min(delay, due - now))
                if once:
                    soon = wake is not None and wake <= now + ONCE_HORIZON
                    sending = requests is not None and requests.busy(store)
                    if not soon and not sending:
                        return 0
            except StoreError as error:  # the store went away for a moment (a restart): one line, not a traceback
                print(f"flowmetal worker: {error}; trying again in 1 s", file=sys.stderr, flush=True)
                stop.wait(1.0)
                continue
            except Exception:  # a bug: say so in full, and go on with the next run
                print(f"flowmetal worker: advancing a run failed:\n{traceback.format_exc()}", file=sys.stderr)
                stop.wait(1.0)
                continue
            wakeup.sleep(delay, stop)
    finally:
        wakeup.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if requests is not None:
            stop.set()
            requests.join()
    return 130 if received and received[0] == signal.SIGINT else 0


class _Claims:
    """The store as the worker's executor sees it: each run it claims is logged."""

    def __init__(self, store: SQLiteStore, log) -> None:
        self._store = store
        self._log = log

    def claim(self, worker: str, lease: float, now: float | None = None, run_id: str | None = None):
        run = self._store.claim(worker, lease, now=now, run_id=run_id)
        if run is not None:
            self._log(f"run {run.id} {qualified_entry(run.entry, self._store, run)}: claimed")
        return run

    def __getattr__(self, name):
        return getattr(self._store, name)


def _left(store: SQLiteStore, progress, here=frozenset) -> str:
    """How one advance left a run, for the worker's log: its status, and what it waits on
    (the endpoints `here()` are served by this process, whether or not its connector has
    recorded its presence yet)."""
    run = store.get_run(progress.run_id)
    status = progress.status
    if status == "lost":
        return f"run {progress.run_id}: left to another worker (its lease ran out)"
    if status == "pending":
        return f"run {progress.run_id}: released, pending (stopping, or making way for other runs)"
    if status == "failed" and run is not None and run.error:
        return f"run {run.id}: failed: {run.error.splitlines()[0]}"
    if status == "completed" and run is not None:
        return f"run {run.id}: completed: {_cut(run.result or '', 80)}"
    if status == "waiting" and run is not None:
        served = here()
        unserved = {f"step {n} {e}" for n, e in store.unserved_steps([run.id]).get(run.id, []) if e not in served}
        waits = [w + (" (no live process serves it)" if w in unserved else "") for w in waiting_on(store, run)]
        return f"run {run.id}: waiting" + (f" on {'; '.join(waits)}" if waits else "")
    return f"run {progress.run_id}: {status}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def waiting_on(store: SQLiteStore, run: Run) -> list[str]:
    """What a waiting run waits on, in words: `step 3 acme.billing/charge!`, `a callback (step 4)`,
    `a timer due 14:03:25`, `child run 5f0c… acme/job (waiting)` (a child run still going)."""
    from flowmetal.runtime.store import CALLBACK_WAIT
    out = []
    for row in store.open_steps_of(run.id):
        out.append(f"a callback (step {row['step']})" if row["endpoint"] == CALLBACK_WAIT
                   else f"step {row['step']} {row['endpoint']}")
    if run.wake_at is not None and run.wake_at > time.time():
        out.append(f"a timer due {local_time(run.wake_at)}")
    out += [f"child run {c.id} {c.entry} ({c.status})" for c in store.children(run.id) if c.status not in FINAL]
    return out


def local_time(at: float, now: float | None = None) -> str:
    """A moment as local time, short: `14:03:25` today, `2026-03-02 14:03` another day."""
    now = time.time() if now is None else now
    moment = time.localtime(at)
    if time.strftime("%Y-%m-%d", moment) == time.strftime("%Y-%m-%d", time.localtime(now)):
        return time.strftime("%H:%M:%S", moment)
    return time.strftime("%Y-%m-%d %H:%M", moment)


def select_runs(store, statuses: Collection[str] | None = None, entry: str | None = None,
                last: int | None = None, cache: dict | None = None) -> list[Run]:
    """The runs `flowmetal runs` and the editors list, oldest first: with a status among
    `statuses`; of `entry` (`package/name`, or a function's name alone: that function of any
    package; a run started with the name alone counts as its package's); the `last` started
    of them. The store narrows them (`Store.list_runs`); a run whose recorded entry is a name
    alone is checked against its program (`cache`: `qualified_entry`'s)."""
    if entry is None:
        return store.list_runs(statuses=statuses, last=last)
    package, _, name = entry.rpartition("/")
    return narrowed(store, store.list_runs(statuses=statuses, entries=[entry, name] if package else [name]),
                    entry=entry, last=last, cache=cache)


def narrowed(store, runs: list[Run], statuses: Collection[str] | None = None, entry: str | None = None,
             last: int | None = None, cache: dict | None = None) -> list[Run]:
    """Runs read already (in their order) narrowed as `select_runs` narrows a store's: by
    status, by entry (`is_of`), then the `last` of them."""
    if statuses is not None:
        runs = [r for r in runs if r.status in statuses]
    if entry is not None:
        cache = {} if cache is None else cache
        runs = [r for r in runs if is_of(r, entry, store, cache)]
    return runs[-last:] if last is not None else runs


def is_of(run: Run, entry: str, store, cache: dict | None = None) -> bool:
    """Whether `run` is a run of `entry`: `package/name`, or a function's name alone (that
    function of any package); a run started with the name alone counts as its package's."""
    package, _, name = entry.rpartition("/")
    qualified = qualified_entry(run.entry, store, run, cache)
    return qualified == entry if package else qualified.rpartition("/")[2] == name


def qualified_entry(entry: str, store, run: Run, cache: dict | None = None) -> str:
    """A run's entry as `package/name` (a run may have been started with `name` alone, which
    names the function of its program's one package)."""
    if "/" in entry:
        return entry
    cache = {} if cache is None else cache
    found = cache.get(run.code_hash)
    if found is None:
        packages: set[str] = set()
        try:
            sources = store.get_sources(run.program)
        except Exception:  # noqa: BLE001 - a program that cannot be read: the entry as recorded
            return entry
        for name, text in sources.items():
            if not is_standard(name):  # the standard packages stored with the run are not its own
                packages |= file_packages(text, name)[0]
        found = cache[run.code_hash] = next(iter(packages)) if len(packages) == 1 else ""
    return f"{found}/{entry}" if found else entry
