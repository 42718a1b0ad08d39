"""A flaky service for `examples/flaky.flow`: the first requests fail, then it answers.

    python examples/flaky_service.py [--port 8766] [--failures 2] [--exit-after SECONDS]

`GET /data` answers 503 to the first `--failures` requests and then 200 with
`"the data"`; `GET /seen` lists the `Idempotency-Key` of every request.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    failures = 2
    seen: list[str] = []
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/seen":
            self._answer(200, json.dumps(Handler.seen))
            return
        with Handler.lock:
            Handler.seen.append(self.headers.get("Idempotency-Key", ""))
            fail = len(Handler.seen) <= Handler.failures
        self._answer(503, "try again later") if fail else self._answer(200, "the data")

    def _answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


def serve(port: int = 8766, failures: int = 2) -> ThreadingHTTPServer:
    Handler.failures, Handler.seen = failures, []
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--failures", type=int, default=2)
    parser.add_argument("--exit-after", type=float, default=None)
    args = parser.parse_args()
    server = serve(args.port, args.failures)
    print(f"flaky service on http://127.0.0.1:{server.server_port}/data", flush=True)
    try:
        threading.Event().wait(args.exit_after)
    except KeyboardInterrupt:
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
