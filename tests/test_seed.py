"""Acceptance (SPEC section 3): the seed's example, verbatim, reports each listed
problem at its own line; the corrected copy in examples/ checks clean."""

from __future__ import annotations

import pytest

from conftest import ROOT, TESTDATA
from flowmetal.lang.analysis import check_sources

SEED = (TESTDATA / "seed" / "seed.flow").read_text(encoding="utf-8")
LINES = SEED.splitlines()


@pytest.fixture(scope="module")
def found():
    return [(diag.span.line, diag.code, diag.message) for diag in check_sources({"seed.flow": SEED})]


def line_of(text: str, start: int = 0) -> int:
    """The 1-based line of the first line at or after `start` containing `text`."""
    return next(i for i, line in enumerate(LINES, start=1) if i > start and text in line)


def reported(found, line: int, code: str, *words: str) -> bool:
    return any(l == line and c == code and all(w in m for w in words) for l, c, m in found)


def test_minutes_is_no_member_of_time_unit(found):
    line = line_of("(duration (* x 60) +minutes+)")
    assert reported(found, line, "FM406", "`+minutes+` is no member of `time-unit`")
    assert reported(found, line_of("[(duration x +minutes+)"), "FM406", "`+minutes+`")


def test_fib_is_called_with_two_arguments(found):
    assert reported(found, line_of("(+ (fib (- x 1) (- x 2)))"), "FM401", "`fib` takes 1 argument", "2 were given")


@pytest.mark.parametrize("wrong, right", [("(sleep (backoff-fn", "sleep!"), ("(retry-http* f", "retry-http"),
                                          ("(post \"http", "post!"), ("(get-callback callback)", "get-callback!")])
def test_unknown_names_with_the_bang_name_suggested(found, wrong, right):
    name = wrong.split()[0].lstrip("(")
    assert reported(found, line_of(wrong), "FM301", f"unknown name `{name}`", f"did you mean `{right}`?")


def test_the_shadowing_time_package_lacks_make_duration_and_sleep(found):
    line = line_of(":refer [with-timeout!, timeout?, make-duration")
    assert reported(found, line, "FM304", "`make-duration` is not defined by package `flowmetal.time`")
    assert reported(found, line, "FM304", "`sleep!` is not defined by package `flowmetal.time`")
    assert reported(found, 1, "FM306", "shadows the standard package")


def test_both_duration_calls_are_wrong_twice(found):
    first = line_of("(duration 3 :hours)")
    second = line_of("(duration 3 :hours)", first)
    for line in (first, second):
        assert reported(found, line, "FM302", "`duration` is defined in package `flowmetal.time`",
                        "does not refer")
        assert reported(found, line, "FM403", "expected time-unit?, found keyword?")


def test_job_timeout_is_unused(found):
    assert reported(found, line_of("job-timeout"), "FM602", "parameter `job-timeout` is never used")


def test_no_problem_is_reported_twice(found):
    assert len(found) == len(set(found))
    # The failed refers of `make-duration` and `sleep!` are reported once, at the
    # refer, not again at each use.
    assert not any("make-duration" in m for l, c, m in found if c == "FM301")


def test_the_corrected_copy_checks_clean():
    text = (ROOT / "examples" / "wilson.flow").read_text(encoding="utf-8")
    assert check_sources({"wilson.flow": text}) == []
