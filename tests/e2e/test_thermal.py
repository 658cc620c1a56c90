"""The thermal guard end to end, on fake thermal zones (RUNTIME_INJECT_THERMAL_ROOT: test-only, set
by the spawning host; nothing on the wire reaches it)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import MODEL, assert_schema_clean, runtime_with
from tests.support.harness import RuntimeClient
from tests.support.waits import wait_until


def fake_zone(root: Path, celsius: float) -> None:
    zone = root / "thermal_zone0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "type").write_text("x86_pkg_temp\n")
    (zone / "temp").write_text(f"{int(celsius * 1000)}\n")


def stream_state(client: RuntimeClient, stream_id: str) -> str | None:
    streams = client.request("runtime/state")["streams"]
    return next((s["state"] for s in streams if s["stream_id"] == stream_id), None)


def test_under_pressure_pause_holds_new_streams_and_says_why_until_it_cools(tmp_path: Path) -> None:
    fake_zone(tmp_path, 92.0)
    env = {"RUNTIME_INJECT_THERMAL_ROOT": str(tmp_path)}
    with runtime_with("--thermal-policy", "pause", env=env) as client:
        stream = client.request("generate", {"model_id": MODEL, "prompt": "Once", "max_tokens": 4})["stream_id"]
        time.sleep(1.0)
        assert stream_state(client, stream) == "queued"
        thermal = client.request("runtime/state")["thermal"]
        assert thermal["admissions"] == "paused" and thermal["pressure"] == "serious"
        assert "92.0" in thermal["reason"] and thermal["hottest"]["type"] == "x86_pkg_temp"
        fake_zone(tmp_path, 60.0)
        assert client.collect(stream, timeout=15)["stats"]["finish_reason"] in ("length", "stop")
        assert client.request("runtime/state")["thermal"]["admissions"] == "open"
        assert_schema_clean(client)


def test_under_pressure_pace_starts_one_new_stream_per_interval(tmp_path: Path) -> None:
    fake_zone(tmp_path, 88.0)
    env = {"RUNTIME_INJECT_THERMAL_ROOT": str(tmp_path)}
    with runtime_with("--thermal-policy", "pace", "--thermal-pace-ms", "1500", env=env) as client:
        streams = [
            client.request("generate", {"model_id": MODEL, "prompt": f"Story {i}", "max_tokens": 2})["stream_id"]
            for i in range(3)
        ]
        for stream in streams:
            client.collect(stream, timeout=20)
        firsts = sorted(client.arrival_times[(s, "first")] for s in streams)
        gaps = [b - a for a, b in zip(firsts, firsts[1:], strict=False)]
        assert all(gap > 1.2 for gap in gaps), gaps
        assert client.request("runtime/state")["thermal"]["admissions"] == "paced"


def test_without_a_policy_the_thermal_zones_are_not_looked_at(tmp_path: Path) -> None:
    fake_zone(tmp_path, 120.0)
    with runtime_with(env={"RUNTIME_INJECT_THERMAL_ROOT": str(tmp_path)}) as client:
        stream = client.request("generate", {"model_id": MODEL, "prompt": "Once", "max_tokens": 2})["stream_id"]
        assert client.collect(stream)["stats"]["finish_reason"] in ("length", "stop")
        assert client.request("runtime/state")["thermal"]["policy"] == "off"


def test_under_pause_a_queued_stream_still_times_out_while_a_batch_decodes(tmp_path: Path) -> None:
    fake_zone(tmp_path, 50.0)
    env = {"RUNTIME_INJECT_THERMAL_ROOT": str(tmp_path)}
    no_eos = {"0": -100.0, "2": -100.0}
    with runtime_with("--thermal-policy", "pause", env=env) as client:
        batch = client.request(
            "batch_generate",
            {
                "requests": [
                    {"model_id": MODEL, "prompt": f"Go {i}", "max_tokens": 5000, "logit_bias": no_eos} for i in range(2)
                ]
            },
        )
        running = [r["result"]["stream_id"] for r in batch["results"]]
        assert wait_until(lambda: all(stream_state(client, s) == "decoding" for s in running))
        fake_zone(tmp_path, 95.0)
        assert wait_until(lambda: client.request("runtime/state")["thermal"]["admissions"] == "paused")
        late = client.request("generate", {"model_id": MODEL, "prompt": "Late", "max_tokens": 4, "timeout_ms": 1000})
        ended = client.collect(late["stream_id"], timeout=10)
        assert ended["stats"]["finish_reason"] == "timeout" and not ended["tokens"]
        assert all(stream_state(client, s) == "decoding" for s in running)
        for stream in running:
            client.request("cancel", {"stream_id": stream})
            client.collect(stream)
