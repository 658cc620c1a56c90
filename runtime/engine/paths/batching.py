"""Continuous batching: one mlx-lm BatchGenerator per model, stepped by the engine thread.

Streams join between steps and leave as they finish, without stalling the rest. Prefill advances
one chunk per step beside decoding, so a long prompt never freezes other streams. Each stream keeps
its own sampler, logits processors and TextAssembler; a sampler or processor that raises ends only
its own stream. An exception from the batched forward pass ends the streams of that batch and the
batch is rebuilt; the process and other models carry on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
from mlx_lm.generate import BatchGenerator, StopSequences

from runtime.engine.events import FinishReason
from runtime.engine.jobs import StreamJob
from runtime.engine.models import LoadedModel
from runtime.engine.paths.base import HandOver, StreamProgress
from runtime.engine.paths.solo import keep_cache, reuse_prefix
from runtime.engine.sampling import LogitsProcessor, Sampler, greedy, make_processors, make_sampler

log = logging.getLogger(__name__)
DEFAULT_PREFILL_BATCH = 8


@dataclass
class _Member:
    progress: StreamProgress
    uid: int = -1
    failure: BaseException | None = None  # a sampler or processor of this stream raised

    @property
    def job(self) -> StreamJob:
        return self.progress.job


class ModelBatch:
    def __init__(self, loaded: LoadedModel, max_active: int, prefill_step: int) -> None:
        self.loaded, self.max_active, self.prefill_step = loaded, max_active, prefill_step
        self.members: dict[int, _Member] = {}
        self.generator = self._new_generator()

    def _new_generator(self) -> BatchGenerator:
        return BatchGenerator(
            self.loaded.model,
            completion_batch_size=self.max_active,
            prefill_batch_size=min(DEFAULT_PREFILL_BATCH, self.max_active),
            prefill_step_size=self.prefill_step,
        )

    def __len__(self) -> int:
        return len(self.members)

    def add(self, job: StreamJob) -> None:
        """A new stream: its prompt is processed in chunks beside the other streams' decoding."""
        request = job.request
        member = _Member(StreamProgress(job, "batch"))
        sampler = make_sampler(request.sampling, self.loaded.vocab_size, request.inject_fault_at)
        processors = make_processors(request.sampling, member.progress.assembler.processors)
        cache, reused = reuse_prefix(self.loaded, request)
        member.progress.cached_tokens = reused
        prompt = request.prompt_tokens
        context = prompt[:reused] if cache else None
        self._insert(member, prompt[reused:], sampler, processors, request.max_tokens, cache=cache, context=context)

    def add_handover(self, moving: HandOver) -> None:
        """A stream that ran solo continues here, from its KV cache, with the same sampler state."""
        member = _Member(moving.progress)
        self._insert(
            member,
            [moving.next_input],
            moving.sampler,
            moving.processors,
            moving.remaining_tokens,
            cache=moving.cache,
            context=moving.context,
        )
        member.progress.moved("batch")

    def _insert(
        self,
        member: _Member,
        prompt: list[int],
        sampler: Sampler,
        processors: list[LogitsProcessor],
        max_tokens: int,
        cache: list[Any] | None = None,
        context: list[int] | None = None,
    ) -> None:
        stops = StopSequences([[token] for token in sorted(member.progress.assembler.stop_ids)])
        guarded_processors = [_guarded(member, p, _unchanged) for p in processors]
        # The shared greedy sampler stays unwrapped so a batch of greedy streams samples in one call.
        guarded_sampler = sampler if sampler is greedy else _guarded(member, sampler, greedy)
        (member.uid,) = self.generator.insert(
            [prompt],
            max_tokens=[max_tokens],
            samplers=[guarded_sampler],
            logits_processors=[guarded_processors],
            stop_sequences=[stops],
            caches=None if cache is None else [cache],
            all_tokens=None if context is None else [context],
        )
        self.members[member.uid] = member

    def sweep(self, now: float) -> None:
        """End streams that were cancelled or ran past their deadline."""
        for member in list(self.members.values()):
            reason = member.job.stop_reason(now)
            if reason is not None:
                self._remove(member, reason)

    def step(self) -> None:
        try:
            _prompt_responses, responses = self.generator.next()
        except Exception as exc:  # the batched forward failed: these streams cannot continue
            self._fail_all(exc)
            return
        now = time.perf_counter()
        members = self.members
        for response in responses:
            member = members.get(response.uid)
            if member is not None:
                self._on_token(member, response, now)
        for member in [m for m in members.values() if m.failure is not None]:
            self._remove(member, "error", member.failure)

    def _on_token(self, member: _Member, response: Any, now: float) -> None:
        progress = member.progress
        if member.failure is not None:
            progress.token_arrived(now)
            return
        reason = progress.token(response.token, response.logprobs, now)
        if reason is not None:
            self._finish(member, reason, in_generator=response.finish_reason is None, ended=response)
        elif response.finish_reason == "length":
            progress.flush()
            self._finish(member, "length", in_generator=False, ended=response)

    def end_all(self, reason: FinishReason, failure: BaseException | None = None) -> None:
        """End every stream of the batch (the model is being dropped, the group lost a rank)."""
        for member in list(self.members.values()):
            self._remove(member, reason, failure)

    def _remove(self, member: _Member, reason: FinishReason, failure: BaseException | None = None) -> None:
        if reason != "error":
            member.progress.flush()
        self._finish(member, reason, in_generator=True, failure=failure)

    def _finish(
        self,
        member: _Member,
        reason: FinishReason,
        in_generator: bool,
        failure: BaseException | None = None,
        ended: Any = None,
    ) -> None:
        """`ended`: the generator's last response for a stream it finished itself (it carries the cache)."""
        self.members.pop(member.uid, None)
        if in_generator:
            cache, tokens = self.generator.remove([member.uid], return_prompt_caches=True).get(member.uid, (None, None))
        else:
            cache, tokens = getattr(ended, "prompt_cache", None), getattr(ended, "all_tokens", None)
        if reason != "error" and cache and tokens is not None:
            keep_cache(self.loaded, member.job.request, list(tokens), cache, member.progress.cached_tokens)
        member.progress.finish(reason, failure)

    def _fail_all(self, failure: BaseException) -> None:
        log.error("batch step failed for model %s", self.loaded.model_id, exc_info=failure)
        members, self.members = list(self.members.values()), {}
        self.generator = self._new_generator()
        for member in members:
            member.progress.finish("error", failure)


def _unchanged(_tokens: mx.array, logits: mx.array) -> mx.array:
    return logits


def _guarded(
    member: _Member, fn: Callable[..., mx.array], fallback: Callable[..., mx.array]
) -> Callable[..., mx.array]:
    """Run fn; if it raises, mark the member faulted and let the batch step go on with fallback."""

    def call(*args: mx.array) -> mx.array:
        if member.failure is None:
            try:
                return fn(*args)
            except Exception as exc:
                member.failure = exc
        return fallback(*args)

    return call
