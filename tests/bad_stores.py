"""Stores holding what no Flowmetal would write, for the tests that such a store is read safely.

A store file may come from anywhere (one shipped inside a repository): `write_run`
writes a run row, its program's sources and its first event with sqlite3 directly,
so the program's file names and its code hash are whatever the test says.
`BAD_NAMES` is the table of file names that must be refused everywhere, each with
words the refusal must say.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from pathlib import Path

from flowmetal.runtime.program import code_hash as program_hash
from flowmetal.runtime.store import SQLiteStore

BAD_NAMES = [
    # (name, what the refusal says)
    ("../x.flow", "`..` segment"),
    ("/etc/x.flow", "relative"),
    ("a/../../x.flow", "`..` segment"),
    ("a\\..\\x.flow", "backslash"),
    ("C:x.flow", "colon"),
    ("x\0.flow", "control characters"),
    ("x" * 5000, "at most 1024 characters"),
    ("", "empty"),
    ("a//x.flow", "empty segment"),
    ("./x.flow", "`.` segment"),
    ("dir/", "empty segment"),
    ("x\n.flow", "control characters"),
    ("x" * 256 + "/a.flow", "at most 255 characters"),
]
GOOD_NAMES = ["a.flow", "dir/a.flow", "deep/er/a b.flow", "élan.flow", "<input>.flow", "x" * 255]


def write_run(store: Path, program: dict[str, str], *, status: str = "completed", code_hash: str | None = None,
              origin: str | None = None, entry: str = "acme.jobs/hello") -> str:
    """A run of `program` (file names -> texts) in the store file `store` (made if missing): its id."""
    SQLiteStore(store).close()  # the tables, as a real store has them
    code_hash = code_hash or program_hash(program)
    run_id = uuid.uuid4().hex[:16]
    now = time.time()
    names = {}
    conn = sqlite3.connect(store)
    try:
        with conn:
            for name, text in program.items():
                digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
                conn.execute("INSERT OR IGNORE INTO sources(hash, name, text) VALUES(?, ?, ?)", (digest, name, text))
                names[name] = digest
            conn.execute("INSERT INTO runs(id, entry, args, program, code_hash, status, result, created, updated, "
                         "next_seq, change_seq) VALUES(?, ?, '[]', ?, ?, ?, ?, ?, ?, 2, "
                         "(SELECT COALESCE(MAX(change_seq), 0) + 1 FROM runs))",  # stamped as the store stamps
                         (run_id, entry, json.dumps(names), code_hash, status,
                          '"hello"' if status == "completed" else None, now, now))
            started = {"entry": entry, "args": [], "code": code_hash}
            if origin is not None:
                started["origin"] = origin
            conn.execute("INSERT INTO events(run_id, seq, time, kind, step, data, line) "
                         "VALUES(?, 1, ?, 'run-started', NULL, ?, 1)", (run_id, now, json.dumps(started)))
    finally:
        conn.close()
    return run_id


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (symlinks not followed) and its bytes: a picture to compare."""
    out = {}
    for top, _, names in os.walk(folder):  # (os.walk does not follow symlinks to folders)
        for name in names:
            path = Path(top) / name
            if path.is_file() and not path.is_symlink():
                out[path.relative_to(folder).as_posix()] = path.read_bytes()
    return out
