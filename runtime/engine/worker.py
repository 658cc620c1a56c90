"""The engine thread: the only thread that runs MLX work.

Each turn of its loop: run short calls (load, unload), end queued streams whose deadline passed,
admit streams from the admission queue, end cancelled or late streams, then advance every solo
stream by one token and every model's batch by one step. Control messages never come here: cancel
is a flag checked at every step.

A stream that is alone on its model runs solo (engine/solo.py, mlx-lm's generate_step: the fastest
single-stream path); as soon as its model has other streams it moves into the model's batch
(engine/batching.py). With batching off (--no-batching) every stream runs solo, round-robin.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from runtime import faults
from runtime.engine.events import Finished
from runtime.engine.jobs import Job, PoolJob, StreamJob
from runtime.engine.paths.pooling import PoolingLane

if TYPE_CHECKING:
    from runtime.engine.lockstep import Leader
    from runtime.engine.paths.base import DecodeStream
    from runtime.engine.paths.batching import ModelBatch

log = logging.getLogger(__name__)


class JobSource(Protocol):
    def take(self, now: float) -> list[Job]: ...

    def expired(self, now: float) -> list[Job]: ...

    def waiting(self) -> int: ...


class TurnOutput(Protocol):
    """Where a turn's output goes: held while the turn runs, then handed on in one piece (the
    writer's hold/release); `release(True)` when the engine goes idle and nothing may stay behind."""

    def hold(self) -> None: ...

    def release(self, force: bool = False) -> None: ...


class _Unheld:
    def hold(self) -> None:
        return None

    def release(self, force: bool = False) -> None:
        return None


Undo = Callable[[], object] | None


@dataclass
class Call:
    """Work for the engine thread: `fn(*args)` into `future`; `op` when every rank runs it too."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any]
    op: dict[str, Any] | None = None
    undo: Undo = None


def _not_in_group(job: Job) -> faults.Unsupported:
    what = "embed and rerank" if isinstance(job, PoolJob) else "this request"
    return faults.Unsupported(f"{what} cannot run across a distributed group", feature="distributed")


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
        output: TurnOutput | None = None,
        cache_limit_bytes: int | None = None,
        pooling: PoolingLane | None = None,
        leader: Leader | None = None,
    ) -> None:
        self._source, self._on_fatal = source, on_fatal
        self._cache_limit = cache_limit_bytes  # MLX's buffer cache bound (low-memory mode), set at start
        self.max_active, self.prefill_step, self.batching = max_active, prefill_step, batching
        self._disable_compile = disable_compile
        self._output = output or _Unheld()  # the app gathers each turn's output into one write
        self._calls: queue.SimpleQueue[Call] = queue.SimpleQueue()
        self._leader = leader  # rank 0 of a distributed group: each turn's plan goes to the others first
        self._batches: dict[str, ModelBatch] = {}
        self._solos: list[DecodeStream] = []  # solo, vision and speculative streams
        self._pooling = pooling or PoolingLane()  # embed and rerank jobs: one bounded pass a turn
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn(*args)` on the engine thread; the future carries its result or exception."""
        future: Future[Any] = Future()
        self._calls.put(Call(fn, args, future))
        return future

    def call_mirrored(self, op: dict[str, Any], fn: Callable[..., Any], *args: Any, undo: Undo = None) -> Future[Any]:
        """`call`, for work every rank of a distributed group must do too (load, unload): `op`
        tells the other ranks what to do; if any rank fails it, `undo` takes back this rank's part."""
        future: Future[Any] = Future()
        self._calls.put(Call(fn, args, future, op, undo))
        return future

    def wake(self) -> None:
        """New work is in the admission queue."""
        self.call(lambda: None)

    def forget_model(self, model_id: str) -> None:
        """Drop the model's streams and batch (engine thread only). Streams still running end as
        cancelled here, so none is ever left without its terminal event."""
        batch = self._batches.pop(model_id, None)
        if batch is not None:
            batch.end_all("cancelled")
        for stream in [s for s in self._solos if s.job.loaded.model_id == model_id]:
            stream.end("cancelled")
        self._solos = [s for s in self._solos if s.job.loaded.model_id != model_id]
        for stream in self._solos:  # speculative streams drafting with it go on without a draft
            stream.drop_model(model_id)
        self._pooling.end_model(model_id)

    def end_everything(self, failure: BaseException) -> None:
        """Every stream ends with `failure` (engine thread only): the group lost a rank."""
        for batch in self._batches.values():
            batch.end_all("error", failure)
        for stream in self._solos:
            stream.end("error", failure)
        self._solos = []
        self._pooling.end_all("error")

    def _idle(self) -> bool:
        """Nothing to step and nothing queued (checked twice a turn: kept cheap)."""
        if self._solos or self._source.waiting() or len(self._pooling):
            return False
        return not any(len(b) for b in self._batches.values()) if self._batches else True

    def pending_calls(self) -> int:
        return self._calls.qsize()

    def _run(self) -> None:
        try:
            self.setup()
            if self._leader is not None:
                self._run_leading(self._leader)
            while True:
                if self._drain_calls(block=self._idle()):
                    self._output.release(True)  # a call's answer was sent from here: do not hold it
                self._output.hold()
                try:
                    self._turn(time.perf_counter())
                finally:
                    self._output.release(self._idle())
        except BaseException as exc:  # the engine itself broke: the app reports it and exits
            log.critical("engine thread failed", exc_info=True)
            self._on_fatal(exc)

    def setup(self) -> None:
        """MLX settings for the thread that runs the turns (the engine thread, a follower's main)."""
        import mlx.core as mx

        # On CPU, mx.compile builds kernels with g++ on first use: 1-3 s stalls, no steady-state gain.
        if self._disable_compile and mx.default_device() == mx.cpu:
            mx.disable_compile()
        if self._cache_limit is not None:
            mx.set_cache_limit(self._cache_limit)

    def _run_leading(self, leader: Leader) -> None:
        """Rank 0's loop: the turn's calls and admissions are decided first and sent to the other
        ranks as the turn's plan (engine/lockstep.py); then every rank runs the same turn."""
        from runtime.engine.lockstep import without_orphans

        while True:
            calls = self._take_calls(block=self._idle())
            now = time.perf_counter()
            expired: list[Job] = []
            taken: list[Job] = []
            if self._source.waiting():
                expired, taken = self._source.expired(now), self._source.take(now)
            kept, entries, refused = leader.admit(taken)
            self._output.hold()
            try:
                for job in expired:  # never in a plan: no rank but this one saw them
                    job.emit(Finished.unstarted(job, "timeout", now))
                try:
                    leader.send([c.op for c in calls if c.op is not None], entries, leader.tracker.latch(now))
                except faults.GroupLost as lost:
                    self._after_loss(lost, calls, [*kept, *refused])
                    continue
                for call in calls:
                    self._run_call(call, leader)
                for job in refused:
                    job.emit(Finished.unstarted(job, "error", now, failure=_not_in_group(job)))
                self._admit_all(list(without_orphans(kept)))
                self._step(now)
            finally:
                self._output.release(bool(calls) or self._idle())

    def _after_loss(self, lost: faults.GroupLost, calls: list[Call], jobs: list[Job]) -> None:
        """The group lost a rank: what needs every rank fails, every stream ends with the loss; the
        runtime itself stays up (its control methods answer, new generation is refused)."""
        now = time.perf_counter()
        for call in calls:
            if call.op is not None and call.op["op"] == "load":
                if call.future.set_running_or_notify_cancel():
                    call.future.set_exception(lost)
            else:  # unloads still free this rank's memory
                self._run_call(call, None)
        for job in jobs:
            job.emit(Finished.unstarted(job, "error", now, failure=lost))
        self.end_everything(lost)

    def run_turn(self, jobs: list[StreamJob]) -> None:
        """A follower rank's turn: rank 0's admissions, then the same steps (engine/lockstep.py)."""
        now = time.perf_counter()
        self._admit_all(list(jobs))
        self._step(now)

    def _turn(self, now: float) -> None:
        if self._source.waiting():
            for job in self._source.expired(now):
                job.emit(Finished.unstarted(job, "timeout", now))
            self._admit_all(self._source.take(now))
        self._step(now)

    def _step(self, now: float) -> None:
        busy_batches = [b for b in self._batches.values() if len(b)] if self._batches else []
        if self._solos and busy_batches and self.batching:
            self._move_solos()
        ended = False
        decoding = bool(self._solos or busy_batches)
        for stream in self._solos:
            stream.step()  # checks cancel and deadline itself
            ended = ended or stream.done
        if ended:
            self._solos = [s for s in self._solos if not s.done]
        for batch in busy_batches:
            batch.sweep(now)
            if len(batch):
                batch.step()
        if len(self._pooling):  # one bounded pass, sized to the decode step it follows
            self._pooling.step(now, time.perf_counter() - now if decoding else None)

    def _drain_calls(self, block: bool) -> int:
        """Run the queued calls; how many ran."""
        calls = self._take_calls(block)
        for call in calls:
            self._run_call(call, None)
        return len(calls)

    def _take_calls(self, block: bool) -> list[Call]:
        """The queued calls (waiting for the first one when `block`)."""
        calls: list[Call] = []
        while True:
            if not block and self._calls.empty():
                return calls  # the common case, every token: no exception raised and caught
            try:
                calls.append(self._calls.get(block=block))
            except queue.Empty:
                return calls
            block = False

    def _run_call(self, call: Call, leader: Leader | None) -> None:
        if not call.future.set_running_or_notify_cancel():
            if leader is not None and call.op is not None:  # the other ranks run it: so must this one
                call.future = Future()
                call.future.set_running_or_notify_cancel()
            else:
                return
        error: BaseException | None = None
        result: Any = None
        try:
            result = call.fn(*call.args)
        except Exception as exc:
            error = exc
        if leader is not None and call.op is not None and call.op["op"] != "exit":  # exit: nobody answers
            settled = leader.settle(call.op, error, result)
            if settled is not None and error is None and call.undo is not None:
                call.undo()  # another rank failed it: this rank gives back its part too
            error = settled
        if error is not None:
            call.future.set_exception(error)
        else:
            call.future.set_result(result)

    def _admit_all(self, jobs: list[Job]) -> None:
        by_model: dict[str, list[StreamJob]] = {}
        for job in jobs:
            if isinstance(job, PoolJob):
                self._pooling.add(job)
                continue
            by_model.setdefault(job.loaded.model_id, []).append(job)
        for model_jobs in by_model.values():
            alone = len(model_jobs) == 1 and not self._busy(model_jobs[0].loaded.model_id)
            for job in model_jobs:
                self._admit(job, solo=alone or not self.batching or not job.loaded.kv.batchable)

    def _busy(self, model_id: str) -> bool:
        batch = self._batches.get(model_id)
        return bool(batch and len(batch)) or any(s.job.loaded.model_id == model_id for s in self._solos)

    def _admit(self, job: StreamJob, solo: bool) -> None:
        # Imported here, not at the top: the paths import mlx-lm, which the runtime loads on first use.
        from runtime.engine.paths.solo import SoloStream
        from runtime.engine.paths.speculative import SpeculativeStream

        try:
            log.debug("stream %s starts %s", job.stream_id, "solo" if solo else "in the batch")
            draft = job.request.draft
            if draft is not None and not draft.loaded.alive.is_set():
                draft = None  # the draft was unloaded while this job waited: decode without it
            if job.loaded.kind == "vision":  # mlx-vlm's own generate_step, beside the batch loop
                from runtime.engine.paths.vision import VisionStream

                self._solos.append(VisionStream(job, self.prefill_step))
            elif draft is not None:  # beside the batch loop: one round per turn, never handed over
                self._solos.append(SpeculativeStream(job, draft.loaded, draft.num_draft_tokens, self.prefill_step))
            elif solo:
                self._solos.append(SoloStream(job, self.prefill_step))
            else:
                self._batch_for(job).add(job)
        except Exception as exc:
            job.emit(Finished.unstarted(job, "error", time.perf_counter(), failure=exc))

    def _move_solos(self) -> None:
        """A solo stream whose model now has a busy batch joins it, between two tokens."""
        for stream in self._solos:
            batch = self._batches.get(stream.job.loaded.model_id)
            if batch is not None and len(batch) and stream.can_hand_over():
                log.debug("stream %s joins the batch of %s", stream.job.stream_id, stream.job.loaded.model_id)
                batch.add_handover(stream.hand_over())

    def _batch_for(self, job: StreamJob) -> ModelBatch:
        from runtime.engine.paths.batching import ModelBatch

        batch = self._batches.get(job.loaded.model_id)
        if batch is None or batch.loaded is not job.loaded:
            batch = self._batches[job.loaded.model_id] = ModelBatch(job.loaded, self.max_active, self.prefill_step)
        return batch
