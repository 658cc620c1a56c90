"""A synchronous harness over the asyncio binding `mlx_rpc_client`, for the tests.

The binding does the host's work (spawning, the environment allow-list, framing, readiness,
supervision, bounded close); this harness adds what only tests and benchmarks want: raw lines,
every message the runtime wrote (to check them all against schemas/), raw responses and arrival
times. The binding runs on one background event loop; every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from typing import Any

from mlx_rpc_client import RuntimeClient as AsyncRuntimeClient
from mlx_rpc_client import RuntimeExited

from runtime.transport.framing import encode

DEFAULT_TIMEOUT = 60.0
_CLOSED: Any = {"method": "__closed__"}  # put in stream queues when the runtime has exited
_FIRST_HARNESS_ID = 10**9  # harness request ids never meet the binding's own (1, 2, ...)


class _Loop:
    """One event loop on a daemon thread, shared by every harness client."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def run(cls, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, cls.get()).result(timeout)

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="harness-loop", daemon=True).start()
                cls._loop = loop
            return cls._loop


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, type(None))) else repr(value)


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code, self.message, self.data = error.get("code"), error.get("message"), error.get("data")


class _Stdin:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    def close(self) -> None:
        if self._process.stdin is not None:
            _Loop.get().call_soon_threadsafe(self._process.stdin.close)


class ProcessHandle:
    """The runtime's process, with the Popen calls the tests use."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process, self.pid, self.stdin = process, process.pid, _Stdin(process)

    def poll(self) -> int | None:
        return self._process.returncode

    def wait(self, timeout: float | None = None) -> int:
        try:
            return _Loop.run(asyncio.wait_for(self._process.wait(), timeout), (timeout or 3600) + 5)
        except (TimeoutError, asyncio.TimeoutError):
            raise subprocess.TimeoutExpired("runtime", timeout) from None

    def send_signal(self, signum: int) -> None:
        if self._process.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class RuntimeClient:
    def __init__(self) -> None:
        self.messages: list[Any] = []  # everything the runtime wrote, in order
        self.stderr_lines: list[str] = []
        self.sent_methods: dict[Any, str] = {}  # request id -> method, to check results against schemas
        self.arrival_times: dict[tuple[str, str], float] = {}  # (stream_id, "first"|"end") -> arrival time
        self.ready = threading.Event()
        self.ready_params: dict[str, Any] | None = None
        self.closed = False  # the runtime has exited
        self._pending: dict[Any, Future[Any]] = {}
        self._streams: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(_FIRST_HARNESS_ID)
        self._binding: AsyncRuntimeClient | None = None
        self._stderr_sink: Any = None

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
        client = cls()
        client._stderr_sink = stderr_sink
        spawn = AsyncRuntimeClient.start(
            command=command or [sys.executable, "-m", "runtime"],
            args=args,
            env=env,
            cwd=cwd,
            ready_timeout=ready_timeout,
            on_log=client._on_log,
            on_message=client._on_message,
            on_exit=client._on_exit,
        )
        try:
            client._binding = _Loop.run(spawn, ready_timeout + 10)
        except (TimeoutError, asyncio.TimeoutError):
            raise TimeoutError(f"runtime not ready in {ready_timeout}s; stderr: {client.stderr_lines[-5:]}") from None
        client.process = ProcessHandle(client._binding.process)
        client.ready_params = client._binding.ready_params
        client.ready.set()
        return client

    # --- sending -------------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        assert self._binding is not None
        try:
            _Loop.run(self._binding.send_raw(data), DEFAULT_TIMEOUT)
        except RuntimeExited as exc:
            raise BrokenPipeError(str(exc)) from None

    def send(self, message: Any) -> None:
        for item in message if isinstance(message, list) else [message]:
            if isinstance(item, dict) and "id" in item and isinstance(item.get("method"), str):
                with self._lock:
                    self.sent_methods.setdefault(_hashable(item["id"]), item["method"])
        self.send_raw(encode(message))

    def call_async(self, method: str, params: dict[str, Any] | None = None, request_id: Any = None) -> Future[Any]:
        """The raw response (result or error) as a future."""
        request_id = next(self._ids) if request_id is None else request_id
        future: Future[Any] = Future()
        with self._lock:
            self._pending[_hashable(request_id)] = future
            if self.closed:
                future.set_exception(ConnectionError("runtime exited"))
                return future
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
            try:
                message = events.get(timeout=max(0.0, remaining))
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

    # --- what the binding reports (on its event loop) ------------------------------------------
    def _on_message(self, message: Any) -> bool:
        """Record every message; consume (True) what the harness fully handles."""
        with self._lock:
            self.messages.append(message)
        consumed = True
        for item in message if isinstance(message, list) else [message]:
            if not isinstance(item, dict):
                continue
            if "method" not in item:
                with self._lock:
                    future = self._pending.pop(_hashable(item.get("id")), None)
                if future is not None:
                    future.set_result(item)
                else:
                    consumed = False  # the binding's own request (shutdown on close)
                continue
            stream_id = item.get("params", {}).get("stream_id")
            if stream_id is not None:
                if item["method"] == "stream.chunk":
                    self.arrival_times.setdefault((stream_id, "first"), time.perf_counter())
                elif item["method"] == "stream.event":
                    self.arrival_times[(stream_id, "end")] = time.perf_counter()
                self._stream_queue(stream_id).put(item)
            else:
                consumed = False  # runtime/ready and the like: the binding needs them too
        return consumed

    def _on_log(self, line: str) -> None:
        self.stderr_lines.append(line)
        if self._stderr_sink is not None:
            print(line, file=self._stderr_sink)

    def _on_exit(self, error: RuntimeExited) -> None:
        with self._lock:
            self.closed = True
            pending, self._pending = list(self._pending.values()), {}
            streams = list(self._streams.values())
        for future in pending:
            if not future.done():
                future.set_exception(ConnectionError(str(error)))
        for events in streams:
            events.put(_CLOSED)

    # --- ending --------------------------------------------------------------------------------
    def close(self, timeout: float = 5.0) -> int:
        """The binding's bounded close: shutdown, stdin closed, wait, SIGTERM, wait, SIGKILL."""
        assert self._binding is not None
        return _Loop.run(self._binding.close(timeout), 4 * timeout + 10)

    def kill(self) -> int:
        assert self._binding is not None
        return _Loop.run(self._binding.kill(), 30)

    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
