"""Running and tracing from the editor: the `flowmetal.*` commands, the `flowmetal/*` requests
and notifications, and the Run / Trace code lenses (docs/lsp-protocol.md).

Protocol glue over `flowmetal.ide.workbench`, which does the work in plain data.
Every workbench call runs on one worker thread (`_Runs.pool`): the store is an
SQLite connection, used by one thread at a time, and a replay for
`flowmetal/stateAt` must not stall the handling of keystrokes. A watcher task
asks the workbench for changes every `LOOK_EVERY` seconds and sends them as
`flowmetal/runUpdated` and `flowmetal/traceEvent` notifications; runs started
from the command line or by `serve` on the same store come through the same way.

Where a run's code is. Events and states carry spans in the run's stored
sources. A stored file is shown as the workspace file it was read from when
that file's text is still exactly the stored one; otherwise as a read-only copy
written beside the store (`<store dir>/sources/<code hash>/<file>`; for a
PostgreSQL store, in the workspace's `.flowmetal/sources/`), so a
location always points at the code the run really ran. Those copies are not
part of the workspace: opening one adds nothing to the analysis.

Trust. Unless the client says the store is trusted (`trusted` in
`initializationOptions`, or the `flowmetal.trust` command, sent on the user's
behalf), the workbench drives only the runs started from this editor: a store
that came with a cloned repository runs nothing by being opened. Trust is
never read from `workspace/didChangeConfiguration`, because project files can
write that section (Emacs directory variables set `eglot-workspace-configuration`
without asking, VS Code workspace settings), and it is dropped when the
settings move the editor to another store or serve: it was given for the one
in use.

Stored file names come from the store or a serve, which anyone may have
written: they are checked when read (the store refuses a bad name), a path is
made from one only inside its folder (`flowmetal.lang.filenames.inside`), and a copy
is written only as a new file (`flowmetal.lang.filenames.write_new`), never over a
file it did not write: a location that cannot be shown that way is left out.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.uris import from_fs_path, to_fs_path

from flowmetal.ide import features
from flowmetal.lang import filenames
from flowmetal.lang.source import Span
from flowmetal.lang.types import show
from flowmetal.statuses import RUN_STATUSES, is_entry

if TYPE_CHECKING:
    from flowmetal.ide.workbench import Workbench
    from flowmetal.runtime.store import Run

from flowmetal_lsp import convert

RUN_UPDATED = "flowmetal/runUpdated"
TRACE_EVENT = "flowmetal/traceEvent"
FINAL = ("completed", "failed", "cancelled")


class JsonRpcRequestFailed(JsonRpcException):
    """LSP's RequestFailed: a valid request that could not be carried out (the message says why)."""
    CODE = -32803
    MESSAGE = "Request failed"


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def field(params, name: str, default=None):
    """A field of a command's or custom request's parameters (a dict, or pygls' object)."""
    if isinstance(params, (list, tuple)) and not hasattr(params, "_fields"):  # a command's positional arguments
        params = params[0] if params else None
    if params is None:
        return default
    if isinstance(params, dict):
        return params.get(name, default)
    value = getattr(params, name, default)  # pygls reads unknown params as named tuples, nested ones too
    return _plain(value)


def _plain(value):
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Runs:
    """The server's workbench, its thread, its watcher, and the places of stored sources."""

    def __init__(self, ls) -> None:
        self.ls = ls
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowmetal-runs")
        self.settings: dict = {}
        self.trusted = False
        self.bench: Workbench | None = None
        self.watcher: asyncio.Task | None = None
        self.known: set[str] = set()
        self._last_error: str | None = None
        self._origins: dict[str, str | None] = {}
        self._uris: dict[tuple[str, str], str] = {}
        self._texts: dict[str, tuple[tuple[int, int], str]] = {}

    # -- configuration --

    def root(self) -> str | None:
        for folder in self.ls.workspace.folders.values():
            path = to_fs_path(folder.uri)
            if path:
                return path
        root = self.ls.workspace.root_path
        return root or None

    def configure(self, settings: dict | None, changed: bool = False) -> None:
        """Settings from `initializationOptions`, or (`changed`) from `didChangeConfiguration`:
        there, only a `flowmetal` section changes anything (clients send empty settings
        as a signal to pull configuration), and the keys it gives override the others."""
        settings = _plain(settings) if settings is not None else {}
        settings = settings if isinstance(settings, dict) else {}
        if changed:
            section = settings.get("flowmetal")
            if not isinstance(section, dict) or not any(k in section for k in ("store", "serve", "token")):
                return
            settings = {**self.settings, **{k: section[k] for k in ("store", "serve", "token") if k in section}}
        elif isinstance(settings.get("flowmetal"), dict):
            settings = settings["flowmetal"]
        # Each a non-empty string, or unset (anything else is ignored: the default applies).
        wanted = {k: v.strip() if isinstance(v, str) and v.strip() else None
                  for k, v in ((k, settings.get(k)) for k in ("store", "serve", "token"))}
        if not changed:  # trust: only from the client at the start (then `flowmetal.trust`)
            self.trusted = settings.get("trusted") is True
        if self.bench is not None and wanted == self.settings:
            if self.bench.trusted != self.trusted:
                self.pool.submit(self.bench.set_trusted, self.trusted)
            return
        if changed:
            self.trusted = False  # given for the store in use, not for the next one
        self.settings = wanted
        from flowmetal.ide.workbench import Workbench
        old, self.bench = self.bench, Workbench(store=wanted["store"] or None, serve_url=wanted["serve"] or None,
                                                token=wanted["token"] or None, root=self.root(),
                                                trusted=self.trusted)
        if old is not None:
            self.pool.submit(old.close)
        # Take stock of the store now, before any request can add a run: the watcher then
        # reports every run that appears from here on (the pool runs calls in order).
        self.pool.submit(self.bench.changes)
        self._origins.clear()
        self._uris.clear()
        if old is not None:  # other runs: the Trace lenses count those of the new store (or serve)
            refresh_lenses(self.ls)

    async def call(self, fn, *args):
        """Run `fn(workbench, *args)` on the workbench's thread; its errors become request errors."""
        if self.bench is None:
            self.configure(getattr(self, "pending_options", None) or {})
        bench = self.bench
        from flowmetal.ide.workbench import WorkbenchError
        from flowmetal.runtime.store import StoreError
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: fn(bench, *args))
        except (WorkbenchError, StoreError) as error:
            raise JsonRpcRequestFailed(str(error)) from None

    # -- watching --

    def start_watching(self) -> None:
        if self.watcher is None:
            self.watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        from flowmetal.ide.workbench import LOOK_EVERY
        from flowmetal.runtime.store import StoreError
        loop = asyncio.get_running_loop()
        resumed = None
        while True:
            try:
                bench = self.bench
                if bench is not None:
                    if bench is not resumed:  # a store newly looked at: go on with its unfinished runs
                        await loop.run_in_executor(self.pool, bench.resume_unfinished)
                        resumed = bench
                    runs, events = await loop.run_in_executor(self.pool, self._changes, bench)
                    # A new run is announced before its events; a known run's new status after
                    # them, so a client that sees `completed` has every event already.
                    new = {run["id"] for run in runs} - self.known
                    for run in runs:
                        if run["id"] in new:
                            self.ls.protocol.notify(RUN_UPDATED, run)
                    for event in events:
                        self.ls.protocol.notify(TRACE_EVENT, event)
                    for run in runs:  # (a run new and ended at once is announced both times)
                        if run["id"] not in new or run["status"] in FINAL:
                            self.ls.protocol.notify(RUN_UPDATED, run)
                    self.known |= new
                    # The Trace lenses count runs: a new run changes them. Asked again when a
                    # run ends, too: editors do not always act on a refresh (VS Code may drop
                    # one that comes while it is asking for the lenses already).
                    if new or any(run["status"] in FINAL for run in runs):
                        self._refresh_lenses()
            except asyncio.CancelledError:
                raise
            except StoreError as error:  # the store or serve is unreachable: say so once, go on looking
                if str(error) != self._last_error:
                    self._last_error = str(error)
                    self.ls.window_log_message(types.LogMessageParams(
                        type=types.MessageType.Warning, message=f"flowmetal: watching the runs: {error}"))
                await asyncio.sleep(1.0)
            except Exception:
                self.ls.report_failure("watching the runs")
                await asyncio.sleep(1.0)
            await asyncio.sleep(LOOK_EVERY)

    def _changes(self, bench: Workbench) -> tuple[list[dict], list[dict]]:
        changes = bench.changes()
        runs = [self.run_json(bench, run) for run in changes.runs]
        events = [{"runId": run.id, "event": self.event_json(bench, run, event)} for run, event in changes.events]
        return runs, events

    def _refresh_lenses(self) -> None:
        refresh_lenses(self.ls)

    # -- plain data for the protocol (on the workbench's thread) --

    def run_json(self, bench: Workbench, run: Run) -> dict:
        from flowmetal.runtime.store import StoreError
        origin = self.origin(bench, run)
        try:
            sources = bench.store.get_sources(run.program)
        except StoreError:  # (a bad file name): listed, without its files; its trace says why
            sources = {}
        main = next(iter(sources), None)
        read_from = filenames.inside(origin, main) if origin and main else None
        return {
            "id": run.id, "entry": bench.entry(run), "args": run.args, "status": run.status,
            "started": iso(run.created), "updated": iso(run.updated),
            "ended": iso(run.updated) if run.status in FINAL else None,
            "result": run.result, "error": run.error,
            "uri": self.uri(bench, run, main) if main else None,
            "origin": from_fs_path(str(read_from)) if read_from else None,
            "blocked": bench.blocked(run),
            "unserved": bench.unserved(run),
            # The run that started this one as a child run (null for a top-level run); the
            # editors nest a child run under its parent.
            "parent": run.parent,
        }

    def trust(self, bench: Workbench, trusted: bool) -> list[dict]:
        """Trust the store (or not): the unfinished runs, whose `blocked` it changes."""
        bench.set_trusted(trusted)
        if bench.serve_url is not None:
            return []
        return [self.run_json(bench, run) for run in bench.runs() if run.status not in FINAL]

    def origin(self, bench: Workbench, run: Run) -> str | None:
        if run.id not in self._origins:
            self._origins[run.id] = bench.origin(run)
        return self._origins[run.id]

    def uri(self, bench: Workbench, run: Run, name: str) -> str | None:
        """Where the run's stored file `name` can be opened: the workspace file when its text is
        the stored one, else a read-only copy of the stored text beside the store; None when
        neither can be (no such stored file, or its copy's place is taken)."""
        from flowmetal.runtime.program import code_hash
        from flowmetal.runtime.store import StoreError
        try:
            sources = bench.sources(run)
        except StoreError:  # a program the store refuses to give back (a bad file name)
            return None
        key = (code_hash(sources), name)  # the texts' own hash: a stored code hash is just a string
        origin = self.origin(bench, run)
        candidate = filenames.inside(origin, name) if origin else None
        if candidate is not None:
            try:
                if self._disk_text(candidate) == sources[name]:
                    return from_fs_path(str(candidate))
            except (OSError, UnicodeDecodeError, KeyError):
                pass
        if key not in self._uris:
            path = self.stored_copy(sources, key[0], Path(bench.local_folder), name)
            self._uris[key] = from_fs_path(str(path)) if path is not None else None
        return self._uris[key]

    def _disk_text(self, path: Path) -> str:
        """A file's text on disk, read again only when it changed (a list of runs asks often)."""
        info = path.stat()
        key = (info.st_mtime_ns, info.st_size)
        cached = self._texts.get(str(path))
        if cached is None or cached[0] != key:
            cached = self._texts[str(path)] = (key, path.read_text(encoding="utf-8"))
        return cached[1]

    def stored_copy(self, sources: dict[str, str], digest: str, beside: Path, name: str) -> Path | None:
        """The read-only copy of the stored file `name` of a program (`sources`, whose code
        hash is `digest`) in the folder `beside` the store (`Workbench.local_folder`), written when missing; None when `name` is no file
        of the program or the copy cannot be made (a symlink on the way, another file in its
        place: left as they are)."""
        text = sources.get(name)
        if text is None or filenames.problem(name) is not None:
            return None
        folder = beside.resolve()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return filenames.write_new(folder, f"sources/{digest[:16]}/{name}", text)
        except (filenames.FileNameError, OSError):
            return None

    def location(self, bench: Workbench, run: Run, span: Span | None) -> dict | None:
        if span is None:
            return None
        uri = self.uri(bench, run, span.source.name)
        if uri is None:
            return None
        rng = convert.range_of(span)
        return {"uri": uri,
                "range": {"start": {"line": rng.start.line, "character": rng.start.character},
                          "end": {"line": rng.end.line, "character": rng.end.character}}}

    def event_json(self, bench: Workbench, run: Run, event) -> dict:
        data = {k: v for k, v in event.data.items() if k != "span"}
        return {"seq": event.seq, "time": iso(event.time), "kind": event.kind, "step": event.step,
                "data": data, "location": self.location(bench, run, event.span)}

    def state_json(self, bench: Workbench, run: Run, state) -> dict:
        def bindings(items):
            return [{"name": b.name, "type": b.type, "value": b.value} for b in items]
        return {
            "runId": run.id, "seq": state.seq, "kind": state.kind, "step": state.step,
            "location": self.location(bench, run, state.span),
            "bindings": bindings(state.bindings),
            "stack": [{"function": f.function, "location": self.location(bench, run, f.span),
                       "bindings": bindings(f.bindings)} for f in state.frames],
            "result": state.result, "value": state.value, "error": state.error, "via": state.source,
            "records": state.records,
        }

    def is_stored_copy(self, name: str) -> bool:
        bench = self.bench
        if bench is None:
            return False
        folder = Path(bench.location).resolve().parent / "sources"
        try:
            return Path(name).resolve().is_relative_to(folder)
        except (OSError, ValueError):
            return False


def refresh_lenses(ls) -> None:
    """Ask the client for its code lenses again (`workspace/codeLens/refresh`), if it supports it."""
    capabilities = ls.client_capabilities
    workspace = capabilities.workspace if capabilities else None
    lens = workspace.code_lens if workspace else None
    if lens is not None and lens.refresh_support:
        try:
            ls.workspace_code_lens_refresh(None)
        except Exception:
            pass


def runs_of(ls) -> _Runs:
    found = getattr(ls, "_runs", None)
    if found is None:
        found = ls._runs = _Runs(ls)
    return found


def _run_id(params) -> str:
    run_id = field(params, "runId")
    if not isinstance(run_id, str) or not run_id:
        raise JsonRpcInvalidParams("`runId` must be a run's id (a string)")
    return run_id


def register(server) -> None:
    """Add the run and trace features to the language server `server`."""

    @server.feature(types.INITIALIZE)
    def initialize(ls, params: types.InitializeParams) -> None:
        runs_of(ls).settings = {}
        runs_of(ls).pending_options = params.initialization_options

    @server.command("flowmetal.run")
    async def run_command(ls, *args):
        """{uri, entry, args?}: start a run; answers {runId}."""
        runs = runs_of(ls)
        uri, entry, run_args = field(args, "uri"), field(args, "entry"), field(args, "args")
        if not isinstance(uri, str) or not isinstance(entry, str) or not entry:
            raise JsonRpcInvalidParams("flowmetal.run takes {uri, entry, args}: the file, the function to "
                                       "run (`package/name`) and its arguments as Flowmetal literals")
        name = ls.name_of(uri)
        if run_args is None:
            needed = [p for p in _params(ls, name, entry) if not p["optional"]]
            if needed:
                raise JsonRpcInvalidParams(
                    f"`{entry}` takes arguments ({', '.join(p['name'] + ': ' + p['type'] for p in needed)}): "
                    f"give them as `args`, Flowmetal literals such as \"\\\"host-1\\\"\" or \"[1 2]\"")
            run_args = []
        if not isinstance(run_args, list) or not all(isinstance(a, str) for a in run_args):
            raise JsonRpcInvalidParams("`args` must be a list of strings, each a Flowmetal literal")
        sources = _program(ls, name)
        run_id = await runs.call(lambda bench: bench.start(sources, entry, list(run_args),
                                                           origin=str(Path(name).parent)))
        runs.start_watching()
        return {"runId": run_id}

    @server.command("flowmetal.trust")
    async def trust_command(ls, *args):
        """{trusted}: whether the editor drives every run of the store or only those started from
        it; answers {trusted}. Each unfinished run is notified again (its `blocked` changes)."""
        trusted = field(args, "trusted")
        if not isinstance(trusted, bool):
            raise JsonRpcInvalidParams("flowmetal.trust takes {trusted}: true to have the editor run every run "
                                       "of the store, false for only the runs started from the editor")
        runs = runs_of(ls)
        if runs.bench is None:  # (before `initialized`: the workbench it would have)
            runs.configure(getattr(runs, "pending_options", None) or {})
        runs.trusted = trusted
        for run in await runs.call(lambda bench: runs.trust(bench, trusted)):
            ls.protocol.notify(RUN_UPDATED, run)
        return {"trusted": trusted}

    @server.command("flowmetal.cancel")
    async def cancel_command(ls, *args):
        """{runId}: cancel a run; answers {runId, status}."""
        run_id = _run_id(args)
        status = await runs_of(ls).call(lambda bench: bench.cancel(run_id))
        return {"runId": run_id, "status": status}

    @server.command("flowmetal.replay")
    async def replay_command(ls, *args):
        """{runId, verify?}: run a run again from its log; answers what replay found."""
        run_id = _run_id(args)
        verify = field(args, "verify", True)
        result = await runs_of(ls).call(lambda bench: bench.replay(run_id, verify=bool(verify)))
        return {"runId": run_id, "steps": result.steps, "value": result.value, "fault": result.fault,
                "divergence": result.divergence, "lines": result.lines,
                "reproduces": result.divergence is None if verify else None}

    @server.command("flowmetal.showRuns")
    async def show_runs_command(ls, *args):
        """{entry?}: the runs of an entry (an editor opens its runs panel on it instead)."""
        return await list_runs(ls, args)

    @server.feature("flowmetal/runs")
    async def list_runs(ls, params):
        """{entry?, status?, last?}: the runs, oldest first; of a function (`package/name`, or a
        name alone for that function of any package), in one of the states `status`, the `last`
        started of them (a store of many runs is narrowed by its database)."""
        runs = runs_of(ls)
        entry, statuses, last = field(params, "entry"), field(params, "status"), field(params, "last")
        if entry is not None and (not isinstance(entry, str) or not is_entry(entry)):
            raise JsonRpcInvalidParams("`entry` must be a function: `package/name`, or a name alone")
        if statuses is not None and (not isinstance(statuses, list) or
                                     not all(isinstance(s, str) and s in RUN_STATUSES for s in statuses)):
            raise JsonRpcInvalidParams(f"`status` must be a list of run states: {', '.join(RUN_STATUSES)}")
        if last is not None and (not isinstance(last, int) or isinstance(last, bool) or last < 1):
            raise JsonRpcInvalidParams("`last` must be a whole number, 1 or more")
        runs.start_watching()
        return await runs.call(lambda bench: [runs.run_json(bench, r)
                                              for r in bench.runs(entry or None, statuses, last)])

    @server.feature("flowmetal/trace")
    async def trace(ls, params):
        runs = runs_of(ls)
        run_id = _run_id(params)
        runs.start_watching()

        def answer(bench: Workbench):
            run, _, events = bench.trace(run_id)
            return {"run": runs.run_json(bench, run), "events": [runs.event_json(bench, run, e) for e in events]}
        return await runs.call(answer)

    @server.feature("flowmetal/stateAt")
    async def state_at(ls, params):
        runs = runs_of(ls)
        run_id, seq = _run_id(params), field(params, "seq")

        def answer(bench: Workbench):
            run, _, state = bench.state_at(run_id, seq)
            return runs.state_json(bench, run, state)
        return await runs.call(answer)

    @server.feature("flowmetal/checkArgument")
    def check_argument_request(ls, params):
        """{uri, entry, param, text}: {message}, what is wrong with `text` as the argument `param` of
        `entry`, or null when a run would take it (`flowmetal.ide.arguments`)."""
        uri, entry, param, text = (field(params, k) for k in ("uri", "entry", "param", "text"))
        if not all(isinstance(v, str) for v in (uri, entry, param, text)) or not entry:
            raise JsonRpcInvalidParams("flowmetal/checkArgument takes {uri, entry, param, text}: the file, the "
                                       "function (`package/name`), the parameter's name and the argument typed")
        from flowmetal.ide.arguments import check_argument
        from flowmetal.lang import deep
        return {"message": deep.call(check_argument, ls.analysis, ls.name_of(uri), entry, param, text)}

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    async def code_lens(ls, params: types.CodeLensParams) -> list[types.CodeLens]:
        runs = runs_of(ls)
        uri = params.text_document.uri
        name = ls.name_of(uri)
        out = []
        entries = []
        for symbol in features.entry_functions(ls.analysis, name):
            entry = f"{symbol.package}/{symbol.name}"
            entries.append(entry)
            described = _describe(symbol)
            arguments: dict = {"uri": uri, "entry": entry, "params": described}
            if symbol.definition is not None:  # the whole `(defn ...)`: a client runs the function point is in
                arguments["definitionRange"] = convert.range_of(symbol.definition.node.span)
            asks = any(not p["optional"] for p in described)
            if not asks:
                arguments["args"] = []
            title = "▶ Run…" if asks else "▶ Run"
            out.append((symbol, types.Command(title=title, command="flowmetal.run", arguments=[arguments])))
        try:
            counts = await runs.call(lambda bench: _counts(bench, entries))
        except JsonRpcRequestFailed:
            counts = {}
        # A client that handles `flowmetal.debug` itself says so (`debugLens`); others get no Debug lens.
        options = _plain(getattr(runs, "pending_options", None))
        debug = isinstance(options, dict) and options.get("debugLens") is True
        lenses = []
        for symbol, command in out:
            rng = convert.range_of(symbol.node.span)
            entry = command.arguments[0]["entry"]
            lenses.append(types.CodeLens(range=rng, command=command))
            if debug:
                lenses.append(types.CodeLens(range=rng, command=types.Command(
                    title=command.title.replace("▶ Run", "Debug"), command="flowmetal.debug",
                    arguments=command.arguments)))
            n = counts.get(entry, 0)
            lenses.append(types.CodeLens(range=rng, command=types.Command(
                title=f"Trace ({n} run{'' if n == 1 else 's'})", command="flowmetal.showRuns",
                arguments=[{"uri": uri, "entry": entry}])))
        return lenses


def on_initialized(ls) -> None:
    runs = runs_of(ls)
    runs.configure(getattr(runs, "pending_options", None) or {})
    runs.start_watching()


def on_configuration(ls, settings) -> None:
    runs_of(ls).configure(settings, changed=True)


def on_shutdown(ls) -> None:
    """Stop the embedded worker (its runs stay in the store, for any worker to go on with)."""
    runs = runs_of(ls)
    if runs.watcher is not None:
        runs.watcher.cancel()
        runs.watcher = None
    if runs.bench is not None:
        bench, runs.bench = runs.bench, None
        runs.pool.submit(bench.close).result(30)


def _counts(bench: Workbench, entries: list[str]) -> dict[str, int]:
    counts = bench.entry_counts()
    return {entry: counts[entry] for entry in entries if entry in counts}


def _describe(symbol) -> list[dict]:
    """An entry function's parameters, for a client to ask for the arguments: each with the source
    of its `:default` (null when it has none)."""
    from flowmetal.ide.arguments import default_text
    return [{"name": p.name, "type": show(p.type), "optional": bool(p.optional),
             "default": default_text(symbol, p.name) if p.optional else None} for p in symbol.sig.params]


def _params(ls, name: str, entry: str) -> list[dict]:
    package, _, function = entry.rpartition("/")
    for symbol in features.entry_functions(ls.analysis, name):
        if symbol.name == function and (not package or symbol.package == package):
            return _describe(symbol)
    return []


def _program(ls, name: str) -> dict[str, str]:
    """The file and the files it needs, as the editor has them (unsaved changes included): open
    documents and the workspace's `.flow` files, never another file of the disk."""
    from flowmetal.runtime.driving import program_files

    def read(path: Path) -> str:
        key = str(path)
        if key in ls.analysis.texts:
            return ls.analysis.text(key)
        text = ls.disk_text(key)
        if text is None:
            raise OSError(f"{key} is neither open in the editor nor a .flow file of the workspace: "
                          f"nothing was run")
        return text
    try:
        return program_files(name, read=read)
    except OSError as error:
        raise JsonRpcRequestFailed(str(error)) from None


__all__ = ["register", "on_initialized", "on_configuration", "on_shutdown", "runs_of", "refresh_lenses"]
