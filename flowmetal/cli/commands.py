"""The `flowmetal` command line (SPEC section 6): a thin layer over the library.

Each command is a function taking the parsed arguments and returning the exit
status. Exit statuses: 0 success, 1 the command ran and found errors, 2 the
command could not run as asked (bad usage, a missing path). Errors of the
second kind are one line on stderr naming the problem, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys

from flowmetal import __version__
from flowmetal.cli.terminal import shown
from flowmetal.statuses import RUN_STATUSES, is_entry


def _check(args: argparse.Namespace) -> int:
    # Imported here so that `flowmetal --version` and `--help` start instantly.
    from flowmetal.cli import render
    from flowmetal.cli.check_command import PathError, check_paths

    try:
        result = check_paths(args.paths)
    except PathError as error:
        print(f"flowmetal check: error: {error}", file=sys.stderr)
        return 2
    diagnostics = sorted(result.diagnostics, key=lambda diag: diag.sort_key())
    if args.format == "json":
        json.dump([render.as_json(diag) for diag in diagnostics], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for diag in diagnostics:
            print(render.human(diag))
        print(render.summary(diagnostics, len(result.files)), file=sys.stderr)
    return 1 if result.has_errors else 0


_SUMMARIES = {
    "check": "report the problems in Flowmetal files",
    "run": "start a run of a function and drive it to its value",
    "runs": "list the runs in the store",
    "trace": "print a run's log",
    "worker": "claim runnable runs from the store and run them",
    "replay": "run a run again from its log (--verify: check that it reproduces)",
    "cancel": "cancel a run",
    "signal": "send a named signal with a JSON body to a run",
    "connector": "serve the @endpoint functions of a Python module from the store",
    "serve": "the HTTP API, callbacks, workers and connectors in one process",
    "lsp": "run the language server (stdio, or --tcp PORT)",
    "dap": "debug a run over the Debug Adapter Protocol on stdio, stepping forward and back",
}


def _lsp(args: argparse.Namespace) -> int:
    from flowmetal_lsp.server import main as serve
    return serve(tcp_port=args.tcp, host=args.host)


def _store(args: argparse.Namespace, readonly: bool = False):
    from flowmetal.runtime.store import open_store
    return open_store(args.store, readonly=readonly)


def _runtime_errors(fn):
    """Errors a user can act on, as one line on stderr and exit status 2."""
    def wrapper(args: argparse.Namespace) -> int:
        from flowmetal.runtime.literals import LiteralError
        from flowmetal.runtime.program import ProgramError
        from flowmetal.runtime.store import StoreError, describe_error
        try:
            return fn(args)
        except ProgramError as error:
            from flowmetal.cli import render
            if not error.diagnostics:  # refused before reading (a bad file name)
                print(f"flowmetal {args.command_name}: error: {error}: nothing was run", file=sys.stderr)
                return 2
            # A run's files are stored by their names; show them as paths beside FILE as given.
            folder = os.path.dirname(getattr(args, "file", "") or "")
            spans = [span for d in error.diagnostics for span in (d.span, *(n.span for n in d.notes))]
            names = {s.source.name: os.path.join(folder, s.source.name) for s in spans if "/" not in s.source.name}
            for diag in error.diagnostics:
                print(render.human(diag, names), file=sys.stderr)
            print(f"flowmetal {args.command_name}: the program has errors: nothing was run", file=sys.stderr)
            return 2
        except BrokenPipeError:
            raise
        except sqlite3.Error as error:  # the store's file failed under us (damaged, full, unwritable)
            location = getattr(args, "store", None) or os.environ.get("FLOWMETAL_STORE") or ".flowmetal/store.db"
            print(shown(f"flowmetal {args.command_name}: error: {describe_error(location, error)}"), file=sys.stderr)
            return 2
        except (StoreError, LiteralError, KeyError, OSError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            print(shown(f"flowmetal {args.command_name}: error: {message}"), file=sys.stderr)
            return 2
    return wrapper


@_runtime_errors
def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flowmetal.runtime.driving import prepare, program_files, record_run
    if args.port is not None:
        raise OSError("--port is no longer taken: callbacks are served on the port of the store's public URL "
                      "(FLOWMETAL_PUBLIC_URL, or `flowmetal serve --public-url`; default http://127.0.0.1:8700); "
                      "nothing was run")
    sources = program_files(args.file)
    # refuse before touching the store
    code, program, entry = prepare(sources, args.entry, list(args.args), first=Path(args.file).name)
    public_url = os.environ.get("FLOWMETAL_PUBLIC_URL") or None
    if public_url:  # and before recording a run it can't drive
        from flowmetal.server.addresses import AddressError, check_public_url
        try:
            public_url = check_public_url(public_url)
        except AddressError as error:
            raise OSError(f"FLOWMETAL_PUBLIC_URL: {error}; nothing was run") from None
    store = _store(args)
    origin = str(Path(args.file).resolve().parent)
    if args.detach:
        if public_url:
            store.set_public_url(public_url)
        print(record_run(store, program.stored, entry, list(args.args), code, origin=origin))
        return 0
    from flowmetal.server.local import InProcess, needed_by, takes_callbacks
    if not needed_by(program):  # it never calls out nor waits for a callback: nothing to start besides the run
        return _drive(args, store, lambda: record_run(store, program.stored, entry, list(args.args), code,
                                                      origin=origin))
    # The callback server, on the public URL's port, before the run is recorded: a port held by
    # another program is refused with nothing recorded.
    with InProcess(store.path, public_url=public_url, callbacks=takes_callbacks(program)) as connectors:
        if public_url:
            store.set_public_url(public_url)
        return _drive(args, store, lambda: record_run(store, program.stored, entry, list(args.args), code,
                                                      origin=origin), connectors)


def _drive(args: argparse.Namespace, store, record, connectors=None) -> int:
    """Record the run and drive it here, saying on stderr what it waits for. On Ctrl-C (or
    SIGTERM), leave it checkpointed and waiting for any worker, say how to go on, and exit
    130 (143); on a second, exit at once."""
    import signal
    import threading

    from flowmetal.cli.run_output import Progress
    from flowmetal.runtime.driving import FINAL, wait_for
    from flowmetal.runtime.executor import Executor
    from flowmetal.runtime.wakeups import set_from_handler
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, frame) -> None:
        if received:  # a second one: at once (the run is safe: its leases lapse)
            os.write(2, b"flowmetal run: stopped at once\n")
            os._exit(128 + signum)
        received.append(signum)
        set_from_handler(stop)  # the executor checkpoints the run and releases it; then this process stops
    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_id = record()
        store_arg = args.store or os.environ.get("FLOWMETAL_STORE") or os.path.join(".flowmetal", "store.db")
        progress = Progress(store, run_id, served=connectors.endpoints if connectors else frozenset(),
                            store_arg=store_arg)
        progress.started(store.get_run(run_id).entry)
        if connectors is not None and connectors.serving == "shared":
            progress.note(f"callbacks to {connectors.public_url} are taken by the Flowmetal server of this "
                          f"store that listens there")
        elif connectors is not None and connectors.serving == "elsewhere":
            progress.note(f"callbacks to {connectors.public_url} (the store's public URL) are taken by whatever "
                          f"serves it; this process listens for none")
        run = wait_for(store, Executor(store, stop=stop), run_id, status=progress, stop=stop)
        if run.status not in FINAL:
            progress.left(run)
            if connectors is not None:
                connectors.__exit__(None, None, None)  # under the handler still: a second signal ends it
            return 128 + received[0]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    progress.clear()
    if run.status == "completed":
        print(shown(run.result))
        return 0
    print(shown(run.error or f"the run ended {run.status}", keep_lines=True), file=sys.stderr)
    return 1


@_runtime_errors
def _runs(args: argparse.Namespace) -> int:
    import shutil

    from flowmetal.cli.run_output import print_runs
    from flowmetal.runtime.driving import select_runs
    store = _store(args, readonly=True)
    terminal = sys.stdout.isatty()
    statuses = sorted({s for given in args.status for s in given}) if args.status else None
    runs = select_runs(store, statuses=statuses, entry=args.entry, last=args.last)
    return print_runs(store, as_json=args.format == "json", terminal=terminal,
                      width=shutil.get_terminal_size().columns if terminal else 0, runs=runs)


@_runtime_errors
def _trace(args: argparse.Namespace) -> int:
    from flowmetal.cli.run_output import print_events
    store = _store(args, readonly=True)
    run = store.find_run(args.run)
    return print_events(store, run, as_json=args.format == "json", follow=args.follow)


def _statuses(text: str) -> list[str]:
    """`--status`: run states, separated by commas."""
    given = [part.strip() for part in text.split(",")]
    for status in given:
        if status not in RUN_STATUSES:
            raise argparse.ArgumentTypeError(f"no run state {status!r}: a run is one of {', '.join(RUN_STATUSES)}")
    return given


def _entry(text: str) -> str:
    """`--entry`: package/name or a name alone, as `GET /api/runs?entry=` takes it."""
    if not is_entry(text):
        raise argparse.ArgumentTypeError(f"not a function: {text!r} (write package/name, or the name alone)")
    return text


def _count(text: str) -> int:
    """A whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _positive(text: str) -> float:
    """A number of seconds above zero (for the worker's options)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text}")
    return value


@_runtime_errors
def _worker(args: argparse.Namespace) -> int:
    import logging

    from flowmetal.runtime.driving import work
    endpoints, inline = {}, None
    if args.connector:
        from flowmetal.connectors.inline import InlineSteps, load_endpoints
        from flowmetal.connectors.sdk import ConnectorError
        try:
            endpoints = load_endpoints(args.connector)
        except ConnectorError as error:
            print(shown(f"flowmetal worker: error: {error}"), file=sys.stderr)
            return 2
        inline = InlineSteps(endpoints, max_result=args.max_result)
    store = _store(args)
    hosted = f"; Python endpoints {', '.join(sorted(endpoints))} performed here" if endpoints else ""
    print(f"flowmetal worker: running the runs of {store.path}; HTTP request connector "
          f"{'off (--no-connectors)' if args.no_connectors else 'on'}{hosted}", file=sys.stderr, flush=True)
    logging.basicConfig(level=logging.WARNING, format="flowmetal worker: %(message)s")

    def connector(stop, log):
        parts = []
        if not args.no_connectors:
            from flowmetal.connectors.requests_thread import RequestsInThread
            parts.append(RequestsInThread(store.path, stop, log))
        if endpoints:
            from flowmetal.connectors.inline import EndpointsInThread
            parts.append(EndpointsInThread(store.path, endpoints, stop, max_result=args.max_result, lease=args.lease))
        if len(parts) == 1:
            return parts[0]
        from flowmetal.connectors.inline import Together
        return Together(parts)
    try:
        return work(store, once=args.once, lease=args.lease, poll=args.poll, inline=inline,
                    connector=connector if endpoints or not args.no_connectors else None)
    finally:
        if inline is not None:
            inline.close()


@_runtime_errors
def _replay(args: argparse.Namespace) -> int:
    from flowmetal.runtime.replay import replay
    store = _store(args, readonly=True)
    result = replay(store, args.run, verify=args.verify)
    for line in result.lines:
        print(shown(line))
    if result.divergence:
        print(shown(f"flowmetal replay: diverges at {result.divergence}"), file=sys.stderr)
        return 1
    if result.fault:
        print(shown(result.fault, keep_lines=True))
    elif result.value is not None:
        print(shown(result.value))
    if args.verify:
        print(f"replay reproduces the run ({result.steps} steps)", file=sys.stderr)
    return 0


@_runtime_errors
def _cancel(args: argparse.Namespace) -> int:
    from flowmetal.runtime.driving import FINAL
    from flowmetal.runtime.store import StoreError
    store = _store(args)
    try:
        run = store.find_run(args.run)
    except StoreError as error:  # no such run: as the HTTP API's 404, the command did not cancel
        print(shown(f"flowmetal cancel: error: {error}"), file=sys.stderr)
        return 1
    # Ended already, or while we asked (the store answers how): nothing was cancelled (the API's 409).
    outcome = run.status if run.status in FINAL else store.request_cancel(run.id)
    if outcome in ("cancelled", "cancelling") and run.status not in FINAL:
        print(f"{run.id} {outcome}")
        return 0
    print(f"flowmetal cancel: error: run `{run.id}` has ended already ({outcome}): there is nothing to cancel",
          file=sys.stderr)
    return 1


@_runtime_errors
def _signal(args: argparse.Namespace) -> int:
    """Queue a signal for a run, with the API's rules: a name or JSON that no signal can have
    is exit 2; an unknown or ended run, or a key used for another signal, exit 1."""
    from pathlib import Path
    from flowmetal.runtime.signals import SignalError, check_body, check_key, check_name
    from flowmetal.runtime.store import StoreError, is_postgres, store_location

    def refuse(message: str, status: int) -> int:
        print(shown(f"flowmetal signal: error: {message}"), file=sys.stderr)
        return status
    try:
        name, body = check_name(args.name), check_body(args.json)
        key = check_key(args.key) if args.key is not None else None
    except SignalError as error:
        return refuse(str(error), 2)
    location = store_location(args.store)
    if not is_postgres(location) and not Path(location).is_file():
        return refuse(f"no run `{args.run}`: there is no store at {location} (check --store or FLOWMETAL_STORE)", 1)
    store = _store(args)
    try:
        run = store.find_run(args.run)
    except StoreError as error:
        return refuse(str(error), 1)
    sent = store.send_signal(run.id, name, body, key)
    if sent.outcome == "ended":
        return refuse(f"run `{run.id}` has ended ({sent.status}): no signal can reach it; nothing was queued", 1)
    if sent.outcome == "conflict":
        return refuse(f"the key `{key}` was used for another signal to run `{run.id}` (#{sent.seq} `{sent.name}`): "
                      f"a retry must repeat its signal exactly; nothing was queued", 1)
    if sent.outcome == "unknown":  # removed since `find_run` found it
        return refuse(f"no run `{run.id}`", 1)
    again = " (already, with this key: nothing was queued again)" if sent.outcome == "duplicate" else ""
    print(shown(f"{run.id} signal #{sent.seq} {name} queued{again}"))
    return 0


@_runtime_errors
def _connector(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading
    from flowmetal.connectors.sdk import ConnectorError, endpoints_of, load_module, run_connector
    from flowmetal.runtime.wakeups import set_from_handler
    logging.basicConfig(level=logging.WARNING, format="flowmetal connector: %(message)s")
    # SIGINT and SIGTERM end the loop rather than the process, so that the steps claimed but
    # not finished are given back for the next connector instead of waiting out their leases.
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, frame) -> None:
        received.append(signum)
        set_from_handler(stop)

    try:
        module = load_module(args.module)
        endpoints = endpoints_of(module)
        if not endpoints:
            raise ConnectorError(f"{args.module}: no @endpoint functions")
        store = _store(args)
        previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            print(f"flowmetal connector: serving {', '.join(sorted(endpoints))} from {store.path}", file=sys.stderr,
                  flush=True)
            run_connector(module, store, lease=args.lease, poll=args.poll, stop=stop, concurrency=args.concurrency,
                          grace=args.grace, max_result=args.max_result)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    except ConnectorError as error:
        print(f"flowmetal connector: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 128 + received[0] if received else 0


@_runtime_errors
def _serve(args: argparse.Namespace) -> int:
    import os
    from flowmetal.server.serve import ServeError, serve
    public_url = args.public_url or os.environ.get("FLOWMETAL_PUBLIC_URL") or None
    try:
        return serve(args.store, host=args.host, port=args.port, public_url=public_url,
                     token=os.environ.get("FLOWMETAL_TOKEN") or None, insecure_no_token=args.insecure_no_token)
    except ServeError as error:
        print(f"flowmetal serve: error: {error}", file=sys.stderr)
        return 2


def _number(kind, least: float, above: bool):
    """An argparse type: a finite number of `kind` above `least` (or at least `least`)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not {'a whole number' if kind is int else 'a number'}: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
        if value <= least if above else value < least:
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {least:g}, not {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _dap(args: argparse.Namespace) -> int:
    from flowmetal.dap.adapter import main as serve
    return serve()


def _command_parsers() -> dict[str, argparse.ArgumentParser]:
    check = argparse.ArgumentParser(
        prog="flowmetal check",
        description="Read and check Flowmetal files; directories are searched for *.flow files, and a file "
                    "named brings in the files beside it that define the packages it requires (as `flowmetal "
                    "run` finds them). Exits 1 when any error is found.")
    check.add_argument("paths", nargs="+", metavar="PATH", help="a .flow file or a directory")
    check.add_argument("--format", choices=("human", "json"), default="human",
                       help="human-readable (default) or a JSON list of diagnostics")
    check.set_defaults(handler=_check)

    lsp = argparse.ArgumentParser(
        prog="flowmetal lsp",
        description="Run the Flowmetal language server. It speaks the Language Server Protocol on "
                    "stdin and stdout, or on a TCP port with --tcp.")
    lsp.add_argument("--tcp", type=int, metavar="PORT", help="listen on this TCP port instead of stdio")
    lsp.add_argument("--host", default="127.0.0.1",
                     help="the address to listen on with --tcp: a loopback address only, as the server has no "
                          "authentication (127.0.0.1, ::1 or localhost; default 127.0.0.1)")
    lsp.set_defaults(handler=_lsp)

    dap = argparse.ArgumentParser(
        prog="flowmetal dap",
        description="Run the Flowmetal debug adapter: the Debug Adapter Protocol on stdin and stdout. A "
                    "`launch` request names a recorded run (`run`) or a program to start (`program`, `entry`, "
                    "`args`), and the store (`store`); see docs/debugging.md.")
    dap.set_defaults(handler=_dap)

    def with_store(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--store", help="the store: an SQLite path or postgresql://USER@HOST:PORT/DB "
                                            "(default: $FLOWMETAL_STORE, else ./.flowmetal/store.db)")
        return parser

    run = with_store(argparse.ArgumentParser(
        prog="flowmetal run", description="Start a run of ENTRY (package/name, or a name that one package of "
                                          "FILE defines, or else one package of the program) and drive it in "
                                          "this process until it ends; print its value. The program is FILE and "
                                          "the files beside it that define the packages it requires. "
                                          "Stderr says the run's id, then what it waits for. Ctrl-C leaves the run "
                                          "waiting, for `flowmetal worker` or `flowmetal serve` to resume. Callback "
                                          "URLs are on the store's public URL (FLOWMETAL_PUBLIC_URL sets it; "
                                          "default http://127.0.0.1:8700), whose port this process listens on."))
    run.add_argument("file", metavar="FILE")
    run.add_argument("entry", metavar="ENTRY")
    # (A default: without one argparse names ARG among the missing when ENTRY is.)
    run.add_argument("args", nargs="*", metavar="ARG", default=[],
                     help="arguments, as Flowmetal literals: a string is quoted for the shell too, '\"world\"'")
    run.add_argument("--detach", action="store_true", help="only record the run and print its id")
    run.add_argument("--port", help=argparse.SUPPRESS)  # gone: callbacks are served on the public URL's port
    run.set_defaults(handler=_run)

    runs = with_store(argparse.ArgumentParser(
        prog="flowmetal runs",
        description="List the runs, oldest first, each child run after the run that started it: id, status, entry "
                    "(package/name), start and outcome (the value, the error's first line, or for a waiting run the "
                    "endpoints no live process serves). On a terminal with a header and aligned columns, a child's "
                    "id indented under its parent's; otherwise one line a run, its fields separated by tabs, the "
                    "start in ISO 8601 local time, and last the parent's id (empty for a top-level run)."))
    runs.add_argument("--format", choices=("human", "json"), default="human")
    runs.add_argument("--status", type=_statuses, action="append", metavar="STATUS[,STATUS...]",
                      help="only runs in these states: " + ", ".join(RUN_STATUSES) + " (the option may be repeated)")
    runs.add_argument("--entry", type=_entry, metavar="ENTRY",
                      help="only runs of this function: package/name, or a name alone for that function of any "
                           "package")
    runs.add_argument("--last", type=_count, metavar="N", help="only the N started last of them (still oldest first)")
    runs.set_defaults(handler=_runs)

    trace = with_store(argparse.ArgumentParser(prog="flowmetal trace", description="Print a run's log."))
    trace.add_argument("run", metavar="RUN", help="a run id (or a unique prefix)")
    trace.add_argument("--format", choices=("human", "json"), default="human")
    trace.add_argument("--follow", action="store_true", help="keep printing as the run goes on")
    trace.set_defaults(handler=_trace)

    worker = with_store(argparse.ArgumentParser(
        prog="flowmetal worker",
        description="Claim runnable runs and run them, repeatedly, and perform their HTTP requests (the "
                    "http.request endpoints) unless --no-connectors. Logs each run it claims and how it "
                    "leaves it, and each request, on stderr. On SIGTERM or SIGINT the run in hand is "
                    "checkpointed and released for any worker, and the worker exits."))
    worker.add_argument("--once", action="store_true",
                        help="stop when nothing is left to do soon: no run runnable, none waiting on a timer due "
                             "within 10 seconds, no HTTP request waiting to be sent or in flight here (runs "
                             "waiting on a callback, another connector or a later timer stay waiting)")
    worker.add_argument("--no-connectors", action="store_true",
                        help="no HTTP request connector: leave the runs' HTTP requests to another process (a "
                             "serve or a worker)")
    worker.add_argument("--connector", action="append", metavar="MODULE", default=[],
                        help="serve the @endpoint functions of MODULE (a dotted module name or a .py path; "
                             "repeatable) as `flowmetal connector` does, and perform those steps of the runs this "
                             "worker runs in the run's own process: one commit a step")
    worker.add_argument("--max-result", type=_number(int, 1, above=False), default=1024 * 1024,
                        help="with --connector: bytes of a result's stored form; a larger one fails its step "
                             "(default 1048576, 1 MiB)")
    worker.add_argument("--lease", type=_positive, default=30.0,
                        help="seconds a claim lasts without a heartbeat (renewed every third of it)")
    worker.add_argument("--poll", type=_positive, default=0.2,
                        help="seconds between looks for work (on PostgreSQL, which tells it of new work at once, "
                             "at least 5)")
    worker.set_defaults(handler=_worker)

    replay = with_store(argparse.ArgumentParser(prog="flowmetal replay",
                                                description="Run a run again from its log alone."))
    replay.add_argument("run", metavar="RUN")
    replay.add_argument("--verify", action="store_true",
                        help="check that replay reproduces the recorded steps and state")
    replay.set_defaults(handler=_replay)

    cancel = with_store(argparse.ArgumentParser(
        prog="flowmetal cancel",
        description="Cancel a run: at once, or at its worker's next commit when it is running. A run that has "
                    "ended already, or no such run, is an error (exit 1)."))
    cancel.add_argument("run", metavar="RUN")
    cancel.set_defaults(handler=_cancel)

    signal = with_store(argparse.ArgumentParser(
        prog="flowmetal signal",
        description="Send the signal NAME with the body JSON to a run: it is queued for the run's next "
                    "(receive! NAME), in order. Exits 1 when the run is unknown or has ended, 2 when NAME or "
                    "JSON is not valid."))
    signal.add_argument("run", metavar="RUN", help="a run id (or a unique prefix)")
    signal.add_argument("name", metavar="NAME", help="the signal's name: 1 to 128 letters, digits, _ . or -")
    signal.add_argument("json", metavar="JSON", help="the body, a JSON value (e.g. '{\"ok\": true}' or 42)")
    signal.add_argument("--key", help="an idempotency key: sending again with it queues nothing again")
    signal.set_defaults(handler=_signal)

    connector = with_store(argparse.ArgumentParser(
        prog="flowmetal connector",
        description="Import MODULE (a dotted module name, or a path to a .py file) and serve its "
                    "@endpoint functions: claim the store's pending steps for them, call them (up to "
                    "--concurrency at once, renewing each step's lease while its function runs), and record "
                    "each result (checked against the endpoint's declared type) while the claim is still "
                    "this connector's. SIGINT or SIGTERM stops it: the steps whose functions have not "
                    "returned within --grace seconds are given back for the next connector."))
    connector.add_argument("module", metavar="MODULE", help="a dotted module name or a path to a .py file")
    connector.add_argument("--lease", type=_number(float, 0, above=True), default=30.0,
                           help="seconds a claim lasts without renewal; renewed every third of that while "
                                "the step's function runs (default 30)")
    connector.add_argument("--concurrency", type=_number(int, 1, above=False), default=16,
                           help="functions running at once, each on a thread (default 16)")
    connector.add_argument("--grace", type=_number(float, 0, above=False), default=5.0,
                           help="seconds to let running functions finish on SIGINT or SIGTERM before their "
                                "steps are given back (default 5)")
    connector.add_argument("--max-result", type=_number(int, 1, above=False), default=1024 * 1024,
                           help="bytes of a result's stored form: a larger one fails its step, naming its "
                                "size and the limit (default 1048576, 1 MiB)")
    connector.add_argument("--poll", type=_number(float, 0, above=True), default=0.1,
                           help="seconds between looks for work (on PostgreSQL, which tells it of new work at once, "
                                "at least 5)")
    connector.set_defaults(handler=_connector)
    serve = with_store(argparse.ArgumentParser(
        prog="flowmetal serve",
        description="Serve the HTTP API (docs/http-api.md) and HTTP callbacks, and run workers and the HTTP "
                    "request connector, in one process, until SIGINT or SIGTERM. When FLOWMETAL_TOKEN is "
                    "set, API requests need `Authorization: Bearer <token>`; an address other than loopback "
                    "needs it."))
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1; another than loopback needs "
                            "FLOWMETAL_TOKEN, and 0.0.0.0 or :: a --public-url)")
    serve.add_argument("--port", type=int, default=8700, help="the port to listen on (default 8700; 0: any free port)")
    serve.add_argument("--public-url", help="the URL callback URLs are built on, kept in the store as its public "
                                            "URL (default: $FLOWMETAL_PUBLIC_URL, else http://HOST:PORT)")
    serve.add_argument("--insecure-no-token", action="store_true",
                       help="listen on an address other than loopback without FLOWMETAL_TOKEN: anyone who "
                            "reaches it can start, read and cancel runs")
    serve.set_defaults(handler=_serve)
    return {"check": check, "run": run, "runs": runs, "trace": trace, "worker": worker, "replay": replay,
            "cancel": cancel, "signal": signal, "lsp": lsp, "dap": dap, "connector": connector,
            "serve": serve}


# Commands that run until stopped: started beside a PostgreSQL server (a boot, a restart), they
# wait for it at their first connection rather than exit; the others fail fast.
LONG_RUNNING = ("worker", "serve", "connector", "lsp")
STORE_PATIENCE = 60.0   # seconds, unless FLOWMETAL_STORE_WAIT says otherwise


def _wait_for_store(command: str) -> str | None:
    """Have the command's PostgreSQL stores wait for their server (None), or the error of a
    malformed FLOWMETAL_STORE_WAIT."""
    text = os.environ.get("FLOWMETAL_STORE_WAIT", "").strip()
    try:
        seconds = float(text) if text else STORE_PATIENCE
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86400:
        return f"FLOWMETAL_STORE_WAIT must be a number of seconds from 0 to 86400, not {text[:40]!r}"
    from flowmetal.runtime.store import wait_for_store
    wait_for_store(seconds, lambda message: print(f"flowmetal {command}: {message}", file=sys.stderr, flush=True))
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command. Options may stand before or after a command's positional
    arguments, so each command parses its own arguments, intermixed."""
    commands = _command_parsers()
    listing = ("commands:\n" + "\n".join(f"  {name:<11}{_SUMMARIES[name]}" for name in commands)
               + "\n\n'flowmetal COMMAND --help' describes a command's arguments.")
    top = argparse.ArgumentParser(
        prog="flowmetal",
        description="Flowmetal: a durable, evented, asynchronous Lisp for coordination work.",
        epilog=listing, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"flowmetal {__version__}")
    top.add_argument("command", choices=sorted(commands), metavar="COMMAND")
    top.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    if not (sys.argv[1:] if argv is None else argv):  # no command: what there is to type, as a usage error
        print(f"{top.format_usage()}\n{listing}", file=sys.stderr)
        return 2
    parsed = top.parse_args(argv)
    args = commands[parsed.command].parse_intermixed_args(parsed.args)
    args.command_name = parsed.command
    if parsed.command in LONG_RUNNING:
        problem = _wait_for_store(parsed.command)
        if problem:
            print(f"flowmetal {parsed.command}: error: {problem}", file=sys.stderr)
            return 2
    try:
        return args.handler(args)
    except BrokenPipeError:  # `flowmetal check ... | head`
        return 0
    except KeyboardInterrupt:
        return 130
