"""`flowmetal check`: which files to look at, reading them, and what was found.

Paths name files or directories; a directory is walked for `*.flow` files in
sorted order, skipping directories whose name starts with a dot (`.git`,
`.venv`, `.flowmetal`). A file named explicitly is checked whatever its
extension. A path that does not exist is a `PathError` (the command line turns
it into a clear message and exit status 2), never a traceback.

A file's bytes must be UTF-8; when they are not, the file gets one FM001
diagnostic at the first bad byte and is not read further. The files given are
checked together, as one program: a package defined in one can be required
from another.

A file named explicitly brings in the files beside it that define the packages
it requires, found as `flowmetal run` finds them (`driving.program_files`,
reading only what is needed), so `check FILE` and `run FILE` see the same
program from any of its files. Their diagnostics are reported too, under the
path the user would type (FILE's folder as given, joined with the file's
name), and each file is checked once however it was reached.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from flowmetal.lang import diagnostics as d
from flowmetal.lang.analysis import Workspace
from flowmetal.lang.diagnostics import Diagnostic
from flowmetal.lang.source import Source


class PathError(Exception):
    """A path given to check that does not exist or cannot be listed."""


@dataclass
class CheckResult:
    files: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(diag.is_error for diag in self.diagnostics)


def expand(paths: list[str]) -> list[str]:
    """The files named by `paths`, directories walked; raises PathError for a missing one."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(n for n in dirs if not n.startswith("."))
                files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".flow")]
        elif os.path.isfile(path):
            files.append(path)
        elif os.path.lexists(path):
            raise PathError(f"{path}: not a regular file or directory")
        else:
            raise PathError(f"{path}: no such file or directory")
    return files


def load(path: str) -> tuple[Source, list[Diagnostic]]:
    """A file's source, or a placeholder source and an FM001 diagnostic."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        source = Source("", path)
        return source, [Diagnostic.of(d.UNREADABLE_FILE, source.span(0, 0),
                                      f"cannot read the file: {error.strerror or error}")]
    try:
        return Source(data.decode("utf-8"), path), []
    except UnicodeDecodeError as error:
        source = Source(data.decode("utf-8", errors="replace"), path)
        at = len(data[: error.start].decode("utf-8"))
        return source, [Diagnostic.of(
            d.UNREADABLE_FILE, source.span(at, at + 1),
            f"the file is not valid UTF-8: byte 0x{data[error.start]:02x} cannot start or continue a character")]


def check_paths(paths: list[str]) -> CheckResult:
    from flowmetal.runtime.driving import program_files
    named = {path for path in paths if os.path.isfile(path)}
    result = CheckResult()
    workspace = Workspace()
    seen: set[str] = set()

    def add(path: str) -> bool:
        """Read and add a file not added yet: whether it could be read."""
        key = os.path.realpath(path)
        if key in seen:
            return True
        seen.add(key)
        result.files.append(path)
        source, problems = load(path)
        result.diagnostics.extend(problems)
        if not problems:
            workspace.set_file(path, source.text)
        return not problems

    for path in expand(paths):
        if not add(path) or path not in named:
            continue  # a folder's files are all there already: what they require is beside them
        folder = os.path.dirname(path)
        unreadable: dict[str, str] = {}
        try:
            required = program_files(path, unreadable=unreadable)
        except OSError:  # FILE itself changed under us: `load` has said what it could
            continue
        for name in required:
            add(os.path.join(folder, name))
        for name, why in sorted(unreadable.items()):
            other = os.path.join(folder, name)
            if os.path.realpath(other) in seen:
                continue
            if os.path.isfile(other):  # says where a file that is no UTF-8 goes wrong
                add(other)
            else:
                seen.add(os.path.realpath(other))
                source = Source("", other)
                result.files.append(other)
                result.diagnostics.append(Diagnostic.of(d.UNREADABLE_FILE, source.span(0, 0),
                                                        f"cannot read the file: {why}"))
    result.diagnostics += workspace.all_diagnostics()
    return result
