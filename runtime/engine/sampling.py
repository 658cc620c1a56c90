"""Turn SamplingParams into an mlx-lm style sampler and logits processors.

Each stream owns its PRNG key (split every step) instead of MLX's global random state, so a seeded
stream gives the same text whatever else runs beside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

import mlx.core as mx
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_logits_processors

from runtime import faults
from runtime.engine.request import SamplingParams

LogitsProcessor = Callable[[mx.array, mx.array], mx.array]
PENALTY_CONTEXT = 64
KEY_STRIDE = 0x9E3779B97F4A7C15  # spreads seeds apart so (seed, step) pairs never share a key
KEY_MASK = (1 << 64) - 1


class Sampler(Protocol):
    """One callable shape for every sampler (mlx-lm's: logprobs in, token out), plus what the
    decode paths need: the draw for a given step (speculative verify) and a rewind (hand-over)."""

    def __call__(self, logprobs: mx.array) -> mx.array: ...

    def sample_at(self, logprobs: mx.array, step: int) -> mx.array: ...

    def rewind(self, steps: int) -> None: ...


class Greedy:
    """Argmax: stateless, so every step's draw is the same function and rewinding is a no-op."""

    def __call__(self, logprobs: mx.array) -> mx.array:
        return mx.argmax(logprobs, axis=-1)

    def sample_at(self, logprobs: mx.array, step: int) -> mx.array:
        return mx.argmax(logprobs, axis=-1)

    def rewind(self, steps: int) -> None:
        return None


greedy = Greedy()  # one shared instance: a batch of greedy streams samples in one call


class SeededSampler:
    """Temperature sampling whose key for step i depends only on (seed, i).

    So the same seed gives the same text whatever runs beside it, and a stream that moves into a
    batch can `rewind` the one step the single-stream loop had already drawn ahead.
    """

    def __init__(self, params: SamplingParams, vocab_size: int) -> None:
        self.filters: list[Callable[[mx.array], mx.array]] = []
        if 0 < params.top_p < 1.0:
            self.filters.append(lambda x: apply_top_p(x, params.top_p))
        if params.min_p > 0:
            self.filters.append(lambda x: apply_min_p(x, params.min_p))
        if 0 < params.top_k < vocab_size:
            self.filters.append(lambda x: apply_top_k(x, params.top_k))
        self.seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "little")
        self.inverse_temperature = 1.0 / params.temperature
        self.step = 0

    def __call__(self, logprobs: mx.array) -> mx.array:
        token = self.sample_at(logprobs, self.step)
        self.step += 1
        return token

    def sample_at(self, logprobs: mx.array, step: int) -> mx.array:
        """The draw for generated token number `step`: speculative decoding verifies several
        positions at once, and each still gets the key it would get one token at a time."""
        key = mx.random.key((self.seed * KEY_STRIDE + step) & KEY_MASK)
        for apply in self.filters:
            logprobs = apply(logprobs)
        return mx.random.categorical(logprobs * self.inverse_temperature, key=key)

    def rewind(self, steps: int) -> None:
        self.step -= steps


def make_sampler(params: SamplingParams, vocab_size: int, fault_at: int | None = None) -> Sampler:
    """Greedy is one shared function (so a batch of greedy streams samples in one call)."""
    sampler: Sampler = greedy if params.temperature == 0 else SeededSampler(params, vocab_size)
    return sampler if fault_at is None else FaultySampler(sampler, fault_at)


class FaultySampler:
    """Test-only (runtime.faultinject "stream_fault"): raises at step `fault_at`."""

    def __init__(self, inner: Sampler, fault_at: int) -> None:
        self.inner, self.fault_at, self.step = inner, fault_at, 0

    def __call__(self, logprobs: mx.array) -> mx.array:
        self.step += 1
        if self.step >= self.fault_at:
            raise faults.GenerationFailed("injected: stream_fault")
        return self.inner(logprobs)

    def sample_at(self, logprobs: mx.array, step: int) -> mx.array:
        if step + 1 >= self.fault_at:
            raise faults.GenerationFailed("injected: stream_fault")
        return self.inner.sample_at(logprobs, step)

    def rewind(self, steps: int) -> None:
        self.step -= steps
        self.inner.rewind(steps)


def make_processors(params: SamplingParams, own: list[LogitsProcessor] | None = None) -> list[LogitsProcessor]:
    """mlx-lm's bias and penalties, then the stream's own (the thinking budget, then the
    structured-output mask, which has the final word)."""
    processors = make_logits_processors(
        logit_bias=params.logit_bias or None,
        repetition_penalty=params.repetition_penalty,
        repetition_context_size=PENALTY_CONTEXT,
        presence_penalty=params.presence_penalty,
        presence_context_size=PENALTY_CONTEXT,
        frequency_penalty=params.frequency_penalty,
        frequency_context_size=PENALTY_CONTEXT,
    )
    return processors + own if own else processors
