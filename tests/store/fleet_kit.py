"""A fleet on one PostgreSQL store, as real processes, for the fleet tests: `flowmetal serve`s
and `flowmetal worker`s started, killed and started again; a load balancer in front of the
serves (the deployment's public URL: callbacks and API calls reach whichever serve is up);
the fake wilson service of the examples (`examples/wilson_service.py`) as a process; a fake
`charge!` service answering steps in the test's process; and the checks every run of a fleet
must pass whatever happened to the processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from tests.waits import until as wait_until

from flowmetal.runtime.store import open_store
from flowmetal.runtime.values import encode

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FINAL = ("completed", "failed", "cancelled")

# Each run sleeps, posts a wilson job through the fake service (`post!`, retried by `retry!`
# while the service cannot be reached) and waits for the job's callback.
PROGRAM = """\
(defpackage fleet.test
  (require [com.twitter.wilson :refer [job +reboot+]]
           [flowmetal.time :refer [sleep! make-duration +milliseconds+]]
           [flowmetal.log :refer [log!]])
  (defn reboot [host : str? nap : int? service : str?]
    (sleep! (make-duration nap +milliseconds+))
    (let [result (job host [+reboot+] :service service)]
      (log! (str "rebooted " host))
      result)))
"""


def sources() -> dict[str, str]:
    return {"fleet_test.flow": PROGRAM, "wilson.flow": (EXAMPLES / "wilson.flow").read_text()}


def expected(host: str) -> str:
    """What `reboot` of `host` returns: the body the fake service calls back with."""
    return f'{{"host" "{host}" "stages" ["reboot"] "status" "done"}}'


def env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLOWMETAL_") or k.startswith("FLOWMETAL_TEST")}


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A `flowmetal` command kept running: started again after each kill, its stderr
    appended to a log file (a pipe nobody reads would fill and stop it)."""

    def __init__(self, name: str, args: list[str], cwd: Path, ready: str | None = None) -> None:
        self.name, self.args, self.cwd, self.ready = name, args, cwd, ready
        self.log = cwd / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.kills = 0

    def start(self) -> "Process":
        # Both streams go to files: a pipe closed or left unread would stop or kill it.
        out = self.cwd / f"{self.name}.out"
        out.write_text("")
        start = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log, open(out, "wb") as stdout:
            self.proc = subprocess.Popen([sys.executable, "-m", "flowmetal", *self.args], cwd=self.cwd, env=env(),
                                         stdout=stdout, stderr=log, start_new_session=True)
        if self.ready:
            # A worker says it is ready on stderr (the log, appended to across restarts: only
            # what this start wrote counts), serve on stdout.
            started = lambda: (self.ready in out.read_text()  # noqa: E731
                               or self.ready.encode() in self.log.read_bytes()[start:])
            wait_until(lambda: started() or self.proc.poll() is not None,
                       f"{self.name} to start", timeout=30, every=0.02)
            assert self.proc.poll() is None, f"{self.name} did not start; see {self.log}"
        return self

    def signal(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.kills += 1

    def restart(self) -> None:
        self.kill9()
        self.start()

    def stop(self) -> int | None:
        """SIGTERM, then wait: its exit status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def logged(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def serve(name: str, store: str, cwd: Path, public_url: str) -> Process:
    port = free_port()
    process = Process(name, ["serve", "--store", store, "--port", str(port), "--public-url", public_url], cwd,
                      ready="listening on")
    process.url = f"http://127.0.0.1:{port}"
    return process


def worker(name: str, store: str, cwd: Path, lease: float = 1.0) -> Process:
    return Process(name, ["worker", "--store", store, "--lease", str(lease), "--poll", "0.05"], cwd,
                   ready="running the runs of")


class Balancer:
    """The deployment's public URL: a load balancer in front of the serves. Each request goes
    to the serves in turn; one that cannot be reached (killed, restarting) is passed over
    for the next, and when none can, the request is tried again until `patience` runs out
    (then 502). A request a serve answered is never sent again."""

    def __init__(self, backends, patience: float = 30.0) -> None:
        self.backends = backends  # a callable: the serves' URLs now
        self.turn = 0
        self.lock = threading.Lock()
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "idempotency-key", "authorization", "accept")}
                answer = balancer.send(self.command, self.path, headers, body, patience)
                if answer is None:
                    status, content, kind = 502, b'{"error": "no serve could be reached"}', "application/json"
                else:
                    status, content = answer.status_code, answer.content
                    kind = answer.headers.get("content-type", "application/json")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:  # the caller gave up waiting
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def send(self, method: str, path: str, headers: dict, body: bytes, patience: float):
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            urls = list(self.backends())
            with self.lock:
                self.turn += 1
                first = self.turn
            for i in range(len(urls)):
                url = urls[(first + i) % len(urls)]
                try:
                    return httpx.request(method, url + path, headers=headers, content=body, timeout=10)
                except httpx.TransportError:
                    continue
            time.sleep(0.1)
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Wilson:
    """`examples/wilson_service.py` as a process: takes jobs (one per Idempotency-Key) and calls
    each back on its callback URL a moment later."""

    def __init__(self, cwd: Path, delay: float = 0.2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/jobs"
        self.log = open(cwd / "wilson.log", "ab")
        self.proc = subprocess.Popen([sys.executable, str(EXAMPLES / "wilson_service.py"), "--port", str(self.port),
                                      "--delay", str(delay)], stdout=self.log, stderr=self.log, env=env())
        wait_until(self._up, "the fake wilson service")

    def _up(self) -> bool:
        try:
            return httpx.get(self.url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def jobs(self) -> list[dict]:
        return httpx.get(self.url, timeout=30).json()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class Fleet:
    """Processes with a balancer in front and the fake wilson service behind, stopped together."""

    def __init__(self, wilson: Wilson, balancer: Balancer, processes: list[Process]) -> None:
        self.wilson, self.balancer, self.processes = wilson, balancer, processes

    @classmethod
    def start(cls, store: str, cwd: Path) -> "Fleet":
        """The usual fleet: two serves behind the balancer (their public URL), then two workers."""
        wilson = Wilson(cwd)
        serves: list[Process] = []
        balancer = Balancer(lambda: [s.url for s in serves])
        serves += [serve(f"serve-{i}", store, cwd, balancer.url).start() for i in (1, 2)]
        workers = [worker(f"worker-{i}", store, cwd).start() for i in (1, 2)]
        return cls(wilson, balancer, serves + workers)

    @property
    def workers(self) -> list[Process]:
        return [p for p in self.processes if p.args[0] == "worker"]

    def close(self) -> None:
        for process in self.processes:
            process.kill9()
        self.balancer.close()
        self.wilson.close()


class Charges(threading.Thread):
    """A `charge!` service in the test's process: answers each pending step of `endpoint` with
    twice its amount, looking every `every` seconds, and counts each idempotency key it saw."""

    def __init__(self, url: str, endpoint: str, every: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.store = open_store(url)
        self.endpoint, self.every = endpoint, every
        self.seen: Counter = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for step in self.store.pending_steps(self.endpoint):
                self.seen[step["key"]] += 1
                amount = json.loads(step["args"])["amount"]
                self.store.complete_step(step["run_id"], step["step"], json.dumps(encode(amount * 2)))
            time.sleep(self.every)


def check_runs(store, runs: dict[str, str], wilson: Wilson) -> None:
    """Every run completed once with the right value, its log whole and in order, each step
    applied once, each callback delivered once, and each job asked of the service under one
    idempotency key (the step's): `runs` maps run ids to their hosts."""
    listed = store.list_runs()
    assert sorted(r.id for r in listed) == sorted(runs), "a run was lost, or made twice"
    for run_id, host in runs.items():
        run = store.get_run(run_id)
        assert (run.status, run.result) == ("completed", expected(host)), (run_id, run.status, run.error)
        events = store.events(run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        kinds = Counter(e.kind for e in events)
        assert kinds["run-started"] == kinds["run-completed"] == 1, kinds
        requested = [e.step for e in events if e.kind == "step-requested"]
        assert len(requested) == len(set(requested)), requested
        completed = Counter(e.step for e in events if e.kind == "step-completed")
        assert all(n == 1 for n in completed.values()), completed
        assert [e.data["message"] for e in events if e.kind == "log" and "rebooted" in e.data["message"]] == [
            f"rebooted {host}"]
        for step in requested:
            row = store.step(run_id, step)
            if row is not None:
                assert row["status"] == "applied", (run_id, step, row["status"])
    jobs = wilson.jobs()
    keys = Counter(job["host"] for job in jobs)
    # One job per run: a request sent again was sent with its key, which the service knows.
    assert keys == Counter(runs.values()), {h: n for h, n in keys.items() if n != 1}
    posts = {(run_id, str(step["step"])) for run_id in runs for step in _post_steps(store, run_id)}
    sent = {tuple(job["key"].rsplit(":", 1)) for job in jobs}
    # Every job the service took names a post! step of its run's log...
    assert sent <= posts, sorted(sent - posts)
    # ... and a post! step it never took ended in an error its run saw (then `retry!` posted
    # again, under the new step's key): never a request dropped without a word.
    unsent = {(run_id, int(step)): _outcome(store, run_id, int(step)) for run_id, step in posts - sent}
    assert all(outcome is not None and outcome.startswith("(") and "error" in outcome.split()[0]
               for outcome in unsent.values()), unsent


def _outcome(store, run_id: str, step: int) -> str | None:
    """The result a step's `step-completed` event recorded (a literal), or None."""
    for event in store.events(run_id, kind="step-completed"):
        if event.step == step:
            return event.data.get("result")
    return None


def _post_steps(store, run_id: str) -> list:
    return [e.data | {"step": e.step} for e in store.events(run_id, kind="step-requested")
            if e.data.get("endpoint") == "http.request/post!"]
