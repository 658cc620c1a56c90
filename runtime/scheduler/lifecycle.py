"""A stream's whole life, owned in one place.

open (register, breaker, reserve a place) → start (queue, wake the engine) → every engine event
(advance the registry, count tokens, hand tokens to the stream's output) → finish (claim the
terminal transition once, release the place, tell the breaker, send the end, free the id); or
cancel, or end before starting. The reader and preparer threads open and start; the engine thread
delivers events; control and shutdown threads cancel. Nothing else touches the registry, the queue
or the breaker for a stream, and what a stream's messages look like is its output's business
(streams/publisher.py): this module only orders them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from runtime import faults
from runtime.engine.events import Event, Finished, FinishReason, HandedOver, PromptProcessed, PromptStarted, TokenEvent
from runtime.engine.jobs import Job
from runtime.scheduler.breaker import CircuitBreaker, CircuitOpen
from runtime.scheduler.keepalive import IdleTimers
from runtime.scheduler.queue import AdmissionQueue, QueueFull
from runtime.scheduler.registry import DuplicateStream, RegistryClosed, StreamRecord, StreamRegistry, StreamState

if TYPE_CHECKING:
    from runtime.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

# What each finish reason tells the circuit breaker: only engine faults count against it.
OUTCOMES: dict[str, str] = {"error": "fault", "stop": "ok", "length": "ok"}


class StreamOutput(Protocol):
    """Formats and sends one stream's messages; called on the engine thread, in order."""

    def token(self, event: TokenEvent) -> None: ...

    def end(self, event: Finished) -> None: ...


class StreamHandle:
    """One open stream: the engine's event sink (`job.emit`) and what ends it from outside."""

    __slots__ = ("lifecycle", "output", "record", "job", "started_at")

    def __init__(self, lifecycle: StreamLifecycle, record: StreamRecord, output: StreamOutput) -> None:
        self.lifecycle, self.record, self.output = lifecycle, record, output
        self.job: Job | None = None
        self.started_at: float | None = None  # perf_counter when it left the queue (for metrics)

    @property
    def stream_id(self) -> str:
        return self.record.stream_id

    def __call__(self, event: Event) -> None:
        record = self.record
        if record.state is StreamState.FINISHED:
            return  # ended already (cancelled while queued, shutdown): nothing may follow the last event
        if type(event) is TokenEvent:  # the hot path: once per token
            record.tokens_generated += 1
            self.output.token(event)
        elif isinstance(event, PromptStarted):
            record.path = event.path
            if self.started_at is None:
                self.started_at = time.perf_counter()
            self.lifecycle.registry.advance(record.stream_id, StreamState.PREFILLING)
        elif isinstance(event, HandedOver):
            record.path = event.path
            record.handovers += 1
        elif isinstance(event, PromptProcessed):
            self.lifecycle.registry.advance(record.stream_id, StreamState.DECODING)
        elif isinstance(event, Finished):
            self.lifecycle.finish(self, event)


class StreamLifecycle:
    def __init__(
        self,
        registry: StreamRegistry,
        queue: AdmissionQueue[Job],
        breaker: CircuitBreaker,
        wake: Callable[[], None],
        metrics: RuntimeMetrics | None = None,
        timers: IdleTimers | None = None,
    ) -> None:
        self.registry, self.queue, self.breaker, self._wake = registry, queue, breaker, wake
        self.metrics = metrics  # what each stream's end adds to runtime/metrics (None: nothing recorded)
        self.timers = timers or IdleTimers()  # models' idle timers: a model with streams is busy
        self._handles: dict[str, StreamHandle] = {}
        self._lock = threading.Lock()

    def open(self, stream_id: str, model_id: str, request_id: Any, output: StreamOutput) -> StreamHandle:
        """Register the stream and reserve its place; refusals raise the domain fault, and leave nothing behind."""
        try:
            record = self.registry.register(stream_id, model_id, request_id)
        except DuplicateStream:
            raise faults.InvalidInput.at("/stream_id", f"stream {stream_id} is already active") from None
        except RegistryClosed:
            raise faults.ShuttingDown("the runtime is shutting down") from None
        try:
            self._admit(stream_id)
        except BaseException:
            self.registry.discard(stream_id)
            raise
        handle = StreamHandle(self, record, output)
        with self._lock:
            self._handles[stream_id] = handle
        self.timers.stream_opened(model_id)
        return handle

    def _admit(self, stream_id: str) -> None:
        """The breaker, then the queue: either may refuse at once, with a retry hint."""
        try:
            self.breaker.admit(stream_id)
        except CircuitOpen as exc:
            raise faults.CircuitOpen(
                "the engine's circuit breaker is open after repeated faults", retry_after_ms=exc.retry_after_ms
            ) from None
        try:
            self.queue.reserve(stream_id)
        except QueueFull as exc:
            self.breaker.record(stream_id, "neutral")
            raise faults.Busy("the request queue is full", retry_after_ms=exc.retry_after_ms) from None

    def start(self, handle: StreamHandle, job: Job, priority: str, deadline: float | None) -> None:
        """Queue the stream's job for the engine (after its response is on its way)."""
        handle.job = job
        self.queue.submit(handle.stream_id, job, priority, deadline)
        self._wake()

    def finish(self, handle: StreamHandle, event: Finished) -> None:
        stream_id = handle.stream_id
        record = self.registry.finish(stream_id, event.reason)
        if record is None:
            return
        self.queue.release(stream_id, time.perf_counter())
        self.timers.stream_ended(record.model_id)
        self.breaker.record(stream_id, OUTCOMES.get(event.reason, "neutral"))
        if self.metrics is not None:  # before the end goes out, so a host that saw it sees it counted
            try:
                self.metrics.stream_finished(event, handle.job.submitted_at if handle.job else None, handle.started_at)
            except Exception:
                log.warning("recording the metrics of stream %s failed", stream_id, exc_info=True)
        try:
            handle.output.end(event)
        finally:
            with self._lock:
                self._handles.pop(stream_id, None)
            self.registry.forget(stream_id)

    def cancel(self, stream_id: str) -> bool:
        """Cancel one stream: the engine stops it within a step; a queued one ends here at once."""
        cancelled = self.registry.cancel(stream_id)
        if cancelled:
            self._end_queued([stream_id])
        return cancelled

    def cancel_where(self, **match: Any) -> list[str]:
        """Cancel every active stream whose record fields equal `match` (all streams when empty)."""
        stream_ids = self.registry.cancel_where(**match)
        self._end_queued(stream_ids)
        return stream_ids

    def _end_queued(self, stream_ids: list[str]) -> None:
        for stream_id in stream_ids:
            job = self.queue.remove(stream_id)
            if job is not None:
                self.end_unstarted(job, "cancelled")

    def end_unstarted(self, job: Job, reason: FinishReason) -> None:
        job.emit(Finished.unstarted(job, reason, time.perf_counter()))

    def end_stragglers(self, reason: FinishReason = "cancelled", failure: BaseException | None = None) -> None:
        """Streams the engine could not end in time (a long prefill chunk, a load, a wait inside MLX
        that never returns) end here: cancelled, or with `failure`."""
        with self._lock:
            handles = list(self._handles.values())
        for handle in handles:
            if handle.record.state is StreamState.FINISHED:
                continue
            generated = handle.record.tokens_generated
            prompt = handle.job.prompt_size() if handle.job else 0
            handle(Finished(reason=reason, prompt_tokens=prompt, generated_tokens=generated, failure=failure))
