"""`flowmetal serve` is safe by default, against a real process on 127.0.0.1: web pages
cannot use it (a body must say it is JSON, a foreign `Origin` and a `Host` that is not
the server's are refused, callbacks included), it will not listen beyond loopback without
a token, nor build callback URLs on `0.0.0.0`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from server_kit import SOURCES, Serve, free_port, refused, store_state
from test_serve_process import Api

JSON = {"Content-Type": "application/json"}
BODY = json.dumps({"sources": SOURCES, "entry": "shop/hook"})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Serve(tmp_path_factory.mktemp("safe") / "store.db") as serve:
        yield serve


def test_a_body_must_say_it_is_json(server):
    # What a web page's <form> or a "simple" fetch can send to another site without asking.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                         "application/json; charset=latin-1"):
        refused(server, "POST", "/api/runs", 415, "Content-Type: application/json",
                content=BODY, headers={"Content-Type": content_type})
    refused(server, "POST", "/api/runs", 415, "no Content-Type", content=BODY.encode())
    refused(server, "POST", "/api/steps/claim", 415, "text/plain", content='{"endpoints": ["x/y!"]}',
            headers={"Content-Type": "text/plain"})
    assert store_state(server.store)["runs"] == []
    response = httpx.post(server.url + "/api/runs", content=BODY,
                          headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201, response.text
    # A request without a body needs no Content-Type; callbacks take any body.
    cancel = httpx.post(f"{server.url}/api/runs/{response.json()['id']}/cancel")
    assert cancel.status_code in (200, 202), cancel.text
    assert Api(server).finished(response.json()["id"])["status"] == "cancelled"


def test_a_foreign_origin_is_refused_the_servers_own_is_not(server):
    for origin in ("http://evil.example", f"http://evil.example:{server.port}", "null",
                   f"https://127.0.0.1:{server.port}", f"http://127.0.0.1:{free_port()}"):
        body = refused(server, "POST", "/api/runs", 403, "the Origin header", content=BODY,
                       headers={**JSON, "Origin": origin})
        assert origin in body["error"] and f"http://127.0.0.1:{server.port}" in body["error"]
        refused(server, "GET", "/api/runs", 403, "Origin", headers={"Origin": origin})
    for origin in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}", f"http://[::1]:{server.port}"):
        response = httpx.get(server.url + "/api/runs", headers={"Origin": origin})
        assert response.status_code == 200, (origin, response.text)


def test_a_host_that_is_not_the_servers_is_refused(server):
    # DNS rebinding: the attacker's name, re-pointed at 127.0.0.1, is what the browser sends.
    for host in (f"evil.example:{server.port}", "evil.example", f"127.0.0.1:{free_port()}", "127.0.0.1",
                 f"localhost.evil.example:{server.port}", "a@127.0.0.1"):
        body = refused(server, "GET", "/api/runs", 421, "the Host header", headers={"Host": host})
        assert host in body["error"]
        refused(server, "POST", "/api/runs", 421, "Host", content=BODY, headers={**JSON, "Host": host})
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"LOCALHOST:{server.port}",
                 f"[::1]:{server.port}", f"127.0.0.2:{server.port}"):
        response = httpx.get(server.url + "/api/runs", headers={"Host": host})
        assert response.status_code == 200, (host, response.text)


def test_callbacks_take_any_body_but_not_a_foreign_host_or_origin(server):
    api = Api(server)
    run_id = api.start("shop/hook")
    url = api.callback_url(run_id)
    api.waiting(run_id)
    path = "/callback/" + url.rsplit("/", 1)[1]
    refused(server, "POST", path, 421, "Host", content="x", headers={"Host": f"evil.example:{server.port}"})
    refused(server, "POST", path, 403, "Origin", content="x", headers={"Origin": "http://evil.example"})
    response = httpx.post(url, content="signed", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    assert api.finished(run_id)["result"] == '"got signed"'


def run_serve(tmp_path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("FLOWMETAL_TOKEN", "FLOWMETAL_PUBLIC_URL", "FLOWMETAL_STORE")}
    return subprocess.run([sys.executable, "-m", "flowmetal", "serve", "--store", str(tmp_path / "store.db"),
                           "--port", str(free_port()), *args], env={**environ, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_no_address_beyond_loopback_without_a_token(tmp_path):
    result = run_serve(tmp_path, "--host", "0.0.0.0")
    assert result.returncode == 2 and result.stdout == ""
    assert "refusing to listen on 0.0.0.0 without a token" in result.stderr
    assert "FLOWMETAL_TOKEN" in result.stderr and "--insecure-no-token" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "store.db").exists()
    result = run_serve(tmp_path, "--host", "::")
    assert result.returncode == 2 and "without a token" in result.stderr


def test_a_wildcard_address_needs_a_public_url_for_callback_urls(tmp_path):
    token = {"FLOWMETAL_TOKEN": "tok"}
    result = run_serve(tmp_path, "--host", "0.0.0.0", env=token)
    assert result.returncode == 2 and "--public-url" in result.stderr and "callback URLs" in result.stderr
    for url in ("http://0.0.0.0:8700", "http://[::]:8700", "ftp://example.com", "example.com:8700"):
        result = run_serve(tmp_path, "--host", "0.0.0.0", "--public-url", url, env=token)
        assert result.returncode == 2 and "the public URL" in result.stderr, (url, result.stderr)
    result = run_serve(tmp_path, env={"FLOWMETAL_PUBLIC_URL": "http://0.0.0.0:1"})
    assert result.returncode == 2 and "names no machine" in result.stderr


def test_flowmetal_run_builds_no_callback_url_on_a_wildcard(tmp_path):
    (tmp_path / "shop.flow").write_text(SOURCES["shop.flow"], encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMETAL_")}
    result = subprocess.run([sys.executable, "-m", "flowmetal", "run", "--store", str(tmp_path / "s.db"),
                             "shop.flow", "shop/hook"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**environ, "FLOWMETAL_PUBLIC_URL": "http://0.0.0.0:8700"})
    assert result.returncode == 2, result.stderr
    assert "FLOWMETAL_PUBLIC_URL" in result.stderr and "names no machine" in result.stderr
    assert not (tmp_path / "s.db").exists()  # refused before a run was recorded


def test_insecure_no_token_listens_on_every_address_and_says_so(tmp_path):
    public = "http://hooks.example.test:9999"
    serve = Serve(tmp_path / "store.db", host="0.0.0.0", args=["--insecure-no-token", "--public-url", public]).start()
    try:
        api = Api(serve)
        run_id = api.start("shop/hook")
        url = api.callback_url(run_id)
        assert url.startswith(public + "/callback/")
        api.waiting(run_id)
        # Reached on 127.0.0.1, the loopback names are the server's; so is the public URL's host.
        refused(serve, "GET", "/api/runs", 421, "Host", headers={"Host": f"evil.example:{serve.port}"})
        assert httpx.get(serve.url + "/api/runs", headers={"Origin": public}).status_code == 200
        response = httpx.post(serve.url + "/callback/" + url.rsplit("/", 1)[1], content="via proxy",
                              headers={"Host": "hooks.example.test:9999"})
        assert response.status_code == 200, response.text
        assert api.finished(run_id)["result"] == '"got via proxy"'
    finally:
        code, _, err = serve.stop()
    assert code == 0, err
    (warning,) = [line for line in err.splitlines() if "WARNING" in line]
    assert "0.0.0.0" in warning and "NO TOKEN" in warning and "FLOWMETAL_TOKEN" in warning
