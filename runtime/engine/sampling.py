"""Turn SamplingParams into an mlx-lm style sampler and logits processors.

Each stream owns its PRNG key (split every step) instead of MLX's global random state, so a seeded
stream gives the same text whatever else runs beside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import mlx.core as mx
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_logits_processors

from runtime.engine.events import SamplingParams

Sampler = Callable[[mx.array], mx.array]
LogitsProcessor = Callable[[mx.array, mx.array], mx.array]
PENALTY_CONTEXT = 64


def greedy(logprobs: mx.array) -> mx.array:
    return mx.argmax(logprobs, axis=-1)


def make_sampler(params: SamplingParams, vocab_size: int) -> Sampler:
    if params.temperature == 0:
        return greedy
    filters: list[Callable[[mx.array], mx.array]] = []
    if 0 < params.top_p < 1.0:
        filters.append(lambda x: apply_top_p(x, params.top_p))
    if params.min_p > 0:
        filters.append(lambda x: apply_min_p(x, params.min_p))
    if 0 < params.top_k < vocab_size:
        filters.append(lambda x: apply_top_k(x, params.top_k))
    seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "little")
    key = mx.random.key(seed)
    inverse_temperature = 1.0 / params.temperature

    def sample(logprobs: mx.array) -> mx.array:
        nonlocal key
        key, step_key = mx.random.split(key)
        for apply in filters:
            logprobs = apply(logprobs)
        return mx.random.categorical(logprobs * inverse_temperature, key=step_key)

    return sample


def make_processors(params: SamplingParams) -> list[LogitsProcessor]:
    return make_logits_processors(
        logit_bias=params.logit_bias or None,
        repetition_penalty=params.repetition_penalty,
        repetition_context_size=PENALTY_CONTEXT,
        presence_penalty=params.presence_penalty,
        presence_context_size=PENALTY_CONTEXT,
        frequency_penalty=params.frequency_penalty,
        frequency_context_size=PENALTY_CONTEXT,
    )
