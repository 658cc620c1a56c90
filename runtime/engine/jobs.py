"""What the engine is asked to run: one stream (or one embed/rerank job), with its request, deadline
and event sink."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from runtime.engine.events import Event, FinishReason
from runtime.engine.models import LoadedModel
from runtime.engine.pooling import Pooling
from runtime.engine.request import GenerationRequest


@dataclass
class StreamJob:
    stream_id: str
    loaded: LoadedModel
    request: GenerationRequest
    emit: Callable[[Event], None]  # receives every event of the stream; any thread may call it once finished
    cancel: threading.Event
    submitted_at: float  # time.perf_counter() when the request arrived (TTFT counts queue wait)
    deadline: float | None = None  # time.perf_counter() deadline covering queue wait and generation
    # A distributed group's stream (engine/lockstep.py): the params every rank rebuilds the request
    # from, and the stop decided at the start of the current turn, the same on every rank.
    origin: dict[str, Any] | None = None
    lockstep: bool = False
    stop_now: FinishReason | None = None

    def stop_reason(self, now: float) -> FinishReason | None:
        """Why the stream must end now, if it must: the one rule for every engine path. In a
        group the answer may only change between turns, or the ranks would step different streams."""
        if self.lockstep:
            return self.stop_now
        return stop_reason(self.cancel, self.deadline, now)

    def prompt_size(self) -> int:
        return len(self.request.prompt_tokens)


@dataclass(frozen=True)
class PoolRequest:
    """Inputs to pool (embed) or score (rerank), as token ids ready for the model."""

    op: Literal["embed", "score"]
    inputs: tuple[list[int], ...]
    pooling: Pooling = "mean"


@dataclass
class PoolJob:
    """An embed or rerank request's forward passes: short, run between decode steps (paths/pooling.py)."""

    stream_id: str
    loaded: LoadedModel
    request: PoolRequest
    emit: Callable[[Event], None]
    cancel: threading.Event
    submitted_at: float
    deadline: float | None = None

    def stop_reason(self, now: float) -> FinishReason | None:
        return stop_reason(self.cancel, self.deadline, now)

    def prompt_size(self) -> int:
        return sum(len(ids) for ids in self.request.inputs)


Job = StreamJob | PoolJob


def stop_reason(cancel: threading.Event, deadline: float | None, now: float) -> FinishReason | None:
    """Why a job must end now, if it must."""
    if cancel.is_set():
        return "cancelled"
    if deadline is not None and now >= deadline:
        return "timeout"
    return None
