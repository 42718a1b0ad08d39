"""Building collections one item at a time: persistent lists and maps.

A map of n keys built by `assoc` and a list of n items built by `conj` (and,
informational, by `cons`), each in a recursive function that adds one item a
call, evaluated in memory (start-up and checking excluded: the program is
checked and compiled once first).

- `map-16k`, `list-16k`: n = 16,000, against CPython doing the same: the same
  recursive function adding to a dict (`d[i] = i * i`) or a list (`append`).
  Target: <= 50x. The detail also gives the ratio against a plain `for` loop.
- `map-growth`, `list-growth`, `cons-growth`: the time for n = 16,000 against
  n = 4,000: 4x the items. Target: <= 6x (linear is 4x; copying the whole
  collection at each update, as tuples and dicts did, is 16x).

Each figure is a median of several runs, the two sides interleaved.
"""

from __future__ import annotations

import statistics
import sys
import time

from flowmetal.runtime import evaluate

PROGRAM = """\
(defpackage bench.collections
  (defn build-map [m : (map? int? int?) i : int? n : int?] : (map? int? int?)
    (if (= i n) m (build-map (assoc m i (* i i)) (+ i 1) n)))
  (defn build-list [xs : (list? int?) i : int? n : int?] : (list? int?)
    (if (= i n) xs (build-list (conj xs (* i i)) (+ i 1) n)))
  (defn build-cons [xs : (list? int?) i : int? n : int?] : (list? int?)
    (if (= i n) xs (build-cons (cons (* i i) xs) (+ i 1) n)))
  (defn maps [n : int?] : int? (count (build-map {} 0 n)))
  (defn lists [n : int?] : int? (count (build-list [] 0 n)))
  (defn conses [n : int?] : int? (count (build-cons [] 0 n))))
"""


def build_map(m: dict, i: int, n: int) -> dict:
    if i == n:
        return m
    m[i] = i * i
    return build_map(m, i + 1, n)


def build_list(xs: list, i: int, n: int) -> list:
    if i == n:
        return xs
    xs.append(i * i)
    return build_list(xs, i + 1, n)


def loop_map(n: int) -> dict:
    m = {}
    for i in range(n):
        m[i] = i * i
    return m


def loop_list(n: int) -> list:
    xs = []
    for i in range(n):
        xs.append(i * i)
    return xs


def _time(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def _python(fn, *args) -> float:
    """CPython's side; its recursion needs a deeper stack than Python's default (given only for it:
    the evaluator's fast path runs with the default)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, args[-1] + 1_000))
    try:
        return _time(fn, *args)[0]
    finally:
        sys.setrecursionlimit(limit)


def _ours(entry: str, n: int) -> float:
    elapsed, value = _time(evaluate, PROGRAM, f"bench.collections/{entry}", [n])
    assert value == n, (entry, n, value)
    return elapsed


def run(quick: bool = False) -> list[dict]:
    small, large = (1_000, 4_000) if quick else (4_000, 16_000)
    repeats = 1 if quick else 7
    for entry in ("maps", "lists", "conses"):
        _ours(entry, 10)  # checks and compiles the program once
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for entry in ("maps", "lists", "conses"):
            times.setdefault(f"{entry}-small", []).append(_ours(entry, small))
            times.setdefault(f"{entry}-large", []).append(_ours(entry, large))
        times.setdefault("py-map", []).append(_python(build_map, {}, 0, large))
        times.setdefault("py-list", []).append(_python(build_list, [], 0, large))
        times.setdefault("loop-map", []).append(_time(loop_map, large)[0])
        times.setdefault("loop-list", []).append(_time(loop_list, large)[0])
    m = {k: statistics.median(v) for k, v in times.items()}
    k = f"{large // 1000}k"
    out = []
    for name, ours, py, loop in (("map", m["maps-large"], m["py-map"], m["loop-map"]),
                                 ("list", m["lists-large"], m["py-list"], m["loop-list"])):
        out.append({"name": f"{name}-{k}", "value": ours, "reference": py, "ratio": ours / py, "target": 50.0,
                    "unit": "x CPython",
                    "detail": f"{ours * 1000:.0f} ms, CPython recursion {py * 1000:.1f} ms, "
                              f"a for loop {loop * 1000:.1f} ms ({ours / loop:.0f}x) (median of {repeats})"})
    for name, entry in (("map", "maps"), ("list", "lists"), ("cons", "conses")):
        a, b = m[f"{entry}-small"], m[f"{entry}-large"]
        out.append({"name": f"{name}-growth", "value": b, "reference": a, "ratio": b / a, "target": 6.0,
                    "unit": "x for 4x n",
                    "detail": f"n={large:,} {b * 1000:.0f} ms, n={small:,} {a * 1000:.0f} ms (median of {repeats})"})
    return out
