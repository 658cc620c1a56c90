"""Circuit breaker and admission queue: pure state machines, driven by an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from runtime.scheduler.breaker import BreakerState, CircuitBreaker, CircuitOpen, Transition
from runtime.scheduler.queue import AdmissionQueue, QueueFull


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_faults_within_the_window_open_the_breaker_and_a_good_probe_closes_it() -> None:
    clock, seen = Clock(), []
    breaker = CircuitBreaker(threshold=2, window_s=10, cooldown_s=5, clock=clock, on_transition=seen.append)
    breaker.record("a", "fault")
    clock.now = 1
    breaker.record("b", "fault")
    with pytest.raises(CircuitOpen) as refused:
        breaker.admit("c")
    assert refused.value.retry_after_ms == 5000
    clock.now = 6.5
    breaker.admit("probe")
    with pytest.raises(CircuitOpen):
        breaker.admit("second-while-probing")
    breaker.record("probe", "ok")
    breaker.admit("d")
    assert [(t.previous, t.state) for t in seen] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_faults_spread_wider_than_the_window_do_not_open_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, window_s=10, cooldown_s=5, clock=clock)
    breaker.record("a", "fault")
    clock.now = 11
    breaker.record("b", "fault")
    breaker.admit("c")
    assert breaker.snapshot()["state"] == "closed"


def test_a_failed_probe_reopens_and_a_cancelled_probe_lets_another_try() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, window_s=10, cooldown_s=5, clock=clock)
    breaker.record("a", "fault")
    clock.now = 5
    breaker.admit("p1")
    breaker.record("p1", "neutral")
    breaker.admit("p2")
    breaker.record("p2", "fault")
    assert breaker.snapshot()["state"] == "open"


class BreakerMachine(RuleBasedStateMachine):
    """Whatever happens, at most one probe runs and refusals only happen when not closed."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.log: list[Transition] = []
        self.breaker = CircuitBreaker(
            threshold=3, window_s=5, cooldown_s=2, clock=self.clock, on_transition=self.log.append
        )
        self.running: set[str] = set()
        self.count = 0

    @rule()
    def admit(self) -> None:
        self.count += 1
        sid = f"s{self.count}"
        state = self.breaker.snapshot()["state"]
        try:
            self.breaker.admit(sid)
            self.running.add(sid)
        except CircuitOpen as exc:
            assert state != "closed" and exc.retry_after_ms > 0

    @rule(data=st.data(), outcome=st.sampled_from(["ok", "fault", "neutral"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        if self.running:
            sid = data.draw(st.sampled_from(sorted(self.running)))
            self.running.discard(sid)
            self.breaker.record(sid, outcome)

    @rule(seconds=st.floats(0, 3))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @invariant()
    def transitions_chain(self) -> None:
        for before, after in zip(self.log, self.log[1:], strict=False):
            assert before.state == after.previous
        assert all(
            (t.previous, t.state)
            in {("closed", "open"), ("open", "half_open"), ("half_open", "closed"), ("half_open", "open")}
            for t in self.log
        )


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(max_examples=100, stateful_step_count=50, deadline=None)


def test_the_queue_admits_by_priority_then_arrival() -> None:
    queue: AdmissionQueue[str] = AdmissionQueue(max_active=1, max_queued=10)
    for sid, priority in [("n1", "normal"), ("l1", "low"), ("h1", "high"), ("n2", "normal"), ("h2", "high")]:
        queue.submit(sid, sid, priority)
    order = []
    for _ in range(5):
        (item,) = queue.take(0.0)
        order.append(item)
        queue.release(item, 1.0)
    assert order == ["h1", "h2", "n1", "n2", "l1"]


def test_a_full_queue_refuses_at_once_with_a_retry_hint() -> None:
    queue: AdmissionQueue[str] = AdmissionQueue(max_active=1, max_queued=1)
    queue.submit("a", "a")
    queue.submit("b", "b")
    with pytest.raises(QueueFull) as refused:
        queue.submit("c", "c")
    assert refused.value.retry_after_ms >= 50


def test_removed_and_expired_items_are_never_admitted() -> None:
    queue: AdmissionQueue[str] = AdmissionQueue(max_active=5, max_queued=5)
    queue.submit("a", "a", deadline=1.0)
    queue.submit("b", "b")
    queue.submit("c", "c", deadline=10.0)
    assert queue.remove("b") == "b" and queue.remove("b") is None
    assert queue.expired(2.0) == ["a"]
    assert queue.take(2.0) == ["c"] and queue.snapshot()["active"] == 1
