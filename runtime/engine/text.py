"""Text generation as a generator of typed events, on top of mlx-lm's `generate_step`.

Same token loop and detokenizer as `mlx_lm.stream_generate` (so greedy text matches it), plus
what a runtime needs: per-stream seeded sampling, stop sequences and extra stop tokens, logprobs,
and cancellation checked between tokens and between prefill chunks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import mlx.core as mx
from mlx_lm.generate import generate_step

from runtime.engine.events import Event, Finished, GenerationRequest, PromptProcessed, TokenEvent
from runtime.engine.models import LoadedModel
from runtime.engine.sampling import make_processors, make_sampler
from runtime.engine.stops import StopFilter

DEFAULT_PREFILL_STEP = 512


class _PrefillCancelled(Exception):
    pass


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


def _finished(reason, request: GenerationRequest, counts: dict, started: float, error: str | None = None) -> Finished:
    return Finished(reason, len(request.prompt_tokens), counts["generated"], counts["ttft"],
                    time.perf_counter() - started, error)


def _decode(loaded, request, cancel, prefill_step, started, counts) -> Iterator[Event]:
    tokenizer = loaded.tokenizer
    stop_ids = set(tokenizer.eos_token_ids) | request.stop_token_ids
    detokenizer = tokenizer.detokenizer
    stops = StopFilter(request.stop_sequences)

    def check_cancel(_done: int, _total: int) -> None:
        if cancel.is_set():
            raise _PrefillCancelled

    steps = generate_step(
        mx.array(request.prompt_tokens), loaded.model, max_tokens=request.max_tokens,
        sampler=make_sampler(request.sampling, loaded.vocab_size),
        logits_processors=make_processors(request.sampling) or None,
        prefill_step_size=prefill_step, prompt_progress_callback=check_cancel,
    )
    reason = "length"
    for token, logprobs in steps:
        if counts["generated"] == 0:
            counts["ttft"] = time.perf_counter() - started
            yield PromptProcessed(len(request.prompt_tokens), counts["ttft"])
        if cancel.is_set() or token in stop_ids:
            reason = "cancelled" if cancel.is_set() else "stop"
            break
        counts["generated"] += 1
        detokenizer.add_token(token)
        released, matched = stops.push(_token_event(token, detokenizer.last_segment, logprobs, request))
        yield from released
        if matched:
            return "stop"
    detokenizer.finalize()
    yield from stops.finish(detokenizer.last_segment)
    return reason


def _token_event(token: int, text: str, logprobs: mx.array, request: GenerationRequest) -> TokenEvent:
    if not request.logprobs and not request.top_logprobs:
        return TokenEvent(token, text)
    top = None
    if request.top_logprobs:
        k = request.top_logprobs
        ids = mx.argpartition(-logprobs, kth=k - 1)[:k]
        values = logprobs[ids]
        order = mx.argsort(-values)
        top = list(zip(ids[order].tolist(), values[order].tolist()))
    return TokenEvent(token, text, logprobs[token].item(), top)
