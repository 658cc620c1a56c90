"""Line framing: each line stands alone, oversize lines are discarded without buffering them."""

from __future__ import annotations

import os
import threading

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.transport.framing import LineReader, OversizedLine, decode, encode, recover_id


def read_all(data: bytes, chunks: list[int] | None = None, limit: int = 1 << 20) -> list[bytes | OversizedLine]:
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        position = 0
        for size in chunks or [len(data)]:
            os.write(write_fd, data[position : position + size])
            position += size
        os.write(write_fd, data[position:])
        os.close(write_fd)

    writer = threading.Thread(target=feed)
    writer.start()
    lines = list(LineReader(read_fd, limit))
    writer.join(10)
    os.close(read_fd)
    return lines


def test_lines_split_across_reads_come_out_whole() -> None:
    assert read_all(b'{"a":1}\n{"b":2}\n', chunks=[3, 5, 1]) == [b'{"a":1}', b'{"b":2}']


def test_a_last_line_without_newline_is_still_read() -> None:
    assert read_all(b'{"a":1}') == [b'{"a":1}']


def test_an_oversized_line_becomes_a_marker_and_the_next_line_is_intact() -> None:
    big = b'{"jsonrpc":"2.0","id":42,"method":"x","params":"' + b"y" * 5000 + b'"}'
    lines = read_all(big + b"\n" + b'{"ok":1}\n', chunks=[100] * 60, limit=1024)
    assert isinstance(lines[0], OversizedLine) and lines[0].size == len(big)
    assert len(lines[0].prefix) <= 4096
    assert recover_id(lines[0].prefix) == 42
    assert lines[1] == b'{"ok":1}'


def test_the_id_of_an_oversized_line_is_recovered_only_when_it_leads() -> None:
    assert recover_id(b'{"jsonrpc":"2.0","id":"abc","method":') == "abc"
    assert recover_id(b'{"method":"generate","id":7,') == 7
    assert recover_id(b'{"params":{"id":9},"id":3') is None


def test_integers_beyond_64_bits_still_parse() -> None:
    assert decode(b'{"id":123456789012345678901234567890}')["id"] == 123456789012345678901234567890


def test_encoded_messages_never_span_lines() -> None:
    line = encode({"text": "a\nb\r\nc\u2028"})
    assert line.count(b"\n") == 1 and line.endswith(b"\n")


messages = st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3), max_size=8)


@settings(max_examples=100, deadline=None)
@given(messages, st.lists(st.integers(1, 50), max_size=10))
def test_any_messages_cut_at_any_points_decode_to_the_same_messages(msgs: list[dict], cuts: list[int]) -> None:
    data = b"".join(encode(m) for m in msgs)
    assert [orjson.loads(line) for line in read_all(data, cuts)] == msgs


def test_inputs_only_the_stdlib_parser_would_accept_are_parse_errors() -> None:
    import pytest

    for bad in (
        b'{"id":1234567890123456789,"x":"\\ud800"}',
        b'{"id":1234567890123456789,"x":1e400}',
        b"[" * 100000 + b"1234567890123456789" + b"]" * 100000,
        b'{"a":NaN}',
    ):
        with pytest.raises(ValueError):
            decode(bad)


def test_an_id_beyond_64_bits_is_echoed_exactly() -> None:
    big = 123456789012345678901234567890
    assert orjson.loads(encode({"id": 1})) == {"id": 1}
    assert b"123456789012345678901234567890" in encode({"jsonrpc": "2.0", "id": big, "result": None})


def test_embedding_rows_are_written_as_plain_json_floats_on_both_encoders() -> None:
    """embed results carry NumPy float32 rows: orjson writes them itself, and the stdlib fallback
    (an id beyond 64 bits) makes them lists; either way the line holds JSON numbers."""
    import numpy as np

    rows = list(np.ascontiguousarray([[0.25, -0.5], [1.0, 0.0]], dtype="<f4"))
    for request_id in (1, 2**70):
        line = encode({"jsonrpc": "2.0", "id": request_id, "result": {"data": rows}})
        assert decode(line.rstrip(b"\n"))["result"]["data"] == [[0.25, -0.5], [1.0, 0.0]]
