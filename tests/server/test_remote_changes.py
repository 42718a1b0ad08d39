"""`RemoteStore.changes`, the change feed of a running `flowmetal serve` read through its API
(what the editor follows runs with when it works through a serve): the cursor of the
`Flowmetal-Cursor` header, each change once; and a serve too old to give one, whose every
run is listed each time, the cursor left as it was."""

from __future__ import annotations

from bad_stores import write_run
from flowmetal.server.remote import RemoteStore
from server_kit import PROGRAM, Serve
from test_stored_names_api import StandIn


def test_the_feed_of_a_serve_gives_each_new_run_once(tmp_path):
    with Serve(tmp_path / "store.db") as serve:
        first = write_run(serve.store, {"shop.flow": PROGRAM}, entry="shop/nap")  # ended: nothing drives it
        store = RemoteStore(serve.url)
        try:
            runs, cursor = store.changes(0)
            assert [(r.id, r.status, r.program) for r in runs] == [(first, "completed", {})] and cursor > 0
            assert store.changes(cursor) == ([], cursor)
            second = write_run(serve.store, {"shop.flow": PROGRAM}, entry="shop/nap")
            runs, moved = store.changes(cursor)
            assert [r.id for r in runs] == [second] and moved > cursor
            assert store.changes(moved) == ([], moved)
            assert store.get_run(second).program  # read in full when asked for
        finally:
            store.close()


def test_a_serve_without_a_cursor_lists_every_run_each_time():
    stand_in = StandIn({"shop.flow": PROGRAM})
    store = RemoteStore(stand_in.url)
    try:
        for cursor in (0, 7):
            runs, moved = store.changes(cursor)
            assert [r.id for r in runs] == ["r1"] and moved == cursor
    finally:
        store.close()
        stand_in.close()
