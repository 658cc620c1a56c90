"""Stream registry: every stream's state, with exactly one terminal transition per stream.

queued -> prefilling -> decoding -> finished(reason); any live state may jump to finished.
Illegal transitions raise. Thread-safe: the reader registers and cancels, the engine advances.

Finishing has two phases: `finish` claims the terminal transition (once), the caller sends the
terminal notifications, then `forget` frees the id. Until then the id is still taken, so a host
that reuses it can never see the old stream's last event after the new stream's response.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class StreamState(str, Enum):
    QUEUED = "queued"
    PREFILLING = "prefilling"
    DECODING = "decoding"
    FINISHED = "finished"


LEGAL = {
    StreamState.QUEUED: {StreamState.PREFILLING, StreamState.FINISHED},
    StreamState.PREFILLING: {StreamState.DECODING, StreamState.FINISHED},
    StreamState.DECODING: {StreamState.FINISHED},
    StreamState.FINISHED: set(),
}


class IllegalTransition(RuntimeError):
    pass


class DuplicateStream(ValueError):
    pass


class RegistryClosed(RuntimeError):
    pass


@dataclass
class StreamRecord:
    stream_id: str
    model_id: str
    request_id: Any
    state: StreamState = StreamState.QUEUED
    created_at: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)
    tokens_generated: int = 0
    path: str | None = None  # the decode path it is on (solo, batch, speculative, vision); None while queued
    handovers: int = 0  # moves between decode paths (solo -> batch)


class StreamRegistry:
    def __init__(self) -> None:
        self._active: dict[str, StreamRecord] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.finished_total = 0
        self.discarded_total = 0
        self.closed = False

    def close(self) -> None:
        """Refuse new streams from now on (shutdown)."""
        with self._lock:
            self.closed = True

    def register(self, stream_id: str, model_id: str, request_id: Any = None) -> StreamRecord:
        with self._lock:
            if self.closed:
                raise RegistryClosed(stream_id)
            if stream_id in self._active:
                raise DuplicateStream(stream_id)
            record = self._active[stream_id] = StreamRecord(stream_id, model_id, request_id)
            return record

    def advance(self, stream_id: str, state: StreamState) -> None:
        with self._lock:
            record = self._active.get(stream_id)
            if record is not None and record.state is StreamState.FINISHED:
                return  # ended already (shutdown ends stragglers itself): a late event changes nothing
            if record is None or state not in LEGAL[record.state] or state is StreamState.FINISHED:
                current = record.state.value if record else "unknown"
                raise IllegalTransition(f"stream {stream_id}: {current} -> {state.value}")
            record.state = state

    def finish(self, stream_id: str, reason: str) -> StreamRecord | None:
        """Claim the terminal transition: the record the first time, None afterwards."""
        with self._lock:
            record = self._active.get(stream_id)
            if record is None or record.state is StreamState.FINISHED:
                return None
            record.state = StreamState.FINISHED
            self.finished_total += 1
            return record

    def forget(self, stream_id: str) -> None:
        """The terminal notifications are sent: the id is free again."""
        with self._lock:
            record = self._active.get(stream_id)
            if record is not None and record.state is StreamState.FINISHED:
                del self._active[stream_id]
                self._idle.notify_all()

    def discard(self, stream_id: str) -> None:
        """Forget a stream that was refused before it began (no terminal event is owed)."""
        with self._lock:
            self._active.pop(stream_id, None)
            self.discarded_total += 1
            self._idle.notify_all()

    def cancel(self, stream_id: str) -> bool:
        with self._lock:
            record = self._active.get(stream_id)
            if record is None or record.state is StreamState.FINISHED:
                return False
            record.cancel.set()
            return True

    def cancel_where(self, **match: Any) -> list[str]:
        """Cancel every active stream whose fields equal `match` (all streams when empty)."""
        with self._lock:
            hits = [
                r
                for r in self._active.values()
                if r.state is not StreamState.FINISHED and all(getattr(r, k) == v for k, v in match.items())
            ]
            for record in hits:
                record.cancel.set()
            return [r.stream_id for r in hits]

    def get(self, stream_id: str) -> StreamRecord | None:
        with self._lock:
            return self._active.get(stream_id)

    def active(self) -> list[StreamRecord]:
        """Streams not finished yet."""
        with self._lock:
            return [r for r in self._active.values() if r.state is not StreamState.FINISHED]

    def wait_idle(self, timeout: float, **match: Any) -> bool:
        """Wait until no active stream matches `match` (no stream at all when empty)."""

        def idle() -> bool:
            return not any(all(getattr(r, k) == v for k, v in match.items()) for r in self._active.values())

        with self._idle:
            return self._idle.wait_for(idle, timeout)
