"""Bad input of every kind gets a precise error, never a crash, and other streams are unaffected."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import MODEL, checked, spawn_runtime
from tests.support.harness import RuntimeClient

LIMIT = 4096


@pytest.fixture(scope="module")
def small_lines_runtime() -> Iterator[RuntimeClient]:
    client = spawn_runtime("--max-line-bytes", str(LIMIT))
    client.request("load_model", {"model_id": MODEL})
    yield client
    client.close()


@pytest.fixture
def small_lines(small_lines_runtime: RuntimeClient) -> Iterator[RuntimeClient]:
    """After each test, every message the runtime wrote still fits schemas/ and it is alive."""
    yield from checked(small_lines_runtime)


def responses_after(client: RuntimeClient, start: int, count: int, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in list(client.messages)[start:] if isinstance(m, list) or "method" not in m]
        if len(found) >= count:
            return found
        time.sleep(0.01)
    raise TimeoutError(f"expected {count} responses")


CASES = [
    (b"{not json", -32700, None),
    (b'{"jsonrpc":"2.0","id":1,"method":"runtime/info"', -32700, None),
    (b"\xff\xfe\xfd", -32700, None),
    (b'"just a string"', -32600, None),
    (b'{"jsonrpc":"2.0","id":2}', -32600, 2),
    (b'{"jsonrpc":"1.0","id":3,"method":"runtime/info"}', -32600, 3),
    (b'{"jsonrpc":"2.0","id":[1],"method":"runtime/info"}', -32600, None),
    (b'{"jsonrpc":"2.0","id":4,"method":"no/such"}', -32601, 4),
    (b'{"jsonrpc":"2.0","id":5,"method":"generate","params":[1,2]}', -32602, 5),
    (b'{"jsonrpc":"2.0","id":6,"method":"generate","params":{"model_id":7}}', -32602, 6),
    (b'{"jsonrpc":"2.0","id":"seven","method":"tokenize","params":{"model_id":"tiny-chat","text":1}}', -32602, "seven"),
    (b'{"jsonrpc":"2.0","id":8,"method":"load_model","params":{"model_id":"x","unknown":true}}', -32602, 8),
    (b"[]", -32600, None),
    (b'{"jsonrpc":"2.0","id":1,"method":"\\ud800x","params":{"n":1234567890123456789}}', -32700, None),
    (b"[" * 1900 + b"1234567890123456789" + b"]" * 1900, -32700, None),
    (b'{"jsonrpc":"2.0","id":9,"method":"runtime/state","params":{"x":1e400,"n":12345678901234567890}}', -32700, None),
]


def test_an_id_beyond_64_bits_comes_back_exactly(small_lines: RuntimeClient) -> None:
    big = 123456789012345678901234567890
    start = len(small_lines.messages)
    small_lines.send_raw(b'{"jsonrpc":"2.0","id":%d,"method":"no/such"}\n' % big)
    small_lines.request("runtime/state")
    assert responses_after(small_lines, start, 2)[0]["id"] == big


@pytest.mark.parametrize("line, code, echoed", CASES)
def test_each_malformed_line_gets_exactly_one_precise_error(
    small_lines: RuntimeClient, line: bytes, code: int, echoed: Any
) -> None:
    start = len(small_lines.messages)
    small_lines.send_raw(line + b"\n")
    small_lines.request("runtime/state")  # a fence: its response comes after the malformed line's
    found = responses_after(small_lines, start, 2)
    assert len(found) == 2, found
    assert found[0]["error"]["code"] == code and found[0]["id"] == echoed


def test_field_errors_name_every_bad_field(small_lines: RuntimeClient) -> None:
    future = small_lines.call_async(
        "generate", {"model_id": MODEL, "prompt": "x", "temperature": 9, "top_k": -1, "stop_sequences": "END"}
    )
    errors = future.result(10)["error"]["data"]["errors"]
    assert errors == [
        {"path": "/stop_sequences", "message": "must be of type array"},
        {"path": "/temperature", "message": "must be <= 2"},
        {"path": "/top_k", "message": "must be >= 0"},
    ]


def test_an_oversized_line_is_refused_with_its_id_and_never_buffered_whole(small_lines: RuntimeClient) -> None:
    start = len(small_lines.messages)
    rss_before = small_lines.request("runtime/info")["memory"]["rss"]
    huge = (
        b'{"jsonrpc":"2.0","id":99,"method":"tokenize","params":{"model_id":"tiny-chat","text":"'
        + b"a" * 8_000_000
        + b'"}}'
    )
    small_lines.send_raw(huge + b"\n")
    small_lines.request("runtime/state")
    error = next(m for m in responses_after(small_lines, start, 3) if m.get("id") == 99)
    assert error["error"]["code"] == -32600
    assert error["error"]["data"] == {"size_bytes": len(huge), "limit_bytes": LIMIT}
    assert small_lines.request("runtime/info")["memory"]["rss"] - rss_before < 4_000_000


def test_a_mixed_batch_answers_requests_in_one_array_and_skips_notifications(small_lines: RuntimeClient) -> None:
    start = len(small_lines.messages)
    small_lines.send(
        [
            {"jsonrpc": "2.0", "id": "a", "method": "runtime/state"},
            {"jsonrpc": "2.0", "method": "runtime/state"},
            {"jsonrpc": "2.0", "id": "b", "method": "nope"},
            42,
        ]
    )
    batch = next(m for m in responses_after(small_lines, start, 1) if isinstance(m, list))
    assert [(m["id"], "error" in m) for m in batch] == [("a", False), ("b", True), (None, True)]


def test_garbage_during_a_stream_leaves_the_stream_intact(small_lines: RuntimeClient) -> None:
    params = {
        "model_id": MODEL,
        "prompt": "Once upon a time",
        "max_tokens": 200,
        "temperature": 0,
        "logit_bias": {"0": -100, "2": -100},
    }
    reference = small_lines.collect(small_lines.request("generate", params)["stream_id"])["text"]
    stream_id = small_lines.request("generate", params)["stream_id"]
    for line, _, _ in CASES:
        small_lines.send_raw(line + b"\n")
    assert small_lines.collect(stream_id)["text"] == reference
    assert small_lines.process.poll() is None
