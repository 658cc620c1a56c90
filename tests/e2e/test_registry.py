"""The model registry end to end: a models file, models/list, loads on demand, keep-alive, eviction.

Every test starts its own runtime with its own models file (in tmp_path); waits are bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, TIMEOUT, assert_schema_clean, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient
from tests.support.waits import wait_until

CHAT = {"source": {"embedded": "tiny-chat"}, "aliases": ["tiny"]}
DRAFT = {"source": {"embedded": "tiny-draft"}}
NO_EOS = {"0": -100.0, "2": -100.0}  # tiny-chat's end tokens never drawn: a stream runs to max_tokens


def models_file(tmp_path: Path, models: dict[str, Any], **extra: Any) -> Path:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": models, **extra}))
    return path


@pytest.fixture
def registry_runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., RuntimeClient]]:
    """Spawns runtimes with a models file of the test's choosing; all are closed afterwards."""
    clients: list[RuntimeClient] = []

    def spawn(models: dict[str, Any], *args: str, **extra: Any) -> RuntimeClient:
        client = spawn_runtime("--models", str(models_file(tmp_path, models, **extra)), *args)
        clients.append(client)
        return client

    yield spawn
    for client in clients:
        try:
            assert_schema_clean(client)
        finally:
            client.close()


def stages(client: RuntimeClient, model_id: str) -> list[str]:
    return [
        m["params"]["stage"]
        for m in list(client.messages)
        if m.get("method") == "model.progress" and m["params"]["model_id"] == model_id
    ]


def listed(client: RuntimeClient) -> dict[str, dict[str, Any]]:
    return {m["model_id"]: m for m in client.request("models/list")["models"]}


def loaded_ids(client: RuntimeClient) -> list[str]:
    return [m["model_id"] for m in client.request("runtime/state")["loaded_models"]]


def generate_text(client: RuntimeClient, model_id: str, **params: Any) -> dict[str, Any]:
    """A short generation; returns its text, tokens and finish reason."""
    started = client.request("generate", {"model_id": model_id, "prompt": "Once upon", "max_tokens": 4, **params})
    collected = client.collect(started["stream_id"])
    return {**collected, "finish_reason": collected["stats"]["finish_reason"]}


def finish_reason(client: RuntimeClient, stream_id: str) -> str:
    collected = client.collect(stream_id)
    assert collected["stats"] is not None, collected["event"]
    return str(collected["stats"]["finish_reason"])


# --- the registry and models/list --------------------------------------------------------------------
def test_models_list_shows_every_registered_model_as_available_with_its_source_and_size(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT, "draft": {**DRAFT, "keep_alive": "10m", "pinned": True}})
    models = listed(client)
    assert set(models) == {"chat", "draft"}
    chat = models["chat"]
    assert chat["state"] == "available" and chat["registered"] and chat["aliases"] == ["tiny"]
    assert chat["source"] == {"kind": "embedded", "name": "tiny-chat"}
    assert chat["disk_bytes"] > 1_000_000 and chat["memory_bytes"] is None
    assert models["draft"]["keep_alive"] == "600s" and models["draft"]["pinned"]
    assert client.request("models/list")["default_model"] is None


def test_a_registered_id_loads_on_demand_when_a_request_names_it(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT})
    result = generate_text(client, "chat")
    assert result["finish_reason"] in ("length", "stop") and result["tokens"]
    assert stages(client, "chat") == ["resolving", "loading", "warming", "ready"]
    models = listed(client)
    assert models["chat"]["state"] == "ready" and models["chat"]["memory_bytes"] > 1_000_000
    assert client.request("runtime/state")["ready_models"] == ["chat"]


def test_an_alias_names_its_model_and_loads_it_under_its_id(registry_runtime: Callable[..., RuntimeClient]) -> None:
    client = registry_runtime({"chat": CHAT})
    tokens = client.request("tokenize", {"model_id": "tiny", "text": "hello"})["tokens"]
    assert tokens and loaded_ids(client) == ["chat"]
    assert generate_text(client, "tiny")["tokens"]


def test_concurrent_requests_for_an_unloaded_model_share_one_load(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT})
    calls = [
        client.call_async("generate", {"model_id": "chat", "prompt": f"Story {i}", "max_tokens": 3}) for i in range(4)
    ]
    stream_ids = [c.result(TIMEOUT)["result"]["stream_id"] for c in calls]
    for stream_id in stream_ids:
        assert finish_reason(client, stream_id) in ("length", "stop")
    assert stages(client, "chat").count("resolving") == 1
    metrics = client.request("runtime/metrics")["metrics"]
    assert [s["value"] for s in metrics["mlx_runtime_model_loads_total"]["samples"]] == [1]


def test_an_id_neither_loaded_nor_registered_still_gets_model_not_loaded(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT})
    with pytest.raises(RpcFailure) as failure:
        client.request("generate", {"model_id": "nowhere", "prompt": "hi"})
    assert failure.value.code == -32005
    assert loaded_ids(client) == []


def test_a_request_cancelled_while_its_model_loads_gets_cancelled_and_starts_nothing(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT})
    call = client.call_async("generate", {"model_id": "chat", "prompt": "hi", "max_tokens": 3}, request_id="slow-1")
    client.notify("$/cancelRequest", {"id": "slow-1"})
    answer = call.result(TIMEOUT)
    assert answer["error"]["code"] == -32009
    assert client.request("runtime/state")["active_streams"] == 0
    assert not [m for m in list(client.messages) if str(m.get("method", "")).startswith("stream.")]


def test_a_registered_draft_is_loaded_with_its_target_and_its_requests_draft_with_it(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": {**CHAT, "draft": "draft", "num_draft_tokens": 2}, "draft": DRAFT})
    result = generate_text(client, "chat", max_tokens=12, temperature=0)
    assert result["stats"]["path"] == "speculative" and result["stats"]["draft"]["model_id"] == "draft"
    assert sorted(loaded_ids(client)) == ["chat", "draft"]
    state = {m["model_id"]: m for m in client.request("runtime/state")["loaded_models"]}
    assert state["chat"]["draft"] == {"model_id": "draft", "num_draft_tokens": 2}


def test_the_default_model_is_loaded_at_start(registry_runtime: Callable[..., RuntimeClient]) -> None:
    client = registry_runtime({"chat": CHAT}, default_model="tiny")
    assert wait_until(lambda: client.request("runtime/state")["ready_models"] == ["chat"])
    assert client.request("models/list")["default_model"] == "chat"
    assert listed(client)["chat"]["keep_alive"] == "-1"


# --- keep-alive --------------------------------------------------------------------------------------
def test_a_keep_alive_of_zero_unloads_the_model_when_its_last_stream_ends(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT})
    generate_text(client, "chat", keep_alive=0)
    assert wait_until(lambda: loaded_ids(client) == [], timeout=10)
    assert wait_until(lambda: listed(client)["chat"]["state"] == "available", timeout=5)  # the unload has ended


def test_an_idle_model_is_unloaded_once_its_keep_alive_passes_and_the_timer_shows_meanwhile(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": {**CHAT, "keep_alive": "1500ms"}})
    generate_text(client, "chat")
    timer = client.request("runtime/state")["loaded_models"][0]["keep_alive"]
    assert timer["keep_alive_s"] == 1.5 and timer["active_streams"] == 0 and 0 < timer["expires_in_s"] <= 1.5
    assert wait_until(lambda: loaded_ids(client) == [], timeout=10)
    assert generate_text(client, "chat")["tokens"]  # and it comes back on demand
    assert stages(client, "chat").count("ready") == 2


def test_a_keep_alive_of_minus_one_keeps_the_model_and_a_request_can_change_it(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": {**CHAT, "keep_alive": "300ms"}})
    generate_text(client, "chat", keep_alive=-1)
    time.sleep(1.0)
    assert loaded_ids(client) == ["chat"]
    timer = client.request("runtime/state")["loaded_models"][0]["keep_alive"]
    assert timer["keep_alive_s"] is None and timer["expires_in_s"] is None


def test_a_model_loaded_by_hand_stays_until_it_is_unloaded(registry_runtime: Callable[..., RuntimeClient]) -> None:
    client = registry_runtime({}, "--keep-alive", "200ms")
    client.request("load_model", {"model_id": "tiny-chat"})
    time.sleep(0.8)
    assert loaded_ids(client) == ["tiny-chat"]
    client.request("load_model", {"model_id": "tiny-chat", "keep_alive": "200ms"})
    assert wait_until(lambda: loaded_ids(client) == [], timeout=10)


def test_a_keep_alive_that_does_not_parse_is_refused_with_its_field(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT})
    for value in ("soon", "5 minutes", "1m30", True):
        with pytest.raises(RpcFailure) as failure:
            client.request("generate", {"model_id": "chat", "prompt": "hi", "keep_alive": value})
        assert failure.value.code == -32602
        assert failure.value.data["errors"][0]["path"] == "/keep_alive"
    assert loaded_ids(client) == []


# --- limits: max_loaded_models, memory, switch policy ------------------------------------------------
def test_loading_past_max_loaded_models_unloads_the_least_recently_used_idle_model(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    vlm = {"source": {"embedded": "tiny-vlm"}}
    client = registry_runtime({"chat": CHAT, "draft": DRAFT, "vlm": vlm}, "--max-loaded-models", "2")
    generate_text(client, "chat")
    generate_text(client, "draft")
    generate_text(client, "chat")  # chat is now the most recently used
    client.request("load_model", {"model_id": "vlm"})
    assert sorted(loaded_ids(client)) == ["chat", "vlm"]


def test_a_pinned_model_is_never_unloaded_to_make_room_and_the_error_says_why(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": {**CHAT, "pinned": True}, "draft": DRAFT}, "--max-loaded-models", "1")
    generate_text(client, "chat")
    with pytest.raises(RpcFailure) as failure:
        client.request("load_model", {"model_id": "draft"})
    error = failure.value
    assert error.code == -32008 and "max_loaded_models" in str(error.message)
    assert error.data["loaded_models"] == ["chat"] and error.data["max_loaded_models"] == 1
    assert loaded_ids(client) == ["chat"]


def test_a_load_that_does_not_fit_the_memory_budget_unloads_idle_models_first(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    """tiny-chat is 7.0 MB, tiny-vlm 7.7 MB: a 12 MB budget holds one of them at a time."""
    vlm = {"source": {"embedded": "tiny-vlm"}}
    client = registry_runtime({"chat": CHAT, "vlm": vlm}, "--memory-budget-mb", "12")
    generate_text(client, "chat")
    client.request("load_model", {"model_id": "vlm"})
    assert loaded_ids(client) == ["vlm"]


def test_with_switch_policy_cancel_the_streams_of_an_evicted_model_end_cancelled(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT, "draft": DRAFT}, "--max-loaded-models", "1", "--switch-policy", "cancel")
    client.request("load_model", {"model_id": "chat"})
    long = client.request("generate", {"model_id": "chat", "prompt": "Go on", "max_tokens": 4000, "logit_bias": NO_EOS})
    next(client.stream(long["stream_id"]))  # it is decoding
    client.request("load_model", {"model_id": "draft"})
    assert finish_reason(client, long["stream_id"]) == "cancelled"
    assert loaded_ids(client) == ["draft"]


def test_with_switch_policy_drain_the_streams_of_an_evicted_model_finish_first(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT, "draft": DRAFT}, "--max-loaded-models", "1")
    client.request("load_model", {"model_id": "chat"})
    params = {"model_id": "chat", "prompt": "Go on", "max_tokens": 300, "logit_bias": NO_EOS}
    running = client.request("generate", params)
    next(client.stream(running["stream_id"]))
    load = client.call_async("load_model", {"model_id": "draft"}, request_id="switch")
    assert load.result(TIMEOUT)["result"]["state"] == "ready"
    assert finish_reason(client, running["stream_id"]) == "length"
    messages = list(client.messages)
    ended = next(i for i, m in enumerate(messages) if m.get("method") == "stream.event")
    answered = next(i for i, m in enumerate(messages) if m.get("id") == "switch")
    assert ended < answered  # the stream ran to its end before the switch was made
    assert loaded_ids(client) == ["draft"]


def test_two_models_requested_at_once_past_max_loaded_models_are_both_served_one_after_the_other(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": CHAT, "draft": DRAFT}, "--max-loaded-models", "1")
    calls = [
        client.call_async("generate", {"model_id": m, "prompt": "Once", "max_tokens": 3}) for m in ("chat", "draft")
    ]
    streams = [c.result(TIMEOUT)["result"]["stream_id"] for c in calls]
    assert all(finish_reason(client, s) in ("length", "stop") for s in streams)
    assert len(loaded_ids(client)) == 1


def test_a_load_that_cannot_fit_even_alone_is_refused_before_anything_is_unloaded(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    """tiny-vlm's 7.7 MB do not fit a 7 MB budget whatever is unloaded: tiny-draft stays."""
    client = registry_runtime({"draft": DRAFT, "vlm": {"source": {"embedded": "tiny-vlm"}}}, "--memory-budget-mb", "7")
    generate_text(client, "draft")
    with pytest.raises(RpcFailure) as failure:
        client.request("load_model", {"model_id": "vlm"})
    assert failure.value.code == -32008 and failure.value.data["evictable_bytes"] > 0
    assert failure.value.data["needed_bytes"] > failure.value.data["budget_bytes"]
    assert loaded_ids(client) == ["draft"]


def test_a_draft_loaded_with_its_target_goes_once_its_target_has_gone(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    client = registry_runtime({"chat": {**CHAT, "draft": "draft"}, "draft": DRAFT}, "--keep-alive", "1s")
    generate_text(client, "chat", temperature=0)
    state = {m["model_id"]: m["keep_alive"] for m in client.request("runtime/state")["loaded_models"]}
    assert state["draft"]["keep_alive_s"] == 1.0 == state["chat"]["keep_alive_s"]
    assert wait_until(lambda: loaded_ids(client) == [], timeout=15)


# --- memory comes back -------------------------------------------------------------------------------
def test_twenty_load_generate_unload_cycles_keep_mlx_memory_and_rss_flat(
    registry_runtime: Callable[..., RuntimeClient],
) -> None:
    """Bound: MLX active memory back within 1 MB of its value before the first load after every
    unload; RSS may grow at most 40 MB from cycle 2 to cycle 20 (Python and the allocator's pools)."""
    client = registry_runtime({"chat": CHAT})

    def memory() -> tuple[int, int]:
        info = client.request("runtime/info")["memory"]
        return info["mlx_active"], info["rss"]

    baseline_active, _ = memory()
    rss_after: list[int] = []
    for cycle in range(20):
        generate_text(client, "chat", prompt_cache=True, session_id=f"s{cycle}")
        client.request("unload_model", {"model_id": "chat"})
        active, rss = memory()
        assert active <= baseline_active + 1_000_000, f"cycle {cycle}: {active - baseline_active} bytes left"
        rss_after.append(rss)
    assert rss_after[-1] - rss_after[1] < 40 * 1024 * 1024, rss_after


# --- a models file that does not validate ------------------------------------------------------------
@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"models": {"a": {"source": {"embedded": "tiny-chat"}, "keep_alive": "soon"}}}, "/models/a/keep_alive"),
        ({"models": {"a": {"source": {"hub": "../etc"}}}}, "/models/a/source"),
        ({"models": {"a": {"source": {"embedded": "nope"}}}}, "/models/a/source/embedded"),
        ({"models": {"a": CHAT, "b": {**DRAFT, "aliases": ["a"]}}}, "/models/b/aliases/0"),
        ({"models": {"a": {**CHAT, "draft": "missing"}}}, "/models/a/draft"),
        ({"models": {"a": CHAT}, "default_model": "b"}, "/default_model"),
        ({"models": {"a": {**CHAT, "colour": "red"}}}, "/models/a/colour"),
        ({"models": {"a": {"source": {"path": "/tmp"}}}, "x": 1}, "/x"),
    ],
)
def test_a_models_file_that_does_not_validate_stops_the_start_with_the_path_and_the_reason(
    tmp_path: Path, document: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(document))
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "--stdio", "--models", str(path)],
        input=b"",
        capture_output=True,
        timeout=TIMEOUT,
        cwd=REPO,
    )
    assert done.returncode == 2 and done.stdout == b""
    assert expected in done.stderr.decode() and str(path) in done.stderr.decode()


def test_a_local_model_outside_the_allowed_directories_is_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    client = spawn_runtime("--allow-model-dir", str(allowed))
    try:
        with pytest.raises(RpcFailure) as failure:
            client.request("load_model", {"model_id": "mine", "local_path": str(tmp_path)})
        assert failure.value.data["errors"][0]["path"] == "/local_path"
        assert "outside the allowed model directories" in failure.value.data["errors"][0]["message"]
        assert client.request("runtime/state")["loaded_models"] == []
    finally:
        client.close()


# --- on the command line -----------------------------------------------------------------------------
def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def test_runtime_models_lists_the_registry_with_states_sizes_and_the_cache(tmp_path: Path) -> None:
    path = models_file(
        tmp_path,
        {"chat": {**CHAT, "keep_alive": "10m"}, "smol": {"source": {"hub": "mlx-community/SmolLM2-135M-Instruct"}}},
        default_model="chat",
    )
    done = run_cli("--models", str(path), "models", env={"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert "embedded:tiny-chat" in lines["chat"] and "on disk" in lines["chat"] and "600s" in lines["chat"]
    assert "(default)" in lines["chat"] and "tiny" in lines["chat"].split()[-1]
    assert "not downloaded" in lines["smol"]
    assert f"Hugging Face cache: {tmp_path / 'hub'}" in done.stdout


def test_runtime_demo_uses_the_models_files_default_model(tmp_path: Path) -> None:
    path = models_file(tmp_path, {"storyteller": CHAT}, default_model="storyteller")
    done = run_cli("--models", str(path), "demo", "--max-tokens", "8")
    assert done.returncode == 0, done.stderr
    assert "model storyteller:" in done.stdout and "finish: " in done.stdout
