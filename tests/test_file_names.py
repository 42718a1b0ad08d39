"""The one rule for a program's file names, and paths made from them (flowmetal/lang/filenames.py).

The rule on tables of bad and good names; `inside`, which makes a path from a name
only when it stays in its folder, symlinks resolved; and `write_new`, which writes
a file only as a new one: never through a symlink, never over another file.
"""

from __future__ import annotations

import os
import re
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bad_stores import BAD_NAMES, GOOD_NAMES
from flowmetal.lang import filenames


@pytest.mark.parametrize("name,says", BAD_NAMES, ids=[repr(n[:20]) for n, _ in BAD_NAMES])
def test_a_bad_name_is_refused_saying_why(name, says):
    assert says in filenames.problem(name)
    with pytest.raises(filenames.FileNameError) as caught:
        filenames.check(name)
    message = str(caught.value)
    assert message.startswith("bad file name ") and says in message
    assert "\0" not in message and "\n" not in message and len(message) < 300


@pytest.mark.parametrize("name", GOOD_NAMES, ids=[n[:20] for n in GOOD_NAMES])
def test_a_plain_relative_name_is_a_file_name(name):
    assert filenames.problem(name) is None
    assert filenames.check(name) == name


@pytest.mark.parametrize("name,says", [(None, "a string"), (3, "a string"), ("x\ud800.flow", "lone surrogate"),
                                       ("a/\u2028.flow", "control characters"), ("...", "only dots"),
                                       ("a/ . /b.flow", "only dots and spaces")])
def test_names_no_file_system_takes_are_refused(name, says):
    assert says in filenames.problem(name)


def test_inside_keeps_a_path_in_its_folder_symlinks_resolved(tmp_path):
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "out").symlink_to(outside, target_is_directory=True)
    (folder / "in").symlink_to(folder / "sub", target_is_directory=True)
    assert filenames.inside(folder, "sub/a.flow") == folder / "sub" / "a.flow"
    assert filenames.inside(folder, "in/a.flow") == folder / "in" / "a.flow"
    assert filenames.inside(folder, "out/a.flow") is None
    for name, _ in BAD_NAMES:
        assert filenames.inside(folder, name) is None
    assert filenames.inside(str(folder) + "\0", "a.flow") is None


def test_write_new_writes_a_read_only_file_once(tmp_path):
    path = filenames.write_new(tmp_path, "sources/abc/dir/a.flow", "(text)")
    assert path == tmp_path / "sources" / "abc" / "dir" / "a.flow"
    assert path.read_text(encoding="utf-8") == "(text)"
    assert not stat.S_IMODE(path.stat().st_mode) & 0o222
    # The same text again: the copy is there already.
    assert filenames.write_new(tmp_path, "sources/abc/dir/a.flow", "(text)") == path
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.flow"]  # no temporary file left behind


def test_write_new_never_replaces_a_file_it_did_not_write(tmp_path):
    (tmp_path / "sources").mkdir()
    theirs = tmp_path / "sources" / "a.flow"
    theirs.write_text("someone else's", encoding="utf-8")
    with pytest.raises(FileExistsError, match="left as it is"):
        filenames.write_new(tmp_path, "sources/a.flow", "(text)")
    assert theirs.read_text(encoding="utf-8") == "someone else's"
    # A longer text that starts like the file there is no copy either.
    with pytest.raises(FileExistsError):
        filenames.write_new(tmp_path, "sources/a.flow", "someone else's and more")


def test_write_new_never_writes_through_a_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "store"
    (folder / "sources").mkdir(parents=True)
    (folder / "sources" / "a.flow").symlink_to(victim)          # the file itself
    (folder / "sources" / "linked").symlink_to(elsewhere)       # a folder on the way
    (folder / "hop").symlink_to(elsewhere)
    with pytest.raises(FileExistsError):
        filenames.write_new(folder, "sources/a.flow", "(text)")
    with pytest.raises(FileExistsError):
        filenames.write_new(folder, "sources/a.flow", "precious")  # same text, but not a file of ours
    with pytest.raises(filenames.FileNameError, match="not a folder"):
        filenames.write_new(folder, "sources/linked/a.flow", "(text)")
    with pytest.raises(filenames.FileNameError, match="not a folder"):
        filenames.write_new(folder, "hop/a.flow", "(text)")
    assert victim.read_text(encoding="utf-8") == "precious"
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name,says", BAD_NAMES[:7], ids=[repr(n[:20]) for n, _ in BAD_NAMES[:7]])
def test_write_new_refuses_a_bad_name(tmp_path, name, says):
    folder = tmp_path / "deep" / "er" / "store"
    folder.mkdir(parents=True)
    with pytest.raises(filenames.FileNameError, match="bad file name"):
        filenames.write_new(folder, name, "(text)")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert os.listdir(folder) == []


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab. /\\:é\x00\x85\u2028\u00a0")), max_size=12)
       | st.text(max_size=300))
def test_the_openapi_pattern_states_exactly_the_rule(name):
    # The HTTP API's schema and the server must agree on every name (schemathesis relies on it).
    by_pattern = re.fullmatch(filenames.NAME_PATTERN, name) is not None and len(name) <= filenames.MAX_NAME
    assert by_pattern == (filenames.problem(name) is None), name
