"""The VS Code extension's package, the .vsix users install, as scripts/vsix builds it.

scripts/vsix copies editors/vscode into a build directory under
editors/vscode/.test-cache/ (npm installs the pinned esbuild, @vscode/vsce and
vscode-languageclient there) and runs `vsce package`, which bundles the
scripts with esbuild. These tests open the .vsix (a zip file) and check what
it holds: the manifest, one bundled script with the language client inside,
the LICENSE, and none of the sources, tests or node_modules. That the
packaged extension works is the end-to-end test's part
(test_vscode_code_server.py installs this same .vsix into code-server).

Needs node and npm: skipped without them, except in CI (CI=true), where that
is a failure.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXT = ROOT / "editors" / "vscode"
CACHE = pathlib.Path(os.environ.get("FLOWMETAL_VSCODE_TEST_CACHE", EXT / ".test-cache"))


@pytest.fixture(scope="module")
def vsix():
    if not (shutil.which("node") and shutil.which("npm")):
        message = "`node` or `npm` is not installed (apt-get install -y nodejs npm)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = CACHE / "flowmetal.vsix"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "vsix"), str(out)], capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, FLOWMETAL_VSCODE_TEST_CACHE=str(CACHE)))
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(out) as package:
        return {name: package.read(name) for name in package.namelist()}


def test_the_package_holds_the_bundle_and_no_sources(vsix):
    files = {name.removeprefix("extension/") for name in vsix if name.startswith("extension/")}
    assert files == {"package.json", "dist/extension.js", "LICENSE.txt", "readme.md",
                     "language-configuration.json", "syntaxes/flowmetal.tmLanguage.json", "media/flowmetal.svg"}
    manifest = json.loads(vsix["extension/package.json"])
    assert manifest["main"] == "./dist/extension.js"
    assert vsix["extension/LICENSE.txt"] == (ROOT / "LICENSE").read_bytes()


def test_the_bundle_holds_the_extension_and_its_client(vsix):
    bundle = vsix["extension/dist/extension.js"].decode("utf-8")
    # Only `vscode` is left for the extension host to give; the rest is inside.
    assert 'require("vscode")' in bundle
    for module in ("vscode-languageclient", "./runs", "./debug", "./token"):
        assert f'require("{module}' not in bundle, module
    # The extension's own code (its strings survive minifying), and the language client's.
    assert "flowmetal/runUpdated" in bundle and "flowmetal.setToken" in bundle
    assert "Flowmetal Language Server" in bundle
    assert "vscode-languageclient" in bundle or "LanguageClient" in bundle


def test_the_manifest_says_where_it_comes_from_and_what_it_needs(vsix):
    manifest = json.loads(vsix["extension/package.json"])
    source = json.loads((EXT / "package.json").read_text(encoding="utf-8"))
    assert manifest["publisher"] == "flowmetal"
    assert manifest["license"] == "MIT"
    assert manifest["repository"]["url"].startswith("https://")
    # The client's major version is the one whose own `engines.vscode` the extension declares.
    lock = json.loads((EXT / "package-lock.json").read_text(encoding="utf-8"))
    client = lock["packages"]["node_modules/vscode-languageclient"]
    assert client["engines"]["vscode"] == manifest["engines"]["vscode"]
    assert source["devDependencies"]["@vscode/vsce"][0].isdigit()  # pinned, not a range
    assert source["devDependencies"]["esbuild"][0].isdigit()
