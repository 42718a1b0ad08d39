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
