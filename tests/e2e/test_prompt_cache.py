"""The prompt cache over the real runtime: each chat turn prefills only its new tokens, output is the
same as without the cache, memory stays within budget, and sessions survive a restart via disk."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MODEL, assert_schema_clean, runtime_with, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient

QUESTIONS = [f"Tell me about the {animal}." for animal in ("fox", "owl", "cat", "dog", "bird")]


def ask(client: RuntimeClient, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    body = {"model_id": MODEL, "messages": messages, "max_tokens": 30, "temperature": 0, **params}
    return client.collect(client.request("generate", body)["stream_id"])


def chat(client: RuntimeClient, turns: int, **params: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    outcomes = []
    for question in QUESTIONS[:turns]:
        messages.append({"role": "user", "content": question})
        outcome = ask(client, messages, **params)
        messages.append({"role": "assistant", "content": outcome["text"]})
        outcomes.append(outcome)
    return outcomes


def cache_state(client: RuntimeClient, model: str = MODEL) -> dict[str, Any]:
    return next(m for m in client.request("runtime/state")["loaded_models"] if m["model_id"] == model)["prompt_cache"]


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[RuntimeClient]:
    with runtime_with("--stdio", "--cache-dir", str(tmp_path / "sessions")) as client:
        yield client
        assert_schema_clean(client)


@pytest.fixture(scope="module")
def uncached() -> Iterator[RuntimeClient]:
    with runtime_with("--stdio", "--prompt-cache-entries", "0") as client:
        yield client


def test_each_chat_turn_prefills_only_its_new_tokens_and_writes_the_same_text(
    rt: RuntimeClient, uncached: RuntimeClient
) -> None:
    cached, plain = chat(rt, 5), chat(uncached, 5)
    assert [o["text"] for o in cached] == [o["text"] for o in plain]
    assert cached[0]["stats"]["cached_tokens"] == 0
    for previous, turn in zip(cached, cached[1:], strict=False):
        stats, before = turn["stats"], previous["stats"]
        # everything the previous turn saw and wrote is reused; only the new user turn is prefilled
        assert stats["cached_tokens"] >= before["prompt_tokens"] + before["tokens_generated"] - 1
        assert stats["prefill_tokens"] == stats["prompt_tokens"] - stats["cached_tokens"] < 30
    assert all(o["stats"]["cached_tokens"] == 0 for o in plain)
    state = cache_state(rt)
    assert state["hits"] == 4 and state["entries"] == 1  # each turn superseded the one before


def test_seeds_stops_and_structured_output_are_unchanged_by_a_cache_hit(
    rt: RuntimeClient, uncached: RuntimeClient
) -> None:
    history = [{"role": "user", "content": "Tell me a story about a fox."}]
    first = ask(rt, history, max_tokens=90)["text"]  # a cached prefix longer than any processor looks back
    follow = [*history, {"role": "assistant", "content": first}, {"role": "user", "content": QUESTIONS[1]}]
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 8}},
        "required": ["name"],
        "additionalProperties": False,
    }
    variants = [
        {"temperature": 0.9, "seed": 4},
        {"stop_sequences": ["."]},
        {"guidance": {"mode": "json_schema", "schema": schema}},
        {"repetition_penalty": 1.3},
    ]
    ask(uncached, history)
    for params in variants:
        hit = ask(rt, follow, **params)
        assert hit["stats"]["cached_tokens"] > 64, params  # beyond the processors' look-back
        assert hit["text"] == ask(uncached, follow, **params)["text"], params
        assert hit["text"] == ask(rt, follow, prompt_cache=False, **params)["text"], params


def test_the_cache_stays_within_its_byte_and_entry_budgets() -> None:
    # One tiny-chat entry buffers 256-token steps of 4 layers x K,V: 524288 bytes per step.
    client = spawn_runtime("--stdio", "--prompt-cache-bytes", "600000", "--prompt-cache-entries", "2")
    try:
        client.request("load_model", {"model_id": MODEL})
        conversations = [[{"role": "user", "content": q}] for q in QUESTIONS[:3]]
        for messages in conversations:
            ask(client, messages)
        state = cache_state(client)
        assert state["entries"] == 1 and state["bytes"] <= 600000  # each newer entry evicted the older
        again = ask(client, conversations[0])  # evicted: nothing of it is left to reuse
        assert again["stats"]["cached_tokens"] < len(again["tokens"])
        assert_schema_clean(client)
    finally:
        client.close()
    client = spawn_runtime("--stdio", "--prompt-cache-entries", "2")
    try:
        client.request("load_model", {"model_id": MODEL})
        for messages in [[{"role": "user", "content": q}] for q in QUESTIONS[:4]]:
            ask(client, messages, max_tokens=4)
        assert cache_state(client)["entries"] == 2
    finally:
        client.close()


def test_a_session_saved_to_disk_survives_a_restart(tmp_path: Path, uncached: RuntimeClient) -> None:
    sessions = tmp_path / "sessions"
    first_turn = [{"role": "user", "content": QUESTIONS[0]}]
    client = spawn_runtime("--stdio", "--cache-dir", str(sessions))
    try:
        client.request("load_model", {"model_id": MODEL})
        answer = ask(client, first_turn, session_id="chat-1")["text"]
        saved = client.request("session/save", {"session_id": "chat-1"})
        assert saved["model_id"] == MODEL and saved["tokens"] > 0 and (sessions / "chat-1.safetensors").is_file()
        assert not list(sessions.glob(".*tmp"))
    finally:
        client.close()
    second_turn = [*first_turn, {"role": "assistant", "content": answer}, {"role": "user", "content": QUESTIONS[1]}]
    client = spawn_runtime("--stdio", "--cache-dir", str(sessions))
    try:
        client.request("load_model", {"model_id": MODEL})
        listed = client.request("session/list")["sessions"]
        assert [(s["session_id"], s["on_disk"], s["in_memory"]) for s in listed] == [("chat-1", True, False)]
        assert client.request("session/load", {"session_id": "chat-1"})["tokens"] == saved["tokens"]
        resumed = ask(client, second_turn, session_id="chat-1")
        assert resumed["stats"]["cached_tokens"] >= saved["tokens"] - 1
        assert resumed["text"] == ask(uncached, second_turn)["text"]
        dropped = client.request("session/drop", {"session_id": "chat-1", "delete_file": True})
        assert dropped == {"session_id": "chat-1", "dropped": True, "deleted_file": True}
        assert client.request("session/list")["sessions"] == []
        assert_schema_clean(client)
    finally:
        client.close()


def test_files_from_another_model_corrupt_files_and_traversal_ids_are_refused(
    rt: RuntimeClient, tmp_path: Path
) -> None:
    rt.request("load_model", {"model_id": "tiny-draft"})
    rt.collect(
        rt.request(
            "generate", {"model_id": "tiny-draft", "prompt": "Once upon a time", "max_tokens": 8, "session_id": "other"}
        )["stream_id"]
    )
    rt.request("session/save", {"session_id": "other"})
    sessions = Path(rt.request("session/list")["cache_dir"])
    with pytest.raises(RpcFailure) as wrong_model:
        rt.request("session/load", {"session_id": "other", "model_id": MODEL})
    assert "cannot be used with 'tiny-chat'" in wrong_model.value.data["errors"][0]["message"]

    ask(rt, [{"role": "user", "content": QUESTIONS[0]}], session_id="mine")
    rt.request("session/save", {"session_id": "mine"})
    data = (sessions / "mine.safetensors").read_bytes()
    (sessions / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (sessions / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    for session_id in ("cut", "junk", "missing"):
        with pytest.raises(RpcFailure) as refused:
            rt.request("session/load", {"session_id": session_id})
        message = refused.value.data["errors"][0]["message"]
        assert refused.value.code == -32602 and ("corrupt or truncated" in message or "no saved session" in message), (
            message
        )
    for bad in ("../../etc/passwd", "a/b", "..", ".hidden", "x" * 200):
        with pytest.raises(RpcFailure) as traversal:
            rt.request("session/save", {"session_id": bad})
        assert traversal.value.code == -32602 and traversal.value.data["errors"][0]["path"].startswith("/session_id")
    assert sorted(p.name for p in sessions.iterdir()) == [
        "cut.safetensors",
        "junk.safetensors",
        "mine.safetensors",
        "other.safetensors",
    ]
    shutil.rmtree(sessions)


def test_concurrent_sessions_share_one_batch_and_each_reuses_its_own_cache(
    rt: RuntimeClient, uncached: RuntimeClient
) -> None:
    firsts = {}
    for name, question in (("a", QUESTIONS[0]), ("b", QUESTIONS[2])):
        firsts[name] = [{"role": "user", "content": question}]
        answer = ask(rt, firsts[name], session_id=name)["text"]
        firsts[name] += [{"role": "assistant", "content": answer}, {"role": "user", "content": QUESTIONS[3]}]
    entries = [
        {"model_id": MODEL, "messages": firsts[name], "max_tokens": 30, "temperature": 0, "session_id": name}
        for name in ("a", "b")
    ]
    results = rt.request("batch_generate", {"requests": entries})["results"]
    outcomes = [rt.collect(r["result"]["stream_id"]) for r in results]
    for name, outcome in zip(("a", "b"), outcomes, strict=True):
        assert outcome["stats"]["cached_tokens"] > 10
        assert outcome["text"] == ask(uncached, firsts[name])["text"]
    assert {s["session_id"] for s in rt.request("session/list")["sessions"]} == {"a", "b"}
    assert cache_state(rt)["sessions"] == 2
    json.dumps(outcomes)  # plain data all the way
