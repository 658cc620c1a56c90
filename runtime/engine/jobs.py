"""What the engine is asked to run: one stream, with its request, deadline and event sink."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from runtime.engine.events import Event, FinishReason
from runtime.engine.models import LoadedModel
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

    def stop_reason(self, now: float) -> FinishReason | None:
        """Why the stream must end now, if it must: the one rule for both engine paths."""
        if self.cancel.is_set():
            return "cancelled"
        if self.deadline is not None and now >= self.deadline:
            return "timeout"
        return None
