"""The HTTP front door's way into the runtime: an in-process JSON-RPC host.

Every HTTP request becomes one JSON-RPC request handed to the same dispatcher the stdio reader
uses (so the same method table, schema validation, on-demand loads, admission queue, breaker and
errors apply), answered through a sink instead of stdout. A stream's notifications are tapped off
the writer by stream id (transport/writer.py) and arrive here as dicts, in order, on the asyncio
loop: no JSON encoding or decoding in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from runtime.transport.http.errors import HttpError, from_rpc_error
from runtime.transport.writer import Tap

Sink = Callable[[dict[str, Any] | None, Callable[[], None] | None], None]
Dispatch = Callable[[Any, Sink], None]


class Taps(Protocol):
    """What the bridge needs of the writer: a stream's messages handed over instead of written."""

    def tap(self, stream_id: str, deliver: Tap) -> None: ...

    def untap(self, stream_id: str) -> None: ...


class Subscription:
    """One stream's messages (stream.chunk, stream.stats, stream.event), and its first response."""

    def __init__(self, bridge: Bridge, stream_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.bridge, self.stream_id, self._queue = bridge, stream_id, queue
        self.response: dict[str, Any] = {}
        self.finished = False

    async def next(self) -> dict[str, Any]:
        message = await self._queue.get()
        if message.get("method") == "stream.event":
            self.finished = True
        return message

    def cancel(self) -> None:
        """The client went away: the engine stops the stream within a step."""
        if not self.finished:
            self.finished = True
            self.bridge.notify("cancel", {"stream_id": self.stream_id})


class Bridge:
    def __init__(self, dispatch: Dispatch, taps: Taps) -> None:
        self._dispatch, self._taps = dispatch, taps
        self._ids = itertools.count(1)

    async def call(self, method: str, params: dict[str, Any], names: Mapping[str, str] | None = None) -> Any:
        """The method's result; its JSON-RPC error as an HttpError (`names`: the API's names for
        the wire's fields, so a 400 names the field the client sent)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()

        def sink(message: dict[str, Any] | None, after_send: Callable[[], None] | None) -> None:
            if message is not None:
                _resolve_threadsafe(loop, answer, message)
            if after_send is not None:
                after_send()  # after the answer is on its way: a stream's first token follows its id

        request_id = f"http-{next(self._ids)}"
        self._dispatch({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}, sink)
        try:
            message = await answer
        except asyncio.CancelledError:  # the client went away: what the request started stops too
            self.notify("$/cancelRequest", {"id": request_id})
            raise
        if "error" in message:
            raise from_rpc_error(message["error"], names)
        return message["result"]

    async def open_stream(
        self, method: str, params: dict[str, Any], names: Mapping[str, str] | None = None
    ) -> Subscription:
        """Start a streaming generate; its notifications come through the subscription."""
        loop = asyncio.get_running_loop()
        stream_id = f"http-{uuid.uuid4().hex}"
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def deliver(message: dict[str, Any]) -> None:  # on the engine thread
            with contextlib.suppress(RuntimeError):  # the loop is gone (the server stops): nobody to tell
                loop.call_soon_threadsafe(queue.put_nowait, message)

        self._taps.tap(stream_id, deliver)
        subscription = Subscription(self, stream_id, queue)
        try:
            subscription.response = await self.call(method, {**params, "stream_id": stream_id}, names)
        except BaseException:
            self._taps.untap(stream_id)
            raise
        return subscription

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """A request whose answer nobody waits for (cancel)."""
        self._dispatch({"jsonrpc": "2.0", "method": method, "params": params}, lambda message, after: None)


def _resolve_threadsafe(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[dict[str, Any]], message: dict[str, Any]
) -> None:
    def resolve() -> None:
        if not future.done():
            future.set_result(message)

    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(resolve)


__all__ = ["Bridge", "HttpError", "Subscription"]
