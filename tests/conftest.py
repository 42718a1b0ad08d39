"""Shared test configuration: the `--update-golden` flag and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "tests" / "testdata"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the expectations in tests/testdata from the current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


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
