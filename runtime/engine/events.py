"""Small typed events that generation yields (engine/request.py holds what they answer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length", "cancelled", "timeout", "error"]


@dataclass(frozen=True, slots=True)
class PromptStarted:
    """The stream left the queue: its prompt is being processed."""


@dataclass(frozen=True, slots=True)
class PromptProcessed:
    """The prompt is in the KV cache and the first token is sampled."""

    prompt_tokens: int
    seconds: float


@dataclass(frozen=True, slots=True)
class TokenEvent:
    token_id: int
    text: str
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] | None = None
    from_draft: bool | None = None  # speculative streams: the draft proposed it and the target kept it


@dataclass(frozen=True, slots=True)
class GuidanceOutcome:
    """How a constrained stream's output ended: whole (the grammar accepts it) or cut short."""

    mode: str
    complete: bool
    text: str | None = None  # the whole output, when complete


@dataclass(frozen=True, slots=True)
class DraftStats:
    """A speculative stream's drafting: proposed tokens and how many the target kept."""

    draft_id: str
    num_draft_tokens: int
    drafted: int
    accepted: int


@dataclass(frozen=True, slots=True)
class Finished:
    reason: FinishReason
    prompt_tokens: int
    generated_tokens: int
    ttft_s: float
    total_s: float
    error: str | None = None
    guidance: GuidanceOutcome | None = None
    draft: DraftStats | None = None
    cached_tokens: int = 0  # prompt tokens served from the prompt cache (not prefilled)


Event = PromptStarted | PromptProcessed | TokenEvent | Finished
