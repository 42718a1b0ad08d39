"""Ctrl-C during `flowmetal run`: the run is left recorded, checkpointed and waiting, the
command says how to go on and exits 130, and a worker or a serve started later on the same
store finishes the run; nothing is lost. Real processes, real signals, real stores."""

from __future__ import annotations

import json
import signal
import socket
import sys
import textwrap
from pathlib import Path

import httpx

from conftest import ROOT
from running import ID_LINE, Running, clean_env, free_port, run_until_done

sys.path.insert(0, str(ROOT / "tests" / "server"))
from server_kit import Serve  # noqa: E402

HOOK = textwrap.dedent("""\
    (defpackage hook
      (require [http.callback :refer [make-callback! get-callback!]])
      (defn main [] : str?
        (let [cb (make-callback!)]
          (str "got " (get-callback! cb)))))
    """)

PAY = textwrap.dedent("""\
    (defpackage prog
      (defendpoint charge! [n : int?] : int? "A connector answers.")
      (defn spin [n : int?] : int? (if (= n 0) 0 (spin (- n 1))))
      (defn pay [] : int? (+ (spin 3000000) (charge! 3))))
    """)

SLOW = textwrap.dedent("""\
    (defpackage slow
      (require [http.request :refer [get!]])
      (defn main [url : str?] : str? (str (get! url))))
    """)

ENDPOINTS = textwrap.dedent("""\
    from flowmetal.connectors.sdk import endpoint

    @endpoint("prog/charge!")
    def charge(n):
        return n * 2
    """)


def test_interrupted_while_waiting_for_its_callback_then_a_later_serve_takes_the_callback(tmp_path: Path):
    (tmp_path / "hook.flow").write_text(HOOK)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    running = Running("run", "hook.flow", "main", "--store", "s.db", cwd=tmp_path,
                      env=clean_env(FLOWMETAL_PUBLIC_URL=public))
    try:
        run_id = running.wait_line(ID_LINE.pattern).group(1)
        url = running.wait_line(r"waiting for a callback at (\S+)").group(1)
        running.signal(signal.SIGINT)
        assert running.finish() == 130
    finally:
        running.kill()
    assert url.startswith(f"{public}/callback/")
    assert running.lines[-1] == (
        f"flowmetal run: run {run_id} is waiting; resume it with `flowmetal worker --store s.db` or "
        f"`flowmetal serve --store s.db`; `flowmetal trace {run_id} --store s.db` shows it")
    assert running.stdout == ""
    # Nobody listens on the public URL now; a serve on the same store, started later, does.
    with Serve(tmp_path / "s.db", port=port, cwd=tmp_path):
        answer = httpx.post(url, content="hello", headers={"Content-Type": "text/plain"}, timeout=30)
        assert answer.status_code == 200, answer.text
        run = run_until_done(tmp_path / "s.db", run_id)
    assert (run["status"], run["result"]) == ("completed", '"got hello"')


def test_interrupted_while_computing_the_run_is_checkpointed_and_a_worker_finishes_it(tmp_path: Path):
    (tmp_path / "prog.flow").write_text(PAY)
    (tmp_path / "endpoints.py").write_text(ENDPOINTS)
    running = Running("run", "prog.flow", "pay", "--store", "s.db", cwd=tmp_path)
    try:
        run_id = running.wait_line(ID_LINE.pattern).group(1)
        running.signal(signal.SIGINT)  # most likely while it counts down: either way nothing is lost
        assert running.finish() == 130
    finally:
        running.kill()
    assert running.lines[-1].startswith(f"flowmetal run: run {run_id} is ")
    assert "resume it with `flowmetal worker --store s.db`" in running.lines[-1]
    worker = Running("worker", "--store", "s.db", cwd=tmp_path)
    connector = Running("connector", "endpoints.py", "--store", "s.db", cwd=tmp_path)
    try:
        run = run_until_done(tmp_path / "s.db", run_id, timeout=120)
    finally:
        for process in (worker, connector):
            process.signal(signal.SIGTERM)
            process.finish()
    assert (run["status"], run["result"]) == ("completed", "6")


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path):
    """The first Ctrl-C lets the request in flight finish for a few seconds (its server never
    answers here); the second does not wait."""
    (tmp_path / "slow.flow").write_text(SLOW)
    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/never"
    running = Running("run", "slow.flow", "main", json.dumps(url), "--store", "s.db", cwd=tmp_path,
                      env=clean_env(FLOWMETAL_PUBLIC_URL=f"http://127.0.0.1:{free_port()}"))
    try:
        running.wait_line(f"step 1: GET {url}")
        running.signal(signal.SIGINT)
        running.wait_line("is waiting; resume it")
        running.signal(signal.SIGINT)
        assert running.finish() == 130
    finally:
        running.kill()
        silent.close()
    assert running.lines[-1] == "flowmetal run: stopped at once"
