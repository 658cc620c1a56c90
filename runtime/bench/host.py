"""The leanest possible host, for `runtime bench` only: a measuring instrument should cost the
machine as little as it can (on 2 cores the host shares a core with the runtime's engine thread).
Hosts use the bindings (mlx_rpc_client, bindings/node); the tests use tests.support.harness over the binding.
"""

from __future__ import annotations

import itertools
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import Any

import orjson

from runtime.transport.framing import decode


def spawn_runtime(*args: str) -> subprocess.Popen[bytes]:
    """The runtime as a bench host starts it: `--stdio` over pipes, this environment, no stderr."""
    return subprocess.Popen(
        [sys.executable, "-m", "runtime", "--stdio", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )


class LeanHost:
    def __init__(self, ready_timeout: float = 60.0, args: tuple[str, ...] = ()) -> None:
        self.process = spawn_runtime(*args)
        self.arrival_times: dict[tuple[str, str], float] = {}
        self._pending: dict[Any, Future[Any]] = {}
        self._streams: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(ready_timeout):
            self.process.kill()
            raise TimeoutError(f"runtime not ready in {ready_timeout}s")

    def call_async(self, method: str, params: dict[str, Any] | None = None) -> Future[Any]:
        request_id = next(self._ids)
        future: Future[Any] = Future()
        with self._lock:
            self._pending[request_id] = future
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(message) + b"\n")
        self.process.stdin.flush()
        return future

    def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = 120.0) -> Any:
        response = self.call_async(method, params).result(timeout)
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]

    def stream(self, stream_id: str, timeout: float = 300.0) -> Iterator[dict[str, Any]]:
        events, deadline = self._queue(stream_id), time.monotonic() + timeout
        while True:
            message = events.get(timeout=max(0.0, deadline - time.monotonic()))
            yield message
            if message["method"] == "stream.event":
                return

    def close(self, timeout: float = 5.0) -> None:
        try:
            self.call_async("shutdown").result(timeout)
            self.process.wait(timeout)
        except Exception:
            self.process.kill()
            self.process.wait(timeout)

    def _queue(self, stream_id: str) -> queue.Queue[dict[str, Any]]:
        with self._lock:
            return self._streams.setdefault(stream_id, queue.Queue())

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = decode(line)
            if "method" not in message:
                with self._lock:
                    future = self._pending.pop(message.get("id"), None)
                if future is not None:
                    future.set_result(message)
            elif message["method"] == "runtime/ready":
                self._ready.set()
            elif "stream_id" in message["params"]:
                stream_id, method = message["params"]["stream_id"], message["method"]
                if method == "stream.chunk":
                    self.arrival_times.setdefault((stream_id, "first"), time.perf_counter())
                elif method == "stream.event":
                    self.arrival_times[(stream_id, "end")] = time.perf_counter()
                self._queue(stream_id).put(message)


def timed_stream(client: Any, params: dict[str, Any], exact: bool = True) -> dict[str, Any]:
    """One `generate` through a host, timed as every bench scenario times it: TTFT from the request
    line to the first chunk, decode tokens/s from the first chunk to the final event (all the
    tokens but the first). `exact`: the stream must make exactly max_tokens tokens."""
    sent = time.perf_counter()
    stream_id = client.request("generate", params)["stream_id"]
    first: float | None = None
    text: list[str] = []
    stats: dict[str, Any] = {}
    for message in client.stream(stream_id, timeout=600):
        if message["method"] == "stream.chunk":
            first = first or time.perf_counter()
            text.extend(t["token"] for t in message["params"]["tokens"])
        elif message["method"] == "stream.stats":
            stats = message["params"]
    done = time.perf_counter()
    count = len(text)
    assert first is not None, f"stream {stream_id} produced no token"
    if exact:
        assert count == params["max_tokens"], f"expected {params['max_tokens']} tokens, got {count}"
    return {
        "ttft_ms": (first - sent) * 1000,
        "decode_tps": (count - 1) / (done - first) if count > 1 else 0.0,
        "text": "".join(text),
        "stats": stats,
    }


def median(values: Iterable[float]) -> float:
    """Every bench figure is a median (of runs, or of per-pair ratios), rounded for the report."""
    return round(statistics.median(values), 3)


def timing_medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {"ttft_ms": median(r["ttft_ms"] for r in runs), "decode_tps": median(r["decode_tps"] for r in runs)}
