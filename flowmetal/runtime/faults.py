"""A runtime fault: the error a run fails with, and its Flowmetal stack trace.

Its own module, below the evaluator (`machine`), its fast path (`fast`) and the
built-in functions (`primitives`), because all three raise it: with `Fault` here,
they import one another in one direction only.
"""

from __future__ import annotations

TRACE_KEEP = 20       # the innermost calls a fault's stack trace keeps


class Fault(Exception):
    """A runtime fault: the run fails, with a Flowmetal stack trace (innermost call first;
    `omitted` outer calls left out)."""

    def __init__(self, message: str, trace: list[tuple[str, str, int]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.trace = trace or []
        self.omitted = 0

    def set_trace(self, trace: list[tuple[str, str, int]]) -> None:
        """The stack trace, trimmed to its innermost `TRACE_KEEP` calls."""
        self.trace, self.omitted = trace[:TRACE_KEEP], max(0, len(trace) - TRACE_KEEP)

    def render(self) -> str:
        lines = [f"fault: {self.message}"]
        for package, function, line in self.trace:
            lines.append(f"  in {package}/{function}, line {line}")
        if self.omitted:
            lines.append(f"  ... and {self.omitted} more calls")
        return "\n".join(lines)
