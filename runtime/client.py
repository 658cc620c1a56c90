"""A small synchronous client that spawns `runtime --stdio` as a host would.

Used by `runtime demo`, `runtime bench` and the end-to-end tests. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import orjson

from runtime.framing import decode

DEFAULT_TIMEOUT = 60.0
_CLOSED: Any = {"method": "__closed__"}  # put in stream queues when the runtime's stdout ends


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, type(None))) else repr(value)


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code, self.message, self.data = error.get("code"), error.get("message"), error.get("data")


class RuntimeClient:
    def __init__(self, process: subprocess.Popen[bytes], stderr_sink: Any = None) -> None:
        self.process = process
        self.messages: list[dict[str, Any]] = []  # everything the runtime wrote, in order
        self.stderr_lines: list[str] = []
        self.ready = threading.Event()
        self.ready_params: dict[str, Any] | None = None
        self._pending: dict[Any, Future[Any]] = {}
        self.sent_methods: dict[Any, str] = {}  # request id -> method, to check results against schemas
        self.closed = False  # the runtime's stdout has ended
        self.arrival_times: dict[tuple[str, str], float] = {}  # (stream_id, "first"|"end") -> arrival time
        self._streams: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stderr_sink = stderr_sink
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    @classmethod
    def spawn(
        cls,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = DEFAULT_TIMEOUT,
        stderr_sink: Any = None,
        command: list[str] | None = None,
        cwd: str | None = None,
    ) -> RuntimeClient:
        argv = (command or [sys.executable, "-m", "runtime"]) + ["--stdio", *(args or [])]
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        client = cls(process, stderr_sink)
        if not client.ready.wait(ready_timeout):
            client.kill()
            raise TimeoutError(f"runtime not ready in {ready_timeout}s; stderr: {client.stderr_lines[-5:]}")
        return client

    # --- sending -------------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: Any) -> None:
        for item in message if isinstance(message, list) else [message]:
            if isinstance(item, dict) and "id" in item and isinstance(item.get("method"), str):
                with self._lock:
                    self.sent_methods.setdefault(_hashable(item["id"]), item["method"])
        self.send_raw(orjson.dumps(message) + b"\n")

    def call_async(self, method: str, params: dict[str, Any] | None = None, request_id: Any = None) -> Future[Any]:
        request_id = next(self._ids) if request_id is None else request_id
        future: Future[Any] = Future()
        with self._lock:
            self._pending[request_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return future

    def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The result, or RpcFailure carrying the error."""
        response = self.call_async(method, params).result(timeout)
        if "error" in response:
            raise RpcFailure(response["error"])
        return response["result"]

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    # --- streams -------------------------------------------------------------------------------
    def stream(self, stream_id: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[dict[str, Any]]:
        """Yield this stream's notifications (method + params) up to and including stream.event."""
        events = self._stream_queue(stream_id)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"stream {stream_id} did not finish in {timeout}s")
            try:
                message = events.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"stream {stream_id} did not finish in {timeout}s") from None
            if message is _CLOSED:
                raise ConnectionError(f"the runtime exited before stream {stream_id} finished")
            yield message
            if message["method"] == "stream.event":
                return

    def generate(self, params: dict[str, Any], timeout: float = DEFAULT_TIMEOUT) -> Iterator[dict[str, Any]]:
        result = self.request("generate", params, timeout)
        yield from self.stream(result["stream_id"], timeout)

    def collect(self, stream_id: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Drain a stream: its text, tokens, stats and final event."""
        text, tokens, stats, final = [], [], None, None
        for message in self.stream(stream_id, timeout):
            params = message["params"]
            if message["method"] == "stream.chunk":
                tokens.extend(params["tokens"])
                text.extend(t["token"] for t in params["tokens"])
            elif message["method"] == "stream.stats":
                stats = params
            else:
                final = params
        return {"text": "".join(text), "tokens": tokens, "stats": stats, "event": final}

    def _stream_queue(self, stream_id: str) -> queue.Queue[dict[str, Any]]:
        with self._lock:
            if stream_id not in self._streams:
                self._streams[stream_id] = queue.Queue()
                if self.closed:
                    self._streams[stream_id].put(_CLOSED)
            return self._streams[stream_id]

    # --- reading -------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = decode(line)  # exact for ids beyond 64 bits, like the runtime itself
            with self._lock:
                self.messages.append(message)
            self._route(message)
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
            self.closed = True
            streams = list(self._streams.values())
        for future in pending:
            future.set_exception(ConnectionError("runtime exited"))
        for events in streams:
            events.put(_CLOSED)

    def _route(self, message: Any) -> None:
        if isinstance(message, list):
            for item in message:
                self._route(item)
            return
        if "method" not in message:
            with self._lock:
                future = self._pending.pop(message.get("id"), None)
            if future is not None:
                future.set_result(message)
            return
        if message["method"] == "runtime/ready":
            self.ready_params = message["params"]
            self.ready.set()
        stream_id = message.get("params", {}).get("stream_id")
        if stream_id is not None:
            if message["method"] == "stream.chunk":
                self.arrival_times.setdefault((stream_id, "first"), time.perf_counter())
            elif message["method"] == "stream.event":
                self.arrival_times[(stream_id, "end")] = time.perf_counter()
            self._stream_queue(stream_id).put(message)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            if self._stderr_sink is not None:
                print(line, file=self._stderr_sink)

    # --- ending --------------------------------------------------------------------------------
    def close(self, timeout: float = 5.0) -> int:
        """shutdown -> wait -> SIGTERM -> SIGKILL, each step bounded; returns the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(Exception):  # already gone or not answering: escalate below
                self.call_async("shutdown").result(timeout)
        return self.wait_or_kill(timeout)

    def wait_or_kill(self, timeout: float = 5.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        self.process.kill()
        return self.process.wait(10)

    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
