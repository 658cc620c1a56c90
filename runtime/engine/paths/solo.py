"""A stream decoded on its own with mlx-lm's `generate_step`: the fastest path for one stream.

The engine runs a stream solo while it is its model's only stream. When another stream arrives it
hands itself over to the model's batch between two tokens: `generate_step` has already fed the last
token to the model and drawn the next one, so the hand-over trims that token's KV entry, rewinds
the sampler by one step and lets the batch feed the token again. The text is the same either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

from runtime.engine.events import Finished, FinishReason, PromptProcessed, PromptStarted
from runtime.engine.jobs import StreamJob
from runtime.engine.sampling import PENALTY_CONTEXT, make_processors, make_sampler
from runtime.engine.text import TextAssembler, describe_failure

log = logging.getLogger(__name__)


class _Stop(Exception):
    def __init__(self, reason: FinishReason) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class HandOver:
    """What a batch needs to continue a stream: its state and where its KV cache stands."""

    job: StreamJob
    assembler: TextAssembler
    sampler: Any
    processors: list[Any]
    next_input: int  # the last token sent, which the batch feeds to the model first
    cache: list[Any]
    context: list[int]  # every token before next_input (for the logits processors)
    remaining_tokens: int
    generated: int
    first_token_at: float | None
    cached_tokens: int


class SoloStream:
    def __init__(self, job: StreamJob, prefill_step: int) -> None:
        self.job, request, loaded = job, job.request, job.loaded
        self.assembler = TextAssembler(loaded.tokenizer, request)
        self.sampler = make_sampler(request.sampling, loaded.vocab_size, request.inject_fault_at)
        self.processors = make_processors(request.sampling, self.assembler.constraint)
        self.generated: list[int] = []
        self.sampled: list[int] = []  # every token drawn, stop tokens included (the cache may hold them)
        self.first_token_at: float | None = None
        self.done = False
        self.prompt_count = len(request.prompt_tokens)
        self.cached_tokens = 0
        self._steps = self._start(prefill_step)
        job.emit(PromptStarted())

    def _start(self, prefill_step: int) -> Iterator[tuple[int, mx.array]]:
        """The token generator: mlx-lm's generate_step over the prompt, or over what the prompt
        cache does not hold of it (engine/vision.py overrides this)."""
        request, loaded = self.job.request, self.job.loaded
        cache, self.cached_tokens = reuse_prefix(loaded, request)
        self.cache = cache or make_prompt_cache(loaded.model)
        return generate_step(
            mx.array(request.prompt_tokens[self.cached_tokens :]),
            loaded.model,
            max_tokens=request.max_tokens,
            sampler=self.sampler,
            logits_processors=with_prefix(self.processors, request.prompt_tokens[: self.cached_tokens]) or None,
            prompt_cache=self.cache,
            prefill_step_size=prefill_step,
            prompt_progress_callback=self._check_stop,
        )

    def _check_stop(self, _done: int, _total: int) -> None:
        reason = self.job.stop_reason(time.perf_counter())
        if reason is not None:
            raise _Stop(reason)

    def step(self) -> None:
        """Advance by one token (the first call runs the whole prefill, checking for cancel)."""
        try:
            token, logprobs = next(self._steps)
        except StopIteration:
            self._end("length")
            return
        except _Stop as stopped:
            self._end(stopped.reason)
            return
        except Exception as exc:  # a fault ends this stream only
            self._end("error", describe_failure(exc))
            return
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
            self.job.emit(PromptProcessed(self.prompt_count, now - self.job.submitted_at))
        reason = self.job.stop_reason(now)
        if reason is not None:
            self._end(reason)
            return
        self.sampled.append(token)
        events, reason = self.assembler.add(token, logprobs)
        if reason is None:
            self.generated.append(token)
        for event in events:
            self.job.emit(event)
        if reason is not None:
            self._end(reason, flush=False)

    def can_hand_over(self) -> bool:
        return (
            not self.done
            and self.first_token_at is not None
            and bool(self.generated)
            and len(self.generated) < self.job.request.max_tokens
            and can_trim_prompt_cache(self.cache)
        )

    def hand_over(self) -> HandOver:
        """Stop here and give the stream to a batch (see the module docstring)."""
        self.done = True
        self._steps.close()
        trim_prompt_cache(self.cache, 1)
        if hasattr(self.sampler, "rewind"):
            self.sampler.rewind(1)
        mx.eval([c.state for c in self.cache])
        return HandOver(
            self.job,
            self.assembler,
            self.sampler,
            self.processors,
            self.generated[-1],
            self.cache,
            list(self.job.request.prompt_tokens) + self.generated[:-1],
            self.job.request.max_tokens - len(self.generated),
            len(self.generated),
            self.first_token_at,
            self.cached_tokens,
        )

    def end(self, reason: FinishReason) -> None:
        """End from outside (the model is being dropped)."""
        self._end(reason)

    def _end(self, reason: FinishReason, error: str | None = None, flush: bool = True) -> None:
        if self.done:
            return
        self.done = True
        self._steps.close()
        if flush and reason != "error":
            for event in self.assembler.finish():
                self.job.emit(event)
        if reason != "error":
            history = list(self.job.request.prompt_tokens) + self.sampled
            keep_cache(self.job.loaded, self.job.request, history, self.cache, self.cached_tokens)
        job, now = self.job, time.perf_counter()
        ttft = self.first_token_at - job.submitted_at if self.first_token_at else 0.0
        job.emit(
            Finished(
                reason,
                self.prompt_count,
                len(self.generated),
                ttft,
                now - job.submitted_at,
                error,
                self.assembler.guidance_outcome(reason),
                cached_tokens=self.cached_tokens,
            )
        )


def reuse_prefix(loaded: Any, request: Any) -> tuple[list[Any] | None, int]:
    """The prompt cache's best copy for this request, and how many prompt tokens it holds."""
    if not request.use_prompt_cache:
        return None, 0
    return loaded.prompt_cache.lookup(request.prompt_tokens, request.session_id)


def keep_cache(loaded: Any, request: Any, history: list[int], cache: list[Any] | None, reused: int = 0) -> None:
    """Offer a finished stream's KV cache (holding the first `offset` tokens of its history).
    A copy that holds nothing beyond the prefix it was given is not kept again (it shares that
    entry's buffers). Keeping is an optimisation: a failure is logged, never allowed to end the engine."""
    if request.use_prompt_cache and cache and cache[0].offset > reused:
        try:
            loaded.prompt_cache.store(history[: cache[0].offset], cache, request.session_id)
        except Exception:
            log.exception("could not keep a stream's KV cache for %s", loaded.model_id)


def with_prefix(processors: list[Any], prefix: list[int]) -> list[Any]:
    """Processors that see the history the prompt cache served, as far back as any of them reads.

    The penalties look back PENALTY_CONTEXT tokens, logit_bias not at all, and the structured-output
    constraint takes whatever it sees first as the prompt; so a fixed head of PENALTY_CONTEXT tokens
    gives every processor what the whole prefix would, without concatenating a long prompt into
    the history at every token.
    """
    if not prefix or not processors:
        return processors
    head = mx.array(prefix[-PENALTY_CONTEXT:])
    return [_prefixed(p, head) for p in processors]


def _prefixed(processor: Any, head: mx.array) -> Any:
    def call(tokens: mx.array, logits: mx.array) -> mx.array:
        return processor(mx.concatenate([head, tokens.reshape(-1).astype(head.dtype)]), logits)

    return call
