"""Checks the VS Code extension in editors/vscode/.

The extension holds no language logic: a TextMate grammar highlights, and
the Flowmetal language server (`flowmetal lsp`, over stdio) does the rest.
It also runs and traces programs from the editor, over the protocol of
docs/lsp-protocol.md: the Run lens's arguments, the Flowmetal side bar's Runs
and State views, and the run actions. So these tests check the manifest, the
language configuration and the grammar statically, then, with node and npm,
tokenize Flowmetal text with VS Code's own TextMate engine (vscode-textmate +
vscode-oniguruma), activate extension.js against a stand-in `vscode` module
(tests/editors/vscode_stub.js), and drive its run and trace features with a
stand-in language client playing the server's side (vscode_runs.js).

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
import sys

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
    # The packaged extension runs the bundle scripts/vsix makes of extension.js (tests/editors/test_vscode_vsix.py).
    assert manifest["main"] == "./dist/extension.js"
    assert (EXT / "extension.js").is_file()
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


def test_manifest_contributes_the_runs_side_bar():
    # (Opening a contributed view activates the extension: VS Code 1.74 and later
    # generate `onView:` activation events from `views`.)
    manifest = _manifest()
    assert int(re.search(r"1\.(\d+)", manifest["engines"]["vscode"]).group(1)) >= 74
    contributes = manifest["contributes"]

    [container] = contributes["viewsContainers"]["activitybar"]
    assert container["id"] == "flowmetal"
    assert container["title"] == "Flowmetal"
    assert (EXT / container["icon"]).is_file()
    assert "<svg" in (EXT / container["icon"]).read_text(encoding="utf-8")
    views = {view["id"]: view["name"] for view in contributes["views"]["flowmetal"]}
    assert views == {"flowmetal.runs": "Runs", "flowmetal.state": "State"}

    commands = {c["command"]: c for c in contributes["commands"]}
    for name in ("flowmetal.runs.refresh", "flowmetal.runs.cancel", "flowmetal.runs.replay",
                 "flowmetal.runs.showAll", "flowmetal.runs.showEvent", "flowmetal.openLocation"):
        assert commands[name]["title"], name
    for name in ("flowmetal.runs.refresh", "flowmetal.runs.cancel", "flowmetal.runs.replay"):
        assert commands[name]["icon"].startswith("$("), name
    # The server's own commands are registered by the language client: the
    # manifest must not claim them, or VS Code would find them twice.
    for name in ("flowmetal.run", "flowmetal.cancel", "flowmetal.replay", "flowmetal.showRuns", "flowmetal.trust"):
        assert name not in commands

    menus = contributes["menus"]
    inline = {m["command"]: m["when"] for m in menus["view/item/context"] if m["group"].startswith("inline")}
    assert "viewItem == flowmetalRun.active" in inline["flowmetal.runs.cancel"]  # only runs that can stop
    assert "flowmetalRun" in inline["flowmetal.runs.replay"]
    context = {m["command"] for m in menus["view/item/context"] if not m["group"].startswith("inline")}
    assert context == {"flowmetal.runs.cancel", "flowmetal.runs.replay", "flowmetal.runs.debug",
                       "flowmetal.runs.refresh"}
    for item in menus["view/item/context"] + menus["view/title"]:
        assert "view == flowmetal.runs" in item["when"]
    title = {m["command"]: m["when"] for m in menus["view/title"]}
    assert "flowmetal.runsFiltered" in title["flowmetal.runs.showAll"]
    assert "flowmetal.runs.refresh" in title
    hidden = {m["command"] for m in menus["commandPalette"] if m["when"] == "false"}
    assert {"flowmetal.runs.showEvent", "flowmetal.openLocation", "flowmetal.runs.debug", "flowmetal.debug"} <= hidden


def test_manifest_limits_what_an_untrusted_workspace_can_do():
    untrusted = _manifest()["capabilities"]["untrustedWorkspaces"]
    assert untrusted["supported"] == "limited"
    assert "store" in untrusted["description"]
    # A workspace's own settings could otherwise pick the command VS Code runs, or the store and serve.
    settings = _manifest()["contributes"]["configuration"]["properties"]
    assert set(untrusted["restrictedConfigurations"]) == {
        "flowmetal.server.path", "flowmetal.server.args", "flowmetal.store", "flowmetal.serve", "flowmetal.token"}
    assert set(untrusted["restrictedConfigurations"]) <= set(settings)


def test_manifest_declares_run_settings():
    settings = _manifest()["contributes"]["configuration"]["properties"]
    for name in ("flowmetal.store", "flowmetal.serve", "flowmetal.token"):
        assert settings[name]["type"] == "string", name
        assert settings[name]["default"] == "", name
        assert settings[name]["markdownDescription"], name
    assert "FLOWMETAL_STORE" in settings["flowmetal.store"]["markdownDescription"]
    assert "flowmetal serve" in settings["flowmetal.serve"]["markdownDescription"]
    # The token is kept in secret storage: the setting says where it went, and how to set it.
    commands = {c["command"]: c for c in _manifest()["contributes"]["commands"]}
    assert (commands["flowmetal.setToken"]["category"], commands["flowmetal.setToken"]["title"]) == (
        "Flowmetal", "Set API Token")
    for key in ("markdownDescription", "markdownDeprecationMessage"):
        assert "Flowmetal: Set API Token" in settings["flowmetal.token"][key], key


def test_extension_speaks_only_the_documented_protocol():
    """Every `flowmetal/...` method the extension uses is in docs/lsp-protocol.md, and it uses them all."""
    doc = (ROOT / "docs" / "lsp-protocol.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(flowmetal/\w+)`", doc))
    assert {"flowmetal/runs", "flowmetal/trace", "flowmetal/stateAt",
            "flowmetal/runUpdated", "flowmetal/traceEvent"} <= documented
    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted(EXT.glob("*.js")))
    used = set(re.findall(r"'(flowmetal/\w+)'", source))
    assert used == documented
    server_commands = set(re.findall(r"^\| `(flowmetal\.\w+)`", doc, re.M))
    assert server_commands == {"flowmetal.run", "flowmetal.cancel", "flowmetal.replay", "flowmetal.showRuns",
                               "flowmetal.trust"}
    for command in server_commands:
        assert f"'{command}'" in source, command


def test_extension_uses_languageclient_over_stdio():
    source = (EXT / "extension.js").read_text(encoding="utf-8")
    assert "require('vscode-languageclient/node')" in source
    # Stdio without naming it: with `transport: TransportKind.stdio`,
    # vscode-languageclient appends `--stdio`, which `flowmetal lsp` refuses.
    assert "transport:" not in source
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
    for pattern in ("node_modules/", "dist/", "*.vsix", ".test-cache/"):
        assert pattern in ignored
    packaged_ignores = (EXT / ".vscodeignore").read_text(encoding="utf-8").split()
    for pattern in (".test-cache/**", "node_modules/**", "*.js", "!dist/extension.js"):
        assert pattern in packaged_ignores


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
    sample = tmp_path_factory.mktemp("tokenize") / "sample.flow"
    sample.write_text(SAMPLE, encoding="utf-8")
    return _node_script(node_cache, "vscode_tokenize.js", GRAMMAR, sample)


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


def _node_script(node_cache, script, *args, timeout=120):
    """The JSON report of `node SCRIPT CACHE ARGS...`, which must succeed."""
    node, cache = node_cache
    result = subprocess.run([node, str(HERE / script), str(cache), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_activation_starts_language_server(node_cache):
    report = _node_script(node_cache, "vscode_activate.js", EXT)
    events = report["events"]

    def between(start, end=None):
        names = [e.get("name") if e["kind"] == "step" else None for e in events]
        i = names.index(start)
        j = names.index(end) if end else len(events)
        return events[i + 1:j]

    def kinds(evs):
        return [e["kind"] for e in evs]

    # Activation: the commands and the side bar's views, then one client for
    # flowmetal documents, which lists the runs once started.
    activation = between("activate", "change run settings")
    registered = {e["name"] for e in activation if e["kind"] == "registerCommand"}
    assert registered == {"flowmetal.restartServer", "flowmetal.setToken", "flowmetal.runs.refresh", "flowmetal.runs.cancel",
                          "flowmetal.runs.replay", "flowmetal.runs.showAll", "flowmetal.runs.showEvent",
                          "flowmetal.openLocation", "flowmetal.runs.debug", "flowmetal.debug",
                          "flowmetal.runs.filter", "flowmetal.runs.nextEvent", "flowmetal.runs.previousEvent"}
    assert [e["id"] for e in activation if e["kind"] == "createTreeView"] == ["flowmetal.runs", "flowmetal.state"]
    [create] = [e for e in activation if e["kind"] == "create"]
    assert create["id"] == "flowmetal"
    for mode in ("run", "debug"):
        assert create["serverOptions"][mode] == {"command": "flowmetal", "args": ["lsp"]}
    options = create["clientOptions"]
    assert {"scheme": "file", "language": "flowmetal"} in options["documentSelector"]
    # The run settings, trimmed, unset ones null, and the workspace's trust (not yet given), as they
    # are when `initialize` is sent.
    [initialize] = [e for e in activation if e["kind"] == "initialize"]
    assert initialize["initializationOptions"] == {"store": "runs/store.db", "serve": "http://127.0.0.1:8080",
                                                "token": None, "trusted": False, "debugLens": True}
    # No section synchronized wholesale: a workspace's settings file could put `trusted` in it.
    assert "synchronize" not in options
    assert options["revealOutputChannelOn"] == report["revealOutputChannelOn"]["Never"]
    assert kinds(activation)[-4:] == ["start", "initialize", "request", "subscriptions"]
    assert activation[-2]["method"] == "flowmetal/runs"
    assert activation[-1]["count"] >= 10

    # Changed run settings go to the server (these keys only), and the runs are listed again.
    changed = between("change run settings", "grant trust")
    assert kinds(changed) == ["settings", "notification", "request"]
    assert changed[1]["method"] == "workspace/didChangeConfiguration"
    assert changed[1]["params"] == {"settings": {"flowmetal": {
        "store": "other/store.db", "serve": "http://127.0.0.1:8080", "token": None}}}
    assert changed[2]["method"] == "flowmetal/runs"

    # Trust granted: the server is told, with its command.
    granted = between("grant trust", "change run settings, trusted")
    assert kinds(granted) == ["trust", "request"]
    assert granted[1]["method"] == "workspace/executeCommand"
    assert granted[1]["params"] == {"command": "flowmetal.trust", "arguments": [{"trusted": True}]}
    # ... and again after settings that may have moved it to another store (which drops trust).
    again = between("change run settings, trusted", "change server settings")
    assert kinds(again) == ["settings", "notification", "request", "request"]
    assert again[1]["params"]["settings"]["flowmetal"]["serve"] is None
    assert [e["method"] for e in again[2:]] == ["workspace/executeCommand", "flowmetal/runs"]
    assert again[2]["params"]["command"] == "flowmetal.trust"

    # Changing the server settings restarts the server with them (and with the token given in the
    # settings, moved first to secret storage: vscode_token.js).
    changed = between("change server settings", "change other settings")
    assert kinds(changed) == ["settings", "storeSecret", "updateSetting", "info", "stop", "create", "start",
                              "initialize", "request"]
    changed = changed[:1] + changed[4:]
    assert changed[2]["serverOptions"]["run"] == {
        "command": "/opt/flowmetal/bin/flowmetal",
        "args": ["lsp", "--log-level", "debug"],
    }
    assert changed[4]["initializationOptions"]["token"] == "secret"
    assert changed[4]["initializationOptions"]["trusted"] is True
    assert changed[5] == {"kind": "request", "client": 2, "method": "flowmetal/runs", "params": {"last": 1000}}

    # Other settings leave it alone; the command restarts it.
    assert kinds(between("change other settings", "restart command")) == ["settings"]
    assert kinds(between("restart command", "server fails to start")) == ["stop", "create", "start", "initialize",
                                                                          "request"]

    # A server that cannot start is reported, naming the command and the setting; no runs are asked for.
    failed = between("server fails to start", "deactivate")
    assert kinds(failed) == ["stop", "create", "start", "error"]
    assert "/opt/flowmetal/bin/flowmetal lsp --log-level debug" in failed[-1]["message"]
    assert "flowmetal.server.path" in failed[-1]["message"]

    assert kinds(between("deactivate")) == ["stop"]
    # The start-up trace is off unless asked for (vscode_token.js asks).
    assert not any(line.startswith("startup ") for channel in report["output"] for line in channel["lines"])


# ------------------------------------------------- running and tracing (vscode_runs.js)

RUN_MAIN, RUN_NAP, RUN_FAILED, RUN_NEW = "1956a58dc5864667", "2b7e0c11aa004d2e", "3d3d3d3d3d3d3d3d", "c0ffee00c0ffee00"


@pytest.fixture(scope="module")
def runs_report(node_cache):
    return _node_script(node_cache, "vscode_runs.js", EXT)


def _local(iso: str) -> str:
    """An ISO 8601 UTC time as the extension's tooltips show it: local, with milliseconds."""
    import datetime

    t = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def _kinds(events, *wanted):
    return [e for e in events if e["kind"] in wanted]


def _node(tree, run_id):
    [found] = [node for node in tree if node["id"] == f"run:{run_id}"]
    return found


def test_runs_view_lists_the_runs_at_start(runs_report):
    start = runs_report["activate"]
    assert start["views"] == ["flowmetal.runs", "flowmetal.state"]
    assert start["stateMessage"].startswith("Select a run or one of its events")
    nap, main = start["runs"]  # newest first
    assert (nap["label"], main["label"]) == ("demo/nap", "demo/main")
    assert nap["description"].startswith("waiting · ")
    assert main["description"].startswith("running · ")
    assert nap["icon"] == "watch" and main["icon"] == "sync~spin"
    assert main["contextValue"] == "flowmetalRun.active"
    assert main["collapsible"] == 1  # collapsed: its trace is read when it opens
    assert f"run {RUN_MAIN}" in main["tooltip"] and 'demo/main "ann" 3' in main["tooltip"]


def test_run_lens_asks_for_the_arguments_and_selects_the_new_run(runs_report):
    run = runs_report["runAsks"]
    boxes = _kinds(run["events"], "inputBox")
    assert [b["prompt"] for b in boxes] == ["who : str?", "n : int?"]
    # The answers so far stay in sight, in the title.
    assert [b["title"] for b in boxes] == ["Run demo/main (1/2)", 'Run demo/main (2/2) · who = "ann"']
    assert "Flowmetal literal" in boxes[0]["placeHolder"]
    assert [b["value"] for b in boxes] == ["", ""]  # nothing given to demo/main before
    assert "needs a value" in boxes[0]["validateEmpty"]  # a required parameter
    # Each text typed is checked by the server against its parameter, as the run would check it.
    assert boxes[0]["validateTyped"] == "`who` must be str?, not 1" and boxes[0].get("validateAnswer") is None
    assert boxes[1].get("validateTyped") is None
    checks = [e["params"] for e in run["events"] if e.get("method") == "flowmetal/checkArgument"]
    assert {"uri": "file:///work/demo.flow", "entry": "demo/main", "param": "n", "text": " 3 "} in checks
    # Remembered for the next time, per entry.
    assert run["remembered"] == {"demo/main": {"who": '"ann"', "n": "3"}}
    [call] = run["nextCalls"]
    assert call["command"] == "flowmetal.run"
    [arg] = call["args"]
    assert arg["uri"] == "file:///work/demo.flow" and arg["entry"] == "demo/main"
    assert arg["args"] == ['"ann"', "3"]  # as typed, trimmed
    assert run["answer"] == {"runId": RUN_NEW}

    # Then: the new run read, the side bar opened, the run selected and expanded.
    after = [e for e in run["events"] if e["kind"] not in ("inputBox", "workspaceState")
             and e.get("method") != "flowmetal/checkArgument"]
    assert after[0] == {"kind": "request", "client": 1, "method": "flowmetal/trace", "params": {"runId": RUN_NEW}}
    assert {"kind": "executeCommand", "name": "workbench.view.extension.flowmetal", "args": []} in after
    [reveal] = _kinds(after, "reveal")
    assert reveal["view"] == "flowmetal.runs"
    assert reveal["element"] == {"kind": "run", "id": RUN_NEW}
    assert reveal["options"]["select"] is True and reveal["options"]["expand"]
    assert run["selection"] == [{"kind": "run", "id": RUN_NEW}]
    assert run["runs"][0]["id"] == f"run:{RUN_NEW}"
    assert run["runs"][0]["description"].startswith("pending")


def test_run_lens_escape_goes_back_then_cancels(runs_report):
    run = runs_report["runEscaped"]
    assert run["nextCalls"] == []
    assert run["answer"] is None
    # Escape on the second goes back to the first, with its answer; Escape there cancels:
    # nothing runs, nothing is shown, nothing is remembered.
    boxes = _kinds(run["events"], "inputBox")
    assert [(b["title"], b["value"], b.get("answer")) for b in boxes] == [
        ("Run demo/main (1/2)", '"ann"', '"bob"'),  # the last arguments, offered again
        ('Run demo/main (2/2) · who = "bob"', "3", None),
        ("Run demo/main (1/2)", '"bob"', None)]
    assert not _kinds(run["events"], "workspaceState", "error", "info", "reveal")
    assert not [e for e in run["events"] if e.get("method") not in (None, "flowmetal/checkArgument")]


def test_run_lens_escape_back_and_answer_again(runs_report):
    run = runs_report["runBack"]
    boxes = _kinds(run["events"], "inputBox")
    assert [(b["title"], b["value"]) for b in boxes] == [
        ("Run demo/main (1/2)", '"ann"'), ('Run demo/main (2/2) · who = "cy"', "3"),
        ("Run demo/main (1/2)", '"cy"'), ('Run demo/main (2/2) · who = "dee"', "3")]
    assert run["nextCalls"][0]["args"][0]["args"] == ['"dee"', "4"]
    assert run["remembered"]["demo/main"] == {"who": '"dee"', "n": "4"}


def test_run_lens_optional_parameter_left_empty(runs_report):
    run = runs_report["runOptional"]
    boxes = _kinds(run["events"], "inputBox")
    assert boxes[0]["prompt"] == "steps : [restart-step?]"
    # Its default shown; empty takes it and the defaults after it.
    assert boxes[1]["prompt"] == ('host : str? (optional, default "localhost": leave empty for it and the '
                                  'defaults after it)')
    assert boxes[1]["placeHolder"] == 'empty: the default, "localhost"'
    assert boxes[1].get("validateEmpty") is None  # empty is allowed
    assert len(boxes) == 2
    assert run["nextCalls"][0]["args"][0]["args"] == ["[+reboot+]"]


def test_run_lens_with_arguments_asks_nothing(runs_report):
    run = runs_report["runNoParams"]
    assert run["events"] == []
    assert run["nextCalls"] == [{"command": "flowmetal.run", "args": [
        {"uri": "file:///work/demo.flow", "entry": "demo/hello", "params": [], "args": []}]}]


def test_run_refused_by_the_server_shows_its_message(runs_report):
    run = runs_report["runRefused"]
    assert run["answer"] is None
    [error] = _kinds(run["events"], "error")
    assert error["message"] == "Flowmetal: argument `who` of `main` must be str?, not 3"
    assert not _kinds(run["events"], "reveal")
    assert not [e for e in run["events"] if e.get("method") not in (None, "flowmetal/checkArgument")]
    # The box said so as it was typed.
    assert [b.get("validateAnswer") for b in _kinds(run["events"], "inputBox")] == [
        "`who` must be str?, not 3", '`n` must be int?, not "ann"']


def test_runs_view_follows_notifications(runs_report):
    live = runs_report["live"]
    assert live["delivered"] == [True, True, True, True]
    # A known run logged more: that item is redrawn; a known run's new status, or a new
    # run: the list is (VS Code may drop an item's redraw while the list is redrawn).
    assert live["changes"] == [RUN_NAP, "root", "root"]
    tree = live["runs"]
    assert tree[0]["id"] == f"run:{RUN_FAILED}"  # the newest on top
    assert tree[0]["description"].startswith("failed")
    assert tree[0]["icon"] == "error" and tree[0]["iconColor"] == "testing.iconFailed"
    assert "no such host: nowhere" in tree[0]["tooltip"]
    nap = _node(tree, RUN_NAP)
    assert nap["description"].startswith("completed")
    assert nap["icon"] == "pass" and nap["contextValue"] == "flowmetalRun.ended"

    # Opening a run reads its trace; an event notified before that is not kept twice.
    requests = _kinds(live["events"], "request")
    assert requests[0] == {"kind": "request", "client": 1, "method": "flowmetal/trace", "params": {"runId": RUN_MAIN}}
    # A step's request and completion are one row: what was called, what it answered,
    # how long it took, and when, from the run's start.
    events = _node(live["expanded"], RUN_MAIN)["children"]
    assert [e["label"] for e in events] == ["#1 run-started", '#2 log! "hi ann"',
                                            "#4 sleep! (duration 10 +milliseconds+)"]
    assert events[0]["description"] == 'demo/main "ann" 3'
    assert events[1]["description"] == "→ nil · 10 ms · +8 ms"
    assert events[1]["tooltip"].splitlines()[:4] == [
        "#2 step-requested (step 1)", f"{_local('2026-11-28T12:25:39.800Z')} (+8 ms from the start)",
        "endpoint: flowmetal.log/log!", "args:"]
    assert '  message = "hi ann"' in events[1]["tooltip"].splitlines()
    assert "#3 step-completed (step 1)" in events[1]["tooltip"].splitlines()
    # Not answered yet: how long it has waited (here, since 2026).
    assert re.fullmatch(r"waiting \d+ d \d+ h · \+28 ms", events[2]["description"]), events[2]
    assert events[2]["icon"] == "loading~spin"
    assert "key: 1956a58dc5864667:2" in events[2]["tooltip"]
    assert events[2]["tooltip"].endswith("not answered yet")
    assert events[2]["command"] == {"command": "flowmetal.runs.showEvent",
                                    "arguments": [{"kind": "event", "runId": RUN_MAIN, "seq": 4}]}

    # Then new events of it come in (one it has already is not added again), and its status changes.
    after = _node(live["afterEvents"], RUN_MAIN)
    labels = [e["label"] for e in after["children"]]
    assert labels == ["#1 run-started", '#2 log! "hi ann"', "#4 sleep! (duration 10 +milliseconds+)", "#5 log"]
    assert after["children"][3]["description"] == "slept · +38 ms"
    assert after["description"].startswith("completed")
    # Redrawn for the new event (the run), then for the new status (the list); not for the
    # event it had.
    assert live["changesAfterEvents"] == [RUN_MAIN, "root"]
    # A run not opened yet is not read because of its events.
    assert _node(live["afterEvents"], RUN_NAP).get("children") is None
    assert len(requests) == 1


def test_a_store_of_many_runs_lists_the_last_started_and_finds_older_ones_by_filter(runs_report):
    many = runs_report["manyRuns"]
    assert many["listed"] == 1000
    assert many["message"] == ("The 1,000 runs started last, and those since. A status: or entry: filter finds "
                               "older ones.")
    assert many["requests"] == [{"last": 1000}, {"last": 1000, "entry": "demo/old"}]
    assert many["older"] == ["01d01d01d01d01d0"] and many["first"] == "01d01d01d01d01d0"  # in its place in time
    assert many["filtered"] == "1 of the 1,001 runs listed: entry:demo/old"  # not the store's count
    assert many["afterFewer"] is None  # a list the limit did not cut says nothing


def test_a_received_signal_shows_its_name_and_body(runs_report):
    assert runs_report["signal"] == 'approve ← {"by":"ann","ok":true}'


def test_events_notified_while_the_trace_is_read_are_kept(runs_report):
    failed = _node(runs_report["raced"], RUN_FAILED)
    assert [e["label"] for e in failed["children"]] == ["#1 run-started", '#2 get! "http://nowhere"',
                                                        "#3 run-failed"]
    assert failed["children"][2]["description"] == "no such host: nowhere · +1.0 s"
    # The failing event is red, as its run is.
    assert failed["children"][2]["labelColor"] == "errorForeground"
    assert failed["children"][2]["iconColor"] == "errorForeground"
    assert failed["labelColor"] == "errorForeground"
    assert failed["children"][1].get("labelColor") is None
    # The run as the trace read it was older than the notified failure.
    assert failed["description"].startswith("failed")


def test_clicking_an_event_opens_its_source_and_shows_the_state(runs_report):
    shown = runs_report["showEvent"]
    [opened] = _kinds(shown["events"], "showTextDocument")
    assert opened["uri"] == "file:///work/demo.flow"
    assert opened["options"]["selection"] == {"start": {"line": 5, "character": 6}, "end": {"line": 5, "character": 47}}
    assert opened["options"]["preserveFocus"] is True  # the Runs view keeps the keyboard
    [asked] = _kinds(shown["events"], "request")
    assert asked["method"] == "flowmetal/stateAt"
    assert asked["params"] == {"runId": RUN_MAIN, "seq": 4}

    state = shown["state"]
    assert [node["label"] for node in state] == ["result = nil", "demo/helper", "demo/main"]
    helper, main = state[1], state[2]
    # The value first, its type beside it.
    assert _labels(helper["children"]) == [("n = 3", "int?"), ("twice = 6", "int?")]
    assert _labels(main["children"]) == [('who = "ann"', "str?"), ("n = 3", "int?")]
    assert main["children"][0]["tooltip"] == 'who : str?\n"ann"'
    assert helper["description"] == "demo.flow:6 (here)"
    assert main["description"] == "demo.flow:10"
    assert helper["collapsible"] == 2  # expanded
    assert shown["description"] == "demo/main #4 sleep! (duration 10 +milliseconds+) (replay)"
    assert shown.get("message") is None

    # A frame goes to where it is.
    [frame] = _kinds(shown["frameEvents"], "showTextDocument")
    assert frame["options"]["selection"]["start"] == {"line": 9, "character": 7}
    assert frame["options"]["preserveFocus"] is False


def test_selecting_an_event_shows_it_once(runs_report):
    # A click selects the item and runs its command: one request, one editor. A step's
    # row shows the state at its completion (which holds its result).
    clicked = runs_report["selectAndClick"]["events"]
    assert [e["params"] for e in _kinds(clicked, "request")] == [{"runId": RUN_MAIN, "seq": 3}]
    assert len(_kinds(clicked, "showTextDocument")) == 1
    # Selecting another event (the arrow keys) shows that one.
    after = runs_report["selectNext"]
    assert [e["params"] for e in _kinds(after["events"], "request")] == [{"runId": RUN_MAIN, "seq": 4}]
    assert after["description"] == "demo/main #4 sleep! (duration 10 +milliseconds+) (replay)"


def test_an_event_without_state_says_why(runs_report):
    none = runs_report["noState"]
    assert none["state"] == []
    assert none["message"] == "No state at #5: run 1956a58dc5864667 has events 1 to 4, not 5"
    assert _kinds(none["events"], "request")[0]["params"] == {"runId": RUN_MAIN, "seq": 5}


def test_trace_lens_opens_the_runs_of_its_entry(runs_report):
    show = runs_report["showRuns"]
    assert show["nextCalls"] == []  # answered here, not by the server
    assert [run["id"] for run in show["answer"]] == [RUN_NAP, RUN_FAILED]
    assert {run["label"] for run in show["runs"]} == {"demo/nap"}
    assert len(show["runs"]) == 2
    assert show["description"] == "entry:demo/nap"
    names = [(e["name"], e["args"]) for e in show["events"] if e["kind"] == "executeCommand"]
    assert ("setContext", ["flowmetal.runsFiltered", True]) in names
    assert ("workbench.view.extension.flowmetal", []) in names

    every = runs_report["showAll"]
    assert len(every["runs"]) == 4
    assert every["description"] == ""
    assert {"kind": "executeCommand", "name": "setContext", "args": ["flowmetal.runsFiltered", False]} in every["events"]

    assert runs_report["showRunsNone"]["answer"] == []
    assert runs_report["showRunsNone"]["message"] == "No runs of demo/never yet."


def test_other_server_commands_go_through(runs_report):
    through = runs_report["passThrough"]
    assert through["nextCalls"] == [{"command": "flowmetal.cancel", "args": [{"runId": RUN_NAP}]}]
    assert through["answer"] == {"runId": RUN_NAP, "status": "completed"}


def test_cancel_and_replay_actions(runs_report):
    cancel = runs_report["cancel"]
    [request] = _kinds(cancel["events"], "request")
    assert request["params"] == {"command": "flowmetal.cancel", "arguments": [{"runId": RUN_NAP}]}
    [info] = _kinds(cancel["events"], "info")
    assert info["message"] == "Flowmetal: run 2b7e0c11 stops at its next checkpoint."

    replay = runs_report["replay"]
    [request] = _kinds(replay["events"], "request")
    assert request["params"] == {"command": "flowmetal.replay", "arguments": [{"runId": RUN_MAIN}]}
    [info] = _kinds(replay["events"], "info")
    assert info["message"] == "Flowmetal: run 1956a58d (demo/main) reproduces (2 steps replayed, value 7)."
    assert not _kinds(replay["events"], "warning", "showOutput")

    diverges = runs_report["replayDiverges"]
    [warning] = _kinds(diverges["events"], "warning")
    assert warning["message"].startswith("Flowmetal: run 2b7e0c11 (demo/nap) does not reproduce: step 1 at demo.flow:4")
    assert warning["items"] == ["Show Steps"]
    assert _kinds(diverges["events"], "showOutput")  # the answer "Show Steps" shows them
    [channel] = runs_report["replayOutput"]
    assert "  step 2 flowmetal.time/sleep! d=(duration 10 +milliseconds+)" in channel["lines"]
    assert channel["lines"][-1].startswith("  diverges: step 1")


def test_settings_change_lists_the_runs_again(runs_report):
    changed = runs_report["settingsChanged"]["events"]
    # The server is told first (the workspace is not trusted here: no trust to give again).
    assert [(e["kind"], e.get("method")) for e in changed] == [
        ("settings", None), ("notification", "workspace/didChangeConfiguration"), ("request", "flowmetal/runs")]
    assert changed[1]["params"]["settings"]["flowmetal"]["store"] == "other.db"


def test_a_run_the_server_does_not_drive_says_why(runs_report):
    blocked = _node(runs_report["blocked"]["runs"], "b10cb10cb10cb10c")
    assert blocked["description"].startswith("pending · not trusted")
    assert blocked["icon"] == "lock"
    assert "not run here: the store is not trusted" in blocked["tooltip"]
    unblocked = _node(runs_report["blocked"]["unblocked"], "b10cb10cb10cb10c")
    assert "not trusted" not in unblocked["description"] and unblocked["icon"] == "clock"
    assert "not run here" not in unblocked["tooltip"]


def test_a_run_waiting_on_an_endpoint_nobody_serves_says_so(runs_report):
    waiting = _node(runs_report["unserved"]["runs"], "5e4e5e4e5e4e5e4e")
    assert waiting["description"].startswith("waiting · no live process serves acme.billing/charge!")
    assert "waiting on acme.billing/charge!: no live process serves it" in waiting["tooltip"]
    served = _node(runs_report["unserved"]["served"], "5e4e5e4e5e4e5e4e")
    assert "no live process" not in served["description"] and "no live process" not in served["tooltip"]


def test_refresh_reads_runs_and_open_traces_again(runs_report):
    refresh = runs_report["refresh"]
    assert refresh["requests"] == ["flowmetal/runs", "flowmetal/trace"]
    # The runs are the server's: those it no longer lists are gone.
    assert [node["id"] for node in refresh["runs"]] == [f"run:{RUN_NAP}", f"run:{RUN_MAIN}"]
    assert len(_node(refresh["runs"], RUN_MAIN)["children"]) == 3  # #1, #2 (with #3), #4


def test_restart_listens_to_the_new_server_only(runs_report):
    restart = runs_report["restart"]
    assert restart["clients"] == 2
    assert restart["oldDelivers"] is False
    assert restart["newDelivers"] is True
    assert restart["runs"][0]["label"] == "demo/late"
    assert not any(node["id"] == "run:feedfeedfeedfeed" for node in restart["runs"])


def _labels(nodes):
    return [(node["label"], node["description"]) for node in nodes]


def test_a_run_with_tasks_shows_its_own_events_then_a_lane_per_task(runs_report):
    tasks = runs_report["tasks"]
    fleet = _node(tasks["runs"], "f1ee7f1ee7f1ee70")
    children = fleet["children"]
    # Its child run first, then the run's own (task 0) events, then its tasks in order.
    assert children[0]["id"] == "run:c41dc41dc41dc41d" and children[0]["label"] == "fleet/reboot"
    own = [node for node in children if node["id"].startswith("event:")]
    assert [node["label"] for node in own] == [
        "#1 run-started", "#2 spawn! #<fn fn>", "#3 task-spawned", "#6 task-spawned",
        "#9 task-spawned", "#11 await-all! [#<task 2> #<task 3>]", "#37 run-completed"]
    # The fan-in: await-all! and its answer, when the tasks it waited on were done.
    assert own[5]["description"] == '→ ["web-1 up" "web-2 up"] · 0 ms · +100 ms'
    assert children[1:1 + len(own)] == own
    lanes = children[1 + len(own):]
    assert [node["label"] for node in lanes] == ["task 1", "task 2", "task 3", "task 4"]
    assert own[2]["description"] == "→ task 1 · +100 ms"

    # Each task: its events, and its life: how it ended, where it was spawned.
    one, two, three, four = lanes
    assert _labels([one]) == [("task 1", "cancelled · spawned at #3")]
    assert [node["label"] for node in one["children"]] == ["#13 log", "#16 timer", "#35 task-cancelled"]
    # A timer never fired: when it is due (in 2026: long past here).
    assert one["children"][1]["description"].startswith("due ") and "(now)" in one["children"][1]["description"]
    assert (one["icon"], one["collapsible"]) == ("circle-slash", 1)
    assert two["description"] == 'completed → "web-1 up" · spawned at #6'
    assert (two["icon"], two["iconColor"]) == ("pass", "testing.iconPassed")
    assert [label for label, _ in _labels(two["children"])] == [
        "#20 sleep! (duration 30 +milliseconds+)", "#21 signal-received", "#32 task-completed"]
    assert [description for _, description in _labels(two["children"])][1:] == [
        'go ← {"by":"ann","hosts":[1,2]} · +100 ms', '→ "web-1 up" · +100 ms']
    assert _labels(three["children"]) == [("#25 task-spawned", "→ task 4 · +100 ms"),
                                          ("#29 task-completed", '→ "web-2 up" · +100 ms')]
    assert four["description"] == "failed: division by zero · spawned at #25 in task 3"
    assert four["icon"] == "error"
    assert four["tooltip"].splitlines() == ["task 4", "spawned by task 3 at #25 (step 10)",
                                            "failed at #26: division by zero", "1 event"]
    assert four["id"] == "task:f1ee7f1ee7f1ee70:4" and four["contextValue"] == "flowmetalTask"
    assert "task: 2" in two["children"][0]["tooltip"]

    # An event of a task: its state says which task; revealed under its task, under its run.
    assert tasks["stateDescription"] == "fleet/reboot-all · task 2 #20 sleep! (duration 30 +milliseconds+) (replay)"
    parents = tasks["parents"]
    assert parents["taskEvent"] == {"kind": "task", "task": 2}
    assert parents["ownEvent"] == parents["task"] == {"kind": "run", "id": "f1ee7f1ee7f1ee70"}

    # A task spawned live gets its item, with the events it logs.
    live = _node(tasks["live"], "f1ee7f1ee7f1ee70")["children"]
    assert [node["label"] for node in live if node["label"].startswith("task ")][-1] == "task 5"
    assert live[-1]["description"] == "not ended · spawned at #38"
    assert [node["label"] for node in live[-1]["children"]] == ["#39 log"]
    assert "#38 task-spawned" in [node["label"] for node in live]


def test_a_run_without_tasks_and_runs_without_a_parent_show_as_before(runs_report):
    tasks = runs_report["tasks"]
    # Every event task 0's: flat, as a run whose events name no task.
    solo = _node(tasks["runs"], "5010501050105010")
    assert _labels(solo["children"]) == [("#1 run-started", "hello"), ("#2 run-completed", '→ "hello" · +0 ms')]
    # The child run is under its parent only; a run whose parent is not listed is at the top.
    top = [node["id"] for node in tasks["runs"]]
    assert "run:c41dc41dc41dc41d" not in top and "run:0a0a0a0a0a0a0a0a" in top
    assert tasks["parents"]["child"] == {"kind": "run", "id": "f1ee7f1ee7f1ee70"}
    assert tasks["parents"]["orphan"] is None
    child = _node(tasks["runs"], "f1ee7f1ee7f1ee70")["children"][0]
    assert "child run of f1ee7f1ee7f1ee70" in child["tooltip"]
    assert "child run of ffffffffffffffff" in _node(tasks["runs"], "0a0a0a0a0a0a0a0a")["tooltip"]


def test_the_filter_keeps_the_runs_of_a_status_entry_and_text(runs_report):
    shown = runs_report["filter"]
    [box, _] = _kinds(shown["events"], "inputBox")
    assert box["title"] == "Filter the Runs" and "status:" in box["prompt"] and "entry:" in box["prompt"]
    assert box.get("validateEmpty") is None  # empty: every run
    assert [node["id"] for node in shown["runs"]] == [f"run:{RUN_MAIN}"]  # completed, and "ann" in its arguments
    assert shown["shown"] == 1
    assert shown["description"] == "status:completed,failed ann"
    assert shown["message"] == "1 of 9 runs: status:completed,failed ann"
    # A run's description: its status, how long it took, when it started and ended.
    assert shown["runs"][0]["description"].startswith("completed · 208 ms · ")
    assert "ended: " in shown["runs"][0]["tooltip"] and "(208 ms)" in shown["runs"][0]["tooltip"]
    # A status that is none is refused; the filter stays.
    assert shown["bad"] and shown["after"] == "status:completed,failed ann"
    from_js = subprocess.run(["node", "-e", "const r = require(process.argv[1]);"
                              "console.log(JSON.stringify([r.parseFilter('status:bogus'), r.parseFilter('status:active x'),"
                              "r.matches(r.parseFilter('entry:main'), {entry: 'demo/main', status: 'failed'})]))",
                              str(EXT / "rows.js")], capture_output=True, text=True, check=True)
    bogus, active, short_entry = json.loads(from_js.stdout)
    assert bogus["error"].startswith("`bogus` is not a status")
    assert active == {"statuses": ["pending", "running", "waiting"], "text": "x"}
    assert short_entry is True


def test_times_and_durations_read_as_people_say_them():
    script = ("const r = require(process.argv[1]);"
              "console.log(JSON.stringify([8, 1234, 45000, 185000, 7500000].map(r.duration).concat("
              "[r.offset('2026-01-01T00:00:01.500Z', '2026-01-01T00:00:00.000Z')])))")
    out = subprocess.run(["node", "-e", script, str(EXT / "rows.js")], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["8 ms", "1.2 s", "45 s", "3 min 05 s", "2 h 05 min", "+1.5 s"]


def test_active_runs_are_redrawn_each_second(runs_report):
    # The runs still going (not the ended ones): how long they have run, and waited, goes on.
    assert runs_report["ticks"] == ["5e4e5e4e5e4e5e4e", "b10cb10cb10cb10c", "beefbeefbeefbeef"]


def test_next_and_previous_event_step_through_a_run_across_its_tasks(runs_report):
    stepping = runs_report["stepping"]
    reveals = [(e["element"]["seq"], e["options"]) for e in _kinds(stepping["events"], "reveal")]
    # From #11 (the await-all! of task 0) to #13 (a log of task 1), to #16, back to #13, back to #11.
    assert [seq for seq, _ in reveals] == [13, 16, 13, 11]
    assert all(options == {"select": True, "focus": True} for _, options in reveals)
    assert stepping["nextSelected"] == [{"kind": "event", "runId": "f1ee7f1ee7f1ee70", "seq": 13}]
    asked = [e["params"]["seq"] for e in _kinds(stepping["events"], "request")]
    assert asked[:2] == [33, 13]  # the await-all! row at its completion, then #13
    manifest = _manifest()["contributes"]
    keys = {k["command"]: (k["key"], k["when"]) for k in manifest["keybindings"]}
    assert keys["flowmetal.runs.nextEvent"] == ("alt+down", "focusedView == flowmetal.runs")
    assert keys["flowmetal.runs.previousEvent"] == ("alt+up", "focusedView == flowmetal.runs")


def _marks(events):
    """The lines marked by each setDecorations: (background colour, [lines])."""
    return [(e["options"]["backgroundColor"]["id"], [r["start"]["line"] for r in e["ranges"]])
            for e in _kinds(events, "setDecorations") if e["ranges"]]


def test_the_event_shown_is_marked_as_a_debugger_marks_the_current_line(runs_report):
    shown = runs_report["showEvent"]
    [mark] = [e for e in _kinds(shown["events"], "setDecorations") if e["ranges"]]
    assert mark["options"]["isWholeLine"] is True
    assert mark["options"]["backgroundColor"]["id"] == "editor.stackFrameHighlightBackground"
    assert [r["start"]["line"] for r in mark["ranges"]] == [5]  # the sleep! line


def test_a_selected_run_shows_its_latest_state_and_follows_it(runs_report):
    follow = runs_report["follow"]
    assert [e["params"]["seq"] for e in _kinds(follow["events"], "request") if e["method"] == "flowmetal/stateAt"] == [4]
    assert not _kinds(follow["events"], "showTextDocument")  # following opens no editor
    assert follow["description"].startswith("demo/main #4 sleep!") and "(latest)" in follow["description"]
    after = follow["after"]
    assert [e["params"]["seq"] for e in _kinds(after["events"], "request")] == [6]
    assert after["description"].startswith("demo/main #6 run-completed (latest)")


def test_a_run_that_fails_is_announced_and_its_failing_event_shown_in_red(runs_report):
    failure = runs_report["failure"]
    [error] = _kinds(failure["events"], "error")
    assert error["message"] == "Flowmetal: demo/main failed: division by zero"
    assert error["items"] == ["Show Failing Event"]
    assert failure["selection"] == [{"kind": "event", "runId": "fa11fa11fa11fa11", "seq": 2}]
    assert failure["description"] == "demo/main #2 run-failed"
    assert _marks(failure["events"]) == [("inputValidation.errorBackground", [9])]  # the fault's line, red
    assert failure["quiet"] == []  # a run first seen failed is not announced


def test_a_new_run_folds_the_one_before_and_turns_the_state_view_to_it(runs_report):
    second = runs_report["secondRun"]
    names = [e["name"] for e in _kinds(second["events"], "executeCommand")]
    assert names.index("workbench.actions.treeView.flowmetal.runs.collapseAll") < [
        e["kind"] for e in second["events"] if e["kind"] in ("executeCommand", "reveal")].index("reveal")
    [reveal] = _kinds(second["events"], "reveal")
    assert reveal["element"] == {"kind": "run", "id": "c0ffee01c0ffee01"} and reveal["options"]["expand"]
    assert second["description"] == "demo/main #1 run-started (latest)"


def test_values_unfold_into_their_parts(runs_report):
    result, frame = runs_report["values"]
    # A JSON body: its keys.
    assert (result["label"], result["description"]) == ('result = "{\\"ok\\": true, \\"items\\": [1, 2]}"', "JSON")
    assert _labels(result["children"]) == [('"ok" = true', ""), ('"items" = [1, 2]', "JSON")]
    assert _labels(result["children"][1]["children"]) == [("[0] = 1", ""), ("[1] = 2", "")]
    q, prices, odd = frame["children"]
    # A record, with its fields' names; the type beside the value, not before it.
    assert (q["label"], q["description"]) == ('q = (quote "sku-1" 1250 "EUR")', "quote?")
    assert _labels(q["children"]) == [('sku = "sku-1"', ""), ("cents = 1250", ""), ('currency = "EUR"', "")]
    assert prices["description"] == "(map? str? (list? int?)) · 2 keys"
    assert _labels(prices["children"]) == [('"a" = [1 2]', "2 items"), ('"b" = []', "")]
    assert prices["children"][0]["collapsible"] == 1 and prices["children"][1]["collapsible"] == 0
    # Text that is no literal stays as it is.
    assert (odd["label"], odd["collapsible"]) == ('odd = "unclosed [', 0)


# ------------------------------------------- against the real server (vscode_real_server.js)

DEMO = (HERE / "data" / "demo.flow").read_text(encoding="utf-8")
FLEET = (HERE / "data" / "fleet.flow").read_text(encoding="utf-8")


def test_run_and_trace_against_the_language_server(node_cache, tmp_path):
    """The extension with `python -m flowmetal lsp`: Run lens, live run, trace, state, replay, Trace lens."""
    (tmp_path / "demo.flow").write_text(DEMO, encoding="utf-8")
    (tmp_path / "fleet.flow").write_text(FLEET, encoding="utf-8")
    report = _node_script(node_cache, "vscode_real_server.js", EXT, tmp_path, sys.executable, timeout=180)
    uri = (tmp_path / "demo.flow").as_uri()

    # The server's commands the language client registers (and so passes through the middleware).
    assert {"flowmetal.run", "flowmetal.showRuns", "flowmetal.cancel", "flowmetal.replay"} <= set(
        report["serverCommands"])
    assert report["start"]["runs"] == []
    assert report["start"]["message"].startswith("No runs yet")
    lens = report["lens"]
    assert lens["title"] == "▶ Run…"
    assert [p["name"] for p in lens["arguments"][0]["params"]] == ["who", "n"]

    # Escaping the first box runs nothing; a wrong argument shows the server's refusal.
    assert report["escaped"]["answer"] is None
    assert [e["kind"] for e in report["escaped"]["events"]] == ["inputBox"]
    [refusal] = _kinds(report["refused"]["events"], "error")
    assert "argument `who` of `main` must be str?" in refusal["message"]

    # The run: asked for, selected, followed live to its end.
    run = report["run"]
    run_id = run["answer"]["runId"]
    assert [b["prompt"] for b in _kinds(run["events"], "inputBox")] == ["who : str?", "n : int?"]
    assert run["selection"] == [{"kind": "run", "id": run_id}]
    node_ = run["node"]
    # (The stand-in workspace is not trusted: a run started from the editor runs all the same.)
    assert node_["description"].startswith("completed") and node_["icon"] == "pass"
    assert "not run here" not in node_["tooltip"]
    labels = [e["label"].split(" ", 1)[1] for e in node_["children"]]
    assert labels[0] == "run-started" and labels[-1] == "run-completed"
    assert node_["children"][0]["description"] == 'demo/main "ann" 3'
    # The sleep! step, requested and answered: one row; and its timer, set and fired: one row.
    [sleep] = [e for e in node_["children"] if e["label"].endswith(" sleep! (duration 10 +milliseconds+)")]
    assert re.fullmatch(r"→ nil · \d+ ms · \+\d+ ms", sleep["description"]), sleep
    [timer] = [e for e in node_["children"] if e["label"].endswith(" timer")]
    assert re.fullmatch(r"fired after \d+ ms · \+\d+ ms", timer["description"]), timer
    # Its due time, which the log holds in seconds since the epoch, as a time of day, on hover.
    assert re.search(r"^due: \d+\.\d+$", timer["tooltip"], re.M), timer["tooltip"]
    assert not any(e["label"].endswith(("step-requested", "step-completed", "timer-fired")) for e in node_["children"])
    assert report["notified"]["flowmetal/traceEvent"] >= 1
    assert report["notified"]["flowmetal/runUpdated"] >= 1
    # The store is the one the settings name.
    assert (tmp_path / "runs" / "store.db").is_file()

    # The state at the sleep! call.
    state = report["state"]
    [opened] = _kinds(state["events"], "showTextDocument")
    assert opened["uri"] == uri
    assert opened["options"]["selection"]["start"]["line"] == 5  # the sleep! line
    result, helper, main = state["tree"]  # at the step's completion: its result too
    assert (result["label"], helper["label"], main["label"]) == ("result = nil", "demo/helper", "demo/main")
    assert _labels(helper["children"]) == [("n = 3", "int?"), ("twice = 6", "int?")]
    assert _labels(main["children"]) == [('who = "ann"', "str?"), ("n = 3", "int?")]
    assert report["endState"]["tree"][0]["label"] == "value = 7"

    [info] = _kinds(report["replay"]["events"], "info")
    assert "reproduces (2 steps replayed, value 7)" in info["message"]

    shown = report["showRuns"]
    assert [r["id"] for r in shown["answer"]] == [run_id]
    assert [r["id"] for r in shown["runs"]] == [f"run:{run_id}"]
    assert shown["description"] == "entry:demo/main"

    # A run with tasks: the run's own events, then a lane per task, each with its life.
    fleet = report["tasks"]
    lanes = [node for node in fleet["children"] if node["label"].startswith("task ")]
    own = [node for node in fleet["children"] if not node["label"].startswith("task ")]
    assert fleet["children"] == own + lanes
    assert own[0]["label"] == "#1 run-started" and own[-1]["label"].endswith("run-completed")
    assert [node["description"].split(" · ")[0] for node in own if node["label"].endswith("task-spawned")] == [
        "→ task 1", "→ task 2", "→ task 3"]
    assert [(node["label"], node["description"]) for node in lanes] == [
        ("task 1", "cancelled · spawned at #3"),
        ("task 2", 'completed → "web-1 up" · spawned at #6'),
        ("task 3", 'completed → "web-2 up" · spawned at #9')]
    assert [node["label"].split(" ", 1)[1] for node in lanes[2]["children"]] == [
        'log! "rebooting web-2"', "log", "sleep! (duration 10 +milliseconds+)", "timer", "task-completed"]
    assert lanes[0]["children"][-1]["label"].endswith("task-cancelled")
    assert not any("sleep!" in node["label"] for node in own)  # the tasks' steps are in their lanes
    # The state at task 3's sleep!: that task's stack.
    assert fleet["state"]["description"].startswith("fleet/reboot-all · task 3 #")
    assert [node["label"] for node in fleet["state"]["tree"]][:2] == ["result = nil", "fleet/reboot"]


# ------------------------------------------------- the debugger (debug.js, vscode_debug.js)

DEBUG_PROGRAM = """\
(defpackage demo
  (defn main [who : str?, n : int?] : int?
    (let [twice (* n 2)]
      (+ twice 1))))
"""


def _documented_launch_fields():
    """docs/debugging.md's launch configuration table: field -> its type as written there."""
    text = (ROOT / "docs" / "debugging.md").read_text(encoding="utf-8")
    section = text.split("## Launch configuration", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", section, flags=re.M))


def test_manifest_contributes_the_debugger_with_the_documented_launch_fields():
    manifest = _manifest()
    contributes = manifest["contributes"]
    [debugger] = contributes["debuggers"]
    assert (debugger["type"], debugger["label"], debugger["languages"]) == ("flowmetal", "Flowmetal", ["flowmetal"])
    assert contributes["breakpoints"] == [{"language": "flowmetal"}]
    assert "onDebugResolve:flowmetal" in manifest["activationEvents"]

    schema = debugger["configurationAttributes"]["launch"]["properties"]
    documented = _documented_launch_fields()
    assert set(documented) == {"run", "program", "entry", "args", "store", "stopOnEntry"}
    assert set(schema) == set(documented)
    json_types = {"string": {"type": "string"}, "boolean": {"type": "boolean"},
                  "list of strings": {"type": "array", "items": {"type": "string"}}}
    for name, written in documented.items():
        wanted = json_types[written.strip()]
        assert {k: schema[name][k] for k in wanted} == wanted, name
        assert schema[name]["markdownDescription"], name
    assert schema["args"]["default"] == [] and schema["stopOnEntry"]["default"] is False

    # Every configuration it offers uses only those fields, and names what to debug.
    offered = debugger["initialConfigurations"] + [s["body"] for s in debugger["configurationSnippets"]]
    for config in offered:
        assert (config["type"], config["request"]) == ("flowmetal", "launch")
        assert set(config) - {"type", "request", "name"} <= set(schema), config
        assert "run" in config or {"program", "entry"} <= set(config), config
    labels = [s["label"] for s in debugger["configurationSnippets"]]
    assert labels == ["Flowmetal: Replay a run", "Flowmetal: Run and debug an entry"]

    # "Debug" on a run: inline and in its context menu.
    commands = {c["command"]: c for c in contributes["commands"]}
    assert commands["flowmetal.runs.debug"]["icon"].startswith("$(")
    groups = [m["group"] for m in contributes["menus"]["view/item/context"] if m["command"] == "flowmetal.runs.debug"]
    assert sorted(g.split("@")[0] for g in groups) == ["inline", "run"]


@pytest.fixture(scope="module")
def debug_report(node_cache, tmp_path_factory):
    """vscode_debug.js's report, on a workspace holding a store with one recorded run of demo/main."""
    workspace = tmp_path_factory.mktemp("debug") / "project"
    workspace.mkdir()
    (workspace / "demo.flow").write_text(DEBUG_PROGRAM, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    done = subprocess.run([sys.executable, "-m", "flowmetal", "run", "demo.flow", "main", '"ann"', "3",
                           "--store", "runs/store.db"], cwd=workspace, capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.stdout.strip() == "7", done.stderr
    run_id = done.stderr.split("run ", 1)[1].split(":", 1)[0]
    return _node_script(node_cache, "vscode_debug.js", EXT, workspace, sys.executable), workspace, run_id


def test_the_adapter_is_started_as_the_language_server_is_in_the_workspace_folder(debug_report):
    report, workspace, _ = debug_report
    registered = {(e["kind"], e["type"]) for e in report["activation"]["registered"]}
    assert registered == {("registerDebugAdapterDescriptorFactory", "flowmetal"),
                          ("registerDebugConfigurationProvider", "flowmetal")}
    assert {"flowmetal.runs.debug", "flowmetal.debug"} <= set(report["activation"]["commands"])
    assert report["activation"]["initializationOptions"]["debugLens"] is True

    # The server's interpreter and its arguments up to `lsp`, then `dap`: the server's own options stay out.
    assert report["descriptor"] == {"command": sys.executable, "args": ["-m", "flowmetal", "dap"],
                                    "options": {"cwd": str(workspace)}}
    assert report["defaults"]["descriptor"]["command"] == "flowmetal"
    assert report["defaults"]["descriptor"]["args"] == ["dap"]


def test_a_configuration_gets_the_language_servers_store(debug_report):
    report, workspace, _ = debug_report
    assert report["resolved"]["store"] == str(workspace / "runs" / "store.db")  # flowmetal.store, trimmed
    assert report["ownStore"]["store"] == "/elsewhere/store.db"  # one it names is kept
    assert report["defaults"]["resolved"]["store"] == str(workspace / ".flowmetal" / "store.db")
    assert report["defaults"]["fromEnvironment"] == str(workspace / "env" / "store.db")


def _dap_session(descriptor: dict, config: dict) -> list[dict]:
    """Start the adapter as VS Code would from `descriptor`, launch `config`, and answer the
    messages up to the first stop's stack."""
    from flowmetal.dap.wire import Writer, read_message
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    proc = subprocess.Popen([descriptor["command"], *descriptor["args"]], cwd=descriptor["options"]["cwd"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    writer, seen = Writer(proc.stdin), []
    try:
        def until(predicate):
            while True:
                message = read_message(proc.stdout)
                assert message is not None, proc.stderr.read().decode(errors="replace")
                seen.append(message)
                if predicate(message):
                    return message
        requests = [("initialize", {"adapterID": "flowmetal"}), ("launch", config), ("configurationDone", {})]
        for seq, (command, arguments) in enumerate(requests, 1):
            writer.write({"seq": seq, "type": "request", "command": command, "arguments": arguments})
            answer = until(lambda m, seq=seq: m["type"] == "response" and m["request_seq"] == seq)
            assert answer["success"], answer
        until(lambda m: m.get("event") == "stopped")
        writer.write({"seq": 9, "type": "request", "command": "stackTrace", "arguments": {"threadId": 1}})
        until(lambda m: m.get("request_seq") == 9)
        writer.write({"seq": 10, "type": "request", "command": "disconnect", "arguments": {}})
        until(lambda m: m.get("request_seq") == 10)
    finally:
        proc.stdin.close()
        proc.wait(10)
    return seen


def test_the_described_adapter_debugs_the_run_in_the_resolved_store(debug_report):
    report, workspace, run_id = debug_report
    config = dict(report["resolved"], run=run_id)  # the run recorded in the workspace's store
    seen = _dap_session(report["descriptor"], config)
    stopped = next(m for m in seen if m.get("event") == "stopped")
    assert stopped["body"]["reason"] == "entry"  # stopOnEntry
    [trace] = [m for m in seen if m.get("command") == "stackTrace"]
    top = trace["body"]["stackFrames"][0]
    assert top["name"] == "demo/main" and top["source"]["path"] == str(workspace / "demo.flow")


def test_f5_without_a_configuration_picks_a_run_of_the_runs_view(debug_report):
    report, workspace, _ = debug_report
    assert report["f5Empty"]["resolved"] is None  # nothing to pick: no session
    [info] = _kinds(report["f5Empty"]["events"], "info")
    assert "no runs to debug" in info["message"]
    [pick] = _kinds(report["f5"]["events"], "quickPick")
    assert pick["items"] == [{"label": "demo/main", "description": "completed · 1956a58dc5864667"}]
    assert report["f5"]["resolved"] == {"type": "flowmetal", "request": "launch",
                                        "name": "Debug run 1956a58d (demo/main)", "run": "1956a58dc5864667",
                                        "store": str(workspace / "runs" / "store.db")}


def test_debug_on_a_run_of_the_runs_view_replays_it(debug_report):
    report, workspace, _ = debug_report
    [started] = report["runsView"]
    assert started["folder"] == "project"
    assert started["config"] == {"type": "flowmetal", "request": "launch", "name": "Debug run 1956a58d (demo/main)",
                                 "run": "1956a58dc5864667"}
    assert started["resolved"]["store"] == str(workspace / "runs" / "store.db")


def test_the_debug_lens_asks_for_the_arguments_and_debugs_a_new_run(debug_report):
    report, workspace, _ = debug_report
    boxes = report["lens"]["boxes"]
    assert [b["title"] for b in boxes] == ["Debug demo/main (1/2)", 'Debug demo/main (2/2) · who = "ann"']
    [started] = report["lens"]["started"]
    assert started["resolved"] == {"type": "flowmetal", "request": "launch", "name": "Debug demo/main",
                                   "program": str(workspace / "demo.flow"), "entry": "demo/main",
                                   "args": ['"ann"', "3"], "store": str(workspace / "runs" / "store.db")}
    # Without parameters: nothing asked; escaped: nothing started; an unsaved file: said so.
    events = report["lensNoArgs"]["events"]
    assert not _kinds(events, "inputBox") and _kinds(events, "startDebugging")[0]["config"]["args"] == []
    assert not _kinds(report["lensEscaped"]["events"], "startDebugging")
    [error] = _kinds(report["lensUntitled"]["events"], "error")
    assert "save" in error["message"] and not _kinds(report["lensUntitled"]["events"], "startDebugging")


# ---------------------------------------------- the serve's API token (vscode_token.js)


def test_the_api_token_is_kept_in_secret_storage(node_cache):
    report = _node_script(node_cache, "vscode_token.js", EXT)
    events = report["events"]
    steps = [i for i, e in enumerate(events) if e["kind"] == "step"] + [len(events)]
    during = {events[i]["name"]: events[i + 1:j] for i, j in zip(steps, steps[1:])}

    def only(evs, *kinds):
        return [e for e in evs if e["kind"] in kinds]

    def tokens_sent(evs):
        return [e["params"]["settings"]["flowmetal"]["token"] for e in only(evs, "notification")]

    # The server is spawned without waiting for secret storage, and sent `initialize` once it has
    # answered: never without the token, nor with one about to be replaced.
    waiting = during["activate"]
    assert [e["kind"] for e in only(waiting, "create", "start", "initialize", "storeSecret")] == ["create", "start"]
    # Then the user's token moves to secret storage, out of the settings, with a message; the
    # workspace's stays where it is while the workspace is not trusted. The server gets the moved one.
    start = during["secret storage answers"]
    assert only(start, "storeSecret") == [{"kind": "storeSecret", "key": "flowmetal.token", "value": "user-token"}]
    assert only(start, "updateSetting") == [
        {"kind": "updateSetting", "key": "flowmetal.token", "value": None, "target": "user"}]
    [moved] = only(start, "info")
    assert "secret storage" in moved["message"] and "Flowmetal: Set API Token" in moved["message"]
    [initialize] = only(start, "initialize")
    assert initialize["initializationOptions"]["token"] == "user-token"
    assert [e["kind"] for e in start].index("storeSecret") < start.index(initialize)
    assert not only(start, "notification")  # nothing to correct afterwards

    # Trusted, the workspace's token moves too, and goes to the server.
    trusted = during["grant trust"]
    assert [e["target"] for e in only(trusted, "updateSetting")] == ["workspace"]
    assert [e["value"] for e in only(trusted, "storeSecret")] == ["workspace-token"]
    assert tokens_sent(trusted) == ["workspace-token"]
    assert "flowmetal.trust" in [e["params"].get("command") for e in only(trusted, "request")]

    # The command asks with a password box; the token typed is stored and sent, once.
    typed = during["set token"]
    [box] = only(typed, "inputBox")
    assert box["title"] == "Flowmetal: Set API Token" and box["password"] is True
    assert [e["value"] for e in only(typed, "storeSecret")] == ["typed-token"]
    assert tokens_sent(typed) == ["typed-token"]
    # Escape changes nothing; an empty answer removes the token.
    assert [e["kind"] for e in during["escape"]] == ["inputBox"]
    removed = during["remove token"]
    assert only(removed, "deleteSecret") and tokens_sent(removed) == [None]
    assert only(removed, "info")[0]["message"] == "Flowmetal: API token removed."

    # A token put in the settings again moves again; one stored by another window is sent.
    again = during["token in settings again"]
    assert [e["value"] for e in only(again, "storeSecret")] == ["pasted-token"]
    assert only(again, "updateSetting") and tokens_sent(again) == ["pasted-token"]
    assert tokens_sent(during["another window"]) == ["other-window-token"]

    # Settings that cannot be written: the token is still moved and used, and the user told to remove it.
    stuck = during["settings not writable"]
    [warning] = only(stuck, "warning")
    assert "could not be removed from your user settings" in warning["message"]
    assert tokens_sent(stuck) == ["stuck-token"]

    # A restarted server starts with the stored token.
    [initialize] = only(during["restart"], "initialize")
    assert initialize["initializationOptions"]["token"] == "stuck-token"
    assert report["secrets"] == {"flowmetal.token": "stuck-token"}
    assert report["workspaceSettings"] == {}

    # The start-up trace, asked for: each step once, in the client's output channel, in the order
    # reached: the server spawned before the token was read. (A restarted client's channel has none.)
    steps = [line.split() for channel in report["output"] if channel["name"] == "Flowmetal Language Server"
             for line in channel["lines"] if line.startswith("startup ")]
    assert [step for _, step, _ in steps] == ["loaded", "required", "activate", "client", "token", "initialized"]
    times = [int(ms) for _, _, ms in steps]
    assert times == sorted(times) and times[0] > 1_600_000_000_000  # milliseconds since the epoch
