"""The Flowmetal language server: thin pygls handlers over `flowmetal.ide.features` and the analysis.

Each handler converts the request's positions (UTF-16, see `convert`) into
code-point offsets, asks the plain-data layer, and converts the answer back.
Nothing of the checker lives here.

Documents. On `initialized` the server loads every `*.flow` file of the
workspace folders, so that packages defined in other files resolve; an open
document's text replaces its file's. It asks the client to watch `**/*.flow`
(when the client allows dynamic registration) and reads again the files the
client reports changed on disk, so a `git checkout` or a generator reaches the
open documents' diagnostics.

Start-up. An editor opening a file waits for its first diagnostics, so the
start-up path imports the analysis and the protocol only: the runtime, the
store and the workbench (`runs`) are imported and opened once the first
diagnostics are out (`open_the_runs`), or when the runs are first asked for.

Markdown or plain text: hover and completion documentation follow the formats
the client names in its capabilities (`markdown`), plain text otherwise, so an
editor that shows text as it is never shows code fences. Each change is applied to the analysis as
an edit (`Workspace.edit`), which re-checks only the edited definition when it
can.

Big workspaces. Only the open documents are kept whole by the analysis
(`Workspace.focus`); after a change, the open documents and the files they
require are analysed first and their diagnostics published, then the whole
workspace is analysed in the background, a step at a time between messages
(`Workspace.start_pass`): requests are answered meanwhile, and a change other
than an edit inside a definition starts the pass over (the files it had read
are not read again); none is needed when the files nobody has open still see
the same declarations (their index holds). The client is told
with `$/progress` (after `window/workDoneProgress/create`, when it supports
that): begin, "N/M files read" or "N/M files checked", end. Project-wide
requests (references, rename, workspace symbols, call hierarchy) wait for that
pass to end, so their answers are whole.

Diagnostics are published after each change, with the document's version, for
every open document whose diagnostics changed. There is no fixed debounce:
publishing is scheduled behind the messages already queued, and a publish that
a newer change has overtaken is dropped, so a burst of keystrokes costs one
analysis and nothing stale reaches the editor.

Robustness. A handler that fails answers its request with an error and logs
the traceback (`window/logMessage`); the server carries on. Nothing a client
sends makes it exit, short of `exit`. A program nested deeper than Python's
stack allows is analysed and answered about on a deeper one (`flowmetal.lang.deep`).

What it reads. A URI from the client never makes the server read a file of its
choosing: the text it answers about is either a document the client opened
(its text came from the client) or a `.flow` file inside a workspace folder
(after symbolic links are resolved), read by `disk_text`. Anything else is a
file the server does not hold: hover, formatting, folding and the rest answer
as for an empty document, and `flowmetal.run` refuses it. The read-only copies
of runs' sources under `<store dir>/sources/` are shown by the editor and never
read into the analysis. Over `--tcp` (no authentication: any local process can
connect) the server listens on loopback only, takes one client at a time, and
drops a connection that sends anything but LSP headers (an HTTP request from a
web page, say).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import re
import sys
import threading
import traceback
from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from flowmetal import __version__
from flowmetal.ide import features
from flowmetal.lang.analysis import Workspace
from flowmetal.lang.diagnostics import Diagnostic, Severity
from flowmetal.lang.source import Source, Span
from flowmetal.lang import deep

from flowmetal_lsp import convert, runs

log = logging.getLogger("flowmetal.lsp")

SEVERITY = {Severity.ERROR: types.DiagnosticSeverity.Error, Severity.WARNING: types.DiagnosticSeverity.Warning,
            Severity.INFO: types.DiagnosticSeverity.Information, Severity.HINT: types.DiagnosticSeverity.Hint}
COMPLETION_KIND = {
    "function": types.CompletionItemKind.Function, "endpoint": types.CompletionItemKind.Event,
    "builtin": types.CompletionItemKind.Function, "constructor": types.CompletionItemKind.Constructor,
    "accessor": types.CompletionItemKind.Field, "type": types.CompletionItemKind.Class,
    "member": types.CompletionItemKind.EnumMember, "keyword": types.CompletionItemKind.Keyword,
    "special": types.CompletionItemKind.Keyword, "parameter": types.CompletionItemKind.Variable,
    "local": types.CompletionItemKind.Variable, "constant": types.CompletionItemKind.Constant,
}
SYMBOL_KIND = {
    "package": types.SymbolKind.Namespace, "defn": types.SymbolKind.Function, "defendpoint": types.SymbolKind.Event,
    "def": types.SymbolKind.Constant, "defrecord": types.SymbolKind.Struct, "defenum": types.SymbolKind.Enum,
    "deftype": types.SymbolKind.TypeParameter, "member": types.SymbolKind.EnumMember,
    "field": types.SymbolKind.Field, "function": types.SymbolKind.Function, "endpoint": types.SymbolKind.Event,
    "constant": types.SymbolKind.Constant, "constructor": types.SymbolKind.Struct,
    "accessor": types.SymbolKind.Field, "type": types.SymbolKind.Class,
}


class FlowmetalServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("flowmetal", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.analysis = Workspace()
        self.analysis.focus = set()                    # only the open documents are kept whole
        self.open: dict[str, int | None] = {}          # name -> version of each open document
        self._background: asyncio.Future | None = None  # the whole workspace's analysis, under way
        self._whole = asyncio.Event()                  # set whenever the analysis is complete
        self._failed_at: int | None = None             # the generation a background pass failed at
        self._progress = 0
        self.published: dict[str, list] = {}           # name -> what was last published
        self._pending: dict[str, object] = {}
        self._sources: dict[str, Source] = {}
        self._entries: dict[str, list] = {}            # name -> the functions each open document can run

    # -- names and positions --

    @staticmethod
    def name_of(uri: str) -> str:
        path = to_fs_path(uri)
        return path if path else uri

    @staticmethod
    def uri_of(name: str) -> str:
        return from_fs_path(name) if not name.startswith(("untitled:", "file:")) and "://" not in name else name

    def source(self, name: str) -> Source:
        """A `Source` of the file's current text (cached while the text stays the same). A file of the
        workspace nobody has open is kept whole from then on (`Workspace.keep`), to be answered about."""
        self.analysis.keep(name)
        text = self.analysis.text(name)
        cached = self._sources.get(name)
        if cached is None or cached.text is not text:
            cached = self._sources[name] = Source(text, name)
        return cached

    def offset(self, uri: str, pos: types.Position) -> tuple[str, int]:
        name = self.name_of(uri)
        return name, convert.offset(self.source(name), pos)

    def location(self, span: Span) -> types.Location:
        return types.Location(uri=self.uri_of(span.source.name), range=convert.range_of(span))

    @staticmethod
    def markdown(formats: list[types.MarkupKind] | None) -> bool:
        """Whether to answer in Markdown, given the formats a client says it takes (`contentFormat`,
        `documentationFormat`), preferred first: only when it names Markdown before plain text. A
        client that says nothing gets plain text, which every client shows as it is (eglot without
        markdown-mode asks for plain text; Markdown would show it the raw ``` fences)."""
        for kind in formats or ():
            if kind == types.MarkupKind.Markdown:
                return True
            if kind == types.MarkupKind.PlainText:
                return False
        return False

    # -- files on disk --

    def folders(self) -> list[Path]:
        """The workspace folders (else the root), symbolic links resolved."""
        paths = [to_fs_path(folder.uri) for folder in self.workspace.folders.values()]
        if not paths and self.workspace.root_path:
            paths = [self.workspace.root_path]
        out = []
        for path in paths:
            try:
                if path:
                    out.append(Path(path).resolve())
            except (OSError, RuntimeError, ValueError):
                continue
        return out

    def in_workspace(self, name: str) -> bool:
        """Whether `name` is a `.flow` file inside a workspace folder, links resolved: the only
        files the server reads from disk."""
        try:
            path = Path(name)
            if not path.is_absolute() or path.suffix != ".flow":
                return False
            real = path.resolve()
            return real.suffix == ".flow" and real.is_file() and any(real.is_relative_to(f) for f in self.folders())
        except (OSError, RuntimeError, ValueError):
            return False

    def disk_text(self, name: str) -> str | None:
        """The text on disk of a `.flow` file of the workspace; None for any other file."""
        if not self.in_workspace(name):
            return None
        try:
            return Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    # -- TCP --

    def start_tcp(self, host: str, port: int) -> None:
        """Listen on `host:port` (loopback only) for one client at a time, whose messages must
        carry LSP headers only; the server ends when that client's connection does."""
        from pygls.io_ import run_async
        if not is_loopback(host):
            raise ValueError(f"{host} is not a loopback address")
        self._stop_event = stop_event = threading.Event()
        busy = False

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal busy
            if busy:  # the connection in use is the only one
                writer.close()
                return
            headers = _LspHeaders(reader)
            try:
                first = await headers.peek_valid()
            except (ConnectionError, asyncio.IncompleteReadError):
                first = False
            if not first or busy:
                log.warning("flowmetal lsp: a connection that does not speak LSP was closed")
                writer.close()
                return
            busy = True
            self.protocol.set_writer(writer)  # type: ignore[arg-type]
            await run_async(stop_event=stop_event, reader=headers, protocol=self.protocol, logger=log,
                            error_handler=self.report_server_error)
            self.shutdown()

        async def serve() -> None:
            self._server = await asyncio.start_server(connection, host, port)
            async with self._server:
                await self._server.serve_forever()

        try:
            asyncio.run(serve())
        except asyncio.CancelledError:
            pass

    # -- diagnostics --

    def schedule_publish(self) -> None:
        token = object()
        self._pending["*"] = token

        async def later() -> None:
            await asyncio.sleep(0)  # let the changes already queued come in first
            if self._pending.get("*") is token:
                self.publish()
                self.start_background()

        asyncio.ensure_future(later())

    # -- the whole workspace, in the background --

    def start_background(self) -> None:
        """Analyse the whole workspace in the background, unless it is under way or done."""
        if self.analysis.complete:
            self._whole.set()
            return
        self._whole.clear()
        if self._background is None or self._background.done():
            self._background = asyncio.ensure_future(self._run_background())

    async def _run_background(self) -> None:
        ws = self.analysis
        token = None
        try:
            token = await self._begin_progress()
            while self._advance():
                self._report_progress(token, ws.start_pass())
                # Between steps: the messages that came meanwhile (a change, a request) go first.
                await asyncio.sleep(0.002)
            self.publish()
        finally:
            self._end_progress(token)
            if ws.complete or self._failed_at == ws.generation:
                self._whole.set()

    def _advance(self) -> bool:
        """One step of the whole workspace's analysis, after the open files' when they changed;
        False when it is complete, or failed (said in the log: project-wide requests then answer
        from what there is)."""
        ws = self.analysis
        try:
            while True:
                ws.ready()  # the open files first (their index may make the whole complete)
                if ws.complete:
                    return False
                if ws.start_pass().step():
                    return True
        except Exception:
            self._failed_at = ws.generation
            self.report_failure("analysing the workspace")
            return False

    async def whole_workspace(self) -> None:
        """Wait until the whole workspace is analysed (at once when it is)."""
        while not self.analysis.complete and self._failed_at != self.analysis.generation:
            self.start_background()
            await self._whole.wait()
            await asyncio.sleep(0)

    async def _begin_progress(self) -> str | None:
        window = self.client_capabilities.window if self.client_capabilities else None
        if not (window and window.work_done_progress):
            return None
        self._progress += 1
        token = f"flowmetal-analysis-{self._progress}"
        try:
            await self.work_done_progress.create_async(token)
        except Exception as error:  # a client that refuses gets no progress: the work goes on
            log.warning("flowmetal lsp: no progress for the workspace's analysis: %s", error)
            return None
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(
            title="Analysing the workspace", message=f"0/{len(self.analysis.texts)} files read", percentage=0))
        return token

    def _report_progress(self, token: str | None, work) -> None:
        if token is not None:
            self.work_done_progress.report(token, types.WorkDoneProgressReport(
                message=work.message, percentage=int(100 * work.fraction)))

    def _end_progress(self, token: str | None) -> None:
        if token is not None:
            try:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(
                    message=f"{len(self.analysis.texts)} files analysed"))
            except Exception:
                pass

    def publish(self) -> None:
        """Publish the diagnostics of each open document whose diagnostics changed. When any did, or
        the functions a document offers to run did, ask the client for the code lenses again: an
        edit in one file can hide or bring back another's (two files defining one package), and an
        editor asks again by itself only for the document that was edited."""
        changed = False
        try:
            for name, version in list(self.open.items()):
                found = [self.lsp_diagnostic(d) for d in self.analysis.diagnostics(name)]
                if self.published.get(name) == found:
                    continue
                changed = True
                self.published[name] = found
                self.text_document_publish_diagnostics(
                    types.PublishDiagnosticsParams(uri=self.uri_of(name), version=version, diagnostics=found))
            entries = {name: [(s.package, s.name, features.show(s.type)) for s in
                              features.entry_functions(self.analysis, name)] for name in self.open}
            if entries != self._entries:
                self._entries = entries
                changed = True
        except Exception:  # never let one bad analysis take the server down
            self.report_failure("publishing diagnostics")
        if changed:
            runs.refresh_lenses(self)
        open_the_runs(self)

    def lsp_diagnostic(self, diag: Diagnostic) -> types.Diagnostic:
        related = [types.DiagnosticRelatedInformation(location=self.location(n.span), message=n.message)
                   for n in diag.notes]
        return types.Diagnostic(range=convert.range_of(diag.span), severity=SEVERITY[diag.severity],
                                code=diag.code, source="flowmetal", message=diag.message,
                                related_information=related or None)

    def report_failure(self, what: str) -> None:
        message = f"flowmetal: {what} failed:\n{traceback.format_exc()}"
        log.error(message)
        try:
            self.window_log_message(types.LogMessageParams(type=types.MessageType.Error, message=message))
        except Exception:
            pass


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only: `localhost`, or an address in 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _LspHeaders:
    """A connection's reader that ends the stream at the first header line that is not one of
    LSP's (`Content-Length`, `Content-Type`): pygls skips lines it does not know, so an HTTP
    request that a web page sends to the port would otherwise be read as a message."""

    HEADER = re.compile(rb"(?i:content-length: *\d+|content-type: *[^\r\n]*)\r?\n|\r?\n")

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._first: bytes | None = None

    async def peek_valid(self) -> bool:
        """Read the first line: whether it is an LSP header (it is then given to the first readline)."""
        self._first = await self._reader.readline()
        return bool(self._first) and self._first.strip() != b"" and bool(self.HEADER.fullmatch(self._first))

    async def readline(self) -> bytes:
        if self._first is not None:
            line, self._first = self._first, None
        else:
            line = await self._reader.readline()
        if line and not self.HEADER.fullmatch(line):
            log.warning("flowmetal lsp: not an LSP header: %r; the connection is closed", line[:80])
            return b""
        return line

    async def readexactly(self, n: int) -> bytes:
        return await self._reader.readexactly(n)


server = FlowmetalServer()


def guarded(fn):
    """Answer a failing request with an error (and log it) instead of anything worse. A
    request about a program nested deeper than Python's stack is answered from a deeper one
    (`flowmetal.lang.deep`: the handlers only ask, so asking again is safe)."""
    @functools.wraps(fn)
    def wrapper(ls: FlowmetalServer, params):
        try:
            return deep.call(fn, ls, params)
        except Exception:
            ls.report_failure(fn.__name__)
            raise
    return wrapper


def whole(fn):
    """A project-wide request: answered once the whole workspace is analysed (the background
    pass ended), so that its answer covers every file; other requests are answered meanwhile."""
    inner = guarded(fn)

    @functools.wraps(fn)
    async def wrapper(ls: FlowmetalServer, params):
        await ls.whole_workspace()
        return inner(ls, params)
    return wrapper


def hidden(relative: Path) -> bool:
    """Whether a file, by its path inside a workspace folder, is one the server leaves out of the
    program: inside a hidden folder (`.git`, `.flowmetal`) or `node_modules`."""
    return any(part.startswith(".") or part == "node_modules" for part in relative.parts)


# -- documents --------------------------------------------------------------------------------

@server.feature(types.INITIALIZED)
def initialized(ls: FlowmetalServer, params: types.InitializedParams) -> None:
    try:
        for folder in ls.workspace.folders.values():
            root = Path(to_fs_path(folder.uri) or "")
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*.flow")):
                if hidden(path.relative_to(root)):
                    continue
                name = str(path)
                # (A link out of the workspace, or to another kind of file, is not read: disk_text.)
                if name not in ls.open and not runs.runs_of(ls).is_stored_copy(name):
                    text = ls.disk_text(name)
                    if text is not None:
                        ls.analysis.set_file(name, text)
    except Exception:
        ls.report_failure("loading the workspace")
    try:
        watch_files(ls)
    except Exception:
        ls.report_failure("registering the file watcher")
    # The store (and the runtime it needs) is opened once the first diagnostics are out: an
    # editor opening a file waits for those, not for the runs.
    ls.runs_waiting = True
    ls.schedule_publish()


def open_the_runs(ls: FlowmetalServer) -> None:
    """Start looking at the store of runs, the first time the diagnostics were published."""
    if not getattr(ls, "runs_waiting", False):
        return
    ls.runs_waiting = False
    try:
        runs.on_initialized(ls)
    except Exception:
        ls.report_failure("opening the store")


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: FlowmetalServer, params: types.DidOpenTextDocumentParams) -> None:
    name = ls.name_of(params.text_document.uri)
    if runs.runs_of(ls).is_stored_copy(name):
        return  # a run's stored code, shown read-only: not part of the workspace's program
    ls.open[name] = params.text_document.version
    ls.analysis.focus.add(name)
    ls.analysis.set_file(name, params.text_document.text)
    ls.schedule_publish()


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: FlowmetalServer, params: types.DidChangeTextDocumentParams) -> None:
    name = ls.name_of(params.text_document.uri)
    if runs.runs_of(ls).is_stored_copy(name):
        return
    ls.open[name] = params.text_document.version
    try:
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                source = ls.source(name)
                start = convert.offset(source, change.range.start)
                end = convert.offset(source, change.range.end)
                ls.analysis.edit(name, start, max(start, end), change.text)
            else:
                ls.analysis.set_file(name, change.text)
    except Exception:
        ls.report_failure("applying a change")
        doc = ls.workspace.text_documents.get(params.text_document.uri)
        if doc is not None:  # fall back on the protocol layer's copy (of an open document: never the disk)
            ls.analysis.set_file(name, doc.source)
    ls.schedule_publish()


WATCHER_ID = "flowmetal-watched-files"


def watch_files(ls: FlowmetalServer) -> None:
    """Ask the client to tell of `.flow` files changed, created or deleted on disk, when it can be
    asked (dynamic registration of `workspace/didChangeWatchedFiles`)."""
    workspace = ls.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace else None
    if not (watched and watched.dynamic_registration):
        return
    asked = ls.client_register_capability(types.RegistrationParams(registrations=[types.Registration(
        id=WATCHER_ID, method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=types.DidChangeWatchedFilesRegistrationOptions(
            watchers=[types.FileSystemWatcher(glob_pattern="**/*.flow")]))]))
    # A client that refuses only leaves the files as they were read: say so in the log, no more.
    asked.add_done_callback(lambda done: done.exception() and log.warning(
        "flowmetal lsp: the client did not register the file watcher: %s", done.exception()))


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: FlowmetalServer, params: types.DidChangeWatchedFilesParams) -> None:
    """Files changed on disk (a `git checkout`, a generator): each `.flow` file of the workspace is read
    again, a deleted one leaves the program, and the open documents' diagnostics follow. An open
    document keeps the editor's text (it goes back to the disk's when closed)."""
    try:
        for event in params.changes:
            name = ls.name_of(event.uri)
            if not name.endswith(".flow") or name in ls.open or runs.runs_of(ls).is_stored_copy(name) \
                    or any(hidden(Path(name).relative_to(f)) for f in ls.folders() if Path(name).is_relative_to(f)):
                continue
            text = ls.disk_text(name) if event.type != types.FileChangeType.Deleted else None
            if text is not None:
                if ls.analysis.texts.get(name) != text:
                    ls.analysis.set_file(name, text)
            elif name in ls.analysis.texts:  # deleted, or no longer a file the server reads
                ls.analysis.remove_file(name)
    except Exception:
        ls.report_failure("reading the files changed on disk")
    ls.schedule_publish()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: FlowmetalServer, params: types.DidChangeConfigurationParams) -> None:
    """Settings `flowmetal.store` and `flowmetal.serve` (docs/lsp-protocol.md)."""
    runs.on_configuration(ls, params.settings)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: FlowmetalServer, params: types.DidCloseTextDocumentParams) -> None:
    name = ls.name_of(params.text_document.uri)
    if runs.runs_of(ls).is_stored_copy(name):
        return
    ls.open.pop(name, None)
    ls.analysis.focus.discard(name)
    ls.published.pop(name, None)
    # A workspace file goes back to its text on disk; any other document leaves the analysis.
    text = ls.disk_text(name)
    if text is not None:
        ls.analysis.set_file(name, text)
    else:
        ls.analysis.remove_file(name)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))
    ls.schedule_publish()


# -- navigation -----------------------------------------------------------------------------------

@server.feature(types.TEXT_DOCUMENT_HOVER)
@guarded
def hover(ls: FlowmetalServer, params: types.HoverParams) -> types.Hover | None:
    name, offset = ls.offset(params.text_document.uri, params.position)
    found = features.hover(ls.analysis, name, offset)
    if found is None:
        return None
    hover_ = ls.client_capabilities.text_document.hover if ls.client_capabilities.text_document else None
    if ls.markdown(hover_.content_format if hover_ else None):
        contents = types.MarkupContent(kind=types.MarkupKind.Markdown, value=found.markdown)
    else:
        contents = types.MarkupContent(kind=types.MarkupKind.PlainText, value=found.plaintext)
    return types.Hover(contents=contents, range=convert.range_of(found.span))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
@guarded
def definition(ls: FlowmetalServer, params: types.DefinitionParams) -> list[types.Location] | None:
    name, offset = ls.offset(params.text_document.uri, params.position)
    symbol = ls.analysis.definition_at(name, offset)
    if symbol is None or symbol.node is None:
        return None
    return [ls.location(symbol.node.span)]


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
@whole
def references(ls: FlowmetalServer, params: types.ReferenceParams) -> list[types.Location] | None:
    name, offset = ls.offset(params.text_document.uri, params.position)
    symbol = ls.analysis.definition_at(name, offset)
    if symbol is None:
        return None
    tokens = ls.analysis.references(symbol)
    if not params.context.include_declaration and symbol.node is not None:
        tokens = [t for t in tokens if t is not symbol.node]
    return [ls.location(t.span) for t in tokens]


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
@guarded
def prepare_rename(ls: FlowmetalServer, params: types.PrepareRenameParams):
    name, offset = ls.offset(params.text_document.uri, params.position)
    span = features.prepare_rename(ls.analysis, name, offset)
    if span is None:
        return None
    return types.PrepareRenamePlaceholder(range=convert.range_of(span), placeholder=span.text)


@server.feature(types.TEXT_DOCUMENT_RENAME)
@whole
def rename(ls: FlowmetalServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
    name, offset = ls.offset(params.text_document.uri, params.position)
    try:
        edits = features.rename(ls.analysis, name, offset, params.new_name)
    except features.RenameError as error:
        from pygls.exceptions import JsonRpcInvalidParams
        raise JsonRpcInvalidParams(str(error)) from None
    return workspace_edit(ls, edits)


def workspace_edit(ls: FlowmetalServer, edits: dict[str, list[tuple[Span, str]]]) -> types.WorkspaceEdit:
    return types.WorkspaceEdit(changes={
        ls.uri_of(file): [types.TextEdit(range=convert.range_of(span), new_text=text) for span, text in items]
        for file, items in edits.items()})


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@guarded
def document_symbol(ls: FlowmetalServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
    name = ls.name_of(params.text_document.uri)

    def convert_item(item: features.OutlineItem) -> types.DocumentSymbol:
        return types.DocumentSymbol(name=item.name, kind=SYMBOL_KIND.get(item.kind, types.SymbolKind.Variable),
                                    range=convert.range_of(item.span),
                                    selection_range=convert.range_of(item.name_span),
                                    detail=item.detail or None,
                                    children=[convert_item(c) for c in item.children] or None)
    return [convert_item(item) for item in features.outline(ls.analysis, name)]


@server.feature(types.WORKSPACE_SYMBOL)
@whole
def workspace_symbol(ls: FlowmetalServer, params: types.WorkspaceSymbolParams) -> list[types.WorkspaceSymbol]:
    return [types.WorkspaceSymbol(name=s.name, kind=SYMBOL_KIND.get(s.kind, types.SymbolKind.Variable),
                                  location=ls.location(s.node.span), container_name=s.package)
            for s in features.workspace_symbols(ls.analysis, params.query)]


# -- call hierarchy -----------------------------------------------------------------------------------

def call_hierarchy_item(ls: FlowmetalServer, symbol) -> types.CallHierarchyItem:
    """An item for a definition; its `data` names it (package, name) so that later requests find it
    in the program as it is then."""
    definition = symbol.definition
    kind = SYMBOL_KIND.get(symbol.kind, types.SymbolKind.Function)
    return types.CallHierarchyItem(
        name=symbol.name, kind=kind, uri=ls.uri_of(symbol.node.source.name),
        range=convert.range_of(definition.node.span if definition is not None else symbol.node.span),
        selection_range=convert.range_of(symbol.node.span), detail=symbol.package,
        data={"package": symbol.package, "name": symbol.name})


def _item_symbol(ls: FlowmetalServer, item: types.CallHierarchyItem):
    data = item.data if isinstance(item.data, dict) else {}
    package, name = data.get("package"), data.get("name")
    if isinstance(package, str) and isinstance(name, str):
        found = features.call_item(ls.analysis, package, name)
        if found is not None:
            return found
    # An item from elsewhere (no data, or a definition since renamed): whatever its name is at.
    file = ls.name_of(item.uri)
    return features.call_item_at(ls.analysis, file, convert.offset(ls.source(file), item.selection_range.start))


@server.feature(types.TEXT_DOCUMENT_PREPARE_CALL_HIERARCHY)
@guarded
def prepare_call_hierarchy(ls: FlowmetalServer, params: types.CallHierarchyPrepareParams):
    name, offset = ls.offset(params.text_document.uri, params.position)
    symbol = features.call_item_at(ls.analysis, name, offset)
    return [call_hierarchy_item(ls, symbol)] if symbol is not None else None


@server.feature(types.CALL_HIERARCHY_INCOMING_CALLS)
@whole
def incoming_calls(ls: FlowmetalServer, params: types.CallHierarchyIncomingCallsParams):
    symbol = _item_symbol(ls, params.item)
    if symbol is None:
        return None
    return [types.CallHierarchyIncomingCall(from_=call_hierarchy_item(ls, caller),
                                            from_ranges=[convert.range_of(span) for span in spans])
            for caller, spans in features.incoming_calls(ls.analysis, symbol)]


@server.feature(types.CALL_HIERARCHY_OUTGOING_CALLS)
@whole
def outgoing_calls(ls: FlowmetalServer, params: types.CallHierarchyOutgoingCallsParams):
    symbol = _item_symbol(ls, params.item)
    if symbol is None:
        return None
    return [types.CallHierarchyOutgoingCall(to=call_hierarchy_item(ls, callee),
                                            from_ranges=[convert.range_of(span) for span in spans])
            for callee, spans in features.outgoing_calls(ls.analysis, symbol)]


# -- writing ------------------------------------------------------------------------------------------

@server.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=["(", "+", ":", "/"]))
@guarded
def completion(ls: FlowmetalServer, params: types.CompletionParams) -> types.CompletionList:
    name, offset = ls.offset(params.text_document.uri, params.position)
    document = ls.client_capabilities.text_document
    item_caps = document.completion.completion_item if document and document.completion else None
    doc_kind = types.MarkupKind.Markdown if ls.markdown(item_caps.documentation_format if item_caps else None) \
        else types.MarkupKind.PlainText
    items = []
    for c in features.completion(ls.analysis, name, offset):
        edit = types.TextEdit(range=convert.range_of(c.replace), new_text=c.insert or c.label) if c.replace else None
        # Names the typed text begins come first; then the others it is a subsequence of.
        items.append(types.CompletionItem(
            label=c.label, kind=COMPLETION_KIND.get(c.kind, types.CompletionItemKind.Text), detail=c.detail or None,
            documentation=types.MarkupContent(kind=doc_kind, value=c.doc) if c.doc else None,
            sort_text=f"{c.rank}{c.label}", filter_text=c.label, text_edit=edit))
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_SIGNATURE_HELP,
                types.SignatureHelpOptions(trigger_characters=[" ", "("], retrigger_characters=[" "]))
@guarded
def signature_help(ls: FlowmetalServer, params: types.SignatureHelpParams) -> types.SignatureHelp | None:
    name, offset = ls.offset(params.text_document.uri, params.position)
    found = ls.analysis.signature_at(name, offset)
    if found is None:
        return None
    callee = found.callee.name if found.callee is not None else "fn"
    label = f"({callee}"
    parameters = []
    for p in found.sig.params:
        part = f"{p.name} : {features.show(p.type)}" + (" :default" if p.optional else "")
        label += " "
        parameters.append(types.ParameterInformation(label=(len(label), len(label) + len(part))))
        label += part
    label += f") : {features.show(found.sig.ret)}"
    doc = found.callee.doc if found.callee is not None else None
    return types.SignatureHelp(
        signatures=[types.SignatureInformation(label=label, parameters=parameters, documentation=doc)],
        active_signature=0, active_parameter=found.active)


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
@guarded
def formatting(ls: FlowmetalServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    from flowmetal.ide.format import format_text
    name = ls.name_of(params.text_document.uri)
    text = ls.analysis.text(name)
    formatted = format_text(text)
    if formatted is None or formatted == text:
        return []
    source = ls.source(name)
    return [types.TextEdit(range=convert.range_of(Span(source, 0, len(text))), new_text=formatted)]


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
@guarded
def code_action(ls: FlowmetalServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    name = ls.name_of(params.text_document.uri)
    source = ls.source(name)
    start, end = convert.offset(source, params.range.start), convert.offset(source, params.range.end)
    out = []
    for action in features.code_actions(ls.analysis, name, start, end):
        out.append(types.CodeAction(
            title=action.title, kind=types.CodeActionKind.QuickFix, edit=workspace_edit(ls, action.edits),
            diagnostics=[ls.lsp_diagnostic(action.diagnostic)] if action.diagnostic else None,
            is_preferred=action.preferred or None))
    return out


# -- presentation -----------------------------------------------------------------------------------

LEGEND = types.SemanticTokensLegend(token_types=features.TOKEN_TYPES, token_modifiers=features.TOKEN_MODIFIERS)


@server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, LEGEND)
@guarded
def semantic_tokens(ls: FlowmetalServer, params: types.SemanticTokensParams) -> types.SemanticTokens:
    name = ls.name_of(params.text_document.uri)
    data: list[int] = []
    previous_line = previous_char = 0
    for tok in features.semantic_tokens(ls.analysis, name):
        span = tok.span
        start = convert.position(span.source, span.start)
        end = convert.position(span.source, span.end)
        lines = [(start.line, start.character, end.character)] if start.line == end.line else \
            _split_lines(span, start)
        for line, char, end_char in lines:
            if end_char <= char:
                continue
            delta_line = line - previous_line
            delta_char = char - previous_char if delta_line == 0 else char
            modifiers = sum(1 << features.TOKEN_MODIFIERS.index(m) for m in tok.modifiers)
            data += [delta_line, delta_char, end_char - char, features.TOKEN_TYPES.index(tok.type), modifiers]
            previous_line, previous_char = line, char
    return types.SemanticTokens(data=data)


def _split_lines(span: Span, start: types.Position) -> list[tuple[int, int, int]]:
    """A token over several lines (a long string) as one token per line, as the protocol wants."""
    out = []
    text = span.text
    line, char = start.line, start.character
    for piece in text.split("\n"):
        units = len(piece.encode("utf-16-le")) // 2
        out.append((line, char, char + units))
        line, char = line + 1, 0
    return out


@server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
@guarded
def inlay_hint(ls: FlowmetalServer, params: types.InlayHintParams) -> list[types.InlayHint]:
    name = ls.name_of(params.text_document.uri)
    source = ls.source(name)
    start, end = convert.offset(source, params.range.start), convert.offset(source, params.range.end)
    return [types.InlayHint(position=convert.position(source, offset), label=label, kind=types.InlayHintKind.Type,
                            padding_left=False)
            for offset, label in features.inlay_hints(ls.analysis, name, start, end)]


@server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
@guarded
def folding_range(ls: FlowmetalServer, params: types.FoldingRangeParams) -> list[types.FoldingRange]:
    name = ls.name_of(params.text_document.uri)
    source = ls.source(name)
    out = []
    for start, end, kind in features.folding(ls.analysis, name):
        a, b = convert.position(source, start), convert.position(source, end)
        out.append(types.FoldingRange(start_line=a.line, end_line=b.line,
                                      kind=types.FoldingRangeKind.Comment if kind == "comment" else
                                      types.FoldingRangeKind.Region))
    return out


@server.feature(types.TEXT_DOCUMENT_SELECTION_RANGE)
@guarded
def selection_range(ls: FlowmetalServer, params: types.SelectionRangeParams) -> list[types.SelectionRange]:
    name = ls.name_of(params.text_document.uri)
    source = ls.source(name)
    out = []
    for pos in params.positions:
        spans = features.selection_ranges(ls.analysis, name, convert.offset(source, pos))
        parent = None
        for span in reversed(spans):
            parent = types.SelectionRange(range=convert.range_of(span), parent=parent)
        out.append(parent or types.SelectionRange(range=types.Range(start=pos, end=pos)))
    return out


@server.feature(types.SHUTDOWN)
def shutdown(ls: FlowmetalServer, params) -> None:
    runs.on_shutdown(ls)


runs.register(server)


def main(tcp_port: int | None = None, host: str = "127.0.0.1") -> int:
    logging.basicConfig(level=logging.WARNING)
    if tcp_port is not None:
        if not is_loopback(host):
            print(f"flowmetal lsp: error: --host {host} is not a loopback address: the language server has no "
                  f"authentication, so it listens on 127.0.0.1, ::1 or localhost only", file=sys.stderr)
            return 2
        server.start_tcp(host, tcp_port)
    else:
        server.start_io()
    return 0
