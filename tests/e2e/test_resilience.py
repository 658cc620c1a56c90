"""Faults, the circuit breaker, the memory guard, configuration, backpressure and load."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from runtime.faultinject import STREAM_FAULT_MARKER
from tests.conftest import MODEL, REPO, assert_schema_clean, run_runtime, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient

NO_EOS = {"0": -100, "2": -100}


def breaker_events(client: RuntimeClient) -> list[tuple[str, str]]:
    return [
        (m["params"]["previous"], m["params"]["state"])
        for m in list(client.messages)
        if m.get("method") == "runtime/breaker"
    ]


def test_engine_faults_open_the_breaker_and_a_later_probe_closes_it() -> None:
    client = spawn_runtime(
        "--breaker-threshold", "2", "--breaker-cooldown-ms", "700", env={"RUNTIME_INJECT_FAULTS": "stream_fault"}
    )
    try:
        client.request("load_model", {"model_id": MODEL})
        good = {
            "model_id": MODEL,
            "prompt": "Once upon a time",
            "max_tokens": 60,
            "temperature": 0,
            "logit_bias": NO_EOS,
        }
        reference = client.collect(client.request("generate", good)["stream_id"])["text"]
        bystander = client.request("generate", good)["stream_id"]
        faulty = [
            client.request("generate", {**good, "prompt": f"Hello {STREAM_FAULT_MARKER}"})["stream_id"]
            for _ in range(2)
        ]
        for stream_id in faulty:
            final = client.collect(stream_id)["event"]
            assert final["event"] == "error" and "injected: stream_fault" in final["error"]
        assert client.collect(bystander)["text"] == reference  # same batch, untouched
        with pytest.raises(RpcFailure) as refused:
            client.request("generate", good)
        assert refused.value.code == -32007 and 0 < refused.value.data["retry_after_ms"] <= 700
        assert client.request("runtime/state")["breaker"]["state"] == "open"
        time.sleep(0.75)  # the configured cool-down; nothing else can make it pass
        probe = client.request("generate", good)["stream_id"]
        assert client.collect(probe)["text"] == reference
        assert client.request("runtime/state")["breaker"]["state"] == "closed"
        assert breaker_events(client) == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
        assert client.process.poll() is None
        assert_schema_clean(client)
    finally:
        client.close()


def test_a_load_beyond_the_memory_budget_is_refused_before_reading_weights() -> None:
    client = spawn_runtime("--memory-budget-mb", "4")
    try:
        with pytest.raises(RpcFailure) as refused:
            client.request("load_model", {"model_id": MODEL})
        assert refused.value.code == -32008 and "memory budget" in refused.value.message
        assert refused.value.data["needed_bytes"] > refused.value.data["budget_bytes"]
        assert client.request("runtime/state")["loaded_models"] == []
    finally:
        client.close()


def test_limits_come_from_the_config_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "runtime.json"
    config.write_text(json.dumps({"max_queued": 7, "max_active_streams": 3, "breaker_threshold": 9}))
    client = spawn_runtime("--config", str(config), "--max-active-streams", "5", env={"RUNTIME_MAX_QUEUED": "11"})
    try:
        limits = client.request("runtime/state")["limits"]
        assert (limits["max_active_streams"], limits["max_queued"], limits["breaker_threshold"]) == (5, 11, 9)
    finally:
        client.close()


def test_a_bad_config_is_refused_at_start_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"max_queued": "lots", "unknown_knob": 1}))
    result = run_runtime("--stdio", "--config", str(config))
    assert result.returncode == 2 and "unknown settings ['unknown_knob']" in result.stderr
    assert result.stdout == ""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, within: float) -> None:
    """Wait for a half-second window in which the process burns almost no CPU.

    How long the pipe and the outbound queue take to fill depends on the machine's speed; a
    runtime without back-pressure decodes 20000 tokens at full speed and never goes idle here."""
    deadline = time.monotonic() + within
    while True:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < 0.05:
            return
        assert time.monotonic() < deadline, "generation kept running while nobody read"


def count_tokens(messages: list[dict]) -> int:
    return sum(len(m["params"]["tokens"]) for m in messages if m.get("method") == "stream.chunk")


def test_a_host_that_stops_reading_pauses_generation_without_losing_tokens() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime", "--stdio", "--max-outbound-queue", "16"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdin and process.stdout

    def send(message: dict) -> None:
        process.stdin.write(orjson.dumps(message) + b"\n")
        process.stdin.flush()

    def read() -> dict:
        return orjson.loads(process.stdout.readline())

    params = {
        "model_id": MODEL,
        "prompt": "Once upon a time",
        "max_tokens": 20000,
        "temperature": 0,
        "logit_bias": NO_EOS,
        "stream_id": "slow",
    }
    try:
        assert read()["method"] == "runtime/ready"
        send({"jsonrpc": "2.0", "id": 1, "method": "load_model", "params": {"model_id": MODEL}})
        while read().get("id") != 1:
            pass
        send({"jsonrpc": "2.0", "id": 2, "method": "generate", "params": params})
        received = [read() for _ in range(5)]
        wait_until_idle(process.pid, within=20.0)  # stop reading: the pipe and the bounded queue fill up
        rss_paused, cpu_paused = rss_bytes(process.pid), cpu_seconds(process.pid)
        time.sleep(1.5)
        assert cpu_seconds(process.pid) - cpu_paused < 0.3, "generation kept running while nobody read"
        assert rss_bytes(process.pid) - rss_paused < 2_000_000, "memory grew while nobody read"
        deadline = time.monotonic() + 30.0
        while count_tokens(received) < 1000:  # reading again: the stream continues
            assert time.monotonic() < deadline, "the stream did not resume once the host read again"
            received.append(read())
        send({"jsonrpc": "2.0", "id": 3, "method": "cancel", "params": {"stream_id": "slow"}})
        while received[-1].get("method") != "stream.event":
            received.append(read())
    finally:
        process.kill()
        process.wait(10)
    tokens = [t["token_id"] for m in received if m.get("method") == "stream.chunk" for t in m["params"]["tokens"]]
    assert received[-1]["params"]["finish_reason"] == "cancelled" and 1000 <= len(tokens) < 20000
    reference = spawn_runtime()
    try:
        reference.request("load_model", {"model_id": MODEL})
        expected = reference.collect(
            reference.request("generate", {**params, "stream_id": "ref", "max_tokens": len(tokens)})["stream_id"]
        )
    finally:
        reference.close()
    assert tokens == [t["token_id"] for t in expected["tokens"]]  # nothing dropped, nothing reordered


def test_two_hundred_mixed_requests_with_random_cancels_all_end_exactly_once() -> None:
    rng = random.Random(7)
    client = spawn_runtime("--max-active-streams", "8", "--max-queued", "300")
    try:
        client.request("load_model", {"model_id": MODEL})
        futures = []
        for index in range(200):
            params = {
                "model_id": MODEL,
                "prompt": rng.choice(["Once", "Lily had", "The fox", "Hi"]),
                "max_tokens": rng.randint(1, 40),
                "temperature": rng.choice([0, 0.7, 1.0]),
                "seed": rng.randint(0, 99),
                "stream_id": f"mix-{index}",
                "priority": rng.choice(["high", "normal", "low"]),
            }
            if index % 17 == 0:
                params["max_tokens"] = 0  # invalid: refused, no stream
            if index % 23 == 0:
                params["timeout_ms"] = rng.randint(1, 50)
            futures.append(client.call_async("generate", params))
            if rng.random() < 0.3:
                client.notify("$/cancelRequest", {"id": index})  # harmless when unknown
                client.call_async("cancel", {"stream_id": f"mix-{rng.randint(0, index)}"})
        started = [f.result(60) for f in futures]
        streams = [r["result"]["stream_id"] for r in started if "result" in r]
        assert len(streams) == 200 - len(range(0, 200, 17))
        for stream_id in streams:
            client.collect(stream_id, timeout=120)
        finals = [m["params"] for m in list(client.messages) if m.get("method") == "stream.event"]
        assert sorted(f["stream_id"] for f in finals) == sorted(streams)  # one each, none extra
        assert {f["finish_reason"] for f in finals} <= {"stop", "length", "cancelled", "timeout"}
        state = client.request("runtime/state")
        assert state["active_streams"] == 0 and state["queue"]["queued"] == 0 and state["queue"]["active"] == 0
        assert_schema_clean(client)
    finally:
        client.close()
