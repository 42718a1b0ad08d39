"""Text from programs and runs, made safe to print on a terminal.

A program's source, its `log!` lines, values it received from outside and
messages quoting them can hold any character. Printed raw, an escape sequence
(`ESC [ ...`, or the one-byte C1 controls) moves the cursor, rewrites earlier
lines, sets the window title or worse; bidirectional overrides make a line
read differently from what it holds ("Trojan Source"); a lone UTF-16
surrogate cannot even be encoded. `shown` writes each such character as its
`\\uXXXX` escape (the reader's own syntax), so what is printed is inert and
still says exactly what was there. Tabs are kept (they line up carets); line
breaks are escaped unless the caller keeps them.
"""

from __future__ import annotations

import re

# C0 controls but tab (and, optionally, newline), DEL, C1 controls, bidirectional
# embeddings, overrides and isolates, and surrogates.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_KEEP_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    return f"\\u{ord(m.group()):04x}"


def shown(text: str, keep_lines: bool = False) -> str:
    """`text` with every character that could act on a terminal written as `\\uXXXX`."""
    pattern = _UNSAFE_KEEP_LINES if keep_lines else _UNSAFE
    return pattern.sub(_escape, text) if pattern.search(text) else text
