"""Small typed events that generation yields, and the engine-level request they answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from runtime.engine.guidance import Guide
    from runtime.engine.models import LoadedModel

FinishReason = Literal["stop", "length", "cancelled", "timeout", "error"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[int, float] | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class DraftChoice:
    """Speculative decoding for one request: the (loaded, compatible) draft and tokens per round."""

    loaded: LoadedModel
    num_draft_tokens: int


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    prompt_tokens: list[int]
    max_tokens: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop_sequences: tuple[str, ...] = ()
    stop_token_ids: frozenset[int] = frozenset()
    logprobs: bool = False
    top_logprobs: int = 0
    guide: Guide | None = None  # structured output: the compiled grammar every token must follow
    draft: DraftChoice | None = None  # speculative decoding
    # Vision models: decoded images (PIL) in prompt order, and the prompt as text (the processor
    # expands each image token and tokenizes; prompt_tokens is then only the text's estimate).
    images: tuple[Any, ...] = ()
    prompt_text: str | None = None
    session_id: str | None = None  # pins the conversation's KV cache (engine/prompt_cache.py)
    use_prompt_cache: bool = True
    # Test-only (runtime.faultinject "stream_fault"): the sampler raises at this step.
    inject_fault_at: int | None = None


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
