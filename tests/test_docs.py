"""The documentation is tested like code.

- Every diagnostic code in the registry has its section in docs/language.md,
  with its name, and the document names no code the registry lacks.
- Every `flowmetal` example there checks with exactly the diagnostics written
  under its lines.
- The README's Quick start holds exactly two commands, and `.ci/run` runs the
  second one.
- The tests the security model and the deployment guide name exist.
"""

from __future__ import annotations

import re

import pytest

from conftest import ROOT
from flowmetal.lang.analysis import check_sources
from flowmetal.lang.diagnostics import CODES

import golden

LANGUAGE = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```flowmetal\n(.*?)```", LANGUAGE, re.S)


def test_every_code_is_documented_and_every_documented_code_exists():
    documented = dict(re.findall(r"^### (FM\d+) ([a-z-]+)$", LANGUAGE, re.M))
    assert documented == {code: entry.name for code, entry in CODES.items()}


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_examples_check_as_the_text_says(example):
    text, expected = golden.parse(example)
    assert golden.actual(check_sources({"example.flow": text})) == expected


def test_each_code_has_an_example_except_unreadable_files():
    shown = {e.code for example in EXAMPLES for e in golden.parse(example)[1]}
    # FM203 takes 12,000 nested brackets: tests/test_deep_nesting.py shows it instead.
    assert shown == set(CODES) - {"FM001", "FM203"}


def _quick_start_commands() -> list[str]:
    section = re.search(r"^## Quick start$(.*?)^## ", README, re.M | re.S).group(1)
    block = re.search(r"```\w*\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    setup, test = _quick_start_commands()
    assert "venv" in setup and "pip install" in setup and "flowmetal check examples" in setup
    assert "flowmetal run examples/wilson.flow job" in setup and "examples/wilson_service.py" in setup
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(rf"^(exec )?{re.escape(test)}$", ci, re.M), f".ci/run does not run {test!r}"


def test_the_readme_example_is_what_check_prints():
    import subprocess
    import sys

    block = re.search(r"```console\n(.*?)```", README, re.S).group(1)
    shown_file = re.search(r"\$ cat broken.flow\n(.*?)\$ flowmetal", block, re.S).group(1)
    shown_output = block.split("$ flowmetal check broken.flow\n")[1]
    cli = ROOT / "tests" / "testdata" / "cli"
    assert (cli / "broken.flow").read_text(encoding="utf-8") == shown_file
    result = subprocess.run([sys.executable, "-m", "flowmetal", "check", "broken.flow"], cwd=cli,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout + result.stderr == shown_output


@pytest.mark.parametrize("doc, least", [("security.md", 10), ("deployment.md", 8)])
def test_every_test_a_document_names_exists(doc, least):
    """The security model and the deployment guide back each claim with the test that shows it."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    named = set(re.findall(r"`(tests/[\w/.-]+)`", text))
    assert len(named) >= least
    missing = [path for path in sorted(named) if not (ROOT / path).exists()]
    assert missing == [], f"docs/{doc} names tests that do not exist: {missing}"


def test_the_deployment_guide_is_linked_from_the_readme_and_the_code_map():
    assert "(docs/deployment.md)" in README
    assert "docs/deployment.md" in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
