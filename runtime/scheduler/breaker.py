"""Circuit breaker around the engine: closed -> open -> half_open -> closed.

`threshold` engine faults within `window_s` open it; while open, generation is refused at once.
After `cooldown_s` it is half-open and admits exactly one probe stream: the probe finishing well
closes it, the probe failing opens it again, a probe that ends otherwise (cancelled, timeout)
frees the slot for another probe. Pure state: the clock is injected, transitions are reported.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Exception):
    def __init__(self, retry_after_ms: int) -> None:
        super().__init__("circuit open")
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True)
class Transition:
    previous: BreakerState
    state: BreakerState
    reason: str


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 5,
        window_s: float = 60.0,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.threshold, self.window_s, self.cooldown_s = threshold, window_s, cooldown_s
        self._clock, self._on_transition = clock, on_transition
        self._state = BreakerState.CLOSED
        self._faults: deque[float] = deque()
        self._opened_at = 0.0
        self._probe: str | None = None
        self._lock = threading.Lock()
        self._unreported: list[Transition] = []
        self.transitions = 0

    def admit(self, stream_id: str) -> None:
        """Raise CircuitOpen unless a generation may start now (it may become the probe)."""
        try:
            self._admit(stream_id)
        finally:
            self._report()

    def _admit(self, stream_id: str) -> None:
        with self._lock:
            self._cool_down()
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.HALF_OPEN and self._probe is None:
                self._probe = stream_id
                return
            raise CircuitOpen(self._retry_after_ms())

    def record(self, stream_id: str, outcome: str) -> None:
        """A stream ended: outcome is "ok", "fault" or "neutral" (cancelled, timeout, refused)."""
        self._record(stream_id, outcome)
        self._report()

    def _record(self, stream_id: str, outcome: str) -> None:
        with self._lock:
            if stream_id == self._probe:
                self._probe = None
                if outcome == "ok":
                    self._move(BreakerState.CLOSED, "probe succeeded")
                    self._faults.clear()
                elif outcome == "fault":
                    self._open("probe failed")
                return
            if outcome == "fault":
                now = self._clock()
                self._faults.append(now)
                while self._faults and self._faults[0] < now - self.window_s:
                    self._faults.popleft()
                if self._state is BreakerState.CLOSED and len(self._faults) >= self.threshold:
                    self._open(f"{len(self._faults)} engine faults within {self.window_s:g}s")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._cool_down()
            snapshot = {
                "state": self._state.value,
                "recent_faults": len(self._faults),
                "threshold": self.threshold,
                "window_ms": int(self.window_s * 1000),
                "cooldown_ms": int(self.cooldown_s * 1000),
                "retry_after_ms": self._retry_after_ms() if self._state is not BreakerState.CLOSED else 0,
                "probe_stream_id": self._probe,
            }
        self._report()
        return snapshot

    def _report(self) -> None:
        """Tell the listener about transitions, outside the lock (it may block on I/O)."""
        with self._lock:
            pending, self._unreported = self._unreported, []
        if self._on_transition:
            for transition in pending:
                self._on_transition(transition)

    def _cool_down(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            self._move(BreakerState.HALF_OPEN, "cool-down elapsed")

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN, reason)

    def _move(self, state: BreakerState, reason: str) -> None:
        if state is self._state:
            return
        transition = Transition(self._state, state, reason)
        self._state = state
        self.transitions += 1
        self._unreported.append(transition)

    def _retry_after_ms(self) -> int:
        if self._state is BreakerState.OPEN:
            return max(1, int((self.cooldown_s - (self._clock() - self._opened_at)) * 1000))
        return max(1, int(self.cooldown_s * 1000 / 10))  # half-open: a probe is running
