"""The benchmarks run (quick sizes) and report every figure; timing decides nothing here."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_bench_runs_and_reports_each_figure_with_its_target():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    figures = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(figures) >= {"read-1k", "read-form"}
    # The language server on a workspace of several files: first diagnostics, background, memory
    assert {name.rsplit("-", 1)[0] for name in figures if name.startswith("ws-")} == {
        "ws-first-diagnostics", "ws-background", "ws-memory"}
    # PostgreSQL against DBOS: measured on PostgreSQL, or on SQLite (named so) where its store is refused
    pg = [name for name in figures if name.startswith("pg-")]
    assert {name.removesuffix("-sqlite") for name in pg} == {
        "pg-step-cost", "pg-connector-step", "pg-inline-step", "pg-runs-1", "pg-runs-2", "pg-runs-4", "pg-wake-latency"}
    for name in pg:
        detail = figures[name]["detail"]
        assert name.endswith("-sqlite") == ("Flowmetal on SQLite" in detail), (name, detail)
        if "PostgreSQL store not available" in detail:
            assert "PostgreSQL store not available" in result.stderr
    for figure in figures.values():
        assert figure["ratio"] > 0 and figure["target"] > 0 and figure["unit"]


def test_bench_programs_have_the_promised_shape():
    sys.path.insert(0, str(ROOT / "bench"))
    import programs
    from flowmetal.lang.syntax import read

    for lines in (100, 1000, 10_000):
        flow, py = programs.flowmetal(lines), programs.python(lines)
        assert len(flow.splitlines()) == len(py.splitlines()) == lines
        assert read(flow).diagnostics == []
        compile(py, "generated.py", "exec")
    form = programs.one_form(20)
    assert len(form.splitlines()) == 20 and read(form).diagnostics == []
    assert len(read(form).forms) == 1
