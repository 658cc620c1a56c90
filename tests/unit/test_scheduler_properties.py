"""Random interleavings of submit, step, cancel, timeout and fault keep the scheduler's books straight.

The real admission queue, stream registry, circuit breaker and StreamPublisher run against a fake
engine (pure Python, no MLX) that mimics the engine thread's turn. Invariants: each stream ends with
exactly one terminal event, nothing leaks, and the counts add up.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from runtime import faults
from runtime.engine.events import Finished, PromptProcessed, PromptStarted, TokenEvent
from runtime.engine.jobs import StreamJob
from runtime.engine.request import GenerationRequest
from runtime.methods.context import Services
from runtime.methods.generate import StreamPublisher, _admit
from runtime.scheduler.breaker import CircuitBreaker
from runtime.scheduler.queue import AdmissionQueue
from runtime.scheduler.registry import StreamRegistry


class FakeWriter:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def send_entry(self, key: str, entry: dict[str, Any], build: Any) -> None:
        self.messages.append(build(key, [entry]))


class FakeStream:
    def __init__(self, job: StreamJob, fault: bool) -> None:
        self.job, self.fault, self.produced = job, fault, 0
        job.emit(PromptStarted())

    def step(self, now: float) -> bool:
        """One token; True when the stream has ended."""
        job = self.job
        reason = "cancelled" if job.cancel.is_set() else "timeout" if job.deadline and now >= job.deadline else None
        if reason is None and self.fault and self.produced == 1:
            job.emit(Finished("error", 1, self.produced, 0.0, 0.0, "injected"))
            return True
        if reason is None and self.produced == job.request.max_tokens:
            reason = "length"
        if reason is not None:
            job.emit(Finished(reason, 1, self.produced, 0.0, 0.0))
            return True
        if self.produced == 0:
            job.emit(PromptProcessed(1, 0.0))
        self.produced += 1
        job.emit(TokenEvent(self.produced, "x"))
        return False


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.writer = FakeWriter()
        self.services = SimpleNamespace(
            streams=StreamRegistry(),
            queue=AdmissionQueue(max_active=3, max_queued=4),
            writer=self.writer,
            breaker=CircuitBreaker(threshold=2, window_s=10, cooldown_s=3, clock=lambda: self.now),
            notify=lambda method, params: self.writer.send({"method": method, "params": params}),
        )
        self.services.cancel_streams = lambda ids: Services.cancel_streams(self.services, ids)
        self.running: list[FakeStream] = []
        self.accepted: list[str] = []
        self.refused = 0
        self.count = 0

    @rule(tokens=st.integers(1, 5), timeout=st.one_of(st.none(), st.floats(0.5, 5)), fault=st.booleans())
    def submit(self, tokens: int, timeout: float | None, fault: bool) -> None:
        self.count += 1
        stream_id = f"s{self.count}"
        record = self.services.streams.register(stream_id, "m")
        try:
            _admit(self.services, stream_id)
        except (faults.Busy, faults.CircuitOpen) as refusal:
            assert refusal.details["retry_after_ms"] > 0
            self.services.streams.discard(stream_id)
            self.refused += 1
            return
        publisher = StreamPublisher(self.services, record, SimpleNamespace(tokenizer=None), None)
        job = StreamJob(
            stream_id,
            SimpleNamespace(model_id="m"),
            GenerationRequest([1], tokens),
            publisher,
            record.cancel,
            self.now,
            self.now + timeout if timeout else None,
        )
        job.fault = fault  # type: ignore[attr-defined]
        self.services.queue.submit(stream_id, job, "normal", job.deadline)
        self.accepted.append(stream_id)

    @rule()
    def engine_turn(self) -> None:
        for job in self.services.queue.expired(self.now):
            job.emit(Finished("timeout", 1, 0, 0.0, 0.0))
        for job in self.services.queue.take(self.now):
            self.running.append(FakeStream(job, job.fault))
        self.running = [s for s in self.running if not s.step(self.now)]

    @precondition(lambda self: self.accepted)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        stream_id = data.draw(st.sampled_from(self.accepted))
        if self.services.streams.cancel(stream_id):
            self.services.cancel_streams([stream_id])

    @rule(seconds=st.floats(0.1, 4))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    def terminal_events(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in self.writer.messages:
            if message["method"] == "stream.event":
                counts[message["params"]["stream_id"]] = counts.get(message["params"]["stream_id"], 0) + 1
        return counts

    @invariant()
    def books_balance(self) -> None:
        registry, queue = self.services.streams, self.services.queue
        assert all(n == 1 for n in self.terminal_events().values())
        assert len(registry.active()) + registry.finished_total == len(self.accepted)
        assert queue.active() <= queue.max_active
        assert queue.queued() + queue.active() == len(registry.active())
        assert self.refused == registry.discarded_total

    @invariant()
    def nothing_follows_a_terminal_event(self) -> None:
        ended: set[str] = set()
        for message in self.writer.messages:
            stream_id = message["params"].get("stream_id")
            assert stream_id not in ended, f"{message['method']} after the end of {stream_id}"
            if message["method"] == "stream.event":
                ended.add(stream_id)

    def teardown(self) -> None:
        for stream_id in self.accepted:
            if self.services.streams.cancel(stream_id):
                self.services.cancel_streams([stream_id])
        for _ in range(50):
            self.engine_turn()
        assert sorted(self.terminal_events()) == sorted(self.accepted)  # exactly one each, none leaked
        assert self.services.streams.wait_idle(0.0) and self.services.queue.snapshot()["active"] == 0


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
