"""Cancel (prefill and decode), concurrent streams, and control calls that never wait on the engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import wait
from typing import Any

import pytest

from tests.conftest import MODEL, TIMEOUT, assert_schema_clean, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient

STORY = "Once upon a time"
NO_EOS = {"0": -100, "2": -100}
LONG = {"model_id": MODEL, "prompt": STORY, "max_tokens": 20000, "temperature": 0, "logit_bias": NO_EOS}


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met")


def stream_state(client: RuntimeClient, stream_id: str) -> str | None:
    streams = client.request("runtime/state")["streams"]
    return next((s["state"] for s in streams if s["stream_id"] == stream_id), None)


@pytest.fixture(scope="module")
def slow_prefill() -> Iterator[RuntimeClient]:
    """Prefill in 8-token chunks so that a long prompt takes seconds to process."""
    client = spawn_runtime("--prefill-step", "8")
    client.request("load_model", {"model_id": MODEL})
    yield client
    assert_schema_clean(client)
    client.close()


def test_cancel_during_prefill_ends_the_stream_as_cancelled_with_no_tokens(slow_prefill: RuntimeClient) -> None:
    prompt = "Lily had a red ball and a blue kite. " * 150
    stream_id = slow_prefill.request("generate", {"model_id": MODEL, "prompt": prompt, "max_tokens": 50})["stream_id"]
    wait_until(lambda: stream_state(slow_prefill, stream_id) == "prefilling")
    started = time.monotonic()
    assert slow_prefill.request("cancel", {"stream_id": stream_id}) == {"stream_id": stream_id, "cancelled": True}
    out = slow_prefill.collect(stream_id, timeout=10)
    assert time.monotonic() - started < 2.0
    assert out["tokens"] == [] and out["event"]["finish_reason"] == "cancelled"
    assert out["stats"]["finish_reason"] == "cancelled" and out["stats"]["tokens_generated"] == 0


def test_cancel_during_decode_stops_within_a_token_step(runtime: RuntimeClient) -> None:
    stream_id = runtime.request("generate", LONG)["stream_id"]
    wait_until(lambda: stream_state(runtime, stream_id) == "decoding")
    runtime.request("cancel", {"stream_id": stream_id})
    out = runtime.collect(stream_id, timeout=10)
    assert out["event"]["finish_reason"] == "cancelled" and 0 < len(out["tokens"]) < 20000
    assert runtime.request("runtime/state")["active_streams"] == 0


def test_cancel_of_an_unknown_or_finished_stream_says_so(runtime: RuntimeClient) -> None:
    assert runtime.request("cancel", {"stream_id": "never-was"}) == {"stream_id": "never-was", "cancelled": False}


def test_cancel_request_notification_cancels_the_streams_of_that_request(runtime: RuntimeClient) -> None:
    future = runtime.call_async("generate", LONG, request_id="gen-77")
    stream_id = future.result(TIMEOUT)["result"]["stream_id"]
    wait_until(lambda: stream_state(runtime, stream_id) == "decoding")
    runtime.notify("$/cancelRequest", {"id": "gen-77"})
    assert runtime.collect(stream_id, timeout=10)["event"]["finish_reason"] == "cancelled"


def test_four_concurrent_streams_with_unique_ids_all_finish_correctly(runtime: RuntimeClient) -> None:
    prompts = ["Once upon a time", "Lily had a red ball.", "Max went to the park", "The little fox"]
    alone = {}
    for prompt in prompts:
        sid = runtime.request("generate", {"model_id": MODEL, "prompt": prompt, "max_tokens": 40, "temperature": 0})[
            "stream_id"
        ]
        alone[prompt] = runtime.collect(sid)["text"]
    futures = [
        runtime.call_async(
            "generate", {"model_id": MODEL, "prompt": p, "max_tokens": 40, "temperature": 0, "stream_id": f"c-{i}"}
        )
        for i, p in enumerate(prompts)
    ]
    wait(futures, TIMEOUT)
    outs = [runtime.collect(f"c-{i}") for i in range(len(prompts))]
    assert [o["text"] for o in outs] == [alone[p] for p in prompts]
    finals = [
        m
        for m in list(runtime.messages)
        if m.get("method") == "stream.event" and m["params"]["stream_id"].startswith("c-")
    ]
    assert sorted(m["params"]["stream_id"] for m in finals) == [f"c-{i}" for i in range(4)]


def test_batch_generate_answers_one_result_per_request_in_order(runtime: RuntimeClient) -> None:
    result = runtime.request(
        "batch_generate",
        {
            "requests": [
                {"model_id": MODEL, "prompt": STORY, "max_tokens": 5, "stream_id": "b-0", "streaming": True},
                {"model_id": "missing", "prompt": STORY, "stream_id": "b-1"},
                {"model_id": MODEL, "prompt": STORY, "max_tokens": "many", "stream_id": "b-2"},
                {"model_id": MODEL, "prompt": STORY, "max_tokens": 5, "stream_id": "b-3"},
            ]
        },
    )["results"]
    assert [r["success"] for r in result] == [True, False, False, True]
    assert result[1]["code"] == -32005 and result[2]["code"] == -32602
    assert result[2]["data"]["errors"] == [{"path": "/requests/2/max_tokens", "message": "must be of type integer"}]
    for sid in ("b-0", "b-3"):
        assert runtime.collect(sid)["event"]["finish_reason"] in ("length", "stop")


def test_a_duplicate_active_stream_id_is_refused(runtime: RuntimeClient) -> None:
    runtime.request("generate", {**LONG, "stream_id": "dup"})
    with pytest.raises(RpcFailure) as caught:
        runtime.request("generate", {**LONG, "stream_id": "dup"})
    assert caught.value.code == -32602 and caught.value.data["errors"][0]["path"] == "/stream_id"
    runtime.request("cancel", {"stream_id": "dup"})
    runtime.collect("dup")


def test_control_calls_answer_while_a_long_generation_runs(runtime: RuntimeClient) -> None:
    stream_id = runtime.request("generate", LONG)["stream_id"]
    wait_until(lambda: stream_state(runtime, stream_id) == "decoding")
    latencies = {}
    for method, params in [
        ("runtime/info", None),
        ("runtime/state", None),
        ("tokenize", {"model_id": MODEL, "text": "hello there"}),
        ("cancel", {"stream_id": "other"}),
    ]:
        started = time.monotonic()
        runtime.request(method, params)
        latencies[method] = time.monotonic() - started
    assert stream_state(runtime, stream_id) == "decoding", "the generation was still running throughout"
    assert max(latencies.values()) < 1.0, latencies
    runtime.request("cancel", {"stream_id": stream_id})
    runtime.collect(stream_id)


def test_every_stream_gets_exactly_one_terminal_event_however_it_ends() -> None:
    """Completed, cut by max_tokens, cancelled while decoding, cancelled and timed out while
    queued: each stream's last message is its one stream.event, and nothing stays active."""
    client = spawn_runtime("--max-active-streams", "1", "--max-queued", "4")
    try:
        client.request("load_model", {"model_id": MODEL})
        short = {"model_id": MODEL, "prompt": STORY, "max_tokens": 8, "temperature": 0}
        decoding = client.request("generate", LONG)["stream_id"]
        wait_until(lambda: stream_state(client, decoding) == "decoding")
        queued = [client.request("generate", short)["stream_id"] for _ in range(2)]
        timed_out = client.request("generate", {**short, "timeout_ms": 100})["stream_id"]
        time.sleep(0.3)  # past the queued stream's deadline while the first still holds the only slot
        assert client.request("cancel", {"stream_id": queued[0]})["cancelled"]
        assert client.request("cancel", {"stream_id": decoding})["cancelled"]
        reasons = {sid: client.collect(sid)["event"]["finish_reason"] for sid in [decoding, *queued, timed_out]}
        assert reasons == {decoding: "cancelled", queued[0]: "cancelled", queued[1]: "length", timed_out: "timeout"}
        wait_until(lambda: client.request("runtime/state")["active_streams"] == 0, timeout=5)
        for stream_id in reasons:
            mine = [m for m in list(client.messages) if m.get("params", {}).get("stream_id") == stream_id]
            assert [m["method"] for m in mine].count("stream.event") == 1 and mine[-1]["method"] == "stream.event"
        assert_schema_clean(client)
    finally:
        client.close()
