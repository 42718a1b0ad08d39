"""Checks the VS Code extension in editors/vscode/.

The extension holds no language logic: a TextMate grammar highlights, and
the Flowmetal language server (`flowmetal lsp`, over stdio) does the rest.
So these tests check the manifest, the language configuration and the
grammar statically, then, with node and npm, tokenize Flowmetal text with
VS Code's own TextMate engine (vscode-textmate + vscode-oniguruma) and
activate extension.js against a stand-in `vscode` module.

The npm packages go into editors/vscode/.test-cache/ (git-ignored; set
FLOWMETAL_VSCODE_TEST_CACHE to put them elsewhere). Without node or npm the
node tests are skipped, except in CI (CI=true), where that is a failure.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXT = ROOT / "editors" / "vscode"
HERE = pathlib.Path(__file__).resolve().parent
GRAMMAR = EXT / "syntaxes" / "flowmetal.tmLanguage.json"

# Exact versions of VS Code's TextMate engine; vscode-languageclient follows
# the extension's own dependency range.
ENGINE_PACKAGES = {"vscode-textmate": "9.3.2", "vscode-oniguruma": "2.0.1"}

REGEX_KEYS = ("match", "begin", "end", "while")


def _manifest():
    return json.loads((EXT / "package.json").read_text(encoding="utf-8"))


def _load_jsonc(path):
    """JSON with whole-line // comments, as VS Code reads language configurations."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return json.loads("\n".join(line for line in lines if not line.lstrip().startswith("//")))


def _grammar_regexes(node, where="$"):
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _grammar_regexes(item, f"{where}[{i}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in REGEX_KEYS and isinstance(value, str):
                yield f"{where}.{key}", value
            else:
                yield from _grammar_regexes(value, f"{where}.{key}")


# ---------------------------------------------------------------- static checks


def test_manifest_declares_language_grammar_and_configuration():
    manifest = _manifest()
    assert manifest["name"] == "flowmetal"
    assert manifest["publisher"]
    assert manifest["engines"]["vscode"]
    assert manifest["main"] in ("./extension.js", "extension.js")
    assert (EXT / manifest["main"]).is_file()
    assert "onLanguage:flowmetal" in manifest["activationEvents"]

    contributes = manifest["contributes"]
    [language] = [lang for lang in contributes["languages"] if lang["id"] == "flowmetal"]
    assert language["extensions"] == [".flow"]
    assert (EXT / language["configuration"]).is_file()

    [grammar] = [g for g in contributes["grammars"] if g["language"] == "flowmetal"]
    assert grammar["scopeName"] == "source.flowmetal"
    assert (EXT / grammar["path"]).resolve() == GRAMMAR

    settings = contributes["configuration"]["properties"]
    assert settings["flowmetal.server.path"]["type"] == "string"
    assert settings["flowmetal.server.path"]["default"] == "flowmetal"
    assert settings["flowmetal.server.args"]["type"] == "array"
    assert settings["flowmetal.server.args"]["default"] == ["lsp"]

    commands = {c["command"] for c in contributes.get("commands", [])}
    assert "flowmetal.restartServer" in commands
    assert "vscode-languageclient" in manifest["dependencies"]


def test_extension_uses_languageclient_over_stdio():
    source = (EXT / "extension.js").read_text(encoding="utf-8")
    assert "require('vscode-languageclient/node')" in source
    assert "TransportKind.stdio" in source
    assert "language: 'flowmetal'" in source


def test_language_configuration():
    config = _load_jsonc(EXT / "language-configuration.json")
    assert config["comments"]["lineComment"] == ";"
    assert [tuple(pair) for pair in config["brackets"]] == [("(", ")"), ("[", "]"), ("{", "}")]
    closing = {pair["open"]: pair["close"] for pair in config["autoClosingPairs"]}
    assert closing == {"(": ")", "[": "]", "{": "}", '"': '"'}
    words = re.compile(config["wordPattern"])
    for word in ("sleep!", "int?", "+seconds+", "flowmetal.time", "alias/name"):
        assert words.fullmatch(word), word
    assert words.findall("[a,b]") == ["a", "b"]


def test_grammar_is_well_formed_and_every_regex_compiles():
    grammar = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    assert grammar["scopeName"] == "source.flowmetal"
    regexes = list(_grammar_regexes(grammar))
    assert len(regexes) >= 20
    for where, regex in regexes:
        try:
            re.compile(regex)
        except re.error as err:  # pragma: no cover - the message is the point
            pytest.fail(f"{where}: {regex!r} does not compile: {err}")

    # Every #include names a rule of the repository.
    repository = grammar["repository"]
    includes = re.findall(r'"include":\s*"#([^"]+)"', GRAMMAR.read_text(encoding="utf-8"))
    assert includes
    for name in includes:
        assert name in repository, name


def test_build_output_is_ignored():
    ignored = (EXT / ".gitignore").read_text(encoding="utf-8").split()
    for pattern in ("node_modules/", "*.vsix", ".test-cache/"):
        assert pattern in ignored
    packaged_ignores = (EXT / ".vscodeignore").read_text(encoding="utf-8").split()
    assert ".test-cache/**" in packaged_ignores


# ------------------------------------------------------------ node-based checks


def _require_tool(name):
    path = shutil.which(name)
    if path is None:
        message = f"`{name}` is not installed (apt-get install -y nodejs npm)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def node_cache():
    """node, and a directory whose node_modules holds the engine and client packages."""
    node = _require_tool("node")
    npm = _require_tool("npm")
    cache = pathlib.Path(os.environ.get("FLOWMETAL_VSCODE_TEST_CACHE", EXT / ".test-cache"))
    cache.mkdir(parents=True, exist_ok=True)
    wanted = dict(ENGINE_PACKAGES)
    wanted["vscode-languageclient"] = _manifest()["dependencies"]["vscode-languageclient"]
    manifest = {"name": "flowmetal-editor-test-cache", "private": True, "dependencies": wanted}
    stamp = cache / ".installed.json"

    with open(cache / ".lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not on POSIX
            pass
        installed = all((cache / "node_modules" / name / "package.json").is_file() for name in wanted)
        if not (installed and stamp.is_file() and json.loads(stamp.read_text()) == manifest):
            (cache / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund"],
                cwd=cache, capture_output=True, text=True, timeout=600,
                env=dict(os.environ, npm_config_update_notifier="false"),
            )
            assert result.returncode == 0, f"npm install failed:\n{result.stdout}\n{result.stderr}"
            stamp.write_text(json.dumps(manifest))
    return node, cache


SAMPLE = '''\
(defpackage demo ; a comment
  (require [flowmetal.time :refer [sleep! +seconds+]])
  (defn wait [n : int? :default 5]
    """Waits, "verbatim" ; not a comment
    a while."""
    (sleep! (make-duration n +seconds+))
    (str "a\\"b\\n\\u00e9 \\q" 1.5e3 -2 nil true)
    (iffy foo-1 x+y+ a:b)))
'''


@pytest.fixture(scope="module")
def tokens(node_cache, tmp_path_factory):
    node, cache = node_cache
    sample = tmp_path_factory.mktemp("tokenize") / "sample.flow"
    sample.write_text(SAMPLE, encoding="utf-8")
    result = subprocess.run(
        [node, str(HERE / "vscode_tokenize.js"), str(cache), str(GRAMMAR), str(sample)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _scopes(tokens, line, text, nth=1):
    """The scopes of the NTH token reading TEXT on 1-based LINE."""
    found = [t["scopes"] for t in tokens["lines"][line - 1] if t["text"] == text]
    assert len(found) >= nth, f"no token {text!r} on line {line}: {tokens['lines'][line - 1]}"
    return found[nth - 1]


def _has(scopes, prefix):
    return any(s == prefix or s.startswith(prefix + ".") for s in scopes)


def test_every_regex_compiles_in_oniguruma(tokens):
    assert tokens["regexErrors"] == []


def test_tokenize_comment(tokens):
    assert _has(_scopes(tokens, 1, " a comment"), "comment.line.semicolon")
    assert _has(_scopes(tokens, 1, ";"), "punctuation.definition.comment")
    assert _scopes(tokens, 1, "defpackage")[-1].startswith("keyword.declaration")


def test_tokenize_string_and_escapes(tokens):
    assert _has(_scopes(tokens, 7, "a"), "string.quoted.double")
    for escape in ('\\"', "\\n", "\\u00e9"):
        assert _has(_scopes(tokens, 7, escape), "constant.character.escape"), escape
    assert _has(_scopes(tokens, 7, "\\q"), "invalid.illegal")
    # After the string, code again.
    assert not _has(_scopes(tokens, 7, "nil"), "string")


def test_tokenize_triple_quoted_string_over_two_lines(tokens):
    assert _has(_scopes(tokens, 4, '"""'), "string.quoted.triple")
    text = _scopes(tokens, 4, 'Waits, "verbatim" ; not a comment')
    assert _has(text, "string.quoted.triple")
    assert not _has(text, "comment")
    assert _has(_scopes(tokens, 5, "    a while."), "string.quoted.triple")
    assert _has(_scopes(tokens, 5, '"""'), "punctuation.definition.string.end")
    # The string ends: the next line is code.
    assert not _has(_scopes(tokens, 6, "sleep!"), "string")


def test_tokenize_keywords_and_type_marker(tokens):
    assert _has(_scopes(tokens, 3, "default"), "constant.other.keyword")
    assert _has(_scopes(tokens, 2, "refer"), "constant.other.keyword")
    assert _has(_scopes(tokens, 3, ":"), "keyword.operator.type")


def test_tokenize_forms_and_names(tokens):
    assert _has(_scopes(tokens, 3, "defn"), "keyword.declaration")
    assert _has(_scopes(tokens, 3, "wait"), "entity.name.function")
    assert _has(_scopes(tokens, 2, "require"), "keyword.declaration")
    assert _has(_scopes(tokens, 6, "sleep!"), "entity.name.function.endpoint")
    assert _has(_scopes(tokens, 2, "sleep!"), "entity.name.function.endpoint")
    assert _has(_scopes(tokens, 6, "+seconds+"), "variable.other.enummember")
    assert _has(_scopes(tokens, 3, "int?"), "entity.name.type")
    assert _has(_scopes(tokens, 6, "make-duration"), "meta.symbol")


def test_tokenize_literals(tokens):
    assert _has(_scopes(tokens, 3, "5"), "constant.numeric.integer")
    assert _has(_scopes(tokens, 7, "1.5e3"), "constant.numeric.float")
    assert _has(_scopes(tokens, 7, "-2"), "constant.numeric.integer")
    assert _has(_scopes(tokens, 7, "nil"), "constant.language.nil")
    assert _has(_scopes(tokens, 7, "true"), "constant.language.boolean")


def test_tokenize_does_not_split_symbols(tokens):
    # Names that merely contain a special form, a number, an enum or a colon.
    for text in ("iffy", "foo-1", "x+y+", "a:b"):
        scopes = _scopes(tokens, 8, text)
        assert _has(scopes, "meta.symbol"), (text, scopes)
        assert not any(_has(scopes, p) for p in ("keyword", "constant", "variable")), (text, scopes)


def test_activation_starts_language_server(node_cache):
    node, cache = node_cache
    result = subprocess.run(
        [node, str(HERE / "vscode_activate.js"), str(cache), str(EXT)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    stdio = report["transportKinds"]["stdio"]
    events = report["events"]

    def between(start, end=None):
        names = [e.get("name") if e["kind"] == "step" else None for e in events]
        i = names.index(start)
        j = names.index(end) if end else len(events)
        return events[i + 1:j]

    def kinds(evs):
        return [e["kind"] for e in evs]

    # Activation: the restart command, then one client for flowmetal documents.
    activation = between("activate", "change server settings")
    assert {"kind": "registerCommand", "name": "flowmetal.restartServer"} in activation
    [create] = [e for e in activation if e["kind"] == "create"]
    assert create["id"] == "flowmetal"
    for mode in ("run", "debug"):
        assert create["serverOptions"][mode] == {"command": "flowmetal", "args": ["lsp"], "transport": stdio}
    assert {"scheme": "file", "language": "flowmetal"} in create["clientOptions"]["documentSelector"]
    assert kinds(activation)[-2:] == ["start", "subscriptions"]

    # Changing the server settings restarts the server with them.
    changed = between("change server settings", "change other settings")
    assert kinds(changed) == ["settings", "stop", "create", "start"]
    assert changed[2]["serverOptions"]["run"] == {
        "command": "/opt/flowmetal/bin/flowmetal",
        "args": ["lsp", "--log-level", "debug"],
        "transport": stdio,
    }

    # Other settings leave it alone; the command restarts it.
    assert kinds(between("change other settings", "restart command")) == ["settings"]
    assert kinds(between("restart command", "server fails to start")) == ["stop", "create", "start"]

    # A server that cannot start is reported, naming the command and the setting.
    failed = between("server fails to start", "deactivate")
    assert kinds(failed) == ["stop", "create", "start", "error"]
    assert "/opt/flowmetal/bin/flowmetal lsp --log-level debug" in failed[-1]["message"]
    assert "flowmetal.server.path" in failed[-1]["message"]

    assert kinds(between("deactivate")) == ["stop"]
