"""Run every benchmark and print its figure against its target.

    python bench/run.py [--quick] [--json]

Each `bench/bench_*.py` module has `run(quick) -> list of results`; a result
names its figure, the ratio (or absolute figure) and the target. `--quick`
runs small sizes once, to check that the benchmarks work, not to measure.
Timing never decides a test's outcome: these figures go into
docs/performance.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one pass: a smoke test")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("names", nargs="*", help="only these benchmark modules (e.g. reader)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    results = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if args.names and name not in args.names:
            continue
        results += importlib.import_module(path.stem).run(quick=args.quick)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        verdict = "ok" if r["ratio"] <= r["target"] else "OVER TARGET"
        print(f"{r['name']:<12} {r['ratio']:8.2f} {r['unit']:<12} target <= {r['target']:<5} {verdict:<12} {r['detail']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
