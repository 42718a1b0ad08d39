"""A small fake of the wilson job service, for running `examples/wilson.flow` end to end.

    python examples/wilson_service.py [--port 8765] [--exit-after SECONDS] [--background]

`POST /jobs` takes `{"host": ..., "stages": [...], "callbacks": [{"type": "http", "url": ...}]}`,
answers 202 with the job's id, and a moment later POSTs the job's result to each
callback URL: `{"host": ..., "stages": [...], "status": "done"}`, again after a
connection error or a 5xx answer (up to 8 times, backing off to 8 s). Requests with
an `Idempotency-Key` already seen get the same job back and start nothing new,
as a real service would; `GET /jobs` lists what was asked, with the keys.

It binds its port first, in the foreground: when the port is taken it says so
and exits 1, so that a script never goes on to talk to whatever holds it.
`--background` then detaches (forks; the parent prints the address and the
service's process id and exits 0), which is how the README's Quick start
starts it in one `&&` chain.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JOBS: dict[str, dict] = {}
LOCK = threading.Lock()


CALLBACK_ATTEMPTS = 8   # a callback that cannot be delivered is tried again, 0.25 s, 0.5 s ... 8 s apart


def _finish(job: dict, delay: float) -> None:
    time.sleep(delay)
    body = json.dumps({"host": job["host"], "stages": job["stages"], "status": "done"}).encode()
    for callback in job["callbacks"]:
        _call_back(callback["url"], body)


def _call_back(url: str, body: bytes) -> None:
    """POST the job's result to its callback URL, as a real service would: again after a
    connection error or a 5xx (the server restarting), never after a 4xx (the callback was
    delivered already, or its run has ended)."""
    for attempt in range(1, CALLBACK_ATTEMPTS + 1):
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=10).read()
            return
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == CALLBACK_ATTEMPTS:
                print(f"callback to {url} failed: {error}", flush=True)
                return
        except OSError as error:
            if attempt == CALLBACK_ATTEMPTS:
                print(f"callback to {url} failed: {error}", flush=True)
                return
        time.sleep(min(8.0, 0.25 * 2 ** (attempt - 1)))


class Handler(BaseHTTPRequestHandler):
    delay = 0.5

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/jobs":
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self.send_error(400, "the body is not JSON")
            return
        key = self.headers.get("Idempotency-Key") or f"anonymous-{time.time()}"
        with LOCK:
            job = JOBS.get(key)
            fresh = job is None
            if fresh:
                job = JOBS[key] = {"id": f"job-{len(JOBS) + 1}", "key": key, "host": payload.get("host"),
                                   "stages": payload.get("stages", []), "callbacks": payload.get("callbacks", [])}
        if fresh:
            threading.Thread(target=_finish, args=(job, self.delay), daemon=True).start()
        answer = json.dumps({"job": job["id"]}).encode()
        try:
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller went away (killed mid-request); it asks again under the same key

    def do_GET(self) -> None:  # noqa: N802
        with LOCK:
            answer = json.dumps(list(JOBS.values())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # Room for the connections a fleet opens at once while the accepting thread waits for
    # the CPU (the default, 5, has the kernel reset the rest: a connection error to the caller).
    request_queue_size = 128


def bind(port: int = 8765, delay: float = 0.5) -> ThreadingHTTPServer:
    """The server, listening on 127.0.0.1:`port` but not serving yet."""
    Handler.delay = delay
    return _Server(("127.0.0.1", port), Handler)


def serve(port: int = 8765, delay: float = 0.5) -> ThreadingHTTPServer:
    server = bind(port, delay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _detach() -> int:
    """Fork: the child's process id in the parent, 0 in the child, which goes on in a session
    of its own with no terminal. The listening socket is the child's too."""
    child = os.fork()
    if child != 0:
        return child
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # nothing waits on a pipe this process would hold open
        os.dup2(devnull, fd)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay", type=float, default=0.5, help="seconds before a job calls back")
    parser.add_argument("--exit-after", type=float, default=None, metavar="SECONDS",
                        help="stop by itself after this many seconds (for scripts)")
    parser.add_argument("--background", action="store_true",
                        help="once the port is bound, detach and run in the background")
    args = parser.parse_args()
    try:
        server = bind(args.port, args.delay)
    except OSError as error:
        why = (f"port {args.port} of 127.0.0.1 is already in use (another service, or a fake wilson service "
               f"started earlier: stop it, or choose another --port)") if error.errno == errno.EADDRINUSE else error
        print(f"wilson_service: error: {why}", file=sys.stderr)
        return 1
    address = f"http://127.0.0.1:{server.server_port}/jobs"
    if args.background:
        sys.stdout.flush()
        child = _detach()
        if child:
            print(f"fake wilson service on {address}, in the background (process {child})", flush=True)
            server.server_close()  # the child listens on it
            return 0
    else:
        print(f"fake wilson service on {address}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        threading.Event().wait(args.exit_after)
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
