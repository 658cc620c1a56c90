"""The engine thread: the only thread that runs MLX work.

Each turn of its loop: run short calls (load, unload), end queued streams whose deadline passed,
admit streams from the admission queue, end cancelled or late streams, then advance every model's
batch by one step (and every sequential stream by one event). Control messages never come here:
cancel is a flag checked at every step.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.engine.events import Event, Finished
from runtime.engine.jobs import StreamJob

log = logging.getLogger(__name__)


class JobSource(Protocol):
    def take(self, now: float) -> list[StreamJob]: ...

    def expired(self, now: float) -> list[StreamJob]: ...

    def waiting(self) -> int: ...


@dataclass
class _Sequential:
    job: StreamJob
    events: Iterator[Event]


class EngineWorker:
    def __init__(
        self,
        source: JobSource,
        on_fatal: Callable[[BaseException], None],
        *,
        max_active: int = 16,
        prefill_step: int = 512,
        batching: bool = True,
        disable_compile: bool = True,
    ) -> None:
        self._source, self._on_fatal = source, on_fatal
        self.max_active, self.prefill_step, self.batching = max_active, prefill_step, batching
        self._disable_compile = disable_compile
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._batches: dict[str, Any] = {}  # model_id -> ModelBatch
        self._sequential: list[_Sequential] = []
        self._stopping = False
        import threading

        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn(*args)` on the engine thread; the future carries its result or exception."""
        future: Future[Any] = Future()
        self._calls.put((fn, args, future))
        return future

    def wake(self) -> None:
        """New work is in the admission queue."""
        self.call(lambda: None)

    def forget_model(self, model_id: str) -> None:
        """Drop the model's batch (engine thread only; its streams have ended)."""
        self._batches.pop(model_id, None)

    def running_streams(self) -> int:
        return sum(len(b) for b in self._batches.values()) + len(self._sequential)

    def pending_calls(self) -> int:
        return self._calls.qsize()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping = True
        self._calls.put(None)

    def _run(self) -> None:
        try:
            self._setup()
            while not self._stopping:
                self._drain_calls(block=self.running_streams() == 0 and self._source.waiting() == 0)
                self._turn(time.perf_counter())
        except BaseException as exc:  # the engine itself broke: the app reports it and exits
            log.critical("engine thread failed", exc_info=True)
            self._on_fatal(exc)

    def _setup(self) -> None:
        import mlx.core as mx

        # On CPU, mx.compile builds kernels with g++ on first use: 1-3 s stalls, no steady-state gain.
        if self._disable_compile and mx.default_device() == mx.cpu:
            mx.disable_compile()

    def _turn(self, now: float) -> None:
        for job in self._source.expired(now):
            job.emit(Finished("timeout", len(job.request.prompt_tokens), 0, 0.0, now - job.submitted_at))
        for job in self._source.take(now):
            self._admit(job)
        for batch in list(self._batches.values()):
            batch.sweep(now)
        self._step_sequential()
        for batch in list(self._batches.values()):
            if len(batch):
                batch.step()

    def _drain_calls(self, block: bool) -> None:
        while True:
            try:
                item = self._calls.get(block=block)
            except queue.Empty:
                return
            if item is None:
                return
            fn, args, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except Exception as exc:
                    future.set_exception(exc)
            block = False

    def _admit(self, job: StreamJob) -> None:
        try:
            if self.batching:
                self._batch_for(job).add(job)
            else:
                from runtime.engine.text import generate_events

                self._sequential.append(_Sequential(job, generate_events(job, self.prefill_step)))
        except Exception as exc:
            job.emit(Finished("error", len(job.request.prompt_tokens), 0, 0.0, 0.0, f"{type(exc).__name__}: {exc}"))

    def _batch_for(self, job: StreamJob) -> Any:
        from runtime.engine.batching import ModelBatch

        batch = self._batches.get(job.loaded.model_id)
        if batch is None or batch.loaded is not job.loaded:
            batch = self._batches[job.loaded.model_id] = ModelBatch(job.loaded, self.max_active, self.prefill_step)
        return batch

    def _step_sequential(self) -> None:
        for running in list(self._sequential):
            try:
                event = next(running.events)
            except StopIteration:
                self._sequential.remove(running)
                continue
            except Exception as exc:
                event = Finished("error", 0, 0, 0.0, 0.0, f"{type(exc).__name__}: {exc}")
            running.job.emit(event)
            if isinstance(event, Finished) and running in self._sequential:
                self._sequential.remove(running)
