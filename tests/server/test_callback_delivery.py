"""What a callback's sender is told, against a real `flowmetal serve`: 200 when the body
completed the run's wait, 202 when it is kept for a later wait, 410 when the run has ended
(the body is not used and nothing is recorded)."""

from __future__ import annotations

import httpx

from server_kit import Serve, store_state
from test_serve_process import Api


def test_a_callback_answers_what_became_of_its_body(tmp_path):
    with Serve(tmp_path / "store.db") as serve:
        api = Api(serve)
        # Early: the run naps before it waits, so the body is kept, then used.
        early = api.start("shop/nap-then-hook", ["1500"])
        url = api.callback_url(early)
        answer = httpx.post(url, content="early")
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "kept"
        assert api.finished(early)["result"] == '"got early"'
        # On time: the run waits, and wakes.
        waiting = api.start("shop/hook")
        url = api.callback_url(waiting)
        api.waiting(waiting)
        answer = httpx.post(url, content="now")
        assert answer.status_code == 200 and answer.json() == {"status": "delivered"}
        assert api.finished(waiting)["result"] == '"got now"'
        # Too late: the run was cancelled; the sender learns the body was not used.
        gone = api.start("shop/hook")
        url = api.callback_url(gone)
        api.waiting(gone)
        assert api.client.post(f"/api/runs/{gone}/cancel").status_code == 200
        assert api.finished(gone)["status"] == "cancelled"
        before = store_state(serve.store)
        answer = httpx.post(url, content="late")
        assert answer.status_code == 410, answer.text
        assert "ended" in answer.json()["error"]
        assert store_state(serve.store) == before
