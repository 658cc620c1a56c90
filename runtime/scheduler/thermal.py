"""The thermal guard: under thermal pressure, new streams are paced or paused; running ones go on.

Pressure comes from a probe (engine/platform.thermal: Linux thermal zones, each `{type, celsius}`),
read at most once a second: the hottest zone at or above `limit_c` is "serious", at or above
`limit_c + CRITICAL_MARGIN_C` "critical". Policy `pace` admits one new stream per `pace_s` while
serious and none while critical; `pause` admits none while serious or worse; `off` never looks.
`GuardedSource` puts the guard between the admission queue and the engine, and wakes the engine
when admissions may open again, so a paused engine sleeps instead of spinning.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from runtime.scheduler.queue import AdmissionQueue

T = TypeVar("T")
POLICIES = ("off", "pace", "pause")
CRITICAL_MARGIN_C = 10.0
PROBE_EVERY_S = 1.0
Probe = Callable[[], list[dict[str, Any]]]


class ThermalGuard:
    def __init__(
        self,
        policy: str,
        limit_c: float,
        pace_s: float,
        probe: Probe,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"thermal policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.policy, self.limit_c, self.pace_s = policy, limit_c, pace_s
        self._probe, self._clock = probe, clock
        self._read_at = -float("inf")
        self._hottest: dict[str, Any] | None = None
        self._last_admission = -float("inf")

    def pressure(self) -> str:
        """nominal, serious, critical, or unknown (no zone reported)."""
        self._refresh()
        if self._hottest is None:
            return "unknown"
        celsius = float(self._hottest["celsius"])
        if celsius >= self.limit_c + CRITICAL_MARGIN_C:
            return "critical"
        return "serious" if celsius >= self.limit_c else "nominal"

    def allowance(self) -> tuple[int | None, float]:
        """How many streams may start now (None: no limit) and, if none, when to look again (s)."""
        if self.policy == "off":
            return None, 0.0
        pressure = self.pressure()
        if pressure in ("nominal", "unknown"):
            return None, 0.0
        if self.policy == "pause" or pressure == "critical":
            return 0, PROBE_EVERY_S
        wait = self._last_admission + self.pace_s - self._clock()
        return (1, 0.0) if wait <= 0 else (0, min(wait, PROBE_EVERY_S))

    def admitted(self, count: int) -> None:
        if count:
            self._last_admission = self._clock()

    def snapshot(self) -> dict[str, Any]:
        """What runtime/state shows: the policy, the pressure, the hottest zone and what it does."""
        if self.policy == "off":
            return {"policy": "off", "pressure": None, "admissions": "open", "hottest": None, "limit_c": self.limit_c}
        allowed, _ = self.allowance()
        admissions = (
            "open"
            if allowed is None
            else "paced"
            if self.policy == "pace" and self.pressure() == "serious"
            else "paused"
        )
        return {
            "policy": self.policy,
            "pressure": self.pressure(),
            "admissions": admissions,
            "hottest": self._hottest,
            "limit_c": self.limit_c,
            "reason": self._reason(admissions),
        }

    def _reason(self, admissions: str) -> str | None:
        if admissions == "open" or self._hottest is None:
            return None
        zone = f"{self._hottest['type']} at {self._hottest['celsius']:.1f} °C (limit {self.limit_c:g} °C)"
        if admissions == "paced":
            return f"thermal pressure: {zone}; one new stream per {self.pace_s:g} s"
        return f"thermal pressure: {zone}; new streams wait until it cools"

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._read_at < PROBE_EVERY_S:
            return
        self._read_at = now
        zones = self._probe()
        self._hottest = max(zones, key=lambda z: float(z["celsius"])) if zones else None


class GuardedSource(Generic[T]):
    """The engine's job source: the admission queue, behind the thermal guard."""

    def __init__(self, queue: AdmissionQueue[T], guard: ThermalGuard) -> None:
        self.queue, self.guard = queue, guard
        self.wake: Callable[[], None] = lambda: None  # set by the app: wakes the engine thread
        self._timer: threading.Timer | None = None
        self._look_now = False  # set by the timer: the next turn looks at the queue (deadlines)

    def take(self, now: float) -> list[T]:
        allowed, retry_s = self.guard.allowance()
        if allowed == 0:
            self._wake_in(retry_s)
            return []
        taken = self.queue.take(now, allowed)
        self.guard.admitted(len(taken))
        return taken

    def expired(self, now: float) -> list[T]:
        self._look_now = False  # the turn the timer asked for has come: deadlines are looked at
        return self.queue.expired(now)

    def waiting(self) -> int:
        """0 while the guard holds admissions, so the engine sleeps until its timer wakes it; the
        turn after each wake sees the real count, so queued deadlines still expire."""
        waiting = self.queue.waiting()
        if not waiting or self.guard.policy == "off":
            return waiting
        allowed, retry_s = self.guard.allowance()
        if allowed != 0 or self._look_now:  # cleared by the turn's expired(), not by any caller
            return waiting
        self._wake_in(retry_s)
        return 0

    def _wake_in(self, seconds: float) -> None:
        if self._timer is not None:
            return
        self._timer = threading.Timer(max(seconds, 0.01), self._woken)
        self._timer.daemon = True
        self._timer.start()

    def _woken(self) -> None:
        self._timer = None
        self._look_now = True
        self.wake()
