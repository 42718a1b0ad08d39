"""Shared test configuration: the `--update-golden` flag and paths."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "tests" / "testdata"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the expectations in tests/testdata from the current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


# -- PostgreSQL -------------------------------------------------------------------------------------
# FLOWMETAL_TEST_POSTGRES: the URL of a PostgreSQL server's superuser on loopback (scripts/postgres
# starts a throwaway one). Unset or unreachable: the tests that need it are skipped, unless
# FLOWMETAL_REQUIRE_POSTGRES=1 makes that a failure.

def _postgres_missing(reason: str):
    if os.environ.get("FLOWMETAL_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (FLOWMETAL_REQUIRE_POSTGRES=1) but {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {reason}")


@pytest.fixture
def postgres_url():
    """The URL of a fresh, empty PostgreSQL database for this test (a random name), dropped
    afterwards (whoever still holds a connection to it)."""
    server = os.environ.get("FLOWMETAL_TEST_POSTGRES")
    if not server:
        _postgres_missing("FLOWMETAL_TEST_POSTGRES is not set")
    import psycopg
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=5)
    except psycopg.Error as error:
        _postgres_missing(f"{server} cannot be reached ({' '.join(str(error).split())})")
    name = f"flowmetal_test_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(server)
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own (`scripts/postgres`), which it may restart, halt
    and start again: (its directory, its URL). Needs what `postgres_url` needs
    (FLOWMETAL_TEST_POSTGRES says PostgreSQL is there to test against)."""
    if not os.environ.get("FLOWMETAL_TEST_POSTGRES"):
        _postgres_missing("FLOWMETAL_TEST_POSTGRES is not set")
    # Under /tmp, not pytest's own temporary directories: PostgreSQL's user must reach it.
    directory = tempfile.mkdtemp(prefix="flowmetal-pg-", dir="/tmp")
    started = subprocess.run([str(ROOT / "scripts" / "postgres"), "start", directory], capture_output=True,
                             text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stderr
        yield directory, started.stdout.strip()
    finally:
        subprocess.run([str(ROOT / "scripts" / "postgres"), "stop", directory], capture_output=True, timeout=180)


# The language server registers its file watcher (`workspace/didChangeWatchedFiles`
# for `**/*.flow`) with a client whose capabilities allow it, as VS Code's do. The
# pytest-lsp test client accepts every registration, as editors do, and keeps it in
# `client.registrations` for the tests that look at them (tests/lsp/).
from lsprotocol import types as _lsp_types  # noqa: E402
from pytest_lsp.client import LanguageClient as _LanguageClient, default_feature as _default_feature  # noqa: E402


@_default_feature(_lsp_types.CLIENT_REGISTER_CAPABILITY)
def _register_capability(client: _LanguageClient, params: _lsp_types.RegistrationParams) -> None:
    if not hasattr(client, "registrations"):
        client.registrations = []
    client.registrations.extend(params.registrations)


# -- language server test clients -------------------------------------------------------------------
# The clients say they support `workspace/codeLens/refresh` (VS Code's capabilities), so the server
# sends it (after diagnostics change, as runs come and go): each client answers it, as an editor
# does, counts it (`code_lens_refreshes`) and calls the test's `on_code_lens_refresh`, if set.

from lsprotocol import types as _lsp_types  # noqa: E402
from pytest_lsp import LanguageClient  # noqa: E402
from pytest_lsp.client import default_feature  # noqa: E402


@default_feature(_lsp_types.WORKSPACE_CODE_LENS_REFRESH)
def code_lens_refresh(client: LanguageClient, params: None) -> None:
    client.code_lens_refreshes = getattr(client, "code_lens_refreshes", 0) + 1
    hook = getattr(client, "on_code_lens_refresh", None)
    if hook is not None:
        hook()
