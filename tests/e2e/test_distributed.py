"""One model served by two ranks (two processes, the ring backend over 127.0.0.1): rank 0 speaks the
protocol, rank 1 follows its turns (docs/distributed.md). Every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.server.distributed import loopback_hostfile
from runtime.tinymodels.fixtures import build_random_model
from tests.conftest import MODEL, REPO, TIMEOUT, run_runtime, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient

NO_EOS = {"0": -100, "2": -100}  # tiny-chat's end tokens: long streams for cancel and faults
PROMPTS = ["Once upon a time", "Lily had a red ball", "The fox ran", "Hi"]


def spawn_group(hostfile: Path, *args: str) -> RuntimeClient:
    return spawn_runtime("--distributed", str(hostfile), *args)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """tiny-chat (3 heads: its MLPs are split), a deeper llama (tensor parallel through mlx-lm's
    shard()) and a ministral3 (pipeline parallel through mlx-lm's pipeline())."""
    root = tmp_path_factory.mktemp("group-models")
    deep = build_random_model(
        root / "deep",
        arch="llama",
        hidden_size=128,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_key_value_heads=2,
        seed=3,
    )
    staged = build_random_model(root / "staged", arch="ministral3", hidden_size=64, num_hidden_layers=5, seed=5)
    return {"tiny": MODEL, "deep": deep["path"], "staged": staged["path"]}


def greedy(client: RuntimeClient, model: str, prompt: str, max_tokens: int = 32, **extra: object) -> list[int]:
    params = {"model_id": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **extra}
    stream = client.request("generate", params)["stream_id"]
    return [t["token_id"] for t in client.collect(stream, TIMEOUT)["tokens"]]


def load(client: RuntimeClient, model: str, **options: object) -> dict:
    return client.request("load_model", {"model_id": model, **options}, timeout=TIMEOUT)


def follower_pid(client: RuntimeClient) -> int:
    ranks = client.request("runtime/state")["distributed"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    return int(ranks[1]["pid"])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _status(pid)


def _status(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]).lower()
    except (OSError, IndexError):
        return "zombie"


@pytest.fixture
def group(tmp_path: Path) -> Iterator[RuntimeClient]:
    client = spawn_group(loopback_hostfile(tmp_path), "--distributed-timeout", "3")
    pid = follower_pid(client)
    try:
        yield client
    finally:
        client.close()
        if pid_alive(pid):  # a follower never outlives its test
            os.kill(pid, signal.SIGKILL)


def test_two_ranks_answer_greedy_exactly_like_one_process_for_the_tiny_and_two_deeper_models(
    group: RuntimeClient, models: dict[str, str]
) -> None:
    single = spawn_runtime()
    try:
        expected = {}
        for name, model in models.items():
            load(single, model)
            expected[name] = scored(single, model)
    finally:
        single.close()
    splits = {name: load(group, model).get("parallel") for name, model in models.items()}
    assert splits == {"tiny": "mlp", "deep": "tensor", "staged": "pipeline"}
    for name, model in models.items():
        tokens, logprobs = scored(group, model)
        assert tokens == expected[name][0], name
        # The same forward passes, not just the same argmax: each token's logprob agrees.
        assert logprobs == pytest.approx(expected[name][1], abs=1e-3), name
    assert len(set(expected["tiny"][0])) > 10


def scored(client: RuntimeClient, model: str) -> tuple[list[int], list[float]]:
    params = {"model_id": model, "prompt": "Once upon a time", "max_tokens": 40, "temperature": 0, "logprobs": True}
    tokens = client.collect(client.request("generate", params)["stream_id"], TIMEOUT)["tokens"]
    return [t["token_id"] for t in tokens], [t["logprob"] for t in tokens]


def test_a_seeded_sample_and_a_stop_sequence_behave_as_on_one_machine(group: RuntimeClient) -> None:
    params = {"model_id": MODEL, "prompt": "Lily had", "max_tokens": 40, "temperature": 0.9, "seed": 11}
    params["logit_bias"] = NO_EOS
    stopped = {"model_id": MODEL, "prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}
    stopped["stop_sequences"] = ["."]
    single = spawn_runtime()
    try:
        load(single, MODEL)
        expected = [single.collect(single.request("generate", p)["stream_id"], TIMEOUT) for p in (params, stopped)]
    finally:
        single.close()
    load(group, MODEL)
    got = [group.collect(group.request("generate", p)["stream_id"], TIMEOUT) for p in (params, stopped)]
    assert [g["text"] for g in got] == [e["text"] for e in expected]
    assert len(got[0]["tokens"]) == 40 and len(got[1]["text"]) > 10
    assert got[1]["event"]["finish_reason"] == "stop" and got[1]["event"].get("stop_sequence") == "."


def test_concurrent_streams_are_batched_across_the_group_and_each_matches_its_solo_output(
    group: RuntimeClient,
) -> None:
    single = spawn_runtime("--no-batching")
    try:
        load(single, MODEL)
        expected = [greedy(single, MODEL, prompt, 24) for prompt in PROMPTS]
    finally:
        single.close()
    load(group, MODEL)
    streams = [
        group.request("generate", {"model_id": MODEL, "prompt": p, "max_tokens": 24, "temperature": 0})["stream_id"]
        for p in PROMPTS
    ]
    results = [group.collect(s, TIMEOUT) for s in streams]
    assert [[t["token_id"] for t in r["tokens"]] for r in results] == expected
    assert any(r["stats"]["path"] == "batch" for r in results), [r["stats"]["path"] for r in results]


def test_the_prompt_cache_serves_a_shared_prefix_on_every_rank(group: RuntimeClient, models: dict[str, str]) -> None:
    """A 5-layer pipeline splits 3 / 2: the ranks' caches differ in size, yet keep the same entries."""
    history = "Once upon a time, there was a little fox. The fox liked to run in the park with Lily."
    turns = [history, history + " One day, the fox"]
    single = spawn_runtime()
    try:
        load(single, models["staged"])
        expected = [greedy(single, models["staged"], turn, 12) for turn in turns]
    finally:
        single.close()
    load(group, models["staged"])
    got, cached = [], []
    for turn in turns:
        params = {"model_id": models["staged"], "prompt": turn, "max_tokens": 12, "temperature": 0}
        result = group.collect(group.request("generate", params)["stream_id"], TIMEOUT)
        got.append([t["token_id"] for t in result["tokens"]])
        cached.append(result["stats"]["cached_tokens"])
    assert got == expected
    assert cached[0] == 0 and cached[1] > 10


def test_a_cancelled_stream_ends_on_every_rank_and_the_group_serves_the_next_request(group: RuntimeClient) -> None:
    load(group, MODEL)
    long = {"model_id": MODEL, "prompt": "Once", "max_tokens": 5000, "temperature": 0, "logit_bias": NO_EOS}
    stream = group.request("generate", long)["stream_id"]
    first = next(group.stream(stream, TIMEOUT))
    assert first["method"] == "stream.chunk"
    assert group.request("cancel", {"stream_id": stream})["cancelled"] is True
    assert group.collect(stream, TIMEOUT)["event"]["finish_reason"] == "cancelled"
    # The follower dropped the stream too: the next request's turns still meet on both ranks.
    assert len(greedy(group, MODEL, "The fox ran", 16, logit_bias=NO_EOS)) == 16
    assert group.request("runtime/state")["distributed"]["state"] == "ok"


def decoding_stream(group: RuntimeClient) -> tuple[str, int]:
    """A long stream under way (its first chunk arrived), and the follower's pid."""
    load(group, MODEL)
    long = {"model_id": MODEL, "prompt": "Once", "max_tokens": 20000, "temperature": 0, "logit_bias": NO_EOS}
    stream = group.request("generate", long)["stream_id"]
    assert next(group.stream(stream, TIMEOUT))["method"] == "stream.chunk"
    return stream, follower_pid(group)


def test_a_killed_rank_ends_its_streams_with_an_error_and_rank_zero_stays_up(group: RuntimeClient) -> None:
    stream, pid = decoding_stream(group)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    event = group.collect(stream, 20.0)["event"]
    assert time.monotonic() - killed_at < 10.0
    assert event["finish_reason"] == "error" and event["error_code"] == -32010, event
    assert "rank 1" in event["error"]
    state = group.request("runtime/state")["distributed"]
    assert state["state"] == "lost" and state["lost"]["rank"] == 1
    assert [r["alive"] for r in state["ranks"]] == [True, False]
    with pytest.raises(RpcFailure) as refused:
        group.request("generate", {"model_id": MODEL, "prompt": "Hi", "max_tokens": 4})
    assert refused.value.code == -32010
    assert group.request("runtime/info")["distributed"]["world_size"] == 2  # control methods still answer


def test_a_rank_that_stops_answering_is_declared_lost_within_the_timeout(group: RuntimeClient) -> None:
    stream, pid = decoding_stream(group)
    stopped_at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        event = group.collect(stream, 30.0)["event"]
        waited = time.monotonic() - stopped_at
    finally:
        os.kill(pid, signal.SIGKILL)
    assert event["finish_reason"] == "error" and event["error_code"] == -32010, event
    assert 2.5 < waited < 12.0  # the heartbeat timeout is 3 s
    lost = group.request("runtime/state")["distributed"]["ranks"][1]
    assert lost["alive"] is False and "stopped answering" in lost["lost"]


def test_shutting_rank_zero_down_ends_every_rank(tmp_path: Path) -> None:
    client = spawn_group(loopback_hostfile(tmp_path))
    pid = follower_pid(client)
    load(client, MODEL)
    assert client.close() == 0
    deadline = time.monotonic() + 15.0
    while pid_alive(pid):
        assert time.monotonic() < deadline, "the follower outlived rank 0"
        time.sleep(0.1)


def test_what_a_group_cannot_split_is_refused_with_a_clear_error(group: RuntimeClient) -> None:
    with pytest.raises(RpcFailure) as embedder:
        load(group, "tiny-embed")
    assert embedder.value.code == -32011
    with pytest.raises(RpcFailure) as embed:
        group.request("embed", {"model_id": "tiny-embed", "input": "hello"})
    assert embed.value.code == -32011
    with pytest.raises(RpcFailure) as tensor:
        load(group, MODEL, parallel="tensor")  # 3 attention heads do not divide between 2 ranks
    assert tensor.value.code == -32011 and "mlp" in tensor.value.message
    load(group, MODEL)
    with pytest.raises(RpcFailure) as session:
        group.request("session/save", {"session_id": "s1"})
    assert session.value.code == -32011
    assert len(greedy(group, MODEL, "Hi", 8, logit_bias=NO_EOS)) == 8  # the refusals left the ranks in step


def test_runtime_info_state_and_doctor_describe_the_group(tmp_path: Path) -> None:
    hostfile = loopback_hostfile(tmp_path)
    client = spawn_group(hostfile)
    pid = follower_pid(client)
    try:
        info = client.request("runtime/info")["distributed"]
        assert info["backend"] == "ring" and info["world_size"] == 2 and info["rank"] == 0
        assert [h["address"].split(":")[0] for h in info["hosts"]] == ["127.0.0.1", "127.0.0.1"]
        state = client.request("runtime/state")["distributed"]
        assert state["state"] == "ok" and all(r["alive"] for r in state["ranks"])
    finally:
        client.close()
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    single = spawn_runtime()
    try:
        assert single.request("runtime/info")["distributed"] is None
        assert single.request("runtime/state")["distributed"] is None
    finally:
        single.close()
    doctor = run_runtime("doctor", "--distributed", str(hostfile), timeout=180)
    line = next(line for line in doctor.stdout.splitlines() if line.startswith("distributed_group"))
    report = json.loads(line.split(None, 1)[1])
    assert report["formed"] is True and report["world_size"] == 2 and len(report["ranks"]) == 2


def test_a_hostfile_that_cannot_form_a_group_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "one.json"
    bad.write_text(json.dumps([{"ssh": "localhost", "ips": ["127.0.0.1"]}]))
    result = run_runtime("--stdio", "--distributed", str(bad))
    assert result.returncode == 2 and "at least two ranks" in result.stderr and result.stdout == ""


def test_a_group_started_by_mlx_launch_serves_and_shutdown_ends_every_rank(tmp_path: Path) -> None:
    launcher = Path(sys.executable).with_name("mlx.launch")
    port = int(json.loads(loopback_hostfile(tmp_path).read_text())["port"])
    command = [str(launcher), "--hosts", "127.0.0.1", "-n", "2", "-p", str(port), "--backend", "ring", "--"]
    client = RuntimeClient.spawn(
        ["--stdio"],
        env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
        ready_timeout=TIMEOUT,
        command=[*command, sys.executable, "-m", "runtime"],
    )
    try:
        pid = follower_pid(client)
        assert client.request("runtime/info")["distributed"]["world_size"] == 2
        load(client, MODEL)
        assert len(greedy(client, MODEL, "Once upon a time", 12, logit_bias=NO_EOS)) == 12
        # mlx.launch never passes the end of stdin on: the host ends the group with shutdown.
        client.request("shutdown", {})
        assert client.process.wait(30) == 0
        assert not pid_alive(pid)
    finally:
        client.kill()


def test_the_http_front_door_serves_a_group_too(tmp_path: Path) -> None:
    from tests.e2e.test_http import Server, wait_ready

    server = Server(tmp_path, "--distributed", str(loopback_hostfile(tmp_path)))
    try:
        wait_ready(server)
        body = {"model": "tiny-chat", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
        answer = httpx.post(f"{server.url}/v1/completions", json=body, timeout=TIMEOUT).json()
        assert answer["usage"]["completion_tokens"] > 0 and answer["choices"][0]["text"]
        metrics = httpx.get(f"{server.url}/health", timeout=10)
        assert metrics.status_code == 200
    finally:
        server.close()


def test_a_sampled_request_without_a_seed_keeps_the_ranks_in_step(group: RuntimeClient) -> None:
    """Rank 0 draws the seed and sends it: ranks drawing their own would sample different tokens."""
    load(group, MODEL)
    params = {"model_id": MODEL, "prompt": "Lily had", "max_tokens": 24, "temperature": 1.0, "logit_bias": NO_EOS}
    for _ in range(3):
        result = group.collect(group.request("generate", params)["stream_id"], TIMEOUT)
        assert result["event"]["finish_reason"] in ("length", "stop") and result["tokens"]
    # Each rank checks its tokens against rank 0's at every turn: different draws would have ended the group.
    assert group.request("runtime/state")["distributed"]["state"] == "ok"


def test_a_deadline_and_an_unload_end_streams_on_every_rank(group: RuntimeClient) -> None:
    load(group, MODEL)
    late = {"model_id": MODEL, "prompt": "Once", "max_tokens": 20000, "logit_bias": NO_EOS, "timeout_ms": 300}
    assert group.collect(group.request("generate", late)["stream_id"], TIMEOUT)["event"]["finish_reason"] == "timeout"
    long = {**late, "timeout_ms": None}
    del long["timeout_ms"]
    stream = group.request("generate", long)["stream_id"]
    assert group.request("unload_model", {"model_id": MODEL}, timeout=TIMEOUT)["success"] is True
    assert group.collect(stream, TIMEOUT)["event"]["finish_reason"] == "cancelled"
    load(group, MODEL)  # loaded again on both ranks: the group goes on
    assert len(greedy(group, MODEL, "Hi", 8, logit_bias=NO_EOS)) == 8
    assert group.request("runtime/state")["distributed"]["state"] == "ok"


def test_a_load_that_fails_on_one_rank_fails_on_all_and_the_group_goes_on(tmp_path: Path) -> None:
    hostfile = loopback_hostfile(tmp_path)
    spec = json.loads(hostfile.read_text())
    spec["envs"] = ["RUNTIME_INJECT_FAULTS=read_fails"]  # the followers only
    hostfile.write_text(json.dumps(spec))
    client = spawn_group(hostfile)
    pid = follower_pid(client)
    try:
        with pytest.raises(RpcFailure) as failed:
            load(client, MODEL)
        assert failed.value.code == -32001 and "rank 1" in failed.value.message
        assert client.request("runtime/state")["distributed"]["state"] == "ok"
        assert client.request("runtime/state")["loaded_models"] == []  # rank 0 gave its part back
        with pytest.raises(RpcFailure):
            load(client, MODEL)  # and can try again: the ranks are still in step
    finally:
        client.close()
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_stream_that_fails_on_one_rank_only_ends_the_group_instead_of_hanging_it(tmp_path: Path) -> None:
    hostfile = loopback_hostfile(tmp_path)
    spec = json.loads(hostfile.read_text())
    spec["envs"] = ["RUNTIME_INJECT_FAULTS=stream_fault"]  # the followers' sampler fails, rank 0's does not
    hostfile.write_text(json.dumps(spec))
    client = spawn_group(hostfile, "--distributed-timeout", "3")
    pid = follower_pid(client)
    try:
        load(client, MODEL)
        params = {"model_id": MODEL, "prompt": "[[inject-stream-fault]] Once", "max_tokens": 64, "logit_bias": NO_EOS}
        event = client.collect(client.request("generate", params)["stream_id"], 30.0)["event"]
        assert event["finish_reason"] == "error" and event["error_code"] == -32010, event
        assert "failed on this rank" in event["error"]
        assert client.request("runtime/state")["distributed"]["state"] == "lost"
    finally:
        client.close()
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
