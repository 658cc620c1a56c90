"""Admission queue in front of the engine: bounded, prioritised, with per-request deadlines.

Capacity is `max_active + max_queued` streams: a submit beyond it is refused at once (Busy), so
the answer never depends on how quickly the engine thread picks work up. Within a priority,
first come first served.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
T = TypeVar("T")


class QueueFull(Exception):
    def __init__(self, retry_after_ms: int) -> None:
        super().__init__("queue full")
        self.retry_after_ms = retry_after_ms


@dataclass(order=True)
class _Entry(Generic[T]):
    rank: int
    order: int
    stream_id: str = field(compare=False)
    deadline: float | None = field(compare=False)
    item: T = field(compare=False)
    removed: bool = field(default=False, compare=False)


class AdmissionQueue(Generic[T]):
    def __init__(self, max_active: int, max_queued: int) -> None:
        self.max_active, self.max_queued = max_active, max_queued
        self._heap: list[_Entry[T]] = []
        self._by_id: dict[str, _Entry[T]] = {}
        self._active: set[str] = set()
        self._reserved: set[str] = set()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self.mean_stream_s = 1.0  # running mean of admitted-to-released time, for retry_after_ms
        self._admitted_at: dict[str, float] = {}

    def reserve(self, stream_id: str) -> None:
        """Hold a place for a stream that will be submitted shortly; raises QueueFull when there is none."""
        with self._lock:
            self._check_capacity()
            self._reserved.add(stream_id)

    def submit(self, stream_id: str, item: T, priority: str = "normal", deadline: float | None = None) -> None:
        """Queue an item, in its reserved place if it has one."""
        with self._lock:
            if stream_id in self._reserved:
                self._reserved.discard(stream_id)
            else:
                self._check_capacity()
            entry = _Entry(PRIORITIES[priority], next(self._order), stream_id, deadline, item)
            self._by_id[stream_id] = entry
            heapq.heappush(self._heap, entry)

    def _check_capacity(self) -> None:
        if len(self._by_id) + len(self._active) + len(self._reserved) >= self.max_active + self.max_queued:
            raise QueueFull(self._retry_after_ms())

    def take(self, now: float, limit: int | None = None) -> list[T]:
        """Admit queued items, best priority first, while active slots are free (at most `limit`)."""
        taken: list[T] = []
        with self._lock:
            while self._heap and len(self._active) < self.max_active and (limit is None or len(taken) < limit):
                entry = heapq.heappop(self._heap)
                if entry.removed:
                    continue
                del self._by_id[entry.stream_id]
                self._active.add(entry.stream_id)
                self._admitted_at[entry.stream_id] = now
                taken.append(entry.item)
        return taken

    def remove(self, stream_id: str) -> T | None:
        """Take a queued (not yet admitted) item out; None when it is not queued."""
        with self._lock:
            entry = self._by_id.pop(stream_id, None)
            if entry is None:
                return None
            entry.removed = True
            return entry.item

    def expired(self, now: float) -> list[T]:
        """Remove and return queued items whose deadline has passed."""
        with self._lock:
            late = [e for e in self._by_id.values() if e.deadline is not None and e.deadline <= now]
            for entry in late:
                entry.removed = True
                del self._by_id[entry.stream_id]
        return [e.item for e in late]

    def release(self, stream_id: str, now: float) -> None:
        """An admitted stream has ended: its slot is free again."""
        with self._lock:
            self._active.discard(stream_id)
            started = self._admitted_at.pop(stream_id, None)
            if started is not None:
                self.mean_stream_s = 0.8 * self.mean_stream_s + 0.2 * max(0.0, now - started)

    def queued(self) -> int:
        with self._lock:
            return len(self._by_id) + len(self._reserved)

    def waiting(self) -> int:
        """Submitted items not yet admitted (reservations excluded): the engine has work to take.

        Read without the lock (a len() is atomic under the GIL): the engine asks every token, and
        a stale answer only delays an admission by one step.
        """
        return len(self._by_id)

    def active(self) -> int:
        with self._lock:
            return len(self._active)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            by_priority = {name: 0 for name in PRIORITIES}
            names = {rank: name for name, rank in PRIORITIES.items()}
            for entry in self._by_id.values():
                by_priority[names[entry.rank]] += 1
            return {
                "queued": len(self._by_id) + len(self._reserved),
                "active": len(self._active),
                "queued_by_priority": by_priority,
                "max_active": self.max_active,
                "max_queued": self.max_queued,
            }

    def _retry_after_ms(self) -> int:
        # Roughly when a slot frees up: the mean stream time spread over the active slots.
        return max(50, int(1000 * self.mean_stream_s * (len(self._by_id) + 1) / max(1, self.max_active)))
