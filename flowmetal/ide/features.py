"""Editor features over the analysis, in plain data: what the language server serves.

Every function takes a `Workspace`, a file name and offsets (code points) and
returns spans, strings and small records; `lsp/` turns them into protocol
messages and UTF-16 positions. Nothing here knows LSP, so each feature is
testable without a client and the server stays a thin translation layer.

    hover            the symbol under the cursor: its signature or type (a local's
                     type after narrowing), its docstring, and whether calling it
                     is a durable step; in Markdown and in plain text
    completion       names that fit where the cursor is: callables after `(`, enum
                     members after `+`, the callee's keyword arguments after `:`,
                     a package's exports after `alias/` and inside its `:refer [...]`,
                     else everything in scope; matched as editors filter (the typed
                     text as a subsequence), names it begins ranked first
    call hierarchy   a definition's callers and callees, across the workspace, with
                     the exact spans of the calls
    rename           every place that names a symbol, across the workspace
    outline          packages and their definitions, nested
    semantic_tokens  each name classified: definition, type, enum member, special
                     form, keyword, durable endpoint call apart from pure calls
    code_actions     the diagnostics' machine-applicable fixes, and the clauses a
                     non-exhaustive `match` misses
    inlay_hints      the inferred type of each unannotated `let` binding
    folding, selection_ranges
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flowmetal.lang.analysis import Workspace, same_symbol
from flowmetal.lang.check import _ctors, _head, _useful, Checker
from flowmetal.lang.diagnostics import Diagnostic
from flowmetal.lang.forms import DEFINITION_FORMS, SPECIAL_FORMS, Match, PWild, is_symbol
from flowmetal.lang.resolve import Symbol
from flowmetal.lang.signatures import Sig
from flowmetal.lang.source import Span
from flowmetal.lang.syntax import Kind, Seq, Token, tokens, walk
from flowmetal.lang.types import ANY, Type, show

# -- hover ------------------------------------------------------------------------------------


@dataclass
class Hover:
    span: Span
    markdown: str
    plaintext: str = ""


def _hover_text(parts: list[tuple[str, str]]) -> tuple[str, str]:
    """The parts of a hover, each (Markdown, plain text) or ("code", text) for Flowmetal code, as one
    Markdown text and one plain text: an editor without a Markdown renderer (Emacs without
    markdown-mode) shows the plain one, with no fences or emphasis marks."""
    markdown = [f"```flowmetal\n{plain}\n```" if md == "code" else md for md, plain in parts]
    return "\n\n".join(markdown), "\n\n".join(plain for _, plain in parts)


def signature_text(symbol: Symbol, sig: Sig | None = None) -> str:
    """A symbol as Flowmetal would declare it: `(defn name [x : int?] : str?)`."""
    sig = sig or symbol.sig
    if symbol.kind in ("parameter", "local"):
        return f"{symbol.name} : {show(symbol.type)}"
    if symbol.kind == "member":
        return f"{symbol.name} : {show(symbol.type)}"
    if symbol.kind == "type" and symbol.predicate_of is not None:
        spelled = show(symbol.predicate_of, spelled=True)
        return f"{symbol.name} : type {spelled}" if spelled != symbol.name \
            else f"{symbol.name} : type"
    if sig is None:
        return f"(def {symbol.name} : {show(symbol.type)})"
    form = {"function": "defn", "endpoint": "defendpoint", "constructor": "defrecord", "accessor": "defn",
            "builtin": "built-in"}.get(symbol.kind, "defn")
    params = []
    for p in sig.params:
        text = f"{p.name} : {show(p.type)}"
        if p.optional:
            text += " :default ..."
        params.append(text)
    if sig.rest is not None:
        params.append(f"& {sig.rest.name} : {show(sig.rest.type)}")
    return f"({form} {symbol.name} [{' '.join(params)}] : {show(sig.ret)})"


def hover(ws: Workspace, name: str, offset: int) -> Hover | None:
    token = token_at(ws, name, offset)
    if token is None or token.kind is not Kind.SYMBOL:
        return None
    symbol = ws.definition_at(name, offset)
    if symbol is None:
        return None
    parts: list[tuple[str, str]] = []
    if symbol.kind in ("parameter", "local"):
        found = ws.type_at(name, offset)
        t = found[1] if found is not None and found[0] is token else symbol.type
        parts.append(("code", f"{symbol.name} : {show(t)}"))
        about = (f"{'Parameter' if symbol.kind == 'parameter' else 'Local'} `{symbol.name}`"
                 + ("; its type here, after narrowing." if t != symbol.type else "."))
        parts.append((about, about))
    else:
        parts.append(("code", signature_text(symbol)))
        where = f"package `{symbol.package}`" if symbol.package else "built-in"
        parts.append((f"*{symbol.kind}* in {where}", f"{symbol.kind} in {where}"))
        if symbol.doc:
            parts.append((symbol.doc.strip(), symbol.doc.strip()))
        if symbol.is_durable:
            durable = ("each call of this endpoint is recorded in the run's log "
                       "(its request and its result), and the run waits, durably, for the result.")
            parts.append((f"**Durable step**: {durable}", f"Durable step: {durable}"))
    markdown, plain = _hover_text(parts)
    return Hover(token.span, markdown, plain)


# -- tokens and nodes at an offset --------------------------------------------------------------

def _tree(ws: Workspace, name: str):
    analysis = ws._file(name)
    return analysis.module.tree if analysis else None


def token_at(ws: Workspace, name: str, offset: int) -> Token | None:
    """The token at `offset`, or the one just before it (a cursor at a name's end)."""
    chain = enclosing(ws, name, offset)
    if chain and type(chain[-1]) is Token:
        return chain[-1]
    items = chain[-1].items if chain else (_tree(ws, name).items if _tree(ws, name) else [])
    before = None
    for tok in items:
        if type(tok) is Token and not tok.is_trivia:
            if tok.start <= offset < tok.end:
                return tok
            if tok.end == offset:
                before = tok
    return before


def enclosing(ws: Workspace, name: str, offset: int) -> list:
    """The nodes containing `offset`, outermost first."""
    tree = _tree(ws, name)
    chain: list = []
    items = tree.items if tree else []
    while True:
        inner = None
        for n in items:  # a token the offset is in beats one it merely ends
            if n.is_trivia or not (n.start <= offset <= n.end):
                continue
            if type(n) is Seq or n.start <= offset < n.end:
                inner = n
                if type(n) is Token or n.start < offset or offset == n.start:
                    break
            elif inner is None:
                inner = n
        if inner is None:
            return chain
        chain.append(inner)
        if type(inner) is not Seq:
            return chain
        if offset <= inner.open.start or (inner.close is not None and offset >= inner.close.end):
            return chain
        items = inner.items


# -- completion -------------------------------------------------------------------------------------

@dataclass
class Completion:
    label: str
    kind: str          # function endpoint constructor accessor type member keyword variable package special
    detail: str = ""
    doc: str | None = None
    insert: str | None = None
    replace: Span | None = None
    rank: int = 0      # 0: the label begins with what was typed; 1: it holds it as a subsequence


def match_rank(label: str, typed: str) -> int | None:
    """How well `label` fits the text typed before the cursor, as editors filter: 0 when it begins
    with it, 1 when the typed characters appear in it in order (`parcel-wi` in `parcel-weight`),
    None when it does not fit. Case-insensitive past the exact prefix."""
    if not typed or label.startswith(typed):
        return 0
    rest = iter(label.lower())
    return 1 if all(c in rest for c in typed.lower()) else None


_PREFIX = re.compile(r"[\w\-+*/<>=!?.:]*$")


def completion(ws: Workspace, name: str, offset: int) -> list[Completion]:
    text = ws.text(name)
    line_start = text.rfind("\n", 0, offset) + 1
    prefix = _PREFIX.search(text[line_start:offset]).group()
    start = offset - len(prefix)
    tree = _tree(ws, name)
    replace = Span(tree.source, start, offset) if tree is not None else None
    before = text[:start].rstrip(" \t")
    after_open = before.endswith("(")
    scope = ws.scope_at(name, offset)
    out: list[Completion] = []

    def add(label, kind, detail="", doc=None, symbol=None):
        rank = match_rank(label, prefix)
        if rank is not None:  # (a symbol's detail is worked out only for the names offered)
            detail = _detail(symbol) if symbol is not None else detail
            out.append(Completion(label, kind, detail, doc, None, replace, rank))

    if prefix.startswith(":"):
        sig = ws.signature_at(name, offset)
        if sig is not None:
            for p in sig.sig.params:
                add(f":{p.name}", "keyword", show(p.type), None)
        return out
    referred = _refer_list(ws, name, offset)
    if referred is not None:
        package, listed = referred
        target = ws.program.packages.get(package) if ws.program is not None else None
        for sym_name, sym in sorted(target.decls.items()) if target is not None else ():
            if sym_name not in listed:
                add(sym_name, sym.kind, doc=sym.doc, symbol=sym)
        return out
    if "/" in prefix:
        alias = prefix.rsplit("/", 1)[0]
        for scope_ in ws._scopes(name):
            target = scope_.aliases.get(alias)
            if target is not None:
                for sym_name, sym in target.decls.items():
                    add(f"{alias}/{sym_name}", sym.kind, doc=sym.doc, symbol=sym)
                break
        return out
    if prefix.startswith("+"):
        for sym_name, sym in scope.items():
            if sym.kind == "member":
                add(sym_name, "member", doc=sym.doc, symbol=sym)
        return out
    for sym_name, sym in sorted(scope.items()):
        callable_ = sym.sig is not None or sym.kind in ("function", "endpoint", "constructor", "accessor", "builtin")
        if after_open and not callable_ and sym.kind not in ("parameter", "local"):
            continue
        add(sym_name, sym.kind, doc=sym.doc, symbol=sym)
    if after_open:
        for form in sorted(SPECIAL_FORMS | DEFINITION_FORMS | {"require", "defpackage", "not"}):
            if form not in scope:
                add(form, "special", "special form")
    return out


def _refer_list(ws: Workspace, name: str, offset: int) -> tuple[str, set[str]] | None:
    """When `offset` is inside the names of `(require [PKG :refer [...]])`: PKG, and the names
    listed there already apart from the one at `offset` (offered once is enough)."""
    chain = [n for n in enclosing(ws, name, offset) if type(n) is Seq]
    if len(chain) < 3:
        return None
    names, spec, form = chain[-3:][::-1]
    if names.kind is not Kind.VECTOR or spec.kind is not Kind.VECTOR or form.kind is not Kind.LIST:
        return None
    if not form.forms or not is_symbol(form.forms[0], "require"):
        return None
    items = spec.forms
    at = next((i for i, item in enumerate(items) if item is names), 0)
    key = items[at - 1] if at >= 2 else None
    if type(key) is not Token or key.kind is not Kind.KEYWORD or key.text != ":refer" or not is_symbol(items[0]):
        return None
    listed = {t.text for t in names.forms if is_symbol(t) and not t.start <= offset <= t.end}
    return items[0].text, listed


def _detail(symbol: Symbol) -> str:
    try:
        return signature_text(symbol)
    except Exception:  # a half-resolved symbol while typing: no detail rather than no completion
        return symbol.kind


# -- rename ---------------------------------------------------------------------------------------

class RenameError(Exception):
    pass


def prepare_rename(ws: Workspace, name: str, offset: int) -> Span | None:
    token = token_at(ws, name, offset)
    symbol = ws.definition_at(name, offset) if token is not None else None
    if symbol is None or symbol.kind == "builtin" or symbol.node is None:
        return None
    analysis = ws.files.get(symbol.node.source.name)
    if analysis is None:  # defined in a standard package
        return None
    return token.span


def rename(ws: Workspace, name: str, offset: int, new_name: str) -> dict[str, list[tuple[Span, str]]]:
    """The edits renaming the symbol at `offset`, by file. Records and enums take their
    predicate (`NAME?`) and accessors (`NAME-FIELD`) along."""
    if not re.fullmatch(r"(?![-+.]?[0-9])[\w\-+*/<>=!?.]+", new_name) or "/" in new_name:
        raise RenameError(f"`{new_name}` is not a valid name")
    if prepare_rename(ws, name, offset) is None:
        raise RenameError("nothing here can be renamed: only this workspace's own definitions and locals")
    symbol = ws.definition_at(name, offset)
    family = [symbol]
    if symbol.definition is not None and symbol.kind in ("constructor", "type", "accessor"):
        family = [s for scope in ws.program.packages.values() for s in scope.decls.values()
                  if s.definition is symbol.definition and s.kind != "member"]
    old = symbol.definition.name if symbol.definition is not None and symbol.kind in ("constructor", "type",
                                                                                      "accessor") else symbol.name
    edits: dict[str, list[tuple[Span, str]]] = {}
    seen: set[tuple[str, int]] = set()
    for member in family:
        for token in ws.references(member):
            text = token.text
            local = text.rsplit("/", 1)
            qualifier = local[0] + "/" if len(local) == 2 else ""
            base = local[-1]
            if not base.startswith(old):
                continue
            key = (token.source.name, token.start)
            if key in seen:
                continue
            seen.add(key)
            edits.setdefault(token.source.name, []).append((token.span, qualifier + new_name + base[len(old):]))
    return edits


# -- call hierarchy -------------------------------------------------------------------------------

CALLABLE = ("function", "endpoint", "constructor", "accessor")


def _same(a: Symbol, b: Symbol) -> bool:
    """Whether two symbols name the same definition: an edit re-checks one definition and may give
    another's symbols anew, so identity alone would miss calls checked before it."""
    return same_symbol(a, b)


def call_item_at(ws: Workspace, name: str, offset: int) -> Symbol | None:
    """The definition a call hierarchy starts from: the function, endpoint or record named at `offset`
    (where it is defined or where it is used)."""
    token = token_at(ws, name, offset)
    if token is None or token.kind is not Kind.SYMBOL:
        return None
    symbol = ws.definition_at(name, offset)
    if symbol is None or symbol.kind not in CALLABLE or symbol.node is None or symbol.definition is None:
        return None
    return symbol


def call_item(ws: Workspace, package: str, name: str) -> Symbol | None:
    """The definition `name` of `package` in the program as it is now (a call hierarchy item's own
    record of what it stands for), or None when it is gone."""
    ws.analyse()
    scope = ws.program.packages.get(package) if ws.program is not None else None
    symbol = scope.decls.get(name) if scope is not None else None
    return symbol if symbol is not None and symbol.node is not None and symbol.definition is not None else None


def _caller(scope, definition) -> Symbol | None:
    """The symbol a definition defines, as the caller of the calls inside it."""
    symbol = scope.decls.get(definition.name) or scope.decls.get(definition.name + "?")
    return symbol if symbol is not None and symbol.node is not None else None


def incoming_calls(ws: Workspace, target: Symbol) -> list[tuple[Symbol, list[Span]]]:
    """The definitions of the workspace that call `target`, each with the spans of the names that call
    it (the heads of the calls), in the order of the files and of the definitions in them."""
    ws.analyse()
    out: list[tuple[Symbol, list[Span]]] = []
    for scope in ws.program.packages.values():
        owner = ws.files.get(scope.module.tree.source.name)
        if scope.standard or owner is None:
            continue
        for definition in scope.package.definitions:
            facts = owner.facts.get(id(definition))
            caller = _caller(scope, definition)
            if facts is None or caller is None:
                continue
            spans = _call_heads(facts, lambda callee: _same(callee, target))
            if spans:
                out.append((caller, spans))
    return out


def outgoing_calls(ws: Workspace, caller: Symbol) -> list[tuple[Symbol, list[Span]]]:
    """What the definition of `caller` calls (definitions of the program, not built-ins), each callee
    with the spans of the names that call it, in the order of their first call."""
    ws.analyse()
    if caller.definition is None or caller.node is None:
        return []
    owner = ws.files.get(caller.node.source.name)
    facts = owner.facts.get(id(caller.definition)) if owner is not None else None
    if facts is None:  # a standard package's definition: not checked, so its calls are not known
        return []
    callees: list[Symbol] = []
    for _, callee, _ in facts.calls:
        if callee is not None and callee.node is not None and callee.kind in CALLABLE \
                and not any(_same(callee, c) for c in callees):
            callees.append(callee)
    return [(callee, _call_heads(facts, lambda s, c=callee: _same(s, c))) for callee in callees]


def _call_heads(facts, wanted) -> list[Span]:
    spans: dict[int, Span] = {}
    for call, callee, _ in facts.calls:
        if callee is not None and call.forms and wanted(callee):
            head = call.forms[0]
            spans.setdefault(head.start, head.span)
    return [spans[start] for start in sorted(spans)]


# -- outline ----------------------------------------------------------------------------------------

@dataclass
class OutlineItem:
    name: str
    kind: str
    span: Span
    name_span: Span
    detail: str = ""
    children: list["OutlineItem"] = field(default_factory=list)


def outline(ws: Workspace, name: str) -> list[OutlineItem]:
    out = []
    for scope in ws._scopes(name):
        package = scope.package
        item = OutlineItem(package.name, "package", package.node.span, package.name_node.span)
        for definition in package.definitions:
            symbol = scope.decls.get(definition.name) or scope.decls.get(definition.name + "?")
            child = OutlineItem(definition.name, definition.form, definition.node.span,
                                definition.name_node.span, _detail(symbol) if symbol else definition.form)
            for member in definition.members:
                child.children.append(OutlineItem(member.text, "member", member.span, member.span))
            for f in definition.fields:
                child.children.append(OutlineItem(f.name, "field", f.node.span, f.node.span))
            item.children.append(child)
        out.append(item)
    return out


def workspace_symbols(ws: Workspace, query: str) -> list[Symbol]:
    ws.analyse()
    query = query.lower()
    out = []
    for scope in ws.program.packages.values():
        if scope.standard:
            continue
        for symbol in scope.decls.values():
            if symbol.node is not None and query in symbol.name.lower():
                out.append(symbol)
    return out


# -- semantic tokens --------------------------------------------------------------------------------

TOKEN_TYPES = ["namespace", "type", "enumMember", "function", "parameter", "variable", "keyword",
               "property", "string", "number", "comment", "macro", "operator"]
TOKEN_MODIFIERS = ["declaration", "definition", "readonly", "async", "defaultLibrary", "durable"]


@dataclass
class SemanticToken:
    span: Span
    type: str
    modifiers: tuple[str, ...] = ()


def semantic_tokens(ws: Workspace, name: str) -> list[SemanticToken]:
    ws.ready()
    analysis = ws.files.get(name)
    if analysis is None:
        return []
    symbols: dict[int, Symbol] = {}
    for facts in analysis.facts.values():
        for token, symbol in facts.refs:
            symbols[id(token)] = symbol
    definitions = {}
    for scope in ws._scopes(name):
        for symbol in scope.decls.values():
            if symbol.node is not None:
                definitions[id(symbol.node)] = symbol
        definitions[id(scope.package.name_node)] = Symbol(scope.name, "package", scope.name, scope.package.name_node)
        for _, (symbol, token) in scope.refers.items():
            symbols[id(token)] = symbol
    out = []
    for tok in tokens(analysis.module.tree.items):
        kind = tok.kind
        if kind is Kind.COMMENT:
            out.append(SemanticToken(tok.span, "comment"))
        elif kind in (Kind.STRING, Kind.STRING3):
            out.append(SemanticToken(tok.span, "string"))
        elif kind in (Kind.INT, Kind.FLOAT):
            out.append(SemanticToken(tok.span, "number"))
        elif kind in (Kind.NIL, Kind.TRUE, Kind.FALSE):
            out.append(SemanticToken(tok.span, "keyword", ("readonly",)))
        elif kind is Kind.KEYWORD:
            out.append(SemanticToken(tok.span, "property"))
        elif kind is Kind.COLON:
            out.append(SemanticToken(tok.span, "operator"))
        elif kind is Kind.SYMBOL:
            symbol = definitions.get(id(tok))
            modifiers: tuple[str, ...] = ("declaration", "definition") if symbol is not None else ()
            if symbol is None:
                symbol = symbols.get(id(tok))
            if symbol is None:
                if tok.text in SPECIAL_FORMS or tok.text in DEFINITION_FORMS or tok.text in ("defpackage", "require"):
                    out.append(SemanticToken(tok.span, "keyword"))
                continue
            out.append(SemanticToken(tok.span, _token_type(symbol), modifiers + _modifiers(symbol)))
    return out


def _token_type(symbol: Symbol) -> str:
    return {"package": "namespace", "type": "type", "member": "enumMember", "parameter": "parameter",
            "local": "variable", "constant": "variable", "endpoint": "function"}.get(
        symbol.kind, "type" if symbol.predicate_of is not None else "function")


def _modifiers(symbol: Symbol) -> tuple[str, ...]:
    mods = []
    if symbol.kind == "endpoint":
        mods += ["async", "durable"]
    if symbol.kind == "builtin" or (symbol.node is not None and "stdlib" in symbol.node.source.name):
        mods.append("defaultLibrary")
    if symbol.kind == "constant":
        mods.append("readonly")
    return tuple(mods)


# -- code actions -------------------------------------------------------------------------------------

@dataclass
class CodeAction:
    title: str
    edits: dict[str, list[tuple[Span, str]]]
    diagnostic: Diagnostic | None = None
    preferred: bool = False


def code_actions(ws: Workspace, name: str, start: int, end: int) -> list[CodeAction]:
    out = []
    for diag in ws.diagnostics(name):
        if diag.span.end < start or diag.span.start > end:
            continue
        if diag.fix is not None:
            edits: dict[str, list[tuple[Span, str]]] = {}
            for edit in diag.fix.edits:
                edits.setdefault(edit.span.source.name, []).append((edit.span, edit.new_text))
            out.append(CodeAction(diag.fix.message[0].upper() + diag.fix.message[1:], edits, diag, True))
        if diag.code == "FM502":
            action = _missing_clauses(ws, name, diag)
            if action is not None:
                out.append(action)
    return out


def _missing_clauses(ws: Workspace, name: str, diag: Diagnostic) -> CodeAction | None:
    """Add a clause for each case the match misses, each ending in a placeholder body."""
    for scope in ws._scopes(name):
        checker = Checker(ws.program, scope)
        for match in _matches(scope.package):
            if match.node.forms[0].span != diag.span:
                continue
            found = ws.type_at(name, match.subject.node.start)
            subject = found[1] if found is not None else ANY
            ctors = _ctors(subject)
            if not ctors:
                return None
            rows = [[c.pattern] for c in match.clauses]
            missing = []
            for ctor in ctors:
                pattern_text = ctor.show if not ctor.fields else f"({ctor.show} {' '.join('_' for _ in ctor.fields)})"
                probe = _probe(ctor, match)
                if probe is not None and _useful(rows, [probe], [subject], checker):
                    missing.append(pattern_text)
            if not missing:
                return None
            last = match.clauses[-1].node if match.clauses else match.subject.node
            indent = " " * (last.span.column - 1)
            text = "".join(f"\n{indent}[{p} nil]" for p in missing)
            at = last.source.span(last.end, last.end)
            return CodeAction(f"Add the missing match clause{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
                              {name: [(at, text)]}, diag)
    return None


def _probe(ctor, match: Match):
    """A pattern standing for one constructor, to ask whether the clauses miss it."""
    from flowmetal.lang.forms import Name, PLit, PMember, PRecord
    node = match.node
    key = ctor.key
    if key[0] == "member":
        return PMember(node.open, key[2])
    if key[0] == "record":
        return PRecord(node, Name(node.open, ctor.show), [PWild(node.open) for _ in ctor.fields])
    if key[0] == "lit":
        kinds = {"true": (Kind.TRUE, True), "false": (Kind.FALSE, False), "nil": (Kind.NIL, None)}
        kind, value = kinds[key[1]]
        return PLit(node.open, kind, value)
    return None


def _matches(package):
    from flowmetal.lang.forms import Clause
    stack: list = []
    for definition in package.definitions:
        stack += list(definition.body) + ([definition.value] if definition.value is not None else [])
    while stack:
        e = stack.pop()
        if isinstance(e, Match):
            yield e
        for attr in ("fn", "args", "items", "body", "test", "then", "orelse", "subject", "value"):
            child = getattr(e, attr, None)
            if child is None:
                continue
            if isinstance(child, list):
                stack += [c for c in child if hasattr(c, "node")]
            elif hasattr(child, "node"):
                stack.append(child)
        for attr in ("bindings",):
            for b in getattr(e, attr, ()) or ():
                stack.append(b.value)
        for clause in getattr(e, "clauses", ()) or ():
            if isinstance(clause, Clause):
                stack += clause.body
            elif isinstance(clause, tuple):
                stack += list(clause)


# -- inlay hints, folding, selection ----------------------------------------------------------------

def inlay_hints(ws: Workspace, name: str, start: int = 0, end: int | None = None) -> list[tuple[int, str]]:
    """(offset, label): ` : TYPE` after each unannotated `let` binding's name."""
    ws.ready()
    analysis = ws.files.get(name)
    out = []
    for facts in (analysis.facts.values() if analysis else ()):
        for token, t in facts.inferred:
            if start <= token.end and (end is None or token.end <= end):
                out.append((token.end, f" : {show(t)}"))
    return sorted(out)


def folding(ws: Workspace, name: str) -> list[tuple[int, int, str]]:
    """(start offset, end offset, kind) for every form spanning several lines, and runs of comments."""
    tree = _tree(ws, name)
    if tree is None:
        return []
    out = []
    for node in walk(tree.items):
        if type(node) is Seq and node.span.end_line > node.span.line:
            out.append((node.start, node.end, "region"))
    run: list[Token] = []
    for tok in tokens(tree.items):
        if tok.kind is Kind.COMMENT:
            run.append(tok)
        elif tok.kind is not Kind.WS or tok.text.count("\n") > 1:
            if len(run) > 1:
                out.append((run[0].start, run[-1].end, "comment"))
            run = []
    if len(run) > 1:
        out.append((run[0].start, run[-1].end, "comment"))
    return out


def selection_ranges(ws: Workspace, name: str, offset: int) -> list[Span]:
    """From the innermost node at `offset` outwards: token, its forms, up to the top-level form."""
    chain = enclosing(ws, name, offset)
    spans = [n.span for n in reversed(chain)]
    out: list[Span] = []
    for span in spans:
        if not out or (span.start, span.end) != (out[-1].start, out[-1].end):
            out.append(span)
    return out


def entry_functions(ws: Workspace, name: str) -> list[Symbol]:
    """The functions a run can start from: every `defn` of the file's packages."""
    return [s for scope in ws._scopes(name) for s in scope.decls.values()
            if s.kind == "function" and s.definition is not None]


__all__ = ["Hover", "Completion", "CodeAction", "OutlineItem", "SemanticToken", "RenameError",
           "hover", "completion", "match_rank", "call_item_at", "call_item", "incoming_calls", "outgoing_calls", "prepare_rename", "rename", "outline", "workspace_symbols", "semantic_tokens",
           "code_actions", "inlay_hints", "folding", "selection_ranges", "entry_functions", "token_at",
           "TOKEN_TYPES", "TOKEN_MODIFIERS", "_head"]
