"""The only code that writes to the protocol fd: a thread draining a bounded queue.

Backpressure: the queue is bounded and `send` blocks when it is full, so when the host stops
reading stdout the producers (the engine thread above all) pause instead of memory growing.

Coalescing: `send_entry` items that share a key (a stream id) are gathered for at most `window_s`
or `max_batch` entries and written as one message built by the caller's `build` function. An entry
for a key that has been quiet for a whole window goes out at once, so the first token of a stream
never waits.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.transport.framing import encode

log = logging.getLogger(__name__)

BuildFn = Callable[[str, list[dict[str, Any]]], dict[str, Any]]
DEFAULT_QUEUE_SIZE = 2048
DEFAULT_WINDOW_S = 0.008
DEFAULT_MAX_BATCH = 16
_STOP = object()


@dataclass
class _Held:
    items: list[Any]


@dataclass
class _Batch:
    build: BuildFn
    deadline: float
    entries: list[dict[str, Any]] = field(default_factory=list)


def _encode_or_explain(message: Any) -> bytes:
    """Encode; a response that cannot be encoded becomes an internal error for the same id."""
    try:
        return encode(message)
    except (TypeError, ValueError):
        if isinstance(message, dict) and "id" in message and "method" not in message:
            log.exception("response %r could not be encoded", message.get("id"))
            error = {"code": -32603, "message": "Internal error", "data": {"type": "UnencodableResult"}}
            return encode({"jsonrpc": "2.0", "id": message["id"], "error": error})
        raise


class Writer:
    def __init__(
        self,
        fd: int,
        *,
        max_queue: int = DEFAULT_QUEUE_SIZE,
        window_s: float = DEFAULT_WINDOW_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_broken: Callable[[], None] | None = None,
    ) -> None:
        self.fd, self.window_s, self.max_batch = fd, window_s, max_batch
        self.on_broken = on_broken
        self.broken = False
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._pending: dict[str, _Batch] = {}
        self._last_flush: dict[str, float] = {}
        self._local = threading.local()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def send(self, message: dict[str, Any] | list[Any]) -> None:
        """Queue one message; blocks while the queue is full (backpressure)."""
        self._put(message)

    def send_entry(self, key: str, entry: dict[str, Any], build: BuildFn) -> None:
        """Queue one coalescable entry (a token of stream `key`)."""
        self._put((key, entry, build))

    def hold(self) -> None:
        """Gather this thread's sends until `release` hands them over as one item, in order.

        The engine thread holds around each turn. `release` passes on what it holds when a window
        has passed since the last hand-over, when a message other than a token is held (a stream's
        end), or when a token belongs to a stream that has sent none yet (its first token never
        waits); otherwise the held tokens ride with the next turn. So the writer wakes every few
        milliseconds rather than once per token.
        """
        if getattr(self._local, "held", None) is None:
            self._local.held, self._local.last_put, self._local.keys = [], 0.0, set()

    def release(self, force: bool = False) -> None:
        """Hand over what this thread holds (see hold); `force` hands it over whatever it is."""
        local = self._local
        held = getattr(local, "held", None)
        if self.broken and held:
            held.clear()  # nobody will read it: holding it would only grow
        if not held or self.broken:
            return
        now = time.monotonic()
        urgent = force or any(not isinstance(item, tuple) or item[0] not in local.keys for item in held)
        if not urgent and now - local.last_put < self.window_s:
            return
        for item in held:
            if isinstance(item, tuple):
                local.keys.add(item[0])
            elif isinstance(item, dict):
                local.keys.discard(item.get("params", {}).get("stream_id"))
        local.held, local.last_put = [], now
        self._queue.put(_Held(held))

    def send_now(self, message: dict[str, Any]) -> None:
        """Send at once, after anything this thread holds (for the last words before exiting)."""
        self.release(force=True)
        self._local.held = None
        self.send(message)

    def _put(self, item: Any) -> None:
        held = getattr(self._local, "held", None)
        if held is not None:
            held.append(item)
        elif not self.broken:
            self._queue.put(item)

    def queued(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 2.0) -> None:
        """Write everything queued, then stop the thread."""
        if self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._next_timeout())
            except queue.Empty:
                self._flush_due(time.monotonic())
                continue
            if item is _STOP:
                self._flush_all()
                return
            for one in item.items if isinstance(item, _Held) else (item,):
                self._handle(one)
            self._flush_due(time.monotonic())

    def _handle(self, item: Any) -> None:
        try:
            if isinstance(item, tuple):
                self._add_entry(*item)
            else:
                self._flush_all()
                self._write(_encode_or_explain(item))
        except Exception:  # nothing may stop the only writer; the message is lost, loudly
            log.exception("could not write a message")

    def _next_timeout(self) -> float | None:
        if not self._pending:
            return None
        return max(0.0, min(b.deadline for b in self._pending.values()) - time.monotonic())

    def _add_entry(self, key: str, entry: dict[str, Any], build: BuildFn) -> None:
        now = time.monotonic()
        batch = self._pending.get(key)
        if batch is None:
            deadline = self._last_flush.get(key, 0.0) + self.window_s
            batch = self._pending[key] = _Batch(build, deadline)
        batch.entries.append(entry)
        if len(batch.entries) >= self.max_batch or now >= batch.deadline:
            self._flush(key)

    def _flush_due(self, now: float) -> None:
        for key in [k for k, b in self._pending.items() if now >= b.deadline]:
            self._flush(key)

    def _flush_all(self) -> None:
        for key in list(self._pending):
            self._flush(key)

    def _flush(self, key: str) -> None:
        batch = self._pending.pop(key)
        self._write(encode(batch.build(key, batch.entries)))
        self._last_flush[key] = time.monotonic()
        if len(self._last_flush) > 1024:
            horizon = time.monotonic() - 1.0
            self._last_flush = {k: t for k, t in self._last_flush.items() if t > horizon}

    def _write(self, data: bytes) -> None:
        if self.broken:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            log.info("protocol output closed: %s", exc)
            self.broken = True
            if self.on_broken:
                self.on_broken()
            return
