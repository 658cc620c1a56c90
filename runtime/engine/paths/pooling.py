"""Embed and rerank jobs on the engine thread: one bounded forward pass per engine turn.

A job's inputs wait in admission order (each job's own sorted by length, so one batch pads
little); each turn takes the oldest waiting input and as many more of the same model and
operation as fit in `max_batch` inputs and `max_tokens` padded tokens, and runs them in one pass.
So a running stream waits at most one such pass per token, however many inputs are waiting, and
many small requests for one model share passes. A job ends when its last input is done.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from runtime import faults
from runtime.engine.events import Finished, FinishReason, PoolOutcome, PromptStarted
from runtime.engine.jobs import PoolJob

log = logging.getLogger(__name__)
SCAN = 4  # how far past one batch's worth of waiting inputs a turn looks for inputs that fit


@dataclass
class _Progress:
    job: PoolJob
    left: int
    batches: int = 0
    rows: list[Any] = field(default_factory=list)


class PoolingLane:
    def __init__(self, max_batch: int = 32, max_tokens: int = 16384, share: float = 0.5) -> None:
        self.max_batch, self.max_tokens, self.share = max_batch, max_tokens, share
        self._speed: dict[int, float] = {}  # id(loaded model) -> padded tokens per second (EMA)
        self._earned = 0.0  # seconds of engine time pooling may still use while streams decode
        self._waiting: deque[tuple[PoolJob, int]] = deque()  # (job, input index)
        self._jobs: dict[str, _Progress] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: PoolJob) -> None:
        if job.loaded.pooler is None or not job.loaded.alive.is_set():  # unloaded while it waited
            failure = faults.ModelNotLoaded(f"Model not loaded: {job.loaded.model_id}", model_id=job.loaded.model_id)
            job.emit(Finished.unstarted(job, "error", time.perf_counter(), failure=failure))
            return
        job.emit(PromptStarted("pooling"))
        inputs = job.request.inputs
        self._jobs[job.stream_id] = _Progress(job, len(inputs), rows=[None] * len(inputs))
        self._waiting.extend((job, i) for i in sorted(range(len(inputs)), key=lambda i: len(inputs[i])))

    def step(self, now: float, decode_s: float | None = None) -> None:
        """End the jobs that must stop, then run one batch; `decode_s`: how long this turn's decode
        steps took (None: no stream is decoding)."""
        self._sweep(now)
        if not self._waiting:
            return
        budget = self._token_budget(decode_s)
        if budget is None:
            return  # not this turn: the streams' decode steps come first
        batch = self._take(budget)
        job = batch[0][0]
        pooler = job.loaded.pooler
        assert pooler is not None
        ids = [item.request.inputs[i] for item, i in batch]
        started = time.perf_counter()
        try:
            if job.request.op == "embed":
                rows = list(pooler.embed(ids, job.request.pooling))
            else:
                rows = [float(v) for v in pooler.score(ids)]
            self._measured(job, len(ids) * max(len(i) for i in ids), time.perf_counter() - started)
        except Exception as exc:
            log.warning("a %s pass of %s failed", job.request.op, job.loaded.model_id, exc_info=True)
            failure = faults.GenerationFailed(f"{job.request.op} failed: {type(exc).__name__}: {exc}")
            for item in {id(j): j for j, _ in batch}.values():
                self._end(item, "error", failure)
            return
        self._deliver(batch, rows)

    def end_model(self, model_id: str, reason: FinishReason = "cancelled") -> None:
        for progress in list(self._jobs.values()):
            if progress.job.loaded.model_id == model_id:
                self._end(progress.job, reason)

    def end_all(self, reason: FinishReason = "cancelled") -> None:
        for progress in list(self._jobs.values()):
            self._end(progress.job, reason)

    def _sweep(self, now: float) -> None:
        for progress in list(self._jobs.values()):
            reason = progress.job.stop_reason(now)
            if reason is not None:
                self._end(progress.job, reason)

    def _token_budget(self, decode_s: float | None) -> int | None:
        """Padded tokens this pass may hold: the full bound with no stream decoding; otherwise what
        the model does in the time earned (module docstring), None when that does not cover the
        smallest waiting input yet; one input while the model's speed is not known."""
        if decode_s is None:
            self._earned = 0.0
            return self.max_tokens
        job, index = self._waiting[0]
        speed = self._speed.get(id(job.loaded))
        if speed is None:
            return 0
        self._earned = min(self._earned + decode_s * self.share / (1 - self.share), 1.0)
        tokens = int(speed * self._earned)
        return min(self.max_tokens, tokens) if tokens >= len(job.request.inputs[index]) else None

    def _measured(self, job: PoolJob, padded: int, seconds: float) -> None:
        self._earned = max(0.0, self._earned - seconds)
        key, speed = id(job.loaded), padded / max(seconds, 1e-6)
        old = self._speed.get(key)
        self._speed[key] = speed if old is None else 0.7 * old + 0.3 * speed

    def _take(self, budget: int) -> list[tuple[PoolJob, int]]:
        """The oldest waiting input, then later ones of the same model, op and pooling that fit
        `budget` padded tokens (the first always goes)."""
        head_job, head_index = self._waiting.popleft()
        key = _key(head_job)
        batch = [(head_job, head_index)]
        width = len(head_job.request.inputs[head_index])
        kept: list[tuple[PoolJob, int]] = []
        for _ in range(min(len(self._waiting), self.max_batch * SCAN)):
            if len(batch) >= self.max_batch:
                break
            job, index = self._waiting.popleft()
            wider = max(width, len(job.request.inputs[index]))
            if _key(job) == key and wider * (len(batch) + 1) <= budget:
                batch.append((job, index))
                width = wider
            else:
                kept.append((job, index))
        self._waiting.extendleft(reversed(kept))
        return batch

    def _deliver(self, batch: list[tuple[PoolJob, int]], rows: list[Any]) -> None:
        counted: set[str] = set()
        for (job, index), row in zip(batch, rows, strict=True):
            progress = self._jobs.get(job.stream_id)
            if progress is None:
                continue  # ended in this batch already (a non-finite row)
            if (failure := _non_finite(job.request.op, index, row)) is not None:
                self._end(job, "error", failure)
                continue
            progress.rows[index] = row
            progress.left -= 1
            if job.stream_id not in counted:
                progress.batches += 1
                counted.add(job.stream_id)
            if progress.left == 0:
                self._finish(progress)

    def _finish(self, progress: _Progress) -> None:
        job = progress.job
        del self._jobs[job.stream_id]
        now = time.perf_counter()
        job.emit(
            Finished(
                reason="stop",
                prompt_tokens=job.prompt_size(),
                total_s=now - job.submitted_at,
                path="pooling",
                pooled=PoolOutcome(tuple(progress.rows), progress.batches),
            )
        )

    def _end(self, job: PoolJob, reason: FinishReason, failure: BaseException | None = None) -> None:
        if self._jobs.pop(job.stream_id, None) is None:
            return
        self._waiting = deque(item for item in self._waiting if item[0] is not job)
        job.emit(Finished.unstarted(job, reason, time.perf_counter(), failure=failure))


def _key(job: PoolJob) -> tuple[int, str, str]:
    return id(job.loaded), job.request.op, job.request.pooling


def _non_finite(op: str, index: int, row: Any) -> faults.GenerationFailed | None:
    """The error for a NaN or infinite result, which JSON cannot carry (orjson would write null,
    the HTTP encoder refuses it): an embedding row, or a rerank score (a float)."""
    import numpy as np

    if op == "embed" and not np.isfinite(row).all():
        return faults.GenerationFailed(f"input {index} gave a non-finite embedding (NaN or inf)")
    if op == "score" and not math.isfinite(row):
        return faults.GenerationFailed(f"document {index} gave a non-finite relevance score (NaN or inf)")
    return None
