"""`flowmetal dap`: the Debug Adapter Protocol over stdio, on a `Session`.

Requests are read on the main thread and answered in order. A motion (`continue`,
`next`, `stepIn`, `stepOut`, `stepBack`, `reverseContinue`, and the first stop after
`configurationDone`) is answered at once and carried out on a thread of its own,
one at a time; its `stopped` event follows when it stops (a live run may take a
while: `pause` interrupts it). Threads are the run's tasks, `id` = task + 1 (DAP
clients take 0 for "no thread"). Any error in a request is an error response
with a message naming it; the adapter carries on.
"""

from __future__ import annotations

import sys
import threading
import traceback

from flowmetal.dap.session import Session, SessionError, Stop
from flowmetal.dap.wire import FramingError, Writer, read_message

CAPABILITIES = {
    "supportsConfigurationDoneRequest": True,
    "supportsStepBack": True,
    "supportsConditionalBreakpoints": True,
    "supportsFunctionBreakpoints": True,
    "supportsEvaluateForHovers": True,
    "supportsTerminateRequest": True,
    "exceptionBreakpointFilters": [
        {"filter": "faults", "label": "Faults", "default": False,
         "description": "Stop where a fault is raised (a run's or a task's)"},
    ],
}


class Adapter:
    def __init__(self, reader, writer: Writer) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 0
        self.session = Session(output=self._output)
        self._motion: threading.Thread | None = None
        self._lock = threading.Lock()
        self._launch: dict = {}
        self.done = False

    # -- messages --

    def _send(self, message: dict) -> None:
        with self._lock:
            self.seq += 1
            message["seq"] = self.seq
        self.writer.write(message)

    def event(self, name: str, body: dict | None = None) -> None:
        self._send({"type": "event", "event": name, "body": body or {}})

    def _output(self, text: str) -> None:
        self.event("output", {"category": "console", "output": text})

    def serve(self) -> int:
        while not self.done:
            try:
                message = read_message(self.reader)
            except FramingError as error:
                self._output(f"flowmetal dap: {error}\n")
                sys.stderr.write(f"flowmetal dap: {error}\n")
                break
            if message is None:
                break
            if message.get("type") != "request":
                continue
            self._handle(message)
        self.session.close()
        return 0

    def _handle(self, request: dict) -> None:
        command = request.get("command")
        handler = getattr(self, "do_" + str(command), None)
        response = {"type": "response", "request_seq": request.get("seq"), "command": command, "success": True}
        arguments = request.get("arguments") or {}
        if handler is None:
            response.update(success=False, message=f"`{command}` is not supported by flowmetal dap")
            self._send(response)
            return
        after = None
        try:
            body = handler(arguments if isinstance(arguments, dict) else {})
            if isinstance(body, tuple):
                body, after = body
            if body is not None:
                response["body"] = body
        except SessionError as error:
            response.update(success=False, message=str(error), body={"error": {"id": 1, "format": str(error)}})
        except Exception as error:  # a bug: answered as an error, and the adapter carries on
            traceback.print_exc(file=sys.stderr)
            response.update(success=False, message=f"internal error in `{command}`: {error}")
        self._send(response)
        if after is not None:
            after()

    # -- motions --

    def _move(self, motion) -> None:
        if self._motion is not None and self._motion.is_alive():
            raise SessionError("the run is moving: wait for it to stop, or send `pause`")

        def main():
            try:
                stop = motion()
            except SessionError as error:
                self._output(f"flowmetal dap: {error}\n")
                return
            except Exception as error:  # noqa: BLE001 - reported, never a dead adapter
                traceback.print_exc(file=sys.stderr)
                self._output(f"flowmetal dap: internal error: {error}\n")
                return
            self._stopped(stop)
        self._motion = threading.Thread(target=main, name="flowmetal-dap-motion", daemon=True)
        self._motion.start()

    def _stopped(self, stop: Stop) -> None:
        if stop.ended:
            point = self.session.timeline.point if self.session.timeline else None
            failed = point is not None and point.error is not None
            self.event("exited", {"exitCode": 1 if failed else 0})
            self.event("terminated")
            return
        body = {"reason": stop.reason, "threadId": stop.task + 1, "allThreadsStopped": True}
        if stop.description:
            body["description"] = stop.description
        if stop.text:
            body["text"] = stop.text
        if stop.breakpoints:
            body["hitBreakpointIds"] = stop.breakpoints
        self.event("stopped", body)

    # -- requests --

    def do_initialize(self, args):
        return CAPABILITIES, lambda: None

    def do_launch(self, args):
        store = args.get("store")
        if store is not None and not isinstance(store, str):
            raise SessionError("`store` must be a path (a string)")
        if "run" in args:
            self.session.launch_run(args["run"], store)
        elif "program" in args:
            self.session.launch_program(args.get("program"), args.get("entry"), args.get("args", []), store)
        else:
            raise SessionError("launch needs `run` (a recorded run's id) or `program` and `entry` (a new run)")
        self._launch = args
        run = self.session.run
        self._output(f"run {run.id}: {run.entry} ({run.status})\n")
        return None, lambda: self.event("initialized")

    def do_attach(self, args):
        return self.do_launch(args)

    def do_setBreakpoints(self, args):
        source = args.get("source") or {}
        path = source.get("path")
        if not isinstance(path, str):
            raise SessionError("setBreakpoints needs `source.path`")
        wanted = [(b.get("line"), b.get("condition")) for b in args.get("breakpoints") or []
                  if isinstance(b.get("line"), int)]
        found = self.session.set_breakpoints(path, wanted)
        return {"breakpoints": [_breakpoint(b, source) for b in found]}

    def do_setFunctionBreakpoints(self, args):
        names = [b.get("name") for b in args.get("breakpoints") or [] if isinstance(b.get("name"), str)]
        return {"breakpoints": [_breakpoint(b) for b in self.session.set_function_breakpoints(names)]}

    def do_setExceptionBreakpoints(self, args):
        self.session.set_exception_filters([f for f in args.get("filters") or [] if isinstance(f, str)])
        return {"breakpoints": []}

    def do_configurationDone(self, args):
        entry = bool(self._launch.get("stopOnEntry"))
        return None, lambda: self._move(lambda: self.session.start(entry))

    def do_threads(self, args):
        if self.session.timeline is None:
            return {"threads": []}
        return {"threads": [{"id": t + 1, "name": name} for t, name in self.session.threads()]}

    def do_stackTrace(self, args):
        frames = self.session.stack(int(args.get("threadId", 1)) - 1)
        out = []
        for f in frames:
            frame = {"id": f.id, "name": f.name, "line": f.line, "column": f.column}
            if f.path is not None:
                frame.update(source={"name": f.path.rsplit("/", 1)[-1], "path": f.path},
                             endLine=f.end_line, endColumn=f.end_column)
            out.append(frame)
        return {"stackFrames": out, "totalFrames": len(out)}

    def do_scopes(self, args):
        return {"scopes": [{"name": name, "variablesReference": ref, "expensive": False}
                           for name, ref in self.session.scopes(args.get("frameId"))]}

    def do_variables(self, args):
        return {"variables": [_variable(v) for v in self.session.variables(args.get("variablesReference"))]}

    def do_evaluate(self, args):
        found = self.session.evaluate(args.get("expression"), args.get("frameId"))
        body = {"result": found.value, "type": found.type, "variablesReference": found.reference}
        return body

    def do_continue(self, args):
        return {"allThreadsContinued": True}, lambda: self._move(self.session.resume)

    def do_next(self, args):
        return None, lambda: self._move(self.session.step)

    def do_stepIn(self, args):
        return None, lambda: self._move(lambda: self.session.step(into=True))

    def do_stepOut(self, args):
        return None, lambda: self._move(lambda: self.session.step(out=True))

    def do_stepBack(self, args):
        return None, lambda: self._move(self.session.step_back)

    def do_reverseContinue(self, args):
        return None, lambda: self._move(self.session.reverse_continue)

    def do_pause(self, args):
        self.session.pause()
        return None

    def do_disconnect(self, args):
        self.session.pause()
        self.done = True
        return None

    def do_terminate(self, args):
        self.session.pause()
        return None, lambda: self.event("terminated")


def _breakpoint(b, source: dict | None = None) -> dict:
    out = {"id": b.id, "verified": b.verified}
    if b.line is not None:
        out["line"] = b.line
    if b.message:
        out["message"] = b.message
    if source is not None:
        out["source"] = source
    return out


def _variable(v) -> dict:
    return {"name": v.name, "value": v.value, "type": v.type, "variablesReference": v.reference}


def main() -> int:
    """`flowmetal dap`: serve one debugging session on stdin and stdout."""
    adapter = Adapter(sys.stdin.buffer, Writer(sys.stdout.buffer))
    return adapter.serve()
