"""The asyncio client. Every wait is bounded; a runtime that dies fails every pending call and stream."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from mlx_rpc_client._generated import HOST_ENV_ALLOW_LIST

try:  # optional: the runtime's wheel brings it
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]

LINE_LIMIT = 64 * 1024 * 1024
EARLY_KEEP_S = 10.0
_LONG_DIGITS = re.compile(rb"\d{19}")


def _decode(line: bytes) -> Any:
    """orjson when installed (fast); the stdlib for lines that may hold integers beyond 64 bits."""
    if orjson is not None and not _LONG_DIGITS.search(line):
        return orjson.loads(line)
    return json.loads(line)


class RpcError(Exception):
    """A JSON-RPC error from the runtime."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code: int | None = error.get("code")
        self.message: str = error.get("message", "")
        self.data: Any = error.get("data")


class RuntimeExited(ConnectionError):
    """The runtime process ended; pending calls and open streams fail with this."""


def default_command() -> list[str]:
    """The runtime next to this interpreter when it is there, else `runtime` on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "runtime")
    return [beside if os.path.exists(beside) else "runtime"]


def is_allowed(name: str, allow_list: tuple[str, ...] = HOST_ENV_ALLOW_LIST) -> bool:
    """In the allow-list (schemas/common.json); a trailing `*` matches a prefix."""
    return any(name.startswith(entry[:-1]) if entry.endswith("*") else name == entry for entry in allow_list)


def allowed_env(extra: dict[str, str] | None, allow_list: tuple[str, ...] = HOST_ENV_ALLOW_LIST) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if is_allowed(k, allow_list)}
    return {**env, **(extra or {})}


class Generation:
    """One stream: iterate for its token entries; `await result()` for text, stats and finish reason."""

    def __init__(self, client: RuntimeClient, params: dict[str, Any]) -> None:
        self._client, self._params = client, params
        self.stream_id: str | None = None
        self._queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        self._text: list[str] = []
        self._done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._iterated = False

    async def _start(self) -> None:
        result = await self._client.request("generate", self._params)
        self.stream_id = result["stream_id"]
        self._client._attach(self)

    def _deliver(self, message: dict[str, Any] | BaseException) -> None:
        self._queue.put_nowait(message)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        # Not kept: when the caller's loop drops it, asyncio closes it and the stream is cancelled.
        if self._iterated:
            raise RuntimeError("a Generation can be iterated once")
        self._iterated = True
        return self._tokens()

    async def _tokens(self) -> AsyncIterator[dict[str, Any]]:
        if self.stream_id is None:
            await self._start()
        stats: dict[str, Any] | None = None
        try:
            while True:
                message = await self._queue.get()
                if isinstance(message, BaseException):
                    raise message
                params = message["params"]
                if message["method"] == "stream.chunk":
                    for token in params["tokens"]:
                        self._text.append(token["token"])
                        yield token
                elif message["method"] == "stream.stats":
                    stats = params
                else:
                    self._finish(params, stats)
                    return
        except RuntimeExited as exc:
            self._client._detach(self)
            if not self._done.done():
                self._done.set_exception(exc)
            raise
        except BaseException:  # the caller left the loop or was cancelled: stop the stream for real
            self._client._detach(self)
            if not self._done.done():
                await self._cancel_quietly()
                self._done.set_result({"text": "".join(self._text), "finish_reason": "cancelled", "stats": stats})
            raise

    def _finish(self, event: dict[str, Any], stats: dict[str, Any] | None) -> None:
        self._client._detach(self)
        if event["event"] == "error":
            self._done.set_exception(RpcError({"code": -32002, "message": event.get("error", "generation failed")}))
        else:
            result = {"text": "".join(self._text), "finish_reason": event["finish_reason"], "stats": stats}
            # Structured output: {mode, complete}, and the parsed JSON value of a whole JSON output;
            # chat streams: the answer, the thinking and the parsed tool calls.
            kept = ("guidance", "parsed", "content", "reasoning", "tool_calls", "tool_call_errors")
            result.update({key: event[key] for key in kept if key in event})
            self._done.set_result(result)

    async def _cancel_quietly(self) -> None:
        if self.stream_id is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.request("cancel", {"stream_id": self.stream_id}), 5)

    async def cancel(self) -> None:
        """Stop the stream in the runtime; the iteration ends after its cancelled event."""
        await self._cancel_quietly()

    async def result(self, timeout: float = 600.0) -> dict[str, Any]:
        """Its text, stats and finish reason; drains the stream first when nobody iterated it.

        After leaving an `async for` early, this waits for the cancel the loop's end triggered.
        """
        if not self._iterated:
            async for _ in self:
                pass
        return await asyncio.wait_for(asyncio.shield(self._done), timeout)


class RuntimeClient:
    def __init__(
        self,
        process: asyncio.subprocess.Process,
        on_log: Callable[[str], None] | None,
        on_message: Callable[[Any], bool | None] | None = None,
        on_exit: Callable[[RuntimeExited], None] | None = None,
    ) -> None:
        self.process = process
        self.on_log, self.on_message, self.on_exit = on_log, on_message, on_exit
        self.ready_params: dict[str, Any] | None = None
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._streams: dict[str, Generation] = {}
        # Notifications read before the awaiting generate call attached its stream (kept briefly).
        self._early: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._let_go: set[str] = set()  # streams abandoned before their end: their last messages are dropped
        self._ids = itertools.count(1)
        self._exit_error: RuntimeExited | None = None
        self._tasks = [asyncio.create_task(self._read_stdout()), asyncio.create_task(self._read_stderr())]

    @classmethod
    def spawn(cls, *args: Any, **kwargs: Any) -> _Spawning:
        """Start the runtime: `rt = await RuntimeClient.spawn(...)` or `async with RuntimeClient.spawn(...) as rt`.

        Takes the arguments of `start`.
        """
        return _Spawning(lambda: cls.start(*args, **kwargs))

    @classmethod
    async def start(
        cls,
        command: list[str] | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        ready_timeout: float = 30.0,
        on_log: Callable[[str], None] | None = None,
        on_message: Callable[[Any], bool | None] | None = None,
        on_exit: Callable[[RuntimeExited], None] | None = None,
    ) -> RuntimeClient:
        """Start the runtime and wait (bounded) for runtime/ready.

        on_log gets each stderr line; on_message every message the runtime writes, before routing
        (for logging or protocol tooling; returning True consumes it); on_exit the error pending
        work fails with when it exits.
        """
        argv = (command or default_command()) + ["--stdio", *(args or [])]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=allowed_env(env),
            cwd=cwd,
            limit=LINE_LIMIT,
            start_new_session=True,
        )  # its own process group: stopping it stops anything it started
        client = cls(process, on_log, on_message, on_exit)
        try:
            client.ready_params = await asyncio.wait_for(asyncio.shield(client._ready), ready_timeout)
        except BaseException:
            await client.kill()
            raise
        return client

    # --- calls -----------------------------------------------------------------------------------
    async def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = 120.0) -> Any:
        if self._exit_error is not None:
            raise self._exit_error
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            await self._send(message)
            response = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)
        if "error" in response:
            raise RpcError(response["error"])
        return response["result"]

    async def _send(self, message: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(message).encode() + b"\n")

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (protocol tooling and tests; hosts use request/generate)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(data)
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise self._exit_error or RuntimeExited(f"runtime is gone: {exc}") from None

    async def info(self) -> dict[str, Any]:
        return await self.request("runtime/info")

    async def state(self) -> dict[str, Any]:
        return await self.request("runtime/state")

    async def metrics(self, format: str = "json") -> dict[str, Any]:
        """`runtime/metrics`: {format, metrics} as JSON, or {format, content_type, text} for "prometheus"."""
        return await self.request("runtime/metrics", {"format": format})

    async def list_models(self) -> dict[str, Any]:
        """`models/list`: the registry's models and the loaded ones, with state, keep-alive and sizes."""
        return await self.request("models/list")

    async def load_model(self, model_id: str, **params: Any) -> dict[str, Any]:
        return await self.request("load_model", {"model_id": model_id, **params}, timeout=600)

    async def unload_model(self, model_id: str) -> dict[str, Any]:
        return await self.request("unload_model", {"model_id": model_id})

    async def tokenize(self, model_id: str, text: str, add_special_tokens: bool = True) -> dict[str, Any]:
        return await self.request(
            "tokenize", {"model_id": model_id, "text": text, "add_special_tokens": add_special_tokens}
        )

    async def count_tokens(self, model_id: str, **params: Any) -> dict[str, Any]:
        """`count_tokens`: the prompt's tokens as generate builds them (messages in OpenAI or Anthropic
        shape, with tools), like Anthropic's count_tokens."""
        return await self.request("count_tokens", {"model_id": model_id, **params})

    async def embed(self, model_id: str, input: Any, **params: Any) -> dict[str, Any]:
        """`embed`: vectors of one or many inputs (strings or token ids) from an embedding model;
        options: normalize, dimensions, truncate, pooling, encoding_format, input_type, instruction."""
        return await self.request("embed", {"model_id": model_id, "input": input, **params}, timeout=600)

    async def rerank(self, model_id: str, query: str, documents: list[str], **params: Any) -> dict[str, Any]:
        """`rerank`: the documents scored against the query, most relevant first (top_n,
        return_documents, instruction)."""
        return await self.request(
            "rerank", {"model_id": model_id, "query": query, "documents": documents, **params}, timeout=600
        )

    async def generate_whole(self, params: dict[str, Any]) -> dict[str, Any]:
        """A non-streaming generate: the response is the whole output (content, reasoning,
        tool_calls, finish_reason, usage)."""
        return await self.request("generate", {**params, "streaming": False}, timeout=600)

    async def check_draft(self, primary_id: str, draft_id: str, **params: Any) -> dict[str, Any]:
        """`check_draft`: can the draft serve the target; `measure=True` adds a measured speed-up."""
        return await self.request(
            "check_draft", {"primary_id": primary_id, "draft_id": draft_id, **params}, timeout=600
        )

    async def batch_check_draft(self, requests: list[dict[str, Any]]) -> dict[str, Any]:
        """`batch_check_draft`: several check_draft params at once; `results` holds one
        `{success, result, error, code?, data?}` per request, in order (a bad entry fails alone)."""
        return await self.request("batch_check_draft", {"requests": requests}, timeout=600)

    async def set_draft(self, model_id: str, draft_model_id: str | None, **params: Any) -> dict[str, Any]:
        """`set_draft`: pair a target with a draft (None unpairs)."""
        return await self.request("set_draft", {"model_id": model_id, "draft_model_id": draft_model_id, **params})

    def generate(self, params: dict[str, Any]) -> Generation:
        """A stream: `async for token in rt.generate(...)`; leaving the loop early cancels it."""
        return Generation(self, params)

    async def generate_text(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.generate(params).result()

    # --- routing ---------------------------------------------------------------------------------
    def _attach(self, generation: Generation) -> None:
        assert generation.stream_id is not None
        self._streams[generation.stream_id] = generation
        for message in self._early.pop(generation.stream_id, (0.0, []))[1]:
            generation._deliver(message)
        if self._exit_error is not None:
            generation._deliver(self._exit_error)

    def _detach(self, generation: Generation) -> None:
        if self._streams.pop(generation.stream_id or "", None) is not None and not generation._done.done():
            self._let_go.add(generation.stream_id or "")

    def _route(self, message: Any) -> None:
        for item in message if isinstance(message, list) else [message]:
            if "method" not in item:
                future = self._pending.get(item.get("id"))
                if future is not None and not future.done():
                    future.set_result(item)
            elif item["method"] == "runtime/ready" and not self._ready.done():
                self._ready.set_result(item["params"])
            elif "stream_id" in item.get("params", {}):
                stream_id = item["params"]["stream_id"]
                target = self._streams.get(stream_id)
                if stream_id in self._let_go:
                    if item["method"] == "stream.event":
                        self._let_go.discard(stream_id)
                elif target is not None:
                    target._deliver(item)
                else:
                    self._keep_early(stream_id, item)

    def _keep_early(self, stream_id: str, item: dict[str, Any]) -> None:
        now = asyncio.get_running_loop().time()
        self._early.setdefault(stream_id, (now, []))[1].append(item)
        stale = [sid for sid, (since, _) in self._early.items() if now - since > EARLY_KEEP_S]
        for sid in stale:  # nobody attached them: streams this client did not start
            del self._early[sid]

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            try:
                message = _decode(line)
            except ValueError:
                self._log(f"[not protocol] {line.decode(errors='replace').rstrip()}")
                continue
            if self.on_message is not None and self.on_message(message):
                continue  # the tap consumed it
            self._route(message)
        code = await self.process.wait()
        self._exited(RuntimeExited(f"runtime exited with code {code}"))

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self._log(line.decode(errors="replace").rstrip("\n"))

    def _log(self, line: str) -> None:
        if self.on_log is not None:
            self.on_log(line)

    def _exited(self, error: RuntimeExited) -> None:
        self._exit_error = error
        if self.on_exit is not None:
            self.on_exit(error)
        if not self._ready.done():
            self._ready.set_exception(error)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        for generation in list(self._streams.values()):
            generation._deliver(error)

    # --- ending ----------------------------------------------------------------------------------
    async def close(self, timeout: float = 2.0) -> int:
        """shutdown → close stdin → wait → SIGTERM → wait → SIGKILL, each step bounded."""
        if self.process.returncode is None and self._exit_error is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.request("shutdown"), timeout)
        if self.process.stdin is not None:
            with contextlib.suppress(Exception):
                self.process.stdin.close()
        for stop in (None, signal.SIGTERM):
            if stop is not None:
                self._signal_group(stop)
            with contextlib.suppress(asyncio.TimeoutError):
                code = await asyncio.wait_for(self.process.wait(), timeout)
                await self._stop_readers()
                return code
        return await self.kill()

    async def kill(self) -> int:
        self._signal_group(signal.SIGKILL)
        code = await self.process.wait()
        await self._stop_readers()
        return code

    async def _stop_readers(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    async def __aenter__(self) -> RuntimeClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class _Spawning:
    """What `RuntimeClient.spawn` returns: await it for a client, or use it in `async with`."""

    def __init__(self, start: Callable[[], Any]) -> None:
        self._start = start
        self._client: RuntimeClient | None = None

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> RuntimeClient:
        self._client = await self._start()
        return self._client

    async def __aexit__(self, *exc: Any) -> None:
        if self._client is not None:
            await self._client.close()
