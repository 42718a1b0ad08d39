"""`scripts/postgres` makes a throwaway PostgreSQL server, and `scripts/test` runs the tests with one.

Real clusters, started and stopped by the script as the test command does, in
directories under /tmp (the `postgres` user that owns a cluster must reach its
directory, and pytest's own temporary directories are private to root). Each
is queried with psycopg over 127.0.0.1. Where PostgreSQL 15 is not installed
and cannot be (not root), the tests are skipped, unless
FLOWMETAL_REQUIRE_POSTGRES=1 makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "postgres"
INITDB = Path("/usr/lib/postgresql/15/bin/initdb")
URL = re.compile(r"postgresql://postgres@127\.0\.0\.1:(\d+)/postgres")

if not INITDB.exists() and os.geteuid() != 0:
    if os.environ.get("FLOWMETAL_REQUIRE_POSTGRES") == "1":
        raise RuntimeError(f"PostgreSQL 15 is not installed ({INITDB}) and FLOWMETAL_REQUIRE_POSTGRES=1")
    pytest.skip("PostgreSQL 15 is not installed, and installing it needs root", allow_module_level=True)


def postgres(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.fixture
def place():
    """A directory under /tmp that others may pass through; removed afterwards, whatever is left in it."""
    folder = Path(tempfile.mkdtemp(prefix="flowmetal-pgtest-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    for cluster in folder.glob("*/data"):  # a test that failed half-way: its server still runs
        postgres("stop", str(cluster.parent))
    shutil.rmtree(folder, ignore_errors=True)


def query(url: str, sql: str):
    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute(sql).fetchone()[0]


def listeners(port: int) -> list[str]:
    """The local addresses of the TCP sockets listening on `port`, from /proc/net (IPv6 ones as hex)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, _remote, state = line.split()[1:4]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]) if len(address) == 8 else address)
    return found


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on `port` now, as PostgreSQL would (SO_REUSEADDR).

    Without that option a bind also fails while the stopped server's closed
    connections wait out TIME_WAIT, which says nothing about the server.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_start_serves_queries_on_loopback_only_again_on_a_second_start_and_stop_removes_it(place):
    directory = place / "cluster"
    started = postgres("start", str(directory))
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    port = int(URL.fullmatch(url).group(1))
    assert query(url, "SELECT 40 + 2") == 42
    assert query(url, "SHOW fsync") == "on"
    assert query(url, "SHOW listen_addresses") == "127.0.0.1"
    assert listeners(port) == ["127.0.0.1"]
    if os.geteuid() == 0:
        assert directory.owner() == "postgres" and (directory / "data").owner() == "postgres"

    again = postgres("start", str(directory))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == url
    assert query(url, "SELECT 1") == 1

    stopped = postgres("stop", str(directory))
    assert stopped.returncode == 0, stopped.stderr
    assert not directory.exists()
    assert listeners(port) == [] and port_is_free(port)
    with pytest.raises(psycopg.OperationalError):
        query(url, "SELECT 1")
    assert postgres("stop", str(directory)).returncode == 0  # stopped already: nothing to do


def test_a_directory_it_did_not_make_is_neither_used_nor_removed(place):
    other = place / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    for command in ("start", "stop"):
        result = postgres(command, str(other))
        assert result.returncode == 1
        assert str(other) in result.stderr and "scripts/postgres" in result.stderr
    assert (other / "keep.txt").read_text() == "mine"
    assert postgres("begin", str(other)).returncode == 2


# -- scripts/test: its postgres_for_tests function, run by bash as the script runs it ----------------------

TEST_SCRIPT = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
HOOK = re.search(r"^postgres_for_tests\(\) \{\n.*?^\}\n", TEST_SCRIPT, re.M | re.S).group(0)
# What scripts/test runs pytest with, standing in for pytest: the variables it was given, and a query.
SHOW = ("python3 -c 'import os; print(os.environ.get(\"FLOWMETAL_TEST_POSTGRES\", \"\")); "
        "print(os.environ.get(\"FLOWMETAL_REQUIRE_POSTGRES\", \"\"))'")


def run_hook(place: Path, then: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("FLOWMETAL_TEST_POSTGRES", "FLOWMETAL_REQUIRE_POSTGRES")}
    environment.update(TMPDIR=str(place), **(env or {}))
    return subprocess.Popen(["bash", "-c", f"set -euo pipefail\n{HOOK}\npostgres_for_tests || exit 1\n{then}"],
                            cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def test_the_test_command_hook_is_called_before_pytest():
    assert TEST_SCRIPT.index("postgres_for_tests || exit 1") < TEST_SCRIPT.index(".venv/bin/python -m pytest")


@pytest.mark.parametrize("ending", ["exit 0", "exit 3"])
def test_the_test_command_starts_a_server_for_the_tests_and_removes_it_when_it_exits(place, ending):
    hook = run_hook(place, f"{SHOW}\n{ending}")
    out, err = hook.communicate(timeout=300)
    assert hook.returncode == int(ending.split()[1]), err
    url, required = out.splitlines()
    assert URL.fullmatch(url) and required == "1"
    assert list(place.iterdir()) == []  # its directory went with it
    assert port_is_free(int(URL.fullmatch(url).group(1)))


def test_ctrl_c_during_the_tests_stops_the_server_too(place):
    hook = run_hook(place, f"{SHOW}\nsleep 60", start_new_session=True)
    url = hook.stdout.readline().strip()
    assert URL.fullmatch(url), hook.stderr.read() if hook.poll() is not None else url
    assert query(url, "SELECT 1") == 1
    os.killpg(hook.pid, signal.SIGINT)  # what a terminal sends the whole foreground group on Ctrl-C
    hook.communicate(timeout=120)
    assert hook.returncode == 130
    assert list(place.iterdir()) == []
    assert port_is_free(int(URL.fullmatch(url).group(1)))


def test_a_server_named_already_is_used_and_none_is_started(place):
    hook = run_hook(place, SHOW, env={"FLOWMETAL_TEST_POSTGRES": "postgresql://postgres@127.0.0.1:1/x"})
    out, err = hook.communicate(timeout=60)
    assert hook.returncode == 0, err
    assert out.splitlines() == ["postgresql://postgres@127.0.0.1:1/x", "1"]
    assert list(place.iterdir()) == []


def test_a_server_that_cannot_start_fails_the_test_command_with_the_reason(place):
    place.chmod(0o700)  # the user `postgres` cannot reach the directory the cluster would be made in
    if os.geteuid() != 0:
        pytest.skip("only root makes the cluster another user's")
    hook = run_hook(place, "echo the tests ran")
    out, err = hook.communicate(timeout=60)
    assert hook.returncode == 1
    assert "the tests ran" not in out
    assert "cannot reach" in err and "no PostgreSQL server for the tests" in err
