"""Text generation as a generator of typed events, on top of mlx-lm's `generate_step`.

Same token loop and detokenizer as `mlx_lm.stream_generate` (so greedy text matches it), plus
what a runtime needs: per-stream seeded sampling, stop sequences and extra stop tokens, logprobs,
and cancellation checked between tokens and between prefill chunks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import mlx.core as mx
from mlx_lm.generate import generate_step

from runtime.engine.events import Event, Finished, FinishReason, GenerationRequest, PromptProcessed, TokenEvent
from runtime.engine.models import LoadedModel
from runtime.engine.sampling import make_processors, make_sampler
from runtime.engine.stops import StopFilter

DEFAULT_PREFILL_STEP = 512


class _PrefillCancelled(Exception):
    pass


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


def generate_events(
    loaded: LoadedModel,
    request: GenerationRequest,
    cancel: threading.Event,
    prefill_step: int = DEFAULT_PREFILL_STEP,
) -> Iterator[Event]:
    """Yield PromptProcessed, TokenEvents, then exactly one Finished (also on cancel or error)."""
    started = time.perf_counter()
    counts = {"generated": 0, "ttft": 0.0}
    try:
        reason = yield from _decode(loaded, request, cancel, prefill_step, started, counts)
    except _PrefillCancelled:
        reason = "cancelled"
    except Exception as exc:  # a fault ends this stream only, never the engine
        yield _finished("error", request, counts, started, f"{type(exc).__name__}: {exc}")
        return
    yield _finished(reason, request, counts, started)


def _finished(
    reason: FinishReason, request: GenerationRequest, counts: dict[str, Any], started: float, error: str | None = None
) -> Finished:
    return Finished(
        reason, len(request.prompt_tokens), counts["generated"], counts["ttft"], time.perf_counter() - started, error
    )


def _decode(
    loaded: LoadedModel,
    request: GenerationRequest,
    cancel: threading.Event,
    prefill_step: int,
    started: float,
    counts: dict[str, Any],
) -> Iterator[Event]:
    assembler = TextAssembler(loaded.tokenizer, request)

    def check_cancel(_done: int, _total: int) -> None:
        if cancel.is_set():
            raise _PrefillCancelled

    steps = generate_step(
        mx.array(request.prompt_tokens),
        loaded.model,
        max_tokens=request.max_tokens,
        sampler=make_sampler(request.sampling, loaded.vocab_size),
        logits_processors=make_processors(request.sampling) or None,
        prefill_step_size=prefill_step,
        prompt_progress_callback=check_cancel,
    )
    for token, logprobs in steps:
        if counts["generated"] == 0:
            counts["ttft"] = time.perf_counter() - started
            yield PromptProcessed(len(request.prompt_tokens), counts["ttft"])
        if cancel.is_set():
            yield from assembler.finish()
            return "cancelled"
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
