"""File names through the HTTP API: a real `flowmetal serve` refuses a program whose file
names are not plain relative names and records nothing; it answers 409 for the program
of a run that a crafted store holds with such a name; and `RemoteStore`, reading runs
from a serve that sends such names anyway, refuses them as the store does."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bad_stores import BAD_NAMES, write_run
from flowmetal.runtime.store import StoreError
from flowmetal.server.remote import RemoteStore
from server_kit import PROGRAM, Serve, store_state


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "store.db"
    with Serve(path) as serve:
        yield serve


@pytest.mark.parametrize("name,says", BAD_NAMES, ids=[repr(n[:20]) for n, _ in BAD_NAMES])
def test_serve_refuses_a_program_with_a_bad_file_name_and_records_nothing(server, name, says):
    before = store_state(server.store)
    response = httpx.post(server.url + "/api/runs", timeout=30,
                          json={"sources": {"shop.flow": PROGRAM, name: ";; nothing"}, "entry": "shop/nap",
                                "args": ["1"]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("`sources`: bad file name") and says in error
    assert store_state(server.store) == before


def test_serve_answers_409_for_a_stored_program_with_a_bad_file_name(server):
    run_id = write_run(server.store, {"../../x.flow": PROGRAM}, entry="shop/nap")
    listed = httpx.get(server.url + "/api/runs", timeout=30)
    assert listed.status_code == 200 and run_id in [r["id"] for r in listed.json()]
    response = httpx.get(f"{server.url}/api/runs/{run_id}/sources", timeout=30)
    assert response.status_code == 409
    assert "cannot be read" in response.json()["error"] and "bad file name `../../x.flow`" in response.json()["error"]


class StandIn:
    """A serve as someone else may run it: its runs' programs have whatever names it likes."""

    def __init__(self, sources) -> None:
        run = {"id": "r1", "entry": "shop/nap", "status": "completed", "result": "1", "error": None, "args": ["1"],
               "code_hash": "c" * 64, "created": 1.0, "updated": 1.0, "last_seq": 1, "parent": None}
        answers = {"/api/runs": [run], "/api/runs/r1": run, "/api/runs/r1/sources": sources}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps(answers.get(self.path.split("?")[0], {"error": "no"})).encode()
                self.send_response(200 if self.path.split("?")[0] in answers else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("name,says", BAD_NAMES[:6], ids=[repr(n[:20]) for n, _ in BAD_NAMES[:6]])
def test_a_remote_serve_sending_a_bad_file_name_is_refused(name, says):
    stand_in = StandIn({name: PROGRAM})
    store = RemoteStore(stand_in.url)
    try:
        (run,) = store.list_runs()  # the runs are listed; their programs are not read
        with pytest.raises(StoreError, match="bad file name") as caught:
            store.get_sources(run.program)
        assert says in str(caught.value) and stand_in.url in str(caught.value)
    finally:
        store.close()
        stand_in.close()


@pytest.mark.parametrize("sources", [["shop.flow"], {"shop.flow": 3}, "shop.flow"])
def test_a_remote_serve_sending_no_map_of_files_is_refused(sources):
    stand_in = StandIn(sources)
    store = RemoteStore(stand_in.url)
    try:
        with pytest.raises(StoreError, match="other than file names and texts"):
            store.list_runs()
    finally:
        store.close()
        stand_in.close()
