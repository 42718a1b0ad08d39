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
    result = CheckResult(files=expand(paths))
    workspace = Workspace()
    for path in result.files:
        source, problems = load(path)
        if problems:
            result.diagnostics += problems
        else:
            workspace.set_file(path, source.text)
    result.diagnostics += workspace.all_diagnostics()
    return result
