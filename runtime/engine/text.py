"""Text generation as a generator of typed events, on top of mlx-lm's `generate_step`.

Same token loop and detokenizer as `mlx_lm.stream_generate` (so greedy text matches it), plus
what a runtime needs: per-stream seeded sampling, stop sequences and extra stop tokens, logprobs,
and cancellation checked between tokens and between prefill chunks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import mlx.core as mx
from mlx_lm.generate import generate_step

from runtime.engine.events import (
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    PromptProcessed,
    PromptStarted,
    TokenEvent,
)
from runtime.engine.jobs import StreamJob
from runtime.engine.sampling import make_processors, make_sampler
from runtime.engine.stops import StopFilter

DEFAULT_PREFILL_STEP = 512


class _PrefillCancelled(Exception):
    def __init__(self, reason: FinishReason) -> None:
        super().__init__(reason)
        self.reason = reason


class TextAssembler:
    """Token ids in, sendable token events out: detokenizing, stop tokens and stop sequences."""

    def __init__(self, tokenizer: Any, request: GenerationRequest) -> None:
        self.request = request
        self.stop_ids = set(tokenizer.eos_token_ids) | request.stop_token_ids
        self.detokenizer = tokenizer.detokenizer
        self.stops = StopFilter(request.stop_sequences)

    def add(self, token: int, logprobs: mx.array | None = None) -> tuple[list[TokenEvent], FinishReason | None]:
        """Events safe to send now, and "stop" once the stream must end."""
        if token in self.stop_ids:
            return self.finish(), "stop"
        self.detokenizer.add_token(token)
        released, matched = self.stops.push(_token_event(token, self.detokenizer.last_segment, logprobs, self.request))
        return released, "stop" if matched else None

    def finish(self) -> list[TokenEvent]:
        """The stream ends without a stop match: whatever text is held back goes out."""
        self.detokenizer.finalize()
        return self.stops.finish(self.detokenizer.last_segment)


def generate_events(job: StreamJob, prefill_step: int = DEFAULT_PREFILL_STEP) -> Iterator[Event]:
    """Yield PromptStarted, PromptProcessed, TokenEvents, then exactly one Finished (also on cancel or error).

    The sequential path: one stream per generate_step loop (used with --no-batching).
    """
    counts = {"generated": 0, "ttft": 0.0}
    yield PromptStarted()
    try:
        reason = yield from _decode(job, prefill_step, counts)
    except _PrefillCancelled as stopped:
        reason = stopped.reason
    except Exception as exc:  # a fault ends this stream only, never the engine
        yield _finished("error", job, counts, f"{type(exc).__name__}: {exc}")
        return
    yield _finished(reason, job, counts)


def _finished(reason: FinishReason, job: StreamJob, counts: dict[str, Any], error: str | None = None) -> Finished:
    return Finished(
        reason,
        len(job.request.prompt_tokens),
        counts["generated"],
        counts["ttft"],
        time.perf_counter() - job.submitted_at,
        error,
    )


def _stop_reason(job: StreamJob) -> FinishReason | None:
    if job.cancel.is_set():
        return "cancelled"
    if job.deadline is not None and time.perf_counter() >= job.deadline:
        return "timeout"
    return None


def _decode(job: StreamJob, prefill_step: int, counts: dict[str, Any]) -> Iterator[Event]:
    loaded, request = job.loaded, job.request
    assembler = TextAssembler(loaded.tokenizer, request)

    def check_stop(_done: int, _total: int) -> None:
        reason = _stop_reason(job)
        if reason is not None:
            raise _PrefillCancelled(reason)

    steps = generate_step(
        mx.array(request.prompt_tokens),
        loaded.model,
        max_tokens=request.max_tokens,
        sampler=make_sampler(request.sampling, loaded.vocab_size),
        logits_processors=make_processors(request.sampling) or None,
        prefill_step_size=prefill_step,
        prompt_progress_callback=check_stop,
    )
    for token, logprobs in steps:
        if counts["generated"] == 0 and counts["ttft"] == 0.0:
            counts["ttft"] = time.perf_counter() - job.submitted_at
            yield PromptProcessed(len(request.prompt_tokens), counts["ttft"])
        stop = _stop_reason(job)
        if stop is not None:
            yield from assembler.finish()
            return stop
        events, reason = assembler.add(token, logprobs)
        if token not in assembler.stop_ids:  # an EOS or stop token is not part of the output
            counts["generated"] += 1
        yield from events
        if reason is not None:
            return reason
    yield from assembler.finish()
    return "length"


def _token_event(token: int, text: str, logprobs: mx.array | None, request: GenerationRequest) -> TokenEvent:
    if logprobs is None or (not request.logprobs and not request.top_logprobs):
        return TokenEvent(token, text)
    top = None
    if request.top_logprobs:
        k = request.top_logprobs
        ids = mx.argpartition(-logprobs, kth=k - 1)[:k]
        values = logprobs[ids]
        order = mx.argsort(-values)
        top = list(zip(ids[order].tolist(), values[order].tolist(), strict=True))
    return TokenEvent(token, text, logprobs[token].item(), top)
