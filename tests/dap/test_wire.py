"""The protocol's framing on its own: whole messages in and out, and clear errors for broken ones."""

from __future__ import annotations

import io

import pytest

from flowmetal.dap.wire import FramingError, encode, read_message


def test_messages_round_trip_with_other_headers_and_unicode():
    stream = io.BytesIO(encode({"a": "é✓"}) + b"Content-Type: x\r\n" + encode({"b": [1, 2]}))
    assert read_message(stream) == {"a": "é✓"}
    assert read_message(stream) == {"b": [1, 2]}
    assert read_message(stream) is None


@pytest.mark.parametrize("data, problem", [
    (b"Content-Length: x\r\n\r\n{}", "not a number"),
    (b"Content-Length: 10\r\n\r\n{}", "ended 8 bytes into a 10-byte message"),
    (b"Content-Type: json\r\n\r\n{}", "without a Content-Length"),
    (b"Content-Length: 2\r\n\r\n[]", "not a JSON object"),
    (b"Content-Length: 3\r\n\r\n{x}", "not JSON"),
    (b"garbage\r\n\r\n", "without `:`"),
])
def test_a_broken_message_is_a_framing_error_naming_the_problem(data, problem):
    with pytest.raises(FramingError, match=problem):
        read_message(io.BytesIO(data))
