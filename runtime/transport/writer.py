"""The only code that writes to the protocol fd: a thread draining a bounded queue.

Backpressure: the queue is bounded and `send` blocks when it is full, so when the host stops
reading stdout the producers (the engine thread above all) pause instead of memory growing.

Coalescing: `send_entry` items that share a key (a stream id) are gathered for at most `window_s`
or `max_batch` entries and written as one message built by the caller's `build` function. An entry
for a key that has been quiet for a whole window goes out at once, so the first token of a stream
never waits. Entries a holding thread hands over together (see `hold`) arrived at the same moment,
so they are judged together: they go out as one message when their key is due, instead of the first
going alone and the rest waiting a whole window more (which cost a second wake-up and a second line
per window).

The queue is two C-level `SimpleQueue`s, one of items and one of free places (created on demand,
never more than `max_queue`): a put takes a place, blocking while there is none, and the writer
gives it back as it takes the item. Same bound and blocking as a `queue.Queue(max_queue)`, without
its Python-level locking on every put and get (the engine thread puts once per window; see
docs/performance.md for what each wake-up costs on two cores).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from runtime.transport.framing import encode

log = logging.getLogger(__name__)

BuildFn = Callable[[str, list[dict[str, Any]]], dict[str, Any]]
DEFAULT_QUEUE_SIZE = 2048
DEFAULT_WINDOW_S = 0.008
DEFAULT_MAX_BATCH = 16
_STOP = object()


class _Held:
    """What a holding thread hands over at once, in order."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


class _Batch:
    __slots__ = ("build", "deadline", "entries")

    def __init__(self, build: BuildFn, deadline: float) -> None:
        self.build, self.deadline = build, deadline
        self.entries: list[dict[str, Any]] = []


# What to send instead of a response that cannot be encoded: the protocol's error for that id.
Explain = Callable[[Any], dict[str, Any]]
# Where a tapped stream's messages go instead of the fd (an in-process host: the HTTP front door).
Tap = Callable[[dict[str, Any]], None]


class Writer:
    def __init__(
        self,
        fd: int,
        *,
        max_queue: int = DEFAULT_QUEUE_SIZE,
        window_s: float = DEFAULT_WINDOW_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_broken: Callable[[], None] | None = None,
        explain: Explain | None = None,
    ) -> None:
        self.fd, self.window_s, self.max_batch = fd, window_s, max_batch
        self.on_broken, self._explain = on_broken, explain
        self.broken = False
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Free places: at most max_queue ever exist, so at most max_queue items wait (backpressure).
        # As with queue.Queue, max_queue <= 0 means no bound.
        self._places: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._max_queue: int | None = max_queue if max_queue > 0 else None
        self._issued = 0
        self._issue_lock = threading.Lock()
        self._pending: dict[str, _Batch] = {}
        self._last_flush: dict[str, float] = {}
        self._local = threading.local()
        self._taps: dict[str, Tap] = {}
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def send(self, message: dict[str, Any] | list[Any]) -> None:
        """Queue one message; blocks while the queue is full (backpressure)."""
        if self._taps and self._tapped(message):
            return
        self._put(message)

    def send_entry(self, key: str, entry: dict[str, Any], build: BuildFn) -> None:
        """Queue one coalescable entry (a token of stream `key`)."""
        if self._taps:
            tap = self._taps.get(key)
            if tap is not None:
                tap(build(key, [entry]))  # one message per token: the host in-process frames it
                return
        self._put((key, entry, build))

    def tap(self, stream_id: str, deliver: Tap) -> None:
        """Hand the stream's messages to `deliver` (on the producing thread, in order) instead of
        writing them; the tap goes with the stream's last message (stream.event)."""
        self._taps[stream_id] = deliver

    def untap(self, stream_id: str) -> None:
        self._taps.pop(stream_id, None)

    def _tapped(self, message: dict[str, Any] | list[Any]) -> bool:
        params = message.get("params") if isinstance(message, dict) else None
        stream_id = params.get("stream_id") if isinstance(params, dict) else None
        tap = self._taps.get(stream_id) if isinstance(stream_id, str) else None
        if tap is None:
            return False
        assert isinstance(message, dict) and isinstance(stream_id, str)
        if message.get("method") == "stream.event":
            self._taps.pop(stream_id, None)
        tap(message)
        return True

    def hold(self) -> None:
        """Gather this thread's sends until `release` hands them over as one item, in order.

        The engine thread holds around each turn. `release` passes on what it holds when a window
        has passed since the last hand-over, when a message other than a token is held (a stream's
        end), or when a token belongs to a stream that has sent none yet (its first token never
        waits); otherwise the held tokens ride with the next turn. So the writer wakes every few
        milliseconds rather than once per token.
        """
        local = self._local
        if getattr(local, "held", None) is None:
            local.held, local.last_put, local.keys, local.urgent = [], 0.0, set(), False

    def release(self, force: bool = False) -> None:
        """Hand over what this thread holds (see hold); `force` hands it over whatever it is."""
        local = self._local
        held = getattr(local, "held", None)
        if not held:
            return
        if self.broken:
            held.clear()  # nobody will read it: holding it would only grow
            local.urgent = False
            return
        now = time.monotonic()
        # `urgent` was worked out as items were held (see _put), against the keys as of the last
        # hand-over: a message other than a token, or a token of a stream that has sent none yet.
        if not (force or local.urgent) and now - local.last_put < self.window_s:
            return
        keys = local.keys
        for item in held:
            if isinstance(item, tuple):
                keys.add(item[0])
            elif isinstance(item, dict):
                keys.discard(item.get("params", {}).get("stream_id"))
        local.held, local.last_put, local.urgent = [], now, False
        self._enqueue(_Held(held))

    def send_now(self, message: dict[str, Any]) -> None:
        """Send at once, after anything this thread holds (for the last words before exiting)."""
        self.release(force=True)
        self._local.held = None
        self.send(message)

    def _put(self, item: Any) -> None:
        local = self._local
        held = getattr(local, "held", None)
        if held is not None:
            held.append(item)
            if not local.urgent and (not isinstance(item, tuple) or item[0] not in local.keys):
                local.urgent = True
        elif not self.broken:
            self._enqueue(item)

    def _enqueue(self, item: Any, timeout: float | None = None) -> None:
        """Take a free place (blocking while there is none: backpressure), then queue the item.
        With a timeout, raises queue.Full when no place came free in time."""
        places = self._places
        try:
            places.get_nowait()
        except queue.Empty:
            with self._issue_lock:
                spare = self._max_queue is None or self._issued < self._max_queue
                if spare:
                    self._issued += 1
            if not spare:
                try:
                    places.get(timeout=timeout)
                except queue.Empty:
                    raise queue.Full from None
        self._queue.put(item)

    def queued(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 2.0) -> None:
        """Write everything queued, then stop the thread."""
        if self._thread.is_alive():
            try:
                self._enqueue(_STOP, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)

    def _run(self) -> None:
        get, give_back = self._queue.get, self._places.put
        while True:
            try:
                item = get(timeout=self._next_timeout())
            except queue.Empty:
                self._flush_due(time.monotonic())
                continue
            give_back(None)
            if item is _STOP:
                self._flush_all()
                return
            if isinstance(item, _Held):
                self._take_held(item.items)
            else:
                self._handle(item)
            if self._pending:
                self._flush_due(time.monotonic())

    def _take_held(self, items: list[Any]) -> None:
        """A hand-over: its entries join their keys' batches (a full batch goes out at once), any
        other message first writes every batch, in order. Which batches are due is judged after
        the last item (by `_run`): entries handed over together are not split by the clock."""
        pending, window, max_batch = self._pending, self.window_s, self.max_batch
        for item in items:
            if not isinstance(item, tuple):
                self._handle(item)
                continue
            try:
                key, entry, build = item
                batch = pending.get(key)
                if batch is None:
                    batch = pending[key] = _Batch(build, self._last_flush.get(key, 0.0) + window)
                batch.entries.append(entry)
                if len(batch.entries) >= max_batch:
                    self._flush(key)
            except Exception:  # as in _handle: the writer goes on
                log.exception("could not write a message")

    def _handle(self, item: Any) -> None:
        try:
            if isinstance(item, tuple):
                self._add_entry(*item)
            else:
                self._flush_all()
                self._write(self._encode_or_explain(item))
        except Exception:  # nothing may stop the only writer; the message is lost, loudly
            log.exception("could not write a message")

    def _encode_or_explain(self, message: Any) -> bytes:
        """Encode; a response that cannot be encoded becomes `explain`'s error for the same id."""
        try:
            return encode(message)
        except (TypeError, ValueError):
            is_response = isinstance(message, dict) and "id" in message and "method" not in message
            if not is_response or self._explain is None:
                raise
            log.exception("response %r could not be encoded", message.get("id"))
            return encode(self._explain(message["id"]))

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
        try:
            written = os.write(self.fd, data)  # a line fits the pipe: almost always whole at once
            if written < len(data):
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self.fd, view) :]
        except OSError as exc:
            log.info("protocol output closed: %s", exc)
            self.broken = True
            if self.on_broken:
                self.on_broken()
            return
