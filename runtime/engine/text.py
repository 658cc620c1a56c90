"""From sampled token ids to sendable text: the same streaming detokenizer as mlx-lm (so greedy text
matches `mlx_lm.generate`), stop tokens, stop sequences held back until they cannot match, logprobs.
Shared by both engine paths (engine/solo.py and engine/batching.py).
"""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx

from runtime.engine.chat import ChatSplitter, ReasoningBudget
from runtime.engine.events import ChatOutcome, FinishReason, GuidanceOutcome, TokenEvent
from runtime.engine.guidance import Constraint
from runtime.engine.request import GenerationRequest
from runtime.engine.sampling import LogitsProcessor
from runtime.engine.stops import StopFilter


class TextAssembler:
    """Token ids in, sendable token events out: detokenizing, stop tokens and stop sequences."""

    def __init__(self, tokenizer: Any, request: GenerationRequest) -> None:
        self.request, self.tokenizer = request, tokenizer
        self.stop_ids = set(tokenizer.eos_token_ids) | request.stop_token_ids
        self.detokenizer = tokenizer.detokenizer
        self.stops = StopFilter(request.stop_sequences)
        self.constraint: Constraint | None = request.guide.new_constraint() if request.guide else None
        self.splitter = ChatSplitter(tokenizer, request.chat) if request.chat else None
        self.budget = _budget(tokenizer, request)
        self.emitted: list[int] = []  # every token of the text (stop tokens excluded)
        self.cut_by_stop_sequence = False
        self._with_logprobs = bool(request.logprobs or request.top_logprobs)

    def add(
        self, token: int, logprobs: mx.array | None = None, from_draft: bool | None = None
    ) -> tuple[list[TokenEvent], FinishReason | None]:
        """Events safe to send now, and "stop" once the stream must end."""
        if token in self.stop_ids:
            return self.finish(), "stop"
        self.emitted.append(token)
        detokenizer = self.detokenizer
        detokenizer.add_token(token)
        if logprobs is None or not self._with_logprobs:  # every token: no extra call
            event = TokenEvent(token, detokenizer.last_segment, None, None, from_draft)
        else:
            event = _token_event(token, detokenizer.last_segment, logprobs, self.request, from_draft)
        released, matched = self.stops.push(event)
        self.cut_by_stop_sequence = matched
        if self.splitter is not None:
            for entry in released:
                self.splitter.split(entry)
        return released, "stop" if matched else None

    @property
    def processors(self) -> list[LogitsProcessor]:
        """The stream's own logits processors, after the sampling ones: the thinking budget, then
        the structured-output constraint (which has the final word)."""
        return [p for p in (self.budget, self.constraint) if p is not None]

    @property
    def stop_sequence(self) -> str | None:
        """The stop sequence that ended the text, if one did."""
        return self.stops.matched if self.cut_by_stop_sequence else None

    def chat_outcome(self) -> ChatOutcome | None:
        return self.splitter.outcome() if self.splitter is not None else None

    def guidance_outcome(self, reason: FinishReason) -> GuidanceOutcome | None:
        """For a constrained stream: whether what was sent is a whole output of its grammar."""
        if self.constraint is None:
            return None
        complete = reason != "error" and not self.cut_by_stop_sequence and self.constraint.is_complete(self.emitted)
        text = self.tokenizer.decode(self.emitted) if complete else None
        return GuidanceOutcome(self.constraint.mode, complete, text)

    def finish(self) -> list[TokenEvent]:
        """The stream ends without a stop match: whatever text is held back goes out."""
        self.detokenizer.finalize()
        released = self.stops.finish(self.detokenizer.last_segment)
        if self.splitter is None:
            return released
        for entry in released:
            self.splitter.split(entry)
        tail = self.splitter.finish(self.emitted[-1] if self.emitted else 0)
        return released + [tail] if tail is not None else released


def _budget(tokenizer: Any, request: GenerationRequest) -> ReasoningBudget | None:
    chat = request.chat
    if chat is None or chat.reasoning_budget is None or not tokenizer.has_thinking:
        return None
    start, end = tuple(tokenizer.think_start_tokens), tuple(tokenizer.think_end_tokens)
    return ReasoningBudget(start, end, chat.reasoning_budget, chat.starts_in_reasoning)


def _token_event(
    token: int, text: str, logprobs: mx.array | None, request: GenerationRequest, from_draft: bool | None
) -> TokenEvent:
    if logprobs is None or (not request.logprobs and not request.top_logprobs):
        return TokenEvent(token, text, from_draft=from_draft)
    top = None
    if request.top_logprobs:
        k = request.top_logprobs
        ids = mx.argpartition(-logprobs, kth=k - 1)[:k]
        values = logprobs[ids]
        order = mx.argsort(-values)
        # Tokens that structured output masked out have -inf: they were never possible, so not listed.
        top = [(t, v) for t, v in zip(ids[order].tolist(), values[order].tolist(), strict=True) if v != -math.inf]
    return TokenEvent(token, text, logprobs[token].item(), top, from_draft)
