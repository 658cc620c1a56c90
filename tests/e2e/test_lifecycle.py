"""Start-up, shutdown, EOF, SIGTERM, fatal errors and the stdout guard, on the real process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import MODEL, assert_schema_clean, spawn_runtime
from tests.support.harness import RuntimeClient

NO_EOS = {"0": -100, "2": -100}
LONG = {"model_id": MODEL, "prompt": "Once upon a time", "max_tokens": 20000, "temperature": 0, "logit_bias": NO_EOS}


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def started_stream(client: RuntimeClient) -> str:
    client.request("load_model", {"model_id": MODEL})
    stream_id = client.request("generate", LONG)["stream_id"]
    deadline = time.monotonic() + 10
    while not any(m.get("method") == "stream.chunk" for m in list(client.messages)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return stream_id


def exit_code_within(client: RuntimeClient, seconds: float) -> int:
    started = time.monotonic()
    code = client.process.wait(seconds + 5)
    assert time.monotonic() - started <= seconds, f"exit took {time.monotonic() - started:.2f}s"
    return code


def test_ready_is_the_first_message_and_the_peer_ready_line_is_on_stderr(fresh_runtime: RuntimeClient) -> None:
    assert fresh_runtime.messages[0]["method"] == "runtime/ready"
    ready = fresh_runtime.messages[0]["params"]
    assert ready["protocol"] == "json-rpc-2.0" and "generate" in ready["capabilities"]
    deadline = time.monotonic() + 10
    while "MLX Runtime ready" not in fresh_runtime.stderr_lines:
        assert time.monotonic() < deadline, fresh_runtime.stderr_lines
        time.sleep(0.01)


def test_the_peer_hosts_readiness_probe_id_comes_back_as_a_string(fresh_runtime: RuntimeClient) -> None:
    response = fresh_runtime.call_async("runtime/info", request_id="readiness-probe").result(10)
    assert response["id"] == "readiness-probe" and response["result"]["version"]


def test_shutdown_cancels_streams_answers_and_exits_zero_without_orphans() -> None:
    client = spawn_runtime()
    stream_id = started_stream(client)
    children = children_of(client.process.pid)
    assert client.request("shutdown", timeout=10) == {"success": True}
    assert exit_code_within(client, 3.0) == 0
    finals = [m for m in client.messages if m.get("method") == "stream.event"]
    assert [(f["params"]["stream_id"], f["params"]["finish_reason"]) for f in finals] == [(stream_id, "cancelled")]
    assert all(not Path(f"/proc/{child}").exists() for child in children)
    assert_schema_clean(client)


def test_shutdown_with_drain_lets_streams_finish_first() -> None:
    client = spawn_runtime()
    client.request("load_model", {"model_id": MODEL})
    stream_id = client.request("generate", {**LONG, "max_tokens": 300})["stream_id"]
    assert client.request("shutdown", {"drain": True, "timeout_ms": 20000}, timeout=30) == {"success": True}
    assert exit_code_within(client, 3.0) == 0
    final = next(m for m in client.messages if m.get("method") == "stream.event")
    assert final["params"] == {
        "stream_id": stream_id,
        "event": "completed",
        "is_final": True,
        "finish_reason": "length",
    }


def test_work_sent_after_shutdown_began_is_refused() -> None:
    client = spawn_runtime()
    started_stream(client)
    shutdown = client.call_async("shutdown", {"drain": True, "timeout_ms": 3000})
    refused = client.call_async("generate", LONG).result(10)
    assert refused["error"]["code"] == -32000
    shutdown.result(10)
    assert exit_code_within(client, 3.0) == 0


def test_stdin_eof_ends_streams_and_exits_zero_within_two_seconds() -> None:
    client = spawn_runtime()
    stream_id = started_stream(client)
    client.process.stdin.close()
    assert exit_code_within(client, 2.0) == 0
    final = [m for m in client.messages if m.get("method") == "stream.event"][-1]["params"]
    assert final["stream_id"] == stream_id and final["finish_reason"] == "cancelled"


def test_sigterm_ends_streams_and_exits_zero_within_two_seconds() -> None:
    client = spawn_runtime()
    started_stream(client)
    client.process.send_signal(signal.SIGTERM)
    assert exit_code_within(client, 2.0) == 0
    assert [m for m in client.messages if m.get("method") == "stream.event"][-1]["params"][
        "finish_reason"
    ] == "cancelled"


def test_a_fatal_engine_error_sends_a_final_notification_then_exits_non_zero() -> None:
    client = spawn_runtime(env={"RUNTIME_INJECT_FAULTS": "engine_crash_on_unload"})
    client.request("load_model", {"model_id": MODEL})
    client.call_async("unload_model", {"model_id": MODEL})
    assert client.process.wait(10) == 1
    assert client.messages[-1]["method"] == "runtime/fatal"
    fatal = client.messages[-1]["params"]
    assert fatal["error_type"] == "InjectedCrash" and fatal["error"] == "the engine thread failed"


def test_fault_injection_is_off_unless_the_spawning_host_turns_it_on(fresh_runtime: RuntimeClient) -> None:
    fresh_runtime.request("load_model", {"model_id": MODEL})
    assert fresh_runtime.request("unload_model", {"model_id": MODEL})["was_loaded"]
    assert fresh_runtime.process.poll() is None


NOISY_SITECUSTOMIZE = """
import ctypes, importlib.abc, os, sys

class Noisy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "mlx_lm":
            print("print() from a library")
            sys.stdout.write("sys.stdout.write from a library\\n")
            os.write(1, b"os.write(1) from a library\\n")
            libc = ctypes.CDLL(None)
            libc.puts(b"libc puts from a library")
            libc.fflush(None)
        return None

sys.meta_path.insert(0, Noisy())
"""


def test_a_stray_print_from_a_library_never_reaches_the_wire(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(NOISY_SITECUSTOMIZE)
    from tests.conftest import REPO

    client = spawn_runtime(env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})
    try:
        client.request("load_model", {"model_id": MODEL})  # first import of mlx_lm: the library prints
        client.collect(client.request("generate", {"model_id": MODEL, "prompt": "Hi", "max_tokens": 5})["stream_id"])
        stderr = "\n".join(client.stderr_lines)
        for noise in ("print() from a library", "os.write(1) from a library", "libc puts from a library"):
            assert noise in stderr
        assert all(isinstance(m, dict) and m["jsonrpc"] == "2.0" for m in client.messages)
        assert_schema_clean(client)
    finally:
        client.close()


@pytest.mark.parametrize("flag, loaded", [([], True), (["--no-blas"], False)])
def test_the_runtime_uses_a_real_blas_when_one_is_installed(flag: list[str], loaded: bool) -> None:
    from runtime.server.blas import _candidate_paths

    if loaded and not any(os.path.exists(p) for p in _candidate_paths()):
        pytest.skip("no OpenBLAS or MKL on this machine")
    client = spawn_runtime(*flag)
    try:
        blas = client.request("runtime/info")["blas"]
        assert blas["loaded"] is loaded and (blas["name"] in ("openblas", "mkl", "other")) is loaded
    finally:
        client.close()
