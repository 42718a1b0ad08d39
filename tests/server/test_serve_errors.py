"""Every error `flowmetal serve` gives is JSON, against a real process on 127.0.0.1: those
aiohttp gives itself (a malformed request line or header, an unknown `Expect`, an unknown
route, a wrong method, an oversized body) included; and a fault of its own is a 500 with
an error id, and one line in its log under that id, not a traceback (unless asked for)."""

from __future__ import annotations

import json
import socket
import sqlite3

import httpx
import pytest

from server_kit import Serve, refused

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Serve(tmp_path_factory.mktemp("errors") / "store.db") as serve:
        yield serve


def raw(serve: Serve, data: bytes) -> tuple[int, dict, dict]:
    """Send bytes as they are; the answer's status, headers and JSON body."""
    with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers.get("Content-Type", "").startswith("application/json"), (lines, body)
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_every_error_is_json_aiohttps_own_included(server):
    host = f"Host: 127.0.0.1:{server.port}\r\n".encode()
    status, _, body = raw(server, b"NOT AN HTTP REQUEST\r\n\r\n")
    assert status == 400 and body["error"].startswith("malformed HTTP request")
    status, _, body = raw(server, b"GET /api/runs HTTP/1.1\r\n" + host + b"no colon here\r\n\r\n")
    assert status == 400 and "malformed HTTP request" in body["error"]
    status, _, body = raw(server, b"GET /api/runs HTTP/1.1\r\n" + host + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert status == 400 and "malformed HTTP request" in body["error"]
    status, _, body = raw(server, b"POST /api/runs HTTP/1.1\r\n" + host + b"Expect: teapot\r\nContent-Length: 2"
                          b"\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{}")
    assert status == 417 and body["error"]
    for method, path, status, says in (("GET", "/nowhere", 404, "no route /nowhere"),
                                       ("DELETE", "/api/runs", 405, "DELETE is not allowed")):
        refused(server, method, path, status, says)
    big = b'{"sources": {"a.flow": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    refused(server, "POST", "/api/runs", 413, "limit", content=big, headers=JSON)
    refused(server, "POST", "/api/runs", 413, "limit", content=iter([big]), headers=JSON)  # chunked


def broken_run(path) -> None:
    """A row no Flowmetal writes: reading it is a fault of the server's, not the client's."""
    db = sqlite3.connect(path)
    db.execute("INSERT INTO runs(id, entry, args, program, status, created, updated) "
               "VALUES('broken', 'x', '{not json', '{}', 'completed', 0, 0)")
    db.commit()
    db.close()


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "FLOWMETAL_DEBUG"])
def test_an_internal_error_is_one_line_in_the_log_under_the_id_the_client_gets(tmp_path, debug):
    serve = Serve(tmp_path / "store.db", env={"FLOWMETAL_DEBUG": "1"} if debug else {}).start()
    broken_run(serve.store)
    response = httpx.get(serve.url + "/api/runs")
    assert response.status_code == 500 and response.headers["content-type"].startswith("application/json")
    body = response.json()
    error_id = body["id"]
    assert set(body) == {"error", "id"} and error_id in body["error"] and "internal error" in body["error"]
    assert "malformed" not in body["error"]  # the client learns nothing of the server's insides
    assert httpx.get(serve.url + "/api/runs/nope").status_code == 404  # and the server carries on
    code, _, err = serve.stop()
    assert code == 0
    (line,) = [line for line in err.splitlines() if error_id in line]
    assert "internal error" in line and "GET /api/runs" in line and "malformed" in line
    if debug:
        assert "Traceback (most recent call last)" in err
    else:
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
