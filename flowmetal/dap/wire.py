"""The Debug Adapter Protocol's framing: each message a `Content-Length: N` header block,
an empty line, then N bytes of UTF-8 JSON.

Kept apart from the debugging logic so that it can be tested on its own and the session
never sees bytes. Reading is strict about the header (a missing or non-numeric length is a
`FramingError` naming what was read) and tolerant of other headers, which it ignores, as
the protocol allows.
"""

from __future__ import annotations

import json
import threading
from typing import BinaryIO

MAX_BODY = 64 * 1024 * 1024   # bytes: a larger message is refused, not read


class FramingError(Exception):
    """The stream does not hold a well-framed message: a message naming the problem."""


def read_message(stream: BinaryIO) -> dict | None:
    """The next message, or None at the end of the stream (between messages)."""
    length = None
    first = True
    headers: list[str] = []
    while True:
        line = stream.readline()
        if not line:
            if first:
                return None
            raise FramingError("the stream ended inside a message's header")
        first = False
        if line in (b"\r\n", b"\n"):
            if length is None:
                if not headers:  # an empty line between messages: skip it
                    first = True
                    continue
                raise FramingError(f"a message without a Content-Length header (headers: {', '.join(headers)})")
            break
        name, sep, value = line.decode("ascii", "replace").partition(":")
        headers.append(name.strip()[:40])
        if not sep:
            raise FramingError(f"a header line without `:`: {line[:80]!r}")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise FramingError(f"Content-Length is not a number: {value.strip()[:40]!r}") from None
            if not 0 <= length <= MAX_BODY:
                raise FramingError(f"Content-Length {length} is out of bounds (0 to {MAX_BODY})")
    body = stream.read(length)
    if len(body) < length:
        raise FramingError(f"the stream ended {length - len(body)} bytes into a {length}-byte message")
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise FramingError(f"a message's body is not JSON: {error}") from None
    if not isinstance(message, dict):
        raise FramingError("a message's body is not a JSON object")
    return message


def encode(message: dict) -> bytes:
    body = json.dumps(message, ensure_ascii=False).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Writer:
    """Writes whole messages, one at a time from any thread (events come from the stepping thread)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def write(self, message: dict) -> None:
        data = encode(message)
        with self._lock:
            self.stream.write(data)
            self.stream.flush()
