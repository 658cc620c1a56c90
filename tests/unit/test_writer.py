"""The writer coalesces a stream's tokens, keeps order with other messages and applies backpressure."""

from __future__ import annotations

import os
import threading
import time

import orjson

from runtime.transport.writer import Writer


def chunk(key: str, entries: list[dict]) -> dict:
    return {"method": "stream.chunk", "params": {"stream_id": key, "tokens": entries}}


def read_lines(fd: int, count: int, timeout: float = 5.0) -> list[dict]:
    data, deadline = b"", time.monotonic() + timeout
    while data.count(b"\n") < count and time.monotonic() < deadline:
        data += os.read(fd, 1 << 16)
    return [orjson.loads(line) for line in data.splitlines()]


def test_tokens_queued_together_go_out_as_one_chunk_and_before_the_next_message() -> None:
    read_fd, write_fd = os.pipe()
    writer = Writer(write_fd, window_s=0.5, max_batch=16)
    for index in range(5):
        writer.send_entry("s", {"i": index}, chunk)
    writer.send({"method": "stream.event", "params": {"stream_id": "s"}})
    lines = read_lines(read_fd, 3)
    tokens = [t["i"] for line in lines if line["method"] == "stream.chunk" for t in line["params"]["tokens"]]
    assert tokens == [0, 1, 2, 3, 4]
    assert lines[0]["params"]["tokens"] == [{"i": 0}]  # a quiet stream's first token is not held back
    assert lines[-1]["method"] == "stream.event"
    writer.close()


def test_a_chunk_never_holds_more_than_max_batch_tokens() -> None:
    read_fd, write_fd = os.pipe()
    writer = Writer(write_fd, window_s=10.0, max_batch=4)
    for index in range(9):
        writer.send_entry("s", {"i": index}, chunk)
    writer.close()
    os.close(write_fd)
    sizes = [len(line["params"]["tokens"]) for line in read_lines(read_fd, 4)]
    assert max(sizes) <= 4 and sum(sizes) == 9


def test_when_nobody_reads_the_queue_fills_and_the_producer_blocks() -> None:
    read_fd, write_fd = os.pipe()
    writer = Writer(write_fd, max_queue=8)
    big = {"method": "x", "params": {"blob": "y" * 70000}}  # larger than the pipe buffer
    produced = []

    def produce() -> None:
        for index in range(100):
            writer.send(big)
            produced.append(index)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive() and len(produced) < 20  # blocked: memory stays bounded
    assert writer.queued() <= 8
    received = 0
    while received < 100:
        received += os.read(read_fd, 1 << 20).count(b"\n")
    thread.join(5.0)
    assert not thread.is_alive() and len(produced) == 100
    writer.close()


def test_a_closed_reader_marks_the_writer_broken_and_calls_back() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    broken = threading.Event()
    writer = Writer(write_fd, on_broken=broken.set)
    writer.send({"method": "x", "params": {}})
    assert broken.wait(5.0) and writer.broken


def test_a_holding_thread_passes_tokens_on_per_window_but_first_tokens_and_ends_at_once() -> None:
    read_fd, write_fd = os.pipe()
    writer = Writer(write_fd, window_s=0.2, max_batch=64)
    writer.hold()
    writer.send_entry("s", {"i": 0}, chunk)
    writer.release()  # the stream's first token: handed over at once
    assert read_lines(read_fd, 1)[0]["params"]["tokens"] == [{"i": 0}]
    writer.hold()
    writer.send_entry("s", {"i": 1}, chunk)
    writer.release()  # inside the window: kept back
    writer.hold()
    writer.send_entry("s", {"i": 2}, chunk)
    writer.send({"method": "stream.event", "params": {"stream_id": "s"}})
    writer.release()  # an end is urgent: everything goes, in order
    lines = read_lines(read_fd, 2)
    assert [t["i"] for t in lines[0]["params"]["tokens"]] == [1, 2] and lines[1]["method"] == "stream.event"
    writer.close()


def test_closing_with_a_full_queue_gives_up_after_its_timeout() -> None:
    read_fd, write_fd = os.pipe()
    writer = Writer(write_fd, max_queue=2)
    big = {"method": "x", "params": {"blob": "y" * 70000}}  # the writer blocks on the first
    producer = threading.Thread(target=lambda: [writer.send(big) for _ in range(4)], daemon=True)
    producer.start()
    producer.join(0.5)
    assert producer.is_alive()  # the queue is full
    closer = threading.Thread(target=writer.close, kwargs={"timeout": 0.2}, daemon=True)
    closer.start()
    closer.join(5.0)
    assert not closer.is_alive()
    os.close(read_fd)


def test_tokens_handed_over_together_go_out_together_when_the_stream_is_due() -> None:
    read_fd, write_fd = os.pipe()
    writer = Writer(write_fd, window_s=0.3, max_batch=3)
    writer.hold()
    writer.send_entry("s", {"i": 0}, chunk)
    writer.release()
    assert read_lines(read_fd, 1)[0]["params"]["tokens"] == [{"i": 0}]
    time.sleep(0.35)  # quiet for a whole window: the stream is due again
    writer.hold()
    for index in range(1, 6):
        writer.send_entry("s", {"i": index}, chunk)
    writer.release()
    # Not the first alone and the rest a window later: one line (max_batch bounds it), then the rest.
    lines = read_lines(read_fd, 2)
    assert [[t["i"] for t in line["params"]["tokens"]] for line in lines] == [[1, 2, 3], [4, 5]]
    writer.close()


def test_a_response_that_cannot_be_encoded_is_answered_with_the_protocols_internal_error() -> None:
    from runtime.protocol.errors import unencodable_response

    read_fd, write_fd = os.pipe()
    writer = Writer(write_fd, explain=unencodable_response)
    writer.send({"jsonrpc": "2.0", "id": 7, "result": {"value": object()}})
    writer.send({"jsonrpc": "2.0", "id": 8, "result": {"value": 1}})
    first, second = read_lines(read_fd, 2)
    assert first == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32603, "message": "Internal error", "data": {"type": "UnencodableResult"}},
    }
    assert second == {"jsonrpc": "2.0", "id": 8, "result": {"value": 1}}
    writer.close()
