"""Low-memory mode end to end: quantized and bounded KV caches, per model and for the whole runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from runtime.engine.resolve import EMBEDDED_DIR
from tests.conftest import MODEL, assert_schema_clean, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient

LONG_PROMPT = " ".join(["Once upon a time there was a fox who liked to run."] * 40)  # ~500 tokens


def stats_of(client: RuntimeClient, model_id: str, **params: Any) -> dict[str, Any]:
    started = client.request(
        "generate", {"model_id": model_id, "prompt": LONG_PROMPT, "max_tokens": 8, "temperature": 0, **params}
    )
    stats = client.collect(started["stream_id"])["stats"]
    assert stats is not None
    return dict(stats)


@pytest.fixture
def client() -> Any:
    runtime = spawn_runtime()
    try:
        yield runtime
        assert_schema_clean(runtime)
    finally:
        runtime.close()


def test_an_eight_bit_kv_cache_holds_about_a_quarter_of_the_fp32_cache(client: RuntimeClient) -> None:
    """tiny-chat is fp32: its full cache takes 4 bytes a value, the 8-bit one 1 byte plus scales."""
    client.request("load_model", {"model_id": MODEL})
    full = stats_of(client, MODEL, prompt_cache=False)["kv_cache_bytes"]
    client.request("unload_model", {"model_id": MODEL})
    info = client.request("load_model", {"model_id": MODEL, "kv_bits": 8})
    assert info["kv_cache"] == {"kv_bits": 8, "max_kv_size": None}
    quantized = stats_of(client, MODEL)
    assert 0.2 < quantized["kv_cache_bytes"] / full < 0.35, (quantized["kv_cache_bytes"], full)
    assert quantized["tokens_generated"] > 0


def test_a_bounded_kv_cache_holds_at_most_its_size_plus_one_prefill_chunk() -> None:
    """mlx-lm's rotating cache keeps max_kv_size tokens plus the chunk being prefilled."""
    runtime = spawn_runtime("--prefill-step", "64")
    try:
        info = runtime.request("load_model", {"model_id": MODEL, "max_kv_size": 128})
        assert info["kv_cache"] == {"kv_bits": None, "max_kv_size": 128}
        bounded = stats_of(runtime, MODEL)
        assert bounded["prompt_tokens"] > 400 and bounded["tokens_generated"] > 0
        runtime.request("unload_model", {"model_id": MODEL})
        runtime.request("load_model", {"model_id": MODEL})
        full = stats_of(runtime, MODEL, prompt_cache=False)
        per_token = full["kv_cache_bytes"] / (full["prompt_tokens"] + full["tokens_generated"])
        assert bounded["kv_cache_bytes"] <= (128 + 64) * per_token < full["kv_cache_bytes"] / 2
        assert_schema_clean(runtime)
    finally:
        runtime.close()


def test_streams_of_a_quantized_cache_model_decode_solo_side_by_side_and_keep_no_prompt_cache(
    client: RuntimeClient,
) -> None:
    client.request("load_model", {"model_id": MODEL, "kv_bits": 4})
    streams = [
        client.request("generate", {"model_id": MODEL, "prompt": f"Story {i}", "max_tokens": 24, "temperature": 0})
        for i in range(3)
    ]
    stats = [client.collect(s["stream_id"])["stats"] for s in streams]
    assert all(s is not None and s["path"] == "solo" and s["handovers"] == 0 for s in stats)
    again = stats_of(client, MODEL)
    assert stats_of(client, MODEL)["cached_tokens"] == 0 and again["cached_tokens"] == 0


def test_speculative_decoding_on_a_low_memory_model_is_refused_with_its_field(client: RuntimeClient) -> None:
    client.request("load_model", {"model_id": MODEL, "kv_bits": 8})
    client.request("load_model", {"model_id": "tiny-draft"})
    with pytest.raises(RpcFailure) as failure:
        client.request("generate", {"model_id": MODEL, "prompt": "hi", "draft_model": "tiny-draft"})
    assert failure.value.code == -32602 and failure.value.data["errors"][0]["path"] == "/draft_model"


def test_the_low_memory_flag_gives_every_text_load_the_low_memory_defaults(tmp_path: Path) -> None:
    long_context = tmp_path / "long-context"
    shutil.copytree(EMBEDDED_DIR / MODEL, long_context)
    config = json.loads((long_context / "config.json").read_text())
    (long_context / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 32768}))
    runtime = spawn_runtime("--low-memory")
    try:
        capped = runtime.request("load_model", {"model_id": "long", "local_path": str(long_context)})
        assert capped["context_length"] == 4096
        assert runtime.request("runtime/state")["limits"]["low_memory"] is True
        info = runtime.request("load_model", {"model_id": MODEL})
        assert info["kv_cache"] == {"kv_bits": 8, "max_kv_size": None} and info["context_length"] == 2048
        assert stats_of(runtime, MODEL)["tokens_generated"] > 0
        vision = runtime.request("load_model", {"model_id": "tiny-vlm"})
        assert vision["kv_cache"] == {"kv_bits": None, "max_kv_size": None}
        own = runtime.request("load_model", {"model_id": "tiny-draft", "low_memory": False})
        assert own["kv_cache"] == {"kv_bits": None, "max_kv_size": None}
        assert_schema_clean(runtime)
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"kv_bits": 3}, "/kv_bits"),
        ({"max_kv_size": 10}, "/max_kv_size"),
        ({"kv_bits": 8, "max_kv_size": 256}, "/max_kv_size"),
    ],
)
def test_kv_options_out_of_range_are_refused_with_their_field(
    client: RuntimeClient, params: dict[str, Any], path: str
) -> None:
    with pytest.raises(RpcFailure) as failure:
        client.request("load_model", {"model_id": MODEL, **params})
    assert failure.value.code == -32602 and failure.value.data["errors"][0]["path"] == path
