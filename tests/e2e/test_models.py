"""load_model / unload_model on real files: memory really freed, loads deduplicated, hub ids resolved."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from runtime.engine.resolve import EMBEDDED_DIR
from tests.conftest import MODEL, TIMEOUT, assert_schema_clean, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def mlx_active(client: RuntimeClient) -> int:
    return client.request("runtime/info")["memory"]["mlx_active"]


def progress_stages(client: RuntimeClient, model_id: str) -> list[str]:
    return [
        m["params"]["stage"]
        for m in list(client.messages)
        if m.get("method") == "model.progress" and m["params"]["model_id"] == model_id
    ]


def test_load_reports_the_model_and_unload_gives_the_memory_back(fresh_runtime: RuntimeClient) -> None:
    baseline = mlx_active(fresh_runtime)
    info = fresh_runtime.request("load_model", {"model_id": MODEL})
    assert info["state"] == "ready" and info["dtype"] == "float32" and info["source"] == "embedded"
    assert info["parameter_count"] > 1_000_000 and info["memory_bytes"] >= info["parameter_count"] * 4
    loaded = mlx_active(fresh_runtime)
    assert loaded - baseline >= info["parameter_count"] * 4
    unloaded = fresh_runtime.request("unload_model", {"model_id": MODEL})
    assert unloaded["was_loaded"] and unloaded["freed_bytes"] >= info["parameter_count"] * 4
    assert mlx_active(fresh_runtime) <= baseline + 1_000_000
    assert fresh_runtime.request("runtime/state")["loaded_models"] == []
    assert progress_stages(fresh_runtime, MODEL) == ["resolving", "loading", "warming", "ready"]


def test_loading_a_loaded_model_again_returns_at_once_without_reloading(fresh_runtime: RuntimeClient) -> None:
    first = fresh_runtime.request("load_model", {"model_id": MODEL})
    again = fresh_runtime.request("load_model", {"model_id": MODEL})
    assert again == first
    assert progress_stages(fresh_runtime, MODEL).count("resolving") == 1


def test_concurrent_loads_of_one_id_share_one_load(fresh_runtime: RuntimeClient) -> None:
    futures = [fresh_runtime.call_async("load_model", {"model_id": MODEL}) for _ in range(4)]
    results = [f.result(TIMEOUT)["result"] for f in futures]
    assert all(r == results[0] for r in results)
    assert progress_stages(fresh_runtime, MODEL).count("resolving") == 1


def test_unloading_a_model_cancels_its_streams_first(fresh_runtime: RuntimeClient) -> None:
    fresh_runtime.request("load_model", {"model_id": MODEL})
    stream_id = fresh_runtime.request(
        "generate", {"model_id": MODEL, "prompt": "Once", "max_tokens": 20000, "logit_bias": {"0": -100, "2": -100}}
    )["stream_id"]
    fresh_runtime.request("unload_model", {"model_id": MODEL})
    assert fresh_runtime.collect(stream_id, timeout=10)["event"]["finish_reason"] == "cancelled"


def test_unloading_a_model_that_is_not_loaded_succeeds_and_says_so(fresh_runtime: RuntimeClient) -> None:
    result = fresh_runtime.request("unload_model", {"model_id": "nothing"})
    assert result["success"] and not result["was_loaded"]


def test_a_local_path_loads_under_the_given_id(fresh_runtime: RuntimeClient, tmp_path: Path) -> None:
    local = tmp_path / "copy"
    shutil.copytree(EMBEDDED_DIR / MODEL, local)
    info = fresh_runtime.request("load_model", {"model_id": "my-model", "local_path": str(local)})
    assert info["source"] == "local" and info["model_id"] == "my-model"
    tokens = fresh_runtime.request("tokenize", {"model_id": "my-model", "text": "hi"})["tokens"]
    assert tokens


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"model_id": "m", "local_path": "/does/not/exist"}, "is not a directory"),
        ({"model_id": "/tmp"}, "no config.json"),
        ({"model_id": "someorg/some-model"}, "not in the local Hugging Face cache"),
    ],
)
def test_models_that_cannot_be_found_fail_with_a_clear_load_error(
    fresh_runtime: RuntimeClient, params: dict, fragment: str
) -> None:
    with pytest.raises(RpcFailure) as caught:
        fresh_runtime.request("load_model", params)
    assert caught.value.code == -32001 and fragment in caught.value.message
    assert caught.value.data["model_id"] == params["model_id"]


def test_a_broken_model_directory_fails_to_load_and_the_runtime_carries_on(
    fresh_runtime: RuntimeClient, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(EMBEDDED_DIR / MODEL, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RpcFailure) as caught:
        fresh_runtime.request("load_model", {"model_id": "broken", "local_path": str(broken)})
    assert caught.value.code == -32001
    assert fresh_runtime.request("load_model", {"model_id": MODEL})["state"] == "ready"


def test_a_hub_id_loads_from_the_hugging_face_cache_when_offline(tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / "models--tiny-org--tiny-chat" / "snapshots" / COMMIT
    shutil.copytree(EMBEDDED_DIR / MODEL, snapshot)
    (tmp_path / "hub" / "models--tiny-org--tiny-chat" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny-org--tiny-chat" / "refs" / "main").write_text(COMMIT)
    client = spawn_runtime(env={"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"})
    try:
        info = client.request("load_model", {"model_id": "tiny-org/tiny-chat"})
        assert info["source"] == "hub" and info["state"] == "ready"
        assert_schema_clean(client)
    finally:
        client.close()


def test_without_a_network_a_hub_download_fails_with_a_clear_error(tmp_path: Path) -> None:
    client = spawn_runtime(env={"HF_HUB_CACHE": str(tmp_path / "empty"), "HF_HUB_OFFLINE": ""})
    try:
        with pytest.raises(RpcFailure) as caught:
            client.request("load_model", {"model_id": "someorg/some-model"}, timeout=120)
        assert caught.value.code == -32001 and "could not provide it" in caught.value.message
    finally:
        client.close()


def test_no_stream_starts_on_a_model_whose_unload_has_begun_and_none_is_left_without_an_end(
    fresh_runtime: RuntimeClient,
) -> None:
    fresh_runtime.request("load_model", {"model_id": MODEL})
    running = fresh_runtime.request(
        "generate", {"model_id": MODEL, "prompt": "Once", "max_tokens": 20000, "logit_bias": {"0": -100, "2": -100}}
    )["stream_id"]
    unload = fresh_runtime.call_async("unload_model", {"model_id": MODEL})
    late = fresh_runtime.call_async("generate", {"model_id": MODEL, "prompt": "Hi", "max_tokens": 5}).result(TIMEOUT)
    assert late["error"]["code"] == -32005
    assert unload.result(TIMEOUT)["result"]["was_loaded"]
    assert fresh_runtime.collect(running, timeout=10)["event"]["finish_reason"] == "cancelled"
    assert fresh_runtime.request("runtime/state")["queue"]["active"] == 0


def test_the_first_loads_time_counts_everything_the_host_waited_for(fresh_runtime: RuntimeClient) -> None:
    started = time.perf_counter()
    info = fresh_runtime.request("load_model", {"model_id": MODEL})
    waited_ms = (time.perf_counter() - started) * 1000
    # The runtime's window lies inside the host's: only the pipes and the reader are left out.
    assert 0.8 * waited_ms <= info["load_time_ms"] <= waited_ms + 1, (info["load_time_ms"], waited_ms)


def test_calls_that_wait_on_loads_are_all_answered_even_when_they_outnumber_the_pool(
    fresh_runtime: RuntimeClient,
) -> None:
    """The background pool has 8 threads. The first load (about a second: mlx-lm's import) holds one,
    8 unloads waiting on it hold the rest, then 8 unloads of the draft and the draft's own load queue
    up behind. Loads and unloads of one id keep the host's order: the target's unloads wait for its
    load (one of them unloads it), the draft's unloads come before its load (nothing to unload yet)."""
    first = fresh_runtime.call_async("load_model", {"model_id": MODEL})
    target_unloads = [fresh_runtime.call_async("unload_model", {"model_id": MODEL}) for _ in range(8)]
    draft_unloads = [fresh_runtime.call_async("unload_model", {"model_id": "tiny-draft"}) for _ in range(8)]
    draft = fresh_runtime.call_async("load_model", {"model_id": "tiny-draft"})
    assert first.result(TIMEOUT)["result"]["state"] == "ready"
    assert draft.result(TIMEOUT)["result"]["state"] == "ready"
    target_answers = [u.result(TIMEOUT)["result"] for u in target_unloads]
    assert [a["was_loaded"] for a in target_answers].count(True) == 1 and all(a["success"] for a in target_answers)
    draft_answers = [u.result(TIMEOUT)["result"] for u in draft_unloads]
    assert not any(a["was_loaded"] for a in draft_answers) and all(a["success"] for a in draft_answers)
    assert [m["model_id"] for m in fresh_runtime.request("runtime/state")["loaded_models"]] == ["tiny-draft"]
    assert progress_stages(fresh_runtime, "tiny-draft") == ["resolving", "loading", "warming", "ready"]
