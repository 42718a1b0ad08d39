"""Text that is not Unicode never gets a run stuck: lone UTF-16 surrogates are refused where
they enter as source or JSON, and stored safely (as their escape) where a connector brings them."""

from __future__ import annotations

import json

import pytest

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage uni
  (require [flowmetal.json :refer [loads json?]]
           [flowmetal.log :refer [log!]])
  (defendpoint fetch! [] : str? "A connector answers.")
  (defn parse [text : str?] : json? (loads text))
  (defn relay [] : str?
    (let [got (fetch!)]
      (log! got)
      (str "<" got ">"))))
"""


@pytest.fixture
def store(tmp_path):
    return SQLiteStore(tmp_path / "store.db")


def start(store: SQLiteStore, entry: str, args: list[str] = ()) -> str:
    sources = {"uni.flow": PROGRAM}
    return store.create_run(entry, list(args), store.put_sources(sources), code_hash(sources))


@pytest.mark.parametrize("text, status, result", [
    (r'"\"\\ud800\""', "failed", None),                  # a lone surrogate in JSON text: a fault
    (r'"[\"\\ud83d\\ude00\"]"', "completed", '["😀"]'),   # a pair is one character
])
def test_loads_refuses_lone_surrogates_and_the_run_ends(store, text, status, result):
    run_id = start(store, "uni/parse", [text])
    Executor(store).run_once(run_id)
    run = store.get_run(run_id)
    assert run.status == status
    if result is not None:
        assert run.result == result
    else:
        assert "lone surrogate `\\ud800`" in run.error


def test_a_connector_result_with_a_lone_surrogate_is_stored_as_its_escape(store):
    run_id = start(store, "uni/relay")
    Executor(store).run_once(run_id)
    assert store.get_run(run_id).status == "waiting"
    (step,) = store.pending_steps("uni/fetch!")
    assert store.complete_step(run_id, step["step"], json.dumps("a\ud800b"))
    Executor(store).run_once(run_id)
    run = store.get_run(run_id)
    assert run.status == "completed"
    assert run.result == '"<a\\ud800b>"'
    assert run.result.encode("utf-8")  # storable, printable text
