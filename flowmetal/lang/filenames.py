"""The names of a program's files, and the paths made from them.

A run stores its program as file names mapped to texts, and tools turn those
names back into paths: the language server looks for a run's files in the
folder they were read from, and writes read-only copies of them beside the
store. A name comes from wherever a program comes from: the command line, a
request to `serve`, or a store that anyone may have written (one shipped
inside a repository, or read from a remote serve). A name such as `../../x` or
`/home/me/.bashrc` must never become a path outside its folder, so:

- one rule says what a file name is (`problem`, `check`), and every place a
  program enters or is read back checks its names with it;
- a path is made from a name only inside a given folder, checked again after
  resolving symlinks (`inside`);
- a file is written only when it is new (`write_new`): never through a
  symlink, never over a file this code did not write.

The rule: a plain relative name, `file.flow` or `dir/file.flow`. Segments are
separated by `/`; none is empty, `.` or `..`, or made only of dots and spaces
(Windows trims those to nothing); no `\\`, no `:` (drive letters, Windows
streams), no control characters; at most `MAX_SEGMENT` characters a segment
and `MAX_NAME` in all (the limits of common file systems, counted in
characters so that the HTTP API's schema can state the rule exactly:
`NAME_PATTERN`). A name a file system still cannot hold is only a copy that
cannot be written.
"""

from __future__ import annotations

import os
import secrets
import stat
import unicodedata
from pathlib import Path

MAX_SEGMENT = 255
MAX_NAME = 1024
# The rule as a regular expression, for the OpenAPI document (with `maxLength` MAX_NAME): segments
# of allowed characters, none made only of dots and spaces (which also rules out `.` and `..`).
_SEGMENT = rf"(?![. ]*(?:/|$))[^/\\:\x00-\x1f\x7f-\x9f\u2028\u2029]{{1,{MAX_SEGMENT}}}"
NAME_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
_UNSAFE = {"\\": "a backslash", ":": "a colon (a drive letter or a Windows stream)"}


class FileNameError(ValueError):
    """A program's file name that could name a file outside the program's folder, or none."""


def shown(name: object) -> str:
    """A name for a message: quoted, with control characters escaped, long ones cut short."""
    if not isinstance(name, str):
        return f"(a {type(name).__name__} value, not a string)"
    cut = name if len(name) <= 60 else name[:60]
    text = f"`{cut}`" if cut.isprintable() else repr(cut)
    return text if cut is name else f"{text}… ({len(name)} characters)"


def problem(name: object) -> str | None:
    """Why `name` is not a program's file name, or None when it is one."""
    if not isinstance(name, str):
        return "a file name must be a string"
    if not name:
        return "a file name must not be empty"
    if len(name) > MAX_NAME:
        return f"a file name may be at most {MAX_NAME} characters long"
    if name.startswith("/"):
        return "a file name must be relative, not start with `/`"
    for char in name:
        if char in _UNSAFE:
            return f"a file name must not contain {_UNSAFE[char]}"
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp"):
            return f"a file name must not contain control characters (here U+{ord(char):04X})"
        if category == "Cs":
            return f"a file name must be valid Unicode (here a lone surrogate U+{ord(char):04X})"
    for segment in name.split("/"):
        if segment in (".", ".."):
            return f"a file name must not have a `{segment}` segment"
        if not segment:
            return "a file name must not have an empty segment (`//`, or a trailing `/`)"
        if not segment.strip(". "):
            return "a file name must not have a segment of only dots and spaces"
        if len(segment) > MAX_SEGMENT:
            return f"each part of a file name between `/` may be at most {MAX_SEGMENT} characters long"
    return None


def check(name: object) -> str:
    """`name`, when it is a program's file name; else `FileNameError` saying what is wrong."""
    why = problem(name)
    if why is not None:
        raise FileNameError(f"bad file name {shown(name)}: {why}")
    return name  # type: ignore[return-value]


def inside(folder: str | os.PathLike, name: str) -> Path | None:
    """`folder/name`, when `name` is a file name and the path, symlinks resolved, stays
    inside the folder (symlinks resolved too); else None."""
    if problem(name) is not None:
        return None
    path = Path(folder) / name
    try:
        if not path.resolve().is_relative_to(Path(folder).resolve()):
            return None
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL in `folder`
        return None
    return path


# Walking down from a folder by descriptors (`openat`) leaves no moment in which a
# folder on the way could be swapped for a symlink; where that is missing, the
# path is checked before the file is made.
_BY_DESCRIPTOR = os.open in os.supports_dir_fd and os.mkdir in os.supports_dir_fd and os.link in os.supports_dir_fd
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def write_new(folder: str | os.PathLike, name: str, text: str) -> Path:
    """Write `text` as the read-only file `name` inside `folder`: its path.

    The folders on the way are made as needed and must be real folders, not
    symlinks. The file is made whole under a temporary name and then linked
    into place, which fails rather than replace anything: a file already there
    is left alone, and taken as this one only when it is a plain file holding
    exactly `text` (a copy written before). Raises `FileNameError` for a bad
    name or a symlink on the way, `FileExistsError` when another file has the
    name, `OSError` when the file system refuses."""
    check(name)
    parts = name.split("/")
    path = Path(folder).joinpath(*parts)
    data = text.encode("utf-8")
    if not _BY_DESCRIPTOR:
        return _write_new_by_path(Path(folder), parts, path, data)
    fd = os.open(folder, os.O_RDONLY | _DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                below = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
            except OSError as error:  # ELOOP: a symlink; ENOTDIR: a file
                raise FileNameError(f"{path}: `{part}` on the way is not a folder (a symlink or a file): "
                                    f"nothing written ({error.strerror})") from None
            os.close(fd)
            fd = below
        last = parts[-1]
        temporary = f".flowmetal-{secrets.token_hex(8)}.tmp"
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o444, dir_fd=fd)
        try:
            with os.fdopen(out, "wb") as stream:
                stream.write(data)
            try:
                os.link(temporary, last, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
            except FileExistsError:
                if not _holds(fd, last, data):
                    raise FileExistsError(f"{path} exists and is not a copy of this text: left as it is") from None
        finally:
            os.unlink(temporary, dir_fd=fd)
    finally:
        os.close(fd)
    return path


def _holds(fd: int, name: str, data: bytes) -> bool:
    """Whether `name` in the folder `fd` is a plain file (not a symlink) holding exactly `data`."""
    try:
        found = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=fd)
    except OSError:
        return False
    with os.fdopen(found, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return False
        return stream.read(len(data) + 1) == data


def _write_new_by_path(folder: Path, parts: list[str], path: Path, data: bytes) -> Path:
    current = folder
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise FileNameError(f"{path}: `{part}` on the way is not a folder (a symlink or a file): nothing written")
        current.mkdir(exist_ok=True)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise FileNameError(f"{path} is not inside {folder}: nothing written")
    try:
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_BINARY", 0), 0o444)
    except FileExistsError:
        if path.is_symlink() or not path.is_file() or path.read_bytes() != data:
            raise FileExistsError(f"{path} exists and is not a copy of this text: left as it is") from None
        return path
    with os.fdopen(out, "wb") as stream:
        stream.write(data)
    return path


__all__ = ["FileNameError", "MAX_NAME", "MAX_SEGMENT", "check", "inside", "problem", "shown", "write_new"]
