"""A stream decoded on its own with mlx-lm's `generate_step`: the fastest path for one stream.

The engine runs a stream solo while it is its model's only stream. When another stream arrives it
hands itself over to the model's batch between two tokens: `generate_step` has already fed the last
token to the model and drawn the next one, so the hand-over trims that token's KV entry, rewinds
the sampler by one step and lets the batch feed the token again. The text is the same either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any, cast

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

from runtime.engine.events import DecodePath, FinishReason
from runtime.engine.jobs import StreamJob
from runtime.engine.models import LoadedModel
from runtime.engine.paths.base import HandOver, StreamProgress
from runtime.engine.prompt_cache import kv_bytes
from runtime.engine.request import GenerationRequest
from runtime.engine.sampling import PENALTY_CONTEXT, LogitsProcessor, make_processors, make_sampler

log = logging.getLogger(__name__)
# What generate_step yields: the token (mlx-lm yields `y.item()`, typed there as an array) and its logprobs.
TokenSteps = Generator[tuple[int, mx.array], None, None]


class _Stop(Exception):
    def __init__(self, reason: FinishReason) -> None:
        super().__init__(reason)
        self.reason = reason


class SoloStream:
    """A DecodeStream on mlx-lm's generate_step (paths/vision.py reuses it with mlx-vlm's)."""

    path: DecodePath = "solo"

    def __init__(self, job: StreamJob, prefill_step: int) -> None:
        self.job, request, loaded = job, job.request, job.loaded
        self.progress = StreamProgress(job, self.path)
        self.sampler = make_sampler(request.sampling, loaded.vocab_size, request.inject_fault_at)
        self.processors = make_processors(request.sampling, self.progress.assembler.processors)
        self.generated: list[int] = []
        self.sampled: list[int] = []  # every token drawn, stop tokens included (the cache may hold them)
        self.cache: list[Any] = []
        self._done = False
        self._steps = self._start(prefill_step)

    @property
    def done(self) -> bool:
        return self._done

    def _start(self, prefill_step: int) -> TokenSteps:
        """The token generator: mlx-lm's generate_step over the prompt, or over what the prompt
        cache does not hold of it (paths/vision.py overrides this)."""
        request, loaded = self.job.request, self.job.loaded
        cache, cached = reuse_prefix(loaded, request)
        self.progress.cached_tokens = cached
        kv = loaded.kv
        self.cache = cache or kv.new_cache(loaded.model)
        steps = generate_step(
            mx.array(request.prompt_tokens[cached:]),
            loaded.model,
            max_tokens=request.max_tokens,
            sampler=self.sampler,
            logits_processors=with_prefix(self.processors, request.prompt_tokens[:cached]) or None,
            prompt_cache=self.cache,
            prefill_step_size=prefill_step,
            prompt_progress_callback=self._check_stop,
            kv_bits=kv.bits,
            kv_group_size=kv.group_size,
            quantized_kv_start=0,  # low-memory mode quantizes from the first token
        )
        return cast(TokenSteps, steps)

    def _check_stop(self, _done: int, _total: int) -> None:
        reason = self.job.stop_reason(time.perf_counter())
        if reason is not None:
            raise _Stop(reason)

    def step(self) -> None:
        try:
            token, logprobs = next(self._steps)
        except StopIteration:
            self._end("length")
            return
        except _Stop as stopped:
            self._end(stopped.reason)
            return
        except Exception as exc:  # a fault ends this stream only
            self._end("error", exc)
            return
        now = time.perf_counter()
        reason = self.job.stop_reason(now)
        if reason is not None:
            self.progress.token_arrived(now)
            self._end(reason)
            return
        self.sampled.append(token)
        reason = self.progress.token(token, logprobs, now)
        if reason is None:
            self.generated.append(token)
        else:
            self._end(reason, flush=False)

    def can_hand_over(self) -> bool:
        return (
            not self._done
            and self.progress.first_token_at is not None
            and bool(self.generated)
            and len(self.generated) < self.job.request.max_tokens
            and can_trim_prompt_cache(self.cache)
            and self.job.loaded.kv.full  # quantized or rotating caches do not merge into a batch
        )

    def hand_over(self) -> HandOver:
        """Stop here and give the stream to a batch (see the module docstring)."""
        self._done = True
        self._steps.close()
        trim_prompt_cache(self.cache, 1)
        self.sampler.rewind(1)
        mx.eval([c.state for c in self.cache])
        # The batch shows its processors the whole history; here they saw the cached prefix's head
        # only (with_prefix), and a constraint or budget counts from the history's first length.
        cached = self.progress.cached_tokens
        unseen = cached - min(cached, PENALTY_CONTEXT)
        return HandOver(
            progress=self.progress,
            sampler=self.sampler,
            processors=[_skipping(p, unseen) for p in self.processors] if unseen else self.processors,
            next_input=self.generated[-1],
            cache=self.cache,
            context=list(self.job.request.prompt_tokens) + self.generated[:-1],
            remaining_tokens=self.job.request.max_tokens - len(self.generated),
        )

    def end(self, reason: FinishReason, failure: BaseException | None = None) -> None:
        self._end(reason, failure)

    def drop_model(self, model_id: str) -> None:
        return None  # a solo stream uses its own model only

    def _end(self, reason: FinishReason, failure: BaseException | None = None, flush: bool = True) -> None:
        if self._done:
            return
        self._done = True
        self._steps.close()
        if flush and reason != "error":
            self.progress.flush()
        if reason != "error":
            history = list(self.job.request.prompt_tokens) + self.sampled
            keep_cache(self.job.loaded, self.job.request, history, self.cache, self.progress.cached_tokens)
        self.progress.finish(reason, failure, kv_cache_bytes=kv_bytes(self.cache) if self.cache else None)


def reuse_prefix(loaded: LoadedModel, request: GenerationRequest) -> tuple[list[Any] | None, int]:
    """The prompt cache's best copy for this request, and how many prompt tokens it holds."""
    if not request.use_prompt_cache:
        return None, 0
    return loaded.prompt_cache.lookup(request.prompt_tokens, request.session_id)


def keep_cache(
    loaded: LoadedModel, request: GenerationRequest, history: list[int], cache: list[Any] | None, reused: int = 0
) -> None:
    """Offer a finished stream's KV cache (holding the first `offset` tokens of its history).
    A copy that holds nothing beyond the prefix it was given is not kept again (it shares that
    entry's buffers). Keeping is an optimisation: a failure is logged, never allowed to end the engine."""
    if request.use_prompt_cache and cache and cache[0].offset > reused:
        try:
            loaded.prompt_cache.store(history[: cache[0].offset], cache, request.session_id)
        except Exception:
            log.exception("could not keep a stream's KV cache for %s", loaded.model_id)


def with_prefix(processors: list[LogitsProcessor], prefix: list[int]) -> list[LogitsProcessor]:
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


def _prefixed(processor: LogitsProcessor, head: mx.array) -> LogitsProcessor:
    def call(tokens: mx.array, logits: mx.array) -> mx.array:
        return processor(mx.concatenate([head, tokens.reshape(-1).astype(head.dtype)]), logits)

    return call


def _skipping(processor: LogitsProcessor, unseen: int) -> LogitsProcessor:
    """A processor that keeps seeing the history as it did before a hand-over: without its first
    `unseen` tokens."""

    def call(tokens: mx.array, logits: mx.array) -> mx.array:
        return processor(tokens.reshape(-1)[unseen:], logits)

    return call
