"""Random interleavings of submit, step, cancel, timeout and fault keep the scheduler's books straight.

The real stream lifecycle (admission queue, stream registry, circuit breaker) and StreamPublisher
run against a fake engine (pure Python, no MLX) that steps streams with the engine's own stop rule
(`StreamJob.stop_reason`). Invariants: each stream ends with
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
from runtime.scheduler.breaker import CircuitBreaker
from runtime.scheduler.lifecycle import StreamLifecycle
from runtime.scheduler.queue import AdmissionQueue
from runtime.scheduler.registry import StreamRegistry
from runtime.streams.publisher import StreamPublisher


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
        job.emit(PromptStarted("solo"))

    def step(self, now: float) -> bool:
        """One token; True when the stream has ended."""
        job = self.job
        reason = job.stop_reason(now)
        if reason is None and self.fault and self.produced == 1:
            failure = faults.GenerationFailed("injected")
            job.emit(Finished(reason="error", prompt_tokens=1, generated_tokens=self.produced, failure=failure))
            return True
        if reason is None and self.produced == job.request.max_tokens:
            reason = "length"
        if reason is not None:
            job.emit(Finished(reason=reason, prompt_tokens=1, generated_tokens=self.produced))
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
        self.registry = StreamRegistry()
        self.queue: AdmissionQueue[StreamJob] = AdmissionQueue(max_active=3, max_queued=4)
        breaker = CircuitBreaker(threshold=2, window_s=10, cooldown_s=3, clock=lambda: self.now)
        self.lifecycle = StreamLifecycle(self.registry, self.queue, breaker, wake=lambda: None)
        self.running: list[FakeStream] = []
        self.accepted: list[str] = []
        self.refused = 0
        self.count = 0

    @rule(tokens=st.integers(1, 5), timeout=st.one_of(st.none(), st.floats(0.5, 5)), fault=st.booleans())
    def submit(self, tokens: int, timeout: float | None, fault: bool) -> None:
        self.count += 1
        stream_id = f"s{self.count}"
        output = StreamPublisher(self.writer, stream_id, SimpleNamespace(tokenizer=None), None, 0)  # type: ignore[arg-type]
        try:
            handle = self.lifecycle.open(stream_id, "m", None, output)
        except (faults.Busy, faults.CircuitOpen) as refusal:
            assert refusal.details["retry_after_ms"] > 0
            self.refused += 1
            return
        job = StreamJob(
            stream_id,
            SimpleNamespace(model_id="m"),  # type: ignore[arg-type]
            GenerationRequest([1], tokens),
            handle,
            handle.record.cancel,
            self.now,
            self.now + timeout if timeout else None,
        )
        job.fault = fault  # type: ignore[attr-defined]
        self.lifecycle.start(handle, job, "normal", job.deadline)
        self.accepted.append(stream_id)

    @rule()
    def engine_turn(self) -> None:
        for job in self.queue.expired(self.now):
            self.lifecycle.end_unstarted(job, "timeout")
        for job in self.queue.take(self.now):
            self.running.append(FakeStream(job, job.fault))
        self.running = [s for s in self.running if not s.step(self.now)]

    @precondition(lambda self: self.accepted)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        stream_id = data.draw(st.sampled_from(self.accepted))
        self.lifecycle.cancel(stream_id)

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
        registry, queue = self.registry, self.queue
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
            self.lifecycle.cancel(stream_id)
        for _ in range(50):
            self.engine_turn()
        assert sorted(self.terminal_events()) == sorted(self.accepted)  # exactly one each, none leaked
        assert self.registry.wait_idle(0.0) and self.queue.snapshot()["active"] == 0


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
