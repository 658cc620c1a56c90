"""What every decode path shares: the interface the engine steps, and one stream's bookkeeping.

`DecodeStream` is what the engine thread holds for a stream decoded on its own (solo, vision,
speculative): it steps it once per turn and asks whether it may move into its model's batch. The
batch (paths/batching.py) steps many streams at once, so it is not a DecodeStream itself, but each
of its members keeps the same `StreamProgress`: first token and TTFT, the text assembler's events,
the generated count, and the one `Finished` a stream ends with are written once, here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import mlx.core as mx

from runtime.engine.events import (
    DecodePath,
    DraftStats,
    Finished,
    FinishReason,
    HandedOver,
    PromptProcessed,
    PromptStarted,
)
from runtime.engine.jobs import StreamJob
from runtime.engine.text import TextAssembler

if TYPE_CHECKING:
    from runtime.engine.sampling import LogitsProcessor, Sampler


class DecodeStream(Protocol):
    """A stream the engine steps on its own, one token (or one speculative round) per turn."""

    job: StreamJob
    path: DecodePath

    @property
    def done(self) -> bool: ...

    def step(self) -> None:
        """Advance by one token; the first call runs the prefill, checking for cancel."""

    def end(self, reason: FinishReason, failure: BaseException | None = None) -> None:
        """End from outside (the model is being dropped, the group lost a rank): the stream sends
        its Finished."""

    def can_hand_over(self) -> bool:
        """Whether the stream may move into its model's batch now, between two tokens."""

    def hand_over(self) -> HandOver:
        """Stop here and give the stream's state to the batch (only when can_hand_over())."""

    def drop_model(self, model_id: str) -> None:
        """A model this stream uses besides its own (a draft) is being unloaded: go on without it."""


@dataclass
class HandOver:
    """What a batch needs to continue a stream: its state and where its KV cache stands."""

    progress: StreamProgress
    sampler: Sampler
    processors: list[LogitsProcessor]
    next_input: int  # the last token sent, which the batch feeds to the model first
    cache: list[Any]
    context: list[int]  # every token before next_input (for the logits processors)
    remaining_tokens: int


class StreamProgress:
    """One stream's bookkeeping on whatever path decodes it; emits its events in order, once."""

    def __init__(self, job: StreamJob, path: DecodePath, assembler: TextAssembler | None = None) -> None:
        self.job, self.path = job, path
        self.handovers = 0
        self.assembler = assembler or TextAssembler(job.loaded.tokenizer, job.request)
        self.prompt_count = len(job.request.prompt_tokens)  # vision: the processor's expanded count
        self.first_token_at: float | None = None
        self.generated = 0  # tokens of the text (stop tokens excluded)
        self.cached_tokens = 0
        self.ended = False
        job.emit(PromptStarted(path))

    def moved(self, path: DecodePath) -> None:
        """The stream continues on another decode path (a solo stream joined its model's batch)."""
        self.path = path
        self.handovers += 1
        self.job.emit(HandedOver(path))

    def token_arrived(self, now: float) -> None:
        """A token was sampled: the first one ends the prompt's processing (TTFT)."""
        if self.first_token_at is None:
            self.first_token_at = now
            self.job.emit(PromptProcessed(self.prompt_count, now - self.job.submitted_at))

    def token(
        self, token: int, logprobs: mx.array | None, now: float, from_draft: bool | None = None
    ) -> FinishReason | None:
        """A sampled token: its text events go out; "stop" once the stream must end."""
        if self.first_token_at is None:
            self.token_arrived(now)
        events, reason = self.assembler.add(token, logprobs, from_draft)
        if reason is None:
            self.generated += 1
        emit = self.job.emit
        for event in events:
            emit(event)
        return reason

    def flush(self) -> None:
        """The stream ends without a stop match: whatever text is held back goes out."""
        for event in self.assembler.finish():
            self.job.emit(event)

    def finish(
        self,
        reason: FinishReason,
        failure: BaseException | None = None,
        draft: DraftStats | None = None,
        kv_cache_bytes: int | None = None,
    ) -> None:
        """Send the stream's one Finished (later calls do nothing)."""
        if self.ended:
            return
        self.ended = True
        job, now = self.job, time.perf_counter()
        ttft = self.first_token_at - job.submitted_at if self.first_token_at else 0.0
        job.emit(
            Finished(
                reason=reason,
                prompt_tokens=self.prompt_count,
                generated_tokens=self.generated,
                ttft_s=ttft,
                total_s=now - job.submitted_at,
                failure=failure,
                guidance=self.assembler.guidance_outcome(reason),
                chat=self.assembler.chat_outcome(),
                draft=draft,
                cached_tokens=self.cached_tokens,
                path=self.path,
                handovers=self.handovers,
                kv_cache_bytes=kv_cache_bytes,
                stop_sequence=self.assembler.stop_sequence,
            )
        )
