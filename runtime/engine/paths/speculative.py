"""A stream decoded speculatively: a small draft model proposes tokens, the target verifies them.

Each round the draft proposes up to k tokens one by one (greedy, through the stream's logits
processors, so a structured-output stream drafts only tokens its grammar allows); the target then
scores its pending token and the k drafts in one forward pass. Walking the k+1 positions in order,
the target samples each position exactly as it would one token at a time (same processors, and
for a seeded stream the same PRNG key for generated token number i); a draft token is kept while it
equals the target's own choice, and the first difference is replaced by the target's token. So the
output is the target's output, token for token, for greedy and seeded sampling alike; the draft
only decides how many tokens one target pass yields.

Both KV caches are trimmed back to what was kept. The shape follows mlx-lm's
`speculative_generate_step`; this loop differs where the runtime needs it: per-position sampler keys,
processors that see the true history (mlx-lm's mix draft and target positions), cancel checks
between rounds and during prefill, per-token `from_draft`, and draft statistics.

Speculative streams run beside the batch loop (one round per engine turn); batching does not apply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import mlx.core as mx
from mlx_lm.models.cache import make_prompt_cache, trim_prompt_cache

from runtime.engine.events import DecodePath, DraftStats, FinishReason
from runtime.engine.jobs import StreamJob
from runtime.engine.models import LoadedModel
from runtime.engine.paths.base import HandOver, StreamProgress
from runtime.engine.sampling import make_processors, make_sampler


@dataclass
class Drafting:
    drafted: int = 0
    accepted: int = 0
    rounds: int = 0


class SpeculativeStream:
    """A DecodeStream that is never handed over to a batch."""

    path: DecodePath = "speculative"

    def __init__(self, job: StreamJob, draft: LoadedModel, num_draft: int, prefill_step: int) -> None:
        self.job, request, loaded = job, job.request, job.loaded
        self.draft: LoadedModel | None = draft
        self.draft_id = draft.model_id
        self.num_draft, self.prefill_step = num_draft, prefill_step
        self.progress = StreamProgress(job, self.path)
        self.sampler = make_sampler(request.sampling, loaded.vocab_size, request.inject_fault_at)
        self.processors = make_processors(request.sampling, self.progress.assembler.processors)
        self.cache = make_prompt_cache(loaded.model)
        self.draft_cache = make_prompt_cache(draft.model)
        self.history: list[int] = list(request.prompt_tokens)  # prompt, then every kept token
        self.drafting = Drafting()
        self._done = False
        self._prefilled = False
        self._stopped_by_text = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def generated(self) -> int:
        return self.progress.generated

    def can_hand_over(self) -> bool:
        return False

    def hand_over(self) -> HandOver:
        raise RuntimeError("a speculative stream is never handed over")

    def drop_model(self, model_id: str) -> None:
        """The draft model is being unloaded: go on with the target alone (rounds of one token)."""
        if self.draft is not None and model_id == self.draft_id:
            self.draft, self.draft_cache = None, []

    def step(self) -> None:
        """The first call prefills both models; each later call runs one round (1 to k+1 tokens)."""
        try:
            if not self._prefilled:
                self._prefill()
                self._prefilled = True
            reason = self.job.stop_reason(time.perf_counter())
            if reason is None:
                reason = self._round()
        except Exception as exc:  # a fault ends this stream only
            self._end("error", exc)
            return
        if reason is not None:
            # A stop the assembler found (stop token or sequence) has had its final text sent.
            self._end(reason, flush=not self._stopped_by_text)

    def end(self, reason: FinishReason, failure: BaseException | None = None) -> None:
        self._end(reason, failure)

    # --- the loop ----------------------------------------------------------------------------------
    def _prefill(self) -> None:
        """Every prompt token but the last into both caches, in chunks, checking for cancel."""
        prompt = self.history[:-1]
        for start in range(0, len(prompt), self.prefill_step):
            if self.job.stop_reason(time.perf_counter()) is not None:
                return  # step() ends the stream
            chunk = mx.array(prompt[start : start + self.prefill_step])[None]
            self.job.loaded.model(chunk, cache=self.cache)
            if self.draft is not None:
                self.draft.model(chunk, cache=self.draft_cache)
            mx.eval([c.state for c in self.cache + self.draft_cache])
        self._draft_pending = self.history[-1:]  # tokens the draft has not seen yet

    def _round(self) -> FinishReason | None:
        """Draft, verify every position in one target pass, evaluate once, then keep the agreeing prefix."""
        remaining = self.job.request.max_tokens - self.generated
        history = mx.array(self.history) if self.processors else None  # what the processors see
        drafts = self._propose(min(self.num_draft if self.draft else 0, remaining - 1), history)
        pending = mx.array(self.history[-1:])  # the last kept token: the target has not seen it yet
        logits = self.job.loaded.model(mx.concatenate([pending, *drafts])[None], cache=self.cache)[0]
        choices, logprobs = [], []
        for position in range(len(drafts) + 1):  # position i follows the history and drafts[:i]
            row = self._process(history, drafts[:position], logits[position : position + 1])
            row = row - mx.logsumexp(row, axis=-1, keepdims=True)
            choices.append(self._sample(row, self.generated + position))
            logprobs.append(row.squeeze(0))
        mx.eval(choices, drafts)
        chosen = cast("list[int]", mx.concatenate(choices).tolist())
        proposed = cast("list[int]", mx.concatenate(drafts).tolist()) if drafts else []
        self.drafting.drafted += len(proposed)
        kept = 0
        for position, token in enumerate(chosen):
            from_draft = position < len(proposed) and token == proposed[position]
            reason = self._emit(token, logprobs[position], from_draft)
            if reason is not None:
                return reason
            if not from_draft:
                break
            kept += 1
        self._after_round(proposed, kept)
        return "length" if self.generated >= self.job.request.max_tokens else None

    def _propose(self, count: int, history: mx.array | None) -> list[mx.array]:
        """Up to `count` greedy draft tokens, left lazy (a constraint evaluates what it must see)."""
        drafts: list[mx.array] = []
        if count <= 0 or self.draft is None:
            return drafts
        inputs = mx.array(self._draft_pending)
        for _ in range(count):
            logits = self.draft.model(inputs[None], cache=self.draft_cache)[:, -1, :]
            inputs = mx.argmax(self._process(history, drafts, logits), axis=-1)
            mx.async_eval(inputs)  # computes while the next draft step's graph is built
            drafts.append(inputs)
        self.drafting.rounds += 1
        return drafts

    def _sample(self, logprobs: mx.array, position: int) -> mx.array:
        """The target's draw for generated token number `position`, as one-at-a-time decoding draws it."""
        return self.sampler.sample_at(logprobs, position)

    def _process(self, history: mx.array | None, drafts: list[mx.array], logits: mx.array) -> mx.array:
        if history is None:
            return logits
        tokens = mx.concatenate([history, *drafts]) if drafts else history
        for processor in self.processors:
            logits = processor(tokens, logits)
        return logits

    def _emit(self, token: int, logprobs: mx.array, from_draft: bool) -> FinishReason | None:
        reason = self.progress.token(token, logprobs, time.perf_counter(), from_draft)
        if reason is None:
            self.history.append(token)
            self.drafting.accepted += from_draft
        self._stopped_by_text = reason is not None
        return reason

    def _after_round(self, drafts: list[int], kept: int) -> None:
        """Trim both caches to the kept tokens; the last kept token stays pending for both."""
        trim_prompt_cache(self.cache, len(drafts) - kept)
        if self.draft is None:
            return
        # The draft saw its pending tokens and drafts[:-1]; of those, drafts[:kept] stay.
        fed_drafts = max(len(drafts) - 1, 0)
        trim_prompt_cache(self.draft_cache, fed_drafts - min(kept, fed_drafts))
        all_kept = bool(drafts) and kept == len(drafts)  # then the last draft was never fed to the draft
        self._draft_pending = drafts[-1:] + self.history[-1:] if all_kept else self.history[-1:]

    def _end(self, reason: FinishReason, failure: BaseException | None = None, flush: bool = True) -> None:
        if self._done:
            return
        self._done = True
        if flush and reason != "error":
            self.progress.flush()
        drafting = DraftStats(self.draft_id, self.num_draft, self.drafting.drafted, self.drafting.accepted)
        self.progress.finish(reason, failure, drafting)
