"""Continuous batching, admission queue, priorities, deadlines and cancels on the real engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import wait
from typing import Any

import pytest

from tests.conftest import MODEL, TIMEOUT, assert_schema_clean, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient

NO_EOS = {"0": -100, "2": -100}
PROMPTS = [
    "Once upon a time",
    "Lily had a red ball and a blue kite. She went to the park with her friend Max.",
    "The",
    "<|im_start|>user\nTell me a story about a cat.<|im_end|>\n<|im_start|>assistant\n",
    "Max went to the river and found a green stone. He was very happy. One day,",
    "A little owl",
    "Ben and Mia played with the yellow drum all day long. When the sun went down,",
    "Hello",
]
MAX_TOKENS = [40, 25, 60, 33, 48, 12, 70, 5]


def generate(client: RuntimeClient, **params: Any) -> str:
    return client.request("generate", {"model_id": MODEL, **params})["stream_id"]


def wait_for_state(client: RuntimeClient, stream_id: str, state: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        streams = client.request("runtime/state")["streams"]
        if any(s["stream_id"] == stream_id and s["state"] == state for s in streams):
            return
        time.sleep(0.01)
    raise TimeoutError(f"{stream_id} never reached {state}")


def path_of(client: RuntimeClient, stream_id: str) -> tuple[str, int]:
    """The decode path and hand-over count runtime/state shows for a running stream."""
    (stream,) = [s for s in client.request("runtime/state")["streams"] if s["stream_id"] == stream_id]
    return stream["path"], stream["handovers"]


def test_eight_concurrent_greedy_streams_equal_the_same_requests_run_alone(runtime: RuntimeClient) -> None:
    alone = [
        runtime.collect(generate(runtime, prompt=p, max_tokens=n, temperature=0))["text"]
        for p, n in zip(PROMPTS, MAX_TOKENS, strict=True)
    ]
    futures = [
        runtime.call_async(
            "generate", {"model_id": MODEL, "prompt": p, "max_tokens": n, "temperature": 0, "stream_id": f"batch-{i}"}
        )
        for i, (p, n) in enumerate(zip(PROMPTS, MAX_TOKENS, strict=True))
    ]
    wait(futures, TIMEOUT)
    together = [runtime.collect(f"batch-{i}") for i in range(len(PROMPTS))]
    assert [t["text"] for t in together] == alone
    assert all(t["event"]["finish_reason"] in ("stop", "length") for t in together)
    assert [t["stats"]["path"] for t in together] == ["batch"] * len(PROMPTS)  # decoded together, not in turn


def test_seeded_sampling_is_reproducible_inside_a_batch(runtime: RuntimeClient) -> None:
    params = {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 1.0, "seed": 1234}
    alone = runtime.collect(generate(runtime, **params))["text"]
    ids = [generate(runtime, **params) for _ in range(3)] + [generate(runtime, prompt="The", max_tokens=40, seed=9)]
    outs = [runtime.collect(sid) for sid in ids]
    assert outs[0]["text"] == outs[1]["text"] == outs[2]["text"] == alone
    assert {out["stats"]["path"] for out in outs} == {"batch"}


def test_a_cancelled_batched_stream_leaves_the_others_unchanged(runtime: RuntimeClient) -> None:
    reference = runtime.collect(generate(runtime, prompt=PROMPTS[1], max_tokens=200, temperature=0, logit_bias=NO_EOS))
    keep = generate(runtime, prompt=PROMPTS[1], max_tokens=200, temperature=0, logit_bias=NO_EOS)
    drop = generate(runtime, prompt=PROMPTS[0], max_tokens=20000, temperature=0, logit_bias=NO_EOS)
    wait_for_state(runtime, drop, "decoding")
    runtime.request("cancel", {"stream_id": drop})
    assert runtime.collect(drop)["event"]["finish_reason"] == "cancelled"
    assert runtime.collect(keep)["text"] == reference["text"]


def test_a_stream_past_its_deadline_ends_with_timeout(runtime: RuntimeClient) -> None:
    started = time.monotonic()
    out = runtime.collect(generate(runtime, prompt="Once", max_tokens=20000, logit_bias=NO_EOS, timeout_ms=300))
    assert out["event"]["finish_reason"] == "timeout" and out["stats"]["finish_reason"] == "timeout"
    assert 0.3 <= time.monotonic() - started < 3.0 and out["tokens"]


def test_limits_and_scheduler_state_are_visible(runtime: RuntimeClient) -> None:
    state = runtime.request("runtime/state")
    assert state["limits"]["max_active_streams"] >= 1 and state["limits"]["batching"] is True
    assert state["breaker"]["state"] == "closed" and state["queue"]["queued"] == 0


@pytest.fixture(scope="module")
def one_slot() -> Iterator[RuntimeClient]:
    """One active stream and two queue places: every request beyond waits or is refused."""
    client = spawn_runtime("--max-active-streams", "1", "--max-queued", "2")
    client.request("load_model", {"model_id": MODEL})
    yield client
    assert_schema_clean(client)
    client.close()


def occupy(client: RuntimeClient) -> str:
    stream_id = generate(client, prompt="Once", max_tokens=20000, logit_bias=NO_EOS, temperature=0)
    wait_for_state(client, stream_id, "decoding")
    return stream_id


def test_a_full_queue_answers_busy_at_once_with_a_retry_hint(one_slot: RuntimeClient) -> None:
    blocker = occupy(one_slot)
    waiting = [generate(one_slot, prompt="A", max_tokens=3) for _ in range(2)]
    started = time.monotonic()
    with pytest.raises(RpcFailure) as refused:
        generate(one_slot, prompt="A", max_tokens=3)
    assert time.monotonic() - started < 0.5
    assert refused.value.code == -32006 and refused.value.data["retry_after_ms"] > 0
    assert one_slot.request("runtime/state")["queue"]["queued"] == 2
    one_slot.request("cancel", {"stream_id": blocker})
    for stream_id in [blocker, *waiting]:
        one_slot.collect(stream_id)


def test_queued_streams_start_in_priority_order(one_slot: RuntimeClient) -> None:
    blocker = occupy(one_slot)
    low = generate(one_slot, prompt="A", max_tokens=3, priority="low")
    high = generate(one_slot, prompt="A", max_tokens=3, priority="high")
    one_slot.request("cancel", {"stream_id": blocker})
    for stream_id in (blocker, low, high):
        one_slot.collect(stream_id)
    finals = [m["params"]["stream_id"] for m in list(one_slot.messages) if m.get("method") == "stream.event"]
    assert finals.index(high) < finals.index(low)


def test_a_queued_stream_can_be_cancelled_and_ends_at_once(one_slot: RuntimeClient) -> None:
    blocker = occupy(one_slot)
    queued = generate(one_slot, prompt="A", max_tokens=3)
    assert one_slot.request("cancel", {"stream_id": queued})["cancelled"]
    out = one_slot.collect(queued, timeout=5)
    assert out["event"]["finish_reason"] == "cancelled" and out["tokens"] == []
    assert one_slot.request("runtime/state")["queue"]["queued"] == 0
    one_slot.request("cancel", {"stream_id": blocker})
    one_slot.collect(blocker)


def test_a_deadline_also_covers_the_time_spent_waiting_in_the_queue(one_slot: RuntimeClient) -> None:
    blocker = occupy(one_slot)
    queued = generate(one_slot, prompt="A", max_tokens=3, timeout_ms=200)
    out = one_slot.collect(queued, timeout=5)
    assert out["event"]["finish_reason"] == "timeout" and out["tokens"] == []
    assert one_slot.request("runtime/state")["streams"][0]["stream_id"] == blocker
    one_slot.request("cancel", {"stream_id": blocker})
    one_slot.collect(blocker)


def test_the_sequential_path_serves_the_same_text_as_the_batched_one() -> None:
    client = spawn_runtime("--no-batching")
    try:
        client.request("load_model", {"model_id": MODEL})
        assert client.request("runtime/state")["limits"]["batching"] is False
        ids = [
            generate(client, prompt=p, max_tokens=n, temperature=0) for p, n in zip(PROMPTS, MAX_TOKENS, strict=True)
        ]
        outs = [client.collect(sid) for sid in ids]
        texts = [out["text"] for out in outs]
        assert {out["stats"]["path"] for out in outs} == {"solo"}
    finally:
        client.close()
    batched = spawn_runtime()
    try:
        batched.request("load_model", {"model_id": MODEL})
        ids = [
            generate(batched, prompt=p, max_tokens=n, temperature=0) for p, n in zip(PROMPTS, MAX_TOKENS, strict=True)
        ]
        outs = [batched.collect(sid) for sid in ids]
        assert [out["text"] for out in outs] == texts
        assert "batch" in {out["stats"]["path"] for out in outs}
    finally:
        batched.close()


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 1.0, "seed": 77}])
def test_a_stream_joined_mid_decode_keeps_the_text_it_would_have_had_alone(
    runtime: RuntimeClient, sampling: dict
) -> None:
    params = {"prompt": "Once upon a time", "max_tokens": 400, "logit_bias": NO_EOS, **sampling}
    alone = runtime.collect(generate(runtime, **params))["text"]
    first = generate(runtime, **params)
    deadline = time.monotonic() + 20
    while not any(
        m.get("method") == "stream.chunk" and m["params"]["stream_id"] == first for m in list(runtime.messages)
    ):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert path_of(runtime, first) == ("solo", 0)  # alone on its model: the single-stream path
    others = [generate(runtime, prompt=p, max_tokens=50, temperature=0) for p in PROMPTS[:3]]
    out = runtime.collect(first)
    assert out["text"] == alone
    assert (out["stats"]["path"], out["stats"]["handovers"]) == ("batch", 1)  # it moved into the batch once
    for stream_id in others:
        assert runtime.collect(stream_id)["stats"]["path"] == "batch"
