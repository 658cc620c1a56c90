"""Idle timers of loaded models, with Ollama's keep-alive semantics. A pure state machine.

A model is busy while it has streams or holds (a request waiting for it to load, until its stream
is open); when the last ends its idle timer starts, and once the timer passes its keep-alive
(seconds; 0: at once; None: never) the model is due to be unloaded. Pinned models are never due.
The lifecycle reports streams opening and ending; the reaper thread (methods/registry.py) asks
what is due and when to look next. Thread-safe; `changed` wakes the reaper whenever a deadline may
have moved. Holds outlive `forget` and `track`: a request may hold a model across its reload.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class _Timer:
    keep_alive: float | None  # seconds idle before the model is due; None: never
    pinned: bool
    active: int = 0  # streams open on the model
    last_used: float = 0.0  # monotonic: when it was loaded or its last stream ended


class IdleTimers:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._timers: dict[str, _Timer] = {}
        self._holds: dict[str, int] = {}
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)

    def track(self, model_id: str, keep_alive: float | None, pinned: bool = False) -> None:
        """A model is loaded: its timer starts now (a model nobody uses still goes idle)."""
        with self._lock:
            timer = self._timers.get(model_id)
            active = timer.active if timer else 0
            self._timers[model_id] = _Timer(keep_alive, pinned, active, self._clock())
            self.changed.notify_all()

    def set_keep_alive(self, model_id: str, keep_alive: float | None) -> None:
        """A request's keep_alive replaces the model's (Ollama: the latest request decides)."""
        with self._lock:
            timer = self._timers.get(model_id)
            if timer is not None:
                timer.keep_alive = keep_alive
                self.changed.notify_all()

    def forget(self, model_id: str) -> None:
        with self._lock:
            self._timers.pop(model_id, None)
            self.changed.notify_all()

    def stream_opened(self, model_id: str) -> None:
        with self._lock:
            timer = self._timers.setdefault(model_id, _Timer(None, False, 0, self._clock()))
            timer.active += 1

    def stream_ended(self, model_id: str) -> None:
        with self._lock:
            timer = self._timers.get(model_id)
            if timer is None:
                return
            timer.active = max(0, timer.active - 1)
            timer.last_used = self._clock()
            if timer.active == 0:
                self.changed.notify_all()

    def hold(self, model_id: str) -> None:
        """Keep the model busy (a request waits for it) until `release`."""
        with self._lock:
            self._holds[model_id] = self._holds.get(model_id, 0) + 1

    def release(self, model_id: str) -> None:
        with self._lock:
            left = self._holds.get(model_id, 0) - 1
            if left > 0:
                self._holds[model_id] = left
                return
            self._holds.pop(model_id, None)
            timer = self._timers.get(model_id)
            if timer is not None:
                timer.last_used = self._clock()
            self.changed.notify_all()

    def is_held(self, model_id: str) -> bool:
        """A request waits to use the model (it has not opened its stream yet)."""
        with self._lock:
            return bool(self._holds.get(model_id))

    def touch(self, model_id: str) -> None:
        """Count the model as used now (its idle timer starts again)."""
        with self._lock:
            timer = self._timers.get(model_id)
            if timer is not None:
                timer.last_used = self._clock()
                self.changed.notify_all()

    def is_idle(self, model_id: str) -> bool:
        with self._lock:
            timer = self._timers.get(model_id)
            return (timer is None or timer.active == 0) and not self._holds.get(model_id)

    def last_used(self, model_id: str) -> float:
        with self._lock:
            timer = self._timers.get(model_id)
            return timer.last_used if timer else 0.0

    def due(self) -> list[str]:
        """Idle models whose keep-alive has passed, oldest first."""
        now = self._clock()
        with self._lock:
            expiries = [(self._expires(m, t), t.last_used, m) for m, t in self._timers.items()]
        return [m for _, m in sorted((used, m) for e, used, m in expiries if e is not None and e <= now)]

    def seconds_to_next(self) -> float | None:
        """How long until the next model falls due (0 if one is due now; None if none ever will)."""
        with self._lock:
            return self._seconds_to_next()

    def wait_due(self, max_wait: float) -> list[str]:
        """Sleep until a model may be due (or `max_wait`, or a change), then return those due."""
        with self._lock:
            wait = self._seconds_to_next()
            if wait is None or wait > 0:
                self.changed.wait(max_wait if wait is None else min(wait, max_wait))
        return self.due()

    def _seconds_to_next(self) -> float | None:
        now = self._clock()
        deadlines = [d for d in (self._expires(m, t) for m, t in self._timers.items()) if d is not None]
        return max(0.0, min(deadlines) - now) if deadlines else None

    def snapshot(self, model_id: str) -> dict[str, Any]:
        """What runtime/state shows of a model's timer."""
        now = self._clock()
        with self._lock:
            timer = self._timers.get(model_id)
            if timer is None:
                return {
                    "keep_alive_s": None,
                    "active_streams": 0,
                    "idle_s": None,
                    "expires_in_s": None,
                    "pinned": False,
                }
            expires = self._expires(model_id, timer)
            busy = timer.active > 0 or bool(self._holds.get(model_id))
            return {
                "keep_alive_s": timer.keep_alive,
                "active_streams": timer.active,
                "idle_s": None if busy else round(now - timer.last_used, 3),
                "expires_in_s": None if expires is None else round(max(0.0, expires - now), 3),
                "pinned": timer.pinned,
            }

    def _expires(self, model_id: str, timer: _Timer) -> float | None:
        """When the model falls due (lock held); None while busy, pinned or kept forever."""
        if timer.pinned or timer.keep_alive is None or timer.active > 0 or self._holds.get(model_id):
            return None
        return timer.last_used + timer.keep_alive
