"""What the engine is asked to generate: the request, its sampling and its draft."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.engine.guidance import Guide
    from runtime.engine.models import LoadedModel


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
class ChatOutput:
    """How a chat stream's output is read: reasoning split from the answer, tool calls parsed."""

    parse_tools: bool  # tool-call sections are parsed (tools given and tool_choice is not none)
    tools: list[dict[str, Any]] | None  # the request's tools, for mlx-lm's parsers (some read types)
    starts_in_reasoning: bool  # the prompt ends inside an open thinking section
    reasoning_budget: int | None = None  # thinking tokens allowed before the end of thinking is forced


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
    chat: ChatOutput | None = None  # chat requests on models that think or call tools
    session_id: str | None = None  # pins the conversation's KV cache (engine/prompt_cache.py)
    use_prompt_cache: bool = True
    # Test-only (runtime.faultinject "stream_fault"): the sampler raises at this step.
    inject_fault_at: int | None = None
