"""Forms: the syntax tree lowered to what Flowmetal's forms mean structurally.

The reader knows brackets and atoms; this layer knows that `(defn NAME [PARAMS]
: RET "doc" BODY...)` is a function definition, that `(let [a 1 b 2] ...)`
binds pairs, that `(match x [PATTERN BODY] ...)` has clauses. It checks the
*shape* of every form (SPEC section 2) and reports a malformed one (FM2xx) at
its smallest offending part, then lowers what it can: a broken expression
becomes `Invalid`, which later layers treat as `any?` without reporting more,
so one mistake never cascades.

Names are not resolved here (that is `flowmetal.lang.resolve`'s job): a symbol is a
`Name` with its text, and type expressions are structures of `TypeRef`s. Every
lowered node keeps the syntax node it came from, for spans.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

from flowmetal.lang import deep
from flowmetal.lang import diagnostics as d
from flowmetal.lang.diagnostics import Diagnostic
from flowmetal.lang.syntax import Kind, Node, Seq, Token, Tree

# -- expressions ----------------------------------------------------------------------


class Expr:
    __slots__ = ("node",)
    node: Node


@dataclass(eq=False, slots=True)
class Lit(Expr):
    node: Node
    kind: Kind          # INT FLOAT STRING STRING3 NIL TRUE FALSE KEYWORD
    value: object


@dataclass(eq=False, slots=True)
class Name(Expr):
    node: Token
    name: str


@dataclass(eq=False, slots=True)
class Call(Expr):
    node: Seq
    fn: Expr
    args: list[Expr]


@dataclass(eq=False, slots=True)
class VectorLit(Expr):
    node: Seq
    items: list[Expr]


@dataclass(eq=False, slots=True)
class MapLit(Expr):
    node: Seq
    items: list[Expr]  # key, value, key, value...


@dataclass(eq=False, slots=True)
class Param:
    node: Token
    name: str
    type: TypeExpr | None
    default: Expr | None


@dataclass(eq=False, slots=True)
class FnExpr(Expr):
    node: Seq
    params: list[Param]
    ret: TypeExpr | None
    body: list[Expr]


@dataclass(eq=False, slots=True)
class Binding:
    node: Token
    name: str
    type: TypeExpr | None
    value: Expr


@dataclass(eq=False, slots=True)
class Let(Expr):
    node: Seq
    bindings: list[Binding]
    body: list[Expr]


@dataclass(eq=False, slots=True)
class If(Expr):
    node: Seq
    test: Expr
    then: Expr
    orelse: Expr | None
    negated: bool  # if-not


@dataclass(eq=False, slots=True)
class When(Expr):
    node: Seq
    test: Expr
    body: list[Expr]


@dataclass(eq=False, slots=True)
class Cond(Expr):
    node: Seq
    clauses: list[tuple[Expr, Expr]]
    orelse: Expr | None


@dataclass(eq=False, slots=True)
class Do(Expr):
    node: Seq
    body: list[Expr]


@dataclass(eq=False, slots=True)
class Logic(Expr):
    node: Seq
    op: str  # "and" | "or"
    items: list[Expr]


@dataclass(eq=False, slots=True)
class Clause:
    node: Seq
    pattern: Pattern
    body: list[Expr]


@dataclass(eq=False, slots=True)
class Match(Expr):
    node: Seq
    subject: Expr
    clauses: list[Clause]


@dataclass(eq=False, slots=True)
class Invalid(Expr):
    """A malformed expression, already reported: typed `any?`, never reported again."""
    node: Node


# -- patterns ---------------------------------------------------------------------------


class Pattern:
    __slots__ = ("node",)


@dataclass(eq=False, slots=True)
class PLit(Pattern):
    node: Token
    kind: Kind
    value: object


@dataclass(eq=False, slots=True)
class PWild(Pattern):
    node: Token


@dataclass(eq=False, slots=True)
class PBind(Pattern):
    node: Token
    name: str


@dataclass(eq=False, slots=True)
class PMember(Pattern):
    node: Token
    name: str  # `+days+`, possibly qualified


@dataclass(eq=False, slots=True)
class PRecord(Pattern):
    node: Seq
    ctor: Name
    args: list[Pattern]


@dataclass(eq=False, slots=True)
class PInvalid(Pattern):
    node: Node


# -- type expressions ---------------------------------------------------------------------


class TypeExpr:
    __slots__ = ("node",)


@dataclass(eq=False, slots=True)
class TypeRef(TypeExpr):
    node: Token
    name: str


@dataclass(eq=False, slots=True)
class TypeApp(TypeExpr):
    """`(list? T)`, `(map? K V)`, `(union? [T ...])`, `(fn? [T ...] : R)`."""
    node: Seq
    head: TypeRef
    args: list[TypeExpr]
    ret: TypeExpr | None = None  # fn? only


@dataclass(eq=False, slots=True)
class TypeInvalid(TypeExpr):
    node: Node


# -- definitions ----------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Definition:
    node: Seq
    form: str       # defn defendpoint def defenum defrecord deftype
    name_node: Token
    name: str
    doc: str | None = None
    params: list[Param] = field(default_factory=list)
    ret: TypeExpr | None = None
    body: list[Expr] = field(default_factory=list)
    type: TypeExpr | None = None              # def, deftype
    value: Expr | None = None                 # def
    members: list[Token] = field(default_factory=list)   # defenum
    fields: list[Param] = field(default_factory=list)     # defrecord


@dataclass(eq=False, slots=True)
class Require:
    node: Seq
    package_node: Token
    package: str
    refer: list[Token]
    alias: Token | None


@dataclass(eq=False, slots=True)
class Package:
    node: Seq
    name_node: Token
    name: str
    requires: list[Require]
    definitions: list[Definition]


@dataclass(eq=False, slots=True)
class Module:
    """One file's packages and the problems found lowering it."""
    tree: Tree
    packages: list[Package]
    diagnostics: list[Diagnostic]


# -- lowering ----------------------------------------------------------------------------------

SPECIAL_FORMS = frozenset({"fn", "let", "if", "if-not", "when", "cond", "do", "and", "or", "match"})
DEFINITION_FORMS = frozenset({"defn", "defendpoint", "def", "defenum", "defrecord", "deftype"})
TYPE_VARIABLE = re.compile(r"^[a-z]\??$")
STRING_KINDS = (Kind.STRING, Kind.STRING3)
LITERAL_KINDS = frozenset({Kind.INT, Kind.FLOAT, Kind.STRING, Kind.STRING3, Kind.NIL, Kind.TRUE,
                           Kind.FALSE, Kind.KEYWORD})
NUMBER_KINDS = (Kind.INT, Kind.FLOAT)
_INT, _FLOAT = NUMBER_KINDS
_ESCAPES = re.compile(r'\\(u[0-9a-fA-F]{4}|.)')


def split_arguments(args: list, required: int) -> tuple[list, list]:
    """A call's arguments: those by position, then `(keyword literal, value)` pairs.

    The one rule (the checker, the evaluator and its fast path all use it):
    arguments are positional until the first keyword literal, at a position at
    or past the number of required parameters, that has a value after it; from
    there on they come as `:name value` pairs.
    """
    i = 0
    while i < len(args):
        a = args[i]
        if i >= required and type(a) is Lit and a.kind is Kind.KEYWORD and i + 1 < len(args):
            break
        i += 1
    return list(args[:i]), [(args[j], args[j + 1]) if j + 1 < len(args) else (args[j], None)
                            for j in range(i, len(args), 2)]


def string_value(tok: Token) -> str:
    """The text a string token stands for (escapes decoded; long strings verbatim)."""
    if tok.kind is Kind.STRING3:
        return tok.text[3:-3]
    def unescape(m: re.Match) -> str:
        e = m.group(1)
        return chr(int(e[1:], 16)) if e[0] == "u" and len(e) == 5 else {"n": "\n", "t": "\t"}.get(e, e)
    text = _ESCAPES.sub(unescape, tok.text[1:-1])
    if any("\ud800" <= c <= "\udfff" for c in text):  # a surrogate pair stands for one character
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def doc_text(tok: Token) -> str:
    """A docstring's text, its common indentation removed (long strings keep the source's)."""
    return inspect.cleandoc(string_value(tok))


# Numbers (docs/language.md, "Values at run time"): integers are exact below 2**4096 in
# magnitude, so that every one prints as a literal and computing one stays cheap; floats
# are finite doubles. A literal outside that range is reported, not read as something else.
INT_BITS = 4096
INT_LIMIT = 1 << INT_BITS
_INT_DIGITS = len(str(INT_LIMIT))


def number_problem(tok: Token) -> str | None:
    """What is wrong with a number token's value (out of range), or None."""
    text = tok.text
    if tok.kind is Kind.INT:
        digits = text.lstrip("-").lstrip("0")
        if len(digits) >= _INT_DIGITS and (len(digits) > _INT_DIGITS or int(digits) >= INT_LIMIT):
            return (f"invalid number `{_shorten(tok.text)}`: an integer must be below 2^{INT_BITS} "
                    f"(about 1.04e1233) in magnitude")
    elif tok.kind is Kind.FLOAT:
        value = float(tok.text)
        if value in (float("inf"), float("-inf")):
            return f"invalid number `{_shorten(tok.text)}`: too large for a float (at most about 1.8e308)"
    return None


def _shorten(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:10]}...{text[-10:]}"


def literal_value(tok: Token) -> object:
    kind = tok.kind
    if kind is Kind.INT:
        return int(tok.text)
    if kind is Kind.FLOAT:
        return float(tok.text)
    if kind in STRING_KINDS:
        return string_value(tok)
    if kind is Kind.KEYWORD:
        return tok.text[1:]
    return {Kind.NIL: None, Kind.TRUE: True, Kind.FALSE: False}[kind]


def is_symbol(node: Node, text: str | None = None) -> bool:
    return type(node) is Token and node.kind is Kind.SYMBOL and (text is None or node.text == text)


def head_symbol(node: Node) -> str | None:
    if type(node) is Seq and node.kind is Kind.LIST:
        forms = node.forms
        if forms and is_symbol(forms[0]):
            return forms[0].text
    return None


def lower(tree: Tree) -> Module:
    """The tree's packages, lowered. Nesting up to `deep.MAX_NESTING` levels is lowered on a
    deeper stack when this one runs out; a form nested deeper is reported (FM203)."""
    return deep.call(_lower, tree)


def _lower(tree: Tree) -> Module:
    lowerer = _Lowerer()
    packages = []
    for form in tree.forms:
        if form.kind is Kind.ERROR:
            continue  # already reported by the reader
        if head_symbol(form) == "defpackage":
            package = lowerer.package(form)
            if package is not None:
                packages.append(package)
        else:
            lowerer.report(form, "a file holds `(defpackage NAME ...)` forms; this form is outside any package",
                           code=d.OUTSIDE_PACKAGE)
    return Module(tree, packages, lowerer.diagnostics)


class _Lowerer:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.depth = 0  # sequences (expressions, types, patterns) around the one being lowered
        self.too_deep_reported = False  # in the definition being lowered

    def report(self, node: Node, message: str, code: d.Code = d.MALFORMED_FORM) -> None:
        self.diagnostics.append(Diagnostic.of(code, node.span, message))

    def too_deep(self, node: Seq) -> None:
        """A form past `MAX_NESTING`: reported at its opening bracket, and not lowered, so
        that every later walk over the program is bounded by the nesting (see `flowmetal.lang.deep`)."""
        if not self.too_deep_reported:  # the first one says it: the others are nested in it, or beside it
            self.too_deep_reported = True
            self.report(node.open, f"this form is nested more than {deep.MAX_NESTING:,} levels deep inside its "
                                   f"definition: it is not checked or run (split it into functions or `let`s)",
                        code=d.TOO_DEEP)

    # -- packages and definitions --

    def package(self, form: Seq) -> Package | None:
        items = form.forms
        if len(items) < 2 or not is_symbol(items[1]):
            self.report(items[1] if len(items) > 1 else form, "`defpackage` needs a package name, like `(defpackage acme.jobs ...)`")
            return None
        name_node = items[1]
        requires, definitions = [], []
        for item in items[2:]:
            head = head_symbol(item)
            if head == "require":
                requires += self.requires(item)
            elif head in DEFINITION_FORMS:
                definition = self.definition(item, head)
                if definition is not None:
                    definitions.append(definition)
            elif item.kind is Kind.ERROR:
                continue
            elif type(item) is Token and item.kind in STRING_KINDS:
                continue  # a package docstring
            else:
                self.report(item, "a package holds `require`, `defn`, `defendpoint`, `def`, `defenum`, "
                                  "`defrecord` and `deftype` forms")
        return Package(form, name_node, name_node.text, requires, definitions)

    def requires(self, form: Seq) -> list[Require]:
        out = []
        for spec in form.forms[1:]:
            if type(spec) is Token and spec.kind is Kind.SYMBOL:
                out.append(Require(form, spec, spec.text, [], None))
                continue
            if type(spec) is not Seq or spec.kind is not Kind.VECTOR or not spec.forms or not is_symbol(spec.forms[0]):
                self.report(spec, "a require names a package: `[PKG :refer [NAME ...]]` or `[PKG :as ALIAS]`")
                continue
            package, rest = spec.forms[0], spec.forms[1:]
            refer: list[Token] = []
            alias = None
            i = 0
            while i < len(rest):
                option = rest[i]
                value = rest[i + 1] if i + 1 < len(rest) else None
                if type(option) is Token and option.text == ":refer" and type(value) is Seq and value.kind is Kind.VECTOR:
                    for name in value.forms:
                        if is_symbol(name):
                            refer.append(name)
                        else:
                            self.report(name, "`:refer` takes a vector of names")
                elif type(option) is Token and option.text == ":as" and value is not None and is_symbol(value):
                    alias = value
                else:
                    self.report(option, "expected `:refer [NAME ...]` or `:as ALIAS` here")
                    break
                i += 2
            out.append(Require(spec, package, package.text, refer, alias))
        return out

    def definition(self, form: Seq, head: str) -> Definition | None:
        self.too_deep_reported = False
        items = form.forms
        if len(items) < 2 or not is_symbol(items[1]):
            self.report(items[1] if len(items) > 1 else form, f"`{head}` needs a name")
            return None
        name = items[1]
        rest = items[2:]
        out = Definition(form, head, name, name.text)
        if head == "defenum":
            if rest and type(rest[0]) is Token and rest[0].kind in STRING_KINDS:
                out.doc, rest = doc_text(rest[0]), rest[1:]
            for member in rest:
                if is_symbol(member) and len(member.text) > 2 and member.text[0] == member.text[-1] == "+":
                    out.members.append(member)
                else:
                    self.report(member, "an enum member is written `+name+`")
        elif head == "defrecord":
            if not rest or type(rest[0]) is not Seq or rest[0].kind is not Kind.VECTOR:
                self.report(rest[0] if rest else form, "`defrecord` needs a vector of fields: `[field : TYPE ...]`")
                return out
            out.fields = self.params(rest[0], defaults=False)
            for extra in rest[1:]:
                if type(extra) is Token and extra.kind in STRING_KINDS and out.doc is None:
                    out.doc = doc_text(extra)
                else:
                    self.report(extra, "after its fields a record takes only a docstring")
        elif head == "deftype":
            if not rest:
                self.report(form, "`deftype` needs a type: `(deftype NAME TYPE \"doc\")`")
                return out
            out.type = self.type_expr(rest[0])
            for extra in rest[1:]:
                if type(extra) is Token and extra.kind in STRING_KINDS and out.doc is None:
                    out.doc = doc_text(extra)
                else:
                    self.report(extra, "after its type, `deftype` takes only a docstring")
        elif head == "def":
            if rest and type(rest[0]) is Token and rest[0].kind is Kind.COLON:
                if len(rest) < 2:
                    self.report(rest[0], "`:` must be followed by a type")
                    return out
                out.type, rest = self.type_expr(rest[1]), rest[2:]
            if rest and len(rest) > 1 and type(rest[0]) is Token and rest[0].kind in STRING_KINDS:
                out.doc, rest = doc_text(rest[0]), rest[1:]
            if len(rest) != 1:
                self.report(rest[1] if len(rest) > 1 else form, "`def` takes one value: `(def NAME : TYPE? VALUE)`")
            out.value = self.expr(rest[0]) if rest else Invalid(form)
        else:  # defn, defendpoint
            if not rest or type(rest[0]) is not Seq or rest[0].kind is not Kind.VECTOR:
                self.report(rest[0] if rest else name, f"`{head}` needs a parameter vector after its name")
                return out
            out.params = self.params(rest[0], defaults=True)
            rest = rest[1:]
            # A docstring and `: RET` may come in either order, before the body.
            while rest:
                first = rest[0]
                if type(first) is Token and first.kind is Kind.COLON:
                    if len(rest) < 2:
                        self.report(first, "`:` must be followed by the return type")
                        rest = []
                        break
                    out.ret, rest = self.type_expr(rest[1]), rest[2:]
                elif type(first) is Token and first.kind in STRING_KINDS and out.doc is None and (len(rest) > 1 or head == "defendpoint"):
                    out.doc, rest = doc_text(first), rest[1:]
                else:
                    break
            if head == "defendpoint":
                if out.ret is None:
                    self.report(name, "an endpoint declares its return type: `(defendpoint NAME! [PARAMS] : TYPE)`")
                for extra in rest:
                    self.report(extra, "an endpoint has no body: the runtime or a connector implements it")
            else:
                if not rest:
                    self.report(form, f"`{name.text}` has no body")
                out.body = [self.expr(e) for e in rest]
        return out

    def params(self, vector: Seq, defaults: bool) -> list[Param]:
        """`name`, `name : TYPE`, then optionally `:default EXPR` (commas are whitespace)."""
        out: list[Param] = []
        items = vector.forms
        i = 0
        while i < len(items):
            item = items[i]
            if not is_symbol(item):
                self.report(item, "expected a parameter name here")
                i += 1
                continue
            param = Param(item, item.text, None, None)
            i += 1
            if i < len(items) and type(items[i]) is Token and items[i].kind is Kind.COLON:
                if i + 1 >= len(items):
                    self.report(items[i], "`:` must be followed by a type")
                    i += 1
                else:
                    param.type = self.type_expr(items[i + 1])
                    i += 2
            if i < len(items) and type(items[i]) is Token and items[i].text == ":default":
                if not defaults:
                    self.report(items[i], "record fields take no default")
                if i + 1 >= len(items):
                    self.report(items[i], "`:default` must be followed by a value")
                    i += 1
                else:
                    param.default = self.expr(items[i + 1])
                    i += 2
            out.append(param)
        seen: dict[str, Token] = {}
        for param in out:
            if param.name in seen:
                self.report(param.node, f"`{param.name}` is already a parameter")
            seen[param.name] = param.node
        return out

    # -- types --

    def type_expr(self, node: Node) -> TypeExpr:
        if is_symbol(node):
            return TypeRef(node, node.text)
        if type(node) is Seq and self.depth >= deep.MAX_NESTING:
            self.too_deep(node)
            return TypeInvalid(node)
        self.depth += 1
        try:
            return self._type_expr(node)
        finally:
            self.depth -= 1

    def _type_expr(self, node: Node) -> TypeExpr:
        if type(node) is Seq and node.kind is Kind.LIST and node.forms and is_symbol(node.forms[0]):
            head, args = node.forms[0], node.forms[1:]
            ref = TypeRef(head, head.text)
            if head.text == "fn?":
                if not args or type(args[0]) is not Seq or args[0].kind is not Kind.VECTOR:
                    if not args:  # bare `(fn?)`: any function
                        return TypeApp(node, ref, [], None)
                    self.report(args[0], "a function type is `(fn? [PARAM-TYPE ...] : RETURN-TYPE)`")
                    return TypeInvalid(node)
                params = [self.type_expr(p) for p in args[0].forms]
                rest = args[1:]
                if rest and type(rest[0]) is Token and rest[0].kind is Kind.COLON:
                    rest = rest[1:]
                if len(rest) != 1:
                    self.report(node, "a function type is `(fn? [PARAM-TYPE ...] : RETURN-TYPE)`")
                    return TypeInvalid(node)
                return TypeApp(node, ref, params, self.type_expr(rest[0]))
            if head.text == "union?":
                if len(args) != 1 or type(args[0]) is not Seq or args[0].kind is not Kind.VECTOR:
                    self.report(node, "a union type is `(union? [TYPE ...])`")
                    return TypeInvalid(node)
                return TypeApp(node, ref, [self.type_expr(a) for a in args[0].forms])
            return TypeApp(node, ref, [self.type_expr(a) for a in args])
        if type(node) is Token and node.kind is Kind.NIL:
            return TypeRef(node, "nil?")
        self.report(node, "expected a type: a name such as `int?`, or `(list? T)`, `(map? K V)`, "
                          "`(fn? [T] : R)`, `(union? [T ...])`", code=d.UNKNOWN_TYPE)
        return TypeInvalid(node)

    # -- expressions --

    def exprs(self, nodes: list[Node]) -> list[Expr]:
        return [self.expr(n) for n in nodes]

    def expr(self, node: Node) -> Expr:
        if type(node) is Token:
            kind = node.kind
            if kind is Kind.SYMBOL:
                return Name(node, node.text)
            if kind in LITERAL_KINDS:
                # Short numbers without an exponent are in range: only the others are looked at.
                if ((kind is _INT and len(node.text) >= 20
                     or kind is _FLOAT and (len(node.text) >= 20 or "e" in node.text or "E" in node.text))
                        and (problem := number_problem(node)) is not None):
                    self.report(node, problem, code=d.INVALID_TOKEN)
                    return Invalid(node)
                return Lit(node, kind, literal_value(node))
            if node.kind is Kind.COLON:
                self.report(node, "a lone `:` marks a type annotation and is no value")
            return Invalid(node)  # ERROR tokens are already reported
        if self.depth >= deep.MAX_NESTING:
            self.too_deep(node)
            return Invalid(node)
        self.depth += 1
        try:
            if node.kind is Kind.VECTOR:
                return VectorLit(node, self.exprs(node.forms))
            if node.kind is Kind.MAP:
                return MapLit(node, self.exprs(node.forms))
            forms = node.forms
            if not forms:
                self.report(node, "`()` is no expression: use `nil` or `[]`")
                return Invalid(node)
            head = forms[0]
            if is_symbol(head) and head.text in SPECIAL_FORMS:
                return getattr(self, "form_" + head.text.replace("-", "_"))(node, forms[1:])
            if is_symbol(head) and head.text in DEFINITION_FORMS | {"defpackage", "require"}:
                self.report(head, f"`{head.text}` belongs at the top of a package, not inside an expression")
                return Invalid(node)
            return Call(node, self.expr(head), self.exprs(forms[1:]))
        finally:
            self.depth -= 1

    def form_fn(self, node: Seq, args: list[Node]) -> Expr:
        if not args or type(args[0]) is not Seq or args[0].kind is not Kind.VECTOR:
            self.report(args[0] if args else node, "`fn` needs a parameter vector: `(fn [PARAMS] BODY...)`")
            return Invalid(node)
        params = self.params(args[0], defaults=True)
        rest, ret = args[1:], None
        if rest and type(rest[0]) is Token and rest[0].kind is Kind.COLON and len(rest) > 1:
            ret, rest = self.type_expr(rest[1]), rest[2:]
        if not rest:
            self.report(node, "`fn` needs a body")
        return FnExpr(node, params, ret, self.exprs(rest))

    def form_let(self, node: Seq, args: list[Node]) -> Expr:
        if not args or type(args[0]) is not Seq or args[0].kind is not Kind.VECTOR:
            self.report(args[0] if args else node, "`let` needs a vector of bindings: `(let [NAME VALUE ...] BODY...)`")
            return Invalid(node)
        bindings: list[Binding] = []
        items = args[0].forms
        i = 0
        while i < len(items):
            name = items[i]
            if not is_symbol(name):
                self.report(name, "expected a name to bind here")
                i += 2
                continue
            i += 1
            type_ = None
            if i < len(items) and type(items[i]) is Token and items[i].kind is Kind.COLON:
                if i + 1 < len(items):
                    type_ = self.type_expr(items[i + 1])
                i += 2
            if i >= len(items):
                self.report(name, f"`{name.text}` has no value: bindings come in pairs")
                bindings.append(Binding(name, name.text, type_, Invalid(name)))
                break
            bindings.append(Binding(name, name.text, type_, self.expr(items[i])))
            i += 1
        if len(args) < 2:
            self.report(node, "`let` needs a body")
        return Let(node, bindings, self.exprs(args[1:]))

    def _if(self, node: Seq, args: list[Node], negated: bool) -> Expr:
        word = "if-not" if negated else "if"
        if len(args) not in (2, 3):
            self.report(node, f"`{word}` takes a test, a then-branch and an optional else-branch "
                              f"({len(args)} forms given)")
            if not args:
                return Invalid(node)
        parts = self.exprs(args[:3])
        while len(parts) < 2:
            parts.append(Invalid(node))
        return If(node, parts[0], parts[1], parts[2] if len(parts) > 2 else None, negated)

    def form_if(self, node: Seq, args: list[Node]) -> Expr:
        return self._if(node, args, False)

    def form_if_not(self, node: Seq, args: list[Node]) -> Expr:
        return self._if(node, args, True)

    def form_when(self, node: Seq, args: list[Node]) -> Expr:
        if not args:
            self.report(node, "`when` needs a test")
            return Invalid(node)
        return When(node, self.expr(args[0]), self.exprs(args[1:]))

    def form_cond(self, node: Seq, args: list[Node]) -> Expr:
        clauses, orelse = [], None
        if len(args) % 2:
            self.report(args[-1], "`cond` takes tests and results in pairs; this test has no result")
            args = args[:-1]
        for i in range(0, len(args), 2):
            test, result = args[i], args[i + 1]
            if type(test) is Token and test.text == ":else":
                orelse = self.expr(result)
                if i + 2 < len(args):
                    self.report(args[i + 2], "clauses after `:else` are never reached", code=d.UNREACHABLE_CLAUSE)
                break
            clauses.append((self.expr(test), self.expr(result)))
        return Cond(node, clauses, orelse)

    def form_do(self, node: Seq, args: list[Node]) -> Expr:
        return Do(node, self.exprs(args))

    def form_and(self, node: Seq, args: list[Node]) -> Expr:
        return Logic(node, "and", self.exprs(args))

    def form_or(self, node: Seq, args: list[Node]) -> Expr:
        return Logic(node, "or", self.exprs(args))

    def form_match(self, node: Seq, args: list[Node]) -> Expr:
        if not args:
            self.report(node, "`match` needs a value and clauses: `(match X [PATTERN BODY] ...)`")
            return Invalid(node)
        clauses = []
        for clause in args[1:]:
            if type(clause) is not Seq or clause.kind is not Kind.VECTOR or len(clause.forms) < 2:
                self.report(clause, "a match clause is a vector of a pattern and a body: `[PATTERN BODY]`")
                continue
            clauses.append(Clause(clause, self.pattern(clause.forms[0]), self.exprs(clause.forms[1:])))
        if not clauses:
            self.report(node, "`match` needs at least one clause")
        return Match(node, self.expr(args[0]), clauses)

    def pattern(self, node: Node) -> Pattern:
        if type(node) is Token:
            if node.kind is Kind.SYMBOL:
                if node.text == "_":
                    return PWild(node)
                local = node.text.rsplit("/", 1)[-1]
                if len(local) > 2 and local[0] == local[-1] == "+":
                    return PMember(node, node.text)
                return PBind(node, node.text)
            if node.kind in LITERAL_KINDS:
                if node.kind in NUMBER_KINDS and (problem := number_problem(node)) is not None:
                    self.report(node, problem, code=d.INVALID_TOKEN)
                    return PInvalid(node)
                return PLit(node, node.kind, literal_value(node))
            return PInvalid(node)
        if node.kind is Kind.LIST and node.forms and is_symbol(node.forms[0]):
            if self.depth >= deep.MAX_NESTING:
                self.too_deep(node)
                return PInvalid(node)
            self.depth += 1
            try:
                return PRecord(node, Name(node.forms[0], node.forms[0].text),
                               [self.pattern(p) for p in node.forms[1:]])
            finally:
                self.depth -= 1
        self.report(node, "a pattern is a literal, `_`, a name, an enum member `+name+`, "
                          "or a record pattern `(record-name PATTERN ...)`")
        return PInvalid(node)
