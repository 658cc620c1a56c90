"""The asyncio binding (bindings/python/mlx_rpc_client) against the real runtime."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest
from mlx_rpc_client import RpcError, RuntimeClient, RuntimeExited

from tests.conftest import MODEL, REPO

COMMAND = [sys.executable, "-m", "runtime"]
ENV = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
LONG = {
    "model_id": MODEL,
    "prompt": "Once upon a time",
    "max_tokens": 20000,
    "temperature": 0,
    "logit_bias": {"0": -100, "2": -100},
}


async def spawn(**kwargs: object) -> RuntimeClient:
    return await RuntimeClient.spawn(command=COMMAND, env=ENV, ready_timeout=60, **kwargs)  # type: ignore[arg-type]


async def test_a_stream_yields_tokens_then_a_result_with_stats() -> None:
    async with await spawn() as rt:
        assert rt.ready_params and rt.ready_params["protocol"] == "json-rpc-2.0"
        await rt.load_model(MODEL)
        generation = rt.generate({"model_id": MODEL, "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0})
        tokens = [token async for token in generation]
        result = await generation.result()
        assert result["text"] == "".join(t["token"] for t in tokens) and len(tokens) == 30
        assert result["finish_reason"] == "length" and result["stats"]["tokens_generated"] == 30
        assert (
            await rt.generate_text(
                {"model_id": MODEL, "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0}
            )
        )["text"] == result["text"]


async def test_a_structured_result_carries_guidance_and_the_parsed_value() -> None:
    schema = {"type": "array", "items": {"enum": ["cat", "dog"]}, "minItems": 1, "maxItems": 3}
    async with await spawn() as rt:
        await rt.load_model(MODEL)
        guidance = {"mode": "json_schema", "schema": schema}
        result = await rt.generate_text({"model_id": MODEL, "prompt": "Pets:", "max_tokens": 40, "guidance": guidance})
        assert result["guidance"] == {"mode": "json_schema", "complete": True}
        assert result["parsed"] and set(result["parsed"]) <= {"cat", "dog"}


async def test_leaving_the_loop_early_stops_the_stream_in_the_runtime() -> None:
    async with await spawn() as rt:
        await rt.load_model(MODEL)
        generation = rt.generate(LONG)
        async for _ in generation:
            break
        result = await generation.result()
        assert result["finish_reason"] == "cancelled"
        await _until_idle(rt)


async def test_cancelling_the_consuming_task_cancels_the_stream() -> None:
    async with await spawn() as rt:
        await rt.load_model(MODEL)
        seen = asyncio.Event()

        async def consume() -> None:
            async for _ in rt.generate(LONG):
                seen.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(seen.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until_idle(rt)


async def _until_idle(rt: RuntimeClient) -> None:
    deadline = time.monotonic() + 10
    while (await rt.state())["active_streams"]:
        assert time.monotonic() < deadline, "the runtime kept generating"
        await asyncio.sleep(0.02)


async def test_four_concurrent_streams_all_finish() -> None:
    async with await spawn() as rt:
        await rt.load_model(MODEL)
        params = [
            {"model_id": MODEL, "prompt": p, "max_tokens": 20, "temperature": 0}
            for p in ("Once", "Lily had", "The fox", "Max went")
        ]
        results = await asyncio.gather(*(rt.generate_text(p) for p in params))
        assert all(r["finish_reason"] in ("stop", "length") and r["text"] for r in results)


async def test_a_runtime_killed_mid_stream_fails_the_stream_and_pending_calls() -> None:
    rt = await spawn()
    await rt.load_model(MODEL)
    generation = rt.generate(LONG)
    async for _ in generation:
        os.kill(rt.process.pid, signal.SIGKILL)
        break
    with pytest.raises(RuntimeExited):
        async for _ in rt.generate(LONG):
            pass
    with pytest.raises(RuntimeExited):
        await rt.info()
    assert await rt.close() == -signal.SIGKILL


async def test_spawn_also_works_directly_as_an_async_context_manager() -> None:
    async with RuntimeClient.spawn(command=COMMAND, env=ENV, ready_timeout=60) as rt:
        assert (await rt.info())["protocol"] == "json-rpc-2.0"
        process = rt.process
    assert process.returncode == 0


async def test_close_shuts_the_runtime_down_cleanly() -> None:
    rt = await spawn()
    started = time.monotonic()
    assert await rt.close() == 0 and time.monotonic() - started < 5


async def test_errors_come_back_as_rpc_errors_with_their_code() -> None:
    async with await spawn() as rt:
        with pytest.raises(RpcError) as missing:
            await rt.tokenize("not-loaded", "hi")
        assert missing.value.code == -32005
        with pytest.raises(RpcError) as absent:
            await rt.check_draft("a", "b")
        assert absent.value.code == -32005


async def test_batch_check_draft_gives_one_entry_per_request_and_a_bad_one_fails_alone() -> None:
    async with await spawn() as rt:
        await rt.load_model(MODEL)
        await rt.load_model("tiny-draft")
        answer = await rt.batch_check_draft(
            [{"primary_id": MODEL, "draft_id": "tiny-draft"}, {"primary_id": MODEL, "draft_id": "absent"}]
        )
        good, missing = answer["results"]
        assert good["success"] and good["result"]["compatible"] and good["error"] is None
        assert not missing["success"] and missing["result"] is None
        assert missing["code"] == -32005 and missing["data"] == {"type": "ModelNotLoaded", "model_id": "absent"}


FAKE_READY = (
    "import json, os, sys, time\n"
    'print(json.dumps({"jsonrpc": "2.0", "method": "runtime/ready", "params": {"env": sorted(os.environ)}}),'
    " flush=True)\nsys.stdin.read()\n"
)


async def test_only_allow_listed_environment_reaches_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN_FOR_TEST", "x")
    monkeypatch.setenv("RUNTIME_MAX_QUEUED", "3")
    rt = await RuntimeClient.spawn(command=[sys.executable, "-c", FAKE_READY], ready_timeout=10)
    try:
        names = rt.ready_params["env"]  # type: ignore[index]
        assert "SECRET_TOKEN_FOR_TEST" not in names and "RUNTIME_MAX_QUEUED" in names and "PATH" in names
    finally:
        await rt.close(timeout=1)


async def test_a_runtime_that_never_becomes_ready_is_given_up_in_time() -> None:
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await RuntimeClient.spawn(command=["sh", "-c", "sleep 30"], ready_timeout=1.0)
    assert time.monotonic() - started < 5


async def test_a_runtime_that_dies_before_ready_is_reported_as_exited() -> None:
    with pytest.raises(RuntimeExited):
        await RuntimeClient.spawn(command=["sh", "-c", "exit 3"], ready_timeout=10)


async def test_count_tokens_and_a_whole_answer_agree_with_a_streamed_chat() -> None:
    chat = {"model_id": MODEL, "messages": [{"role": "user", "content": "What is 3 plus 4?"}], "temperature": 0}
    async with await spawn() as rt:
        await rt.load_model(MODEL)
        counted = await rt.count_tokens(MODEL, messages=chat["messages"])
        whole = await rt.generate_whole({**chat, "max_tokens": 40})
        streamed = await rt.generate({**chat, "max_tokens": 40}).result()
        assert counted["input_tokens"] == whole["usage"]["prompt_tokens"] == streamed["stats"]["prompt_tokens"]
        assert whole["content"] == streamed["text"]
        assert whole.get("reasoning") == streamed.get("reasoning")


async def test_embed_and_rerank_through_the_python_binding() -> None:
    async with await spawn() as rt:
        await rt.load_model("tiny-embed")
        await rt.load_model("tiny-rerank")
        vectors = await rt.embed("tiny-embed", ["The cat sat on the mat.", "Rates rose."], dimensions=32)
        assert vectors["dimensions"] == 32 and len(vectors["data"]) == 2
        ranked = await rt.rerank("tiny-rerank", "baking bread", ["Rates rose.", "Knead the dough and bake it."])
        assert ranked["results"][0]["index"] == 1
