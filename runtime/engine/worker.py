"""The engine thread: the only thread that runs MLX work.

It alternates between short calls (load, unload, start a stream) and one step of every running
stream, round-robin, so concurrent streams all make progress and a load never waits for a stream
to end. Control messages never come here: cancel is a flag the streams check between tokens.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from runtime.engine.events import Event, Finished

log = logging.getLogger(__name__)


@dataclass
class StreamJob:
    stream_id: str
    start: Callable[[], Iterator[Event]]  # called on the engine thread
    emit: Callable[[Event], None]  # receives every event, on the engine thread
    cancel: threading.Event


@dataclass
class _Running:
    job: StreamJob
    events: Iterator[Event]


class EngineWorker:
    def __init__(self, on_fatal: Callable[[BaseException], None], disable_compile: bool = True) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._running: list[_Running] = []
        self._on_fatal, self._disable_compile = on_fatal, disable_compile
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn(*args)` on the engine thread; the future carries its result or exception."""
        future: Future[Any] = Future()
        self._calls.put((fn, args, future))
        return future

    def submit_stream(self, job: StreamJob) -> None:
        self.call(self._admit, job)

    def running_streams(self) -> int:
        return len(self._running)

    def pending_calls(self) -> int:
        return self._calls.qsize()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping = True
        self._calls.put(None)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._setup()
            while not self._stopping:
                self._drain_calls(block=not self._running)
                self._step_all()
        except BaseException as exc:  # the engine itself broke: the app reports it and exits
            log.critical("engine thread failed", exc_info=True)
            self._on_fatal(exc)

    def _setup(self) -> None:
        import mlx.core as mx

        # On CPU, mx.compile builds kernels with g++ on first use: 1-3 s stalls, no steady-state gain.
        if self._disable_compile and mx.default_device() == mx.cpu:
            mx.disable_compile()

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
            self._running.append(_Running(job, job.start()))
        except Exception as exc:
            job.emit(Finished("error", 0, 0, 0.0, 0.0, f"{type(exc).__name__}: {exc}"))

    def _step_all(self) -> None:
        for running in list(self._running):
            try:
                event = next(running.events)
            except StopIteration:
                self._running.remove(running)
                continue
            except Exception as exc:
                self._running.remove(running)
                event = Finished("error", 0, 0, 0.0, 0.0, f"{type(exc).__name__}: {exc}")
            self._emit(running.job, event)
            if isinstance(event, Finished) and running in self._running:
                self._running.remove(running)

    def _emit(self, job: StreamJob, event: Event) -> None:
        try:
            job.emit(event)
        except Exception:
            log.exception("stream %s: event handler failed", job.stream_id)
