"""The test client answers `client/registerCapability` as editors do.

The language server registers its file watcher (`workspace/didChangeWatchedFiles`
for `**/*.flow`) with a client whose capabilities allow it, as VS Code's do; the
test client accepts every registration and keeps it in `client.registrations`,
for the tests that look at them.
"""

from __future__ import annotations

from lsprotocol import types
from pytest_lsp.client import LanguageClient, default_feature


@default_feature(types.CLIENT_REGISTER_CAPABILITY)
def register_capability(client: LanguageClient, params: types.RegistrationParams) -> None:
    if not hasattr(client, "registrations"):
        client.registrations = []
    client.registrations.extend(params.registrations)
