"""Generated programs for the benchmarks: Flowmetal and Python of the same shape.

Each unit is one function of fifteen lines (a comment, a signature with typed
parameters and a default, a return type, a docstring, a `let`, an `if`, a
`match`, calls, a vector and a map) and a blank line, written once in Flowmetal
and once in Python with the same structure, so that a ratio between the two
measures the reader, not the program.
"""

from __future__ import annotations


def flowmetal(lines: int) -> str:
    out = ["(defpackage bench.generated",
           "  (require [flowmetal.time :refer [sleep! make-duration +seconds+]])"]
    i = 0
    while len(out) + 16 <= lines - 1:
        out += [
            f"  ;; Function number {i}: computes things.",
            f"  (defn step-{i} [x : int?",
            "                 y : str?",
            "                 opts : (map? str? any?) :default {}]",
            "    : (list? number?)",
            f'    "Docstring for step {i}, with a \\"quote\\"."',
            f"    (let [a (+ x {i})",
            "          b (* a 2.5e3)",
            '          c (str y "-" a)]',
            "      (if (> a 10)",
            "        (do (sleep! (make-duration a +seconds+))",
            f"            [a b {i} (count c)])",
            "        (match x",
            "          [0 [1 2 3]]",
            f"          [_ (conj (step-{i} (- x 1) y) (get opts \"k\" 0))]))))",
            "",
        ]
        i += 1
    out += ["  ;; padding"] * (lines - 1 - len(out))
    out.append(")")
    return "\n".join(out) + "\n"


def python(lines: int) -> str:
    out = ["import time", "from flowmetal.time import sleep, make_duration, SECONDS"]
    i = 0
    while len(out) + 16 <= lines:
        out += [
            f"# Function number {i}: computes things.",
            f"def step_{i}(x: int,",
            "             y: str,",
            "             opts: dict[str, object] = {}",
            "             ) -> list[float]:",
            f'    "Docstring for step {i}, with a \\"quote\\"."',
            f"    a = x + {i}",
            "    b = a * 2.5e3",
            '    c = str(y) + "-" + str(a)',
            "    if a > 10:",
            "        sleep(make_duration(a, SECONDS))",
            f"        return [a, b, {i}, len(c)]",
            "    match x:",
            "        case 0: return [1, 2, 3]",
            f"        case _: return step_{i}(x - 1, y) + [opts.get('k', 0)]",
            "",
        ]
        i += 1
    out += ["# padding"] * (lines - len(out))
    return "\n".join(out) + "\n"


def one_form(lines: int = 20) -> str:
    """One top-level form of exactly `lines` lines."""
    body = flowmetal(19).splitlines()[2:17]  # one generated function, fifteen lines
    head = ["(defpackage bench.one",
            "  (require [flowmetal.time :refer [sleep! make-duration +seconds+]])",
            "  ;; a single top-level form"]
    tail = ["  (def limit : int? 10))"]
    text = head + body + tail
    while len(text) < lines:
        text.insert(3, "  ;; padding")
    return "\n".join(text[:lines]) + "\n"


def workspace(files: int = 20, lines: int = 5_000) -> dict[str, str]:
    """A workspace of `files` packages of `lines` lines each, by file name: `ws.p0` holds the
    shared records; package `ws.pK` requires `ws.p0` (referring its records) and its parent
    `ws.p((K-1)//2)` (`:as up`), so the packages form a tree whose leaves require four or
    five others transitively, as a layered application does. Each unit (sixteen lines) is a
    record, or a function taking and returning records, calling its own package's functions,
    the parent's qualified (`up/...`) and the shared records' constructors and accessors."""
    out = {}
    for k in range(files):
        parent = (k - 1) // 2
        head = [f"(defpackage ws.p{k}"]
        if k:
            head.append(f"  (require [ws.p0 :refer [item item? item-name item-cents]]")
            if parent:
                head.append(f"           [ws.p{parent} :as up])")
            else:
                head[-1] += ")"
        else:
            head += ["  (defrecord item [id : int?, name : str?, cents : int?])", ""]
        body, i = list(head), 0
        while len(body) + 16 <= lines - 2:
            if i % 8 == 0:
                body += [
                    f"  ;; Record number {i} of package {k}.",
                    f"  (defrecord order-{k}-{i} [id : int?",
                    f"                          items : (list? {'item?' if k else 'item?'})",
                    "                          note : str?])",
                    "",
                    f"  (defn make-order-{i} [id : int? note : str?] : order-{k}-{i}?",
                    f'    "A new, empty order number `id`."',
                    f"    (order-{k}-{i} id [] note))",
                    "",
                    f"  (defn order-total-{i} [o : order-{k}-{i}?] : int?",
                    '    "What the items of `o` cost together, in cents."',
                    f"    (let [items (order-{k}-{i}-items o)]",
                    "      (if (= (count items) 0)",
                    "        0",
                    f"        (+ (item-cents (first items)) (count (order-{k}-{i}-note o))))))",
                    "",
                ]
            else:
                up = f"(up/step-{i} x y)" if parent and k else f"(+ x {i})"
                base = (i // 8) * 8
                body += [
                    f"  ;; Function number {i}: computes things.",
                    f"  (defn step-{i} [x : int?",
                    "                 y : str?",
                    "                 opts : (map? str? any?) :default {}]",
                    "    : int?",
                    f'    "Docstring for step {i} of package {k}."',
                    f"    (let [a (+ x {i})",
                    f"          it (item a y (* a 100))",
                    f"          o (make-order-{base} a y)]",
                    "      (if (> a 10)",
                    f"        (+ (item-cents it) (order-total-{base} o) {up})",
                    "        (match x",
                    f"          [0 (count (item-name it))]",
                    f"          [_ (+ (step-{i} (- x 1) y) (get opts \"k\" 0))]))))",
                    "",
                    "",
                ]
            i += 1
        body += ["  ;; padding"] * (lines - 2 - len(body))
        body += ["  ;; One mistake per file: an accessor given a number (FM401).",
                 "  (defn mistake [] : int? (item-cents 5)))"]
        out[f"p{k}.flow"] = "\n".join(body) + "\n"
    return out
