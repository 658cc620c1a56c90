"""Small typed events that generation yields (engine/request.py holds what they answer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from runtime.engine.jobs import Job

FinishReason = Literal["stop", "length", "cancelled", "timeout", "error"]
DecodePath = Literal["solo", "batch", "speculative", "vision", "pooling"]


@dataclass(frozen=True, slots=True)
class PromptStarted:
    """The stream left the queue on one decode path: its prompt is being processed."""

    path: DecodePath


@dataclass(frozen=True, slots=True)
class HandedOver:
    """The stream moved to another decode path between two tokens (solo -> batch)."""

    path: DecodePath


@dataclass(frozen=True, slots=True)
class PromptProcessed:
    """The prompt is in the KV cache and the first token is sampled."""

    prompt_tokens: int
    seconds: float


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call as it streams: the first names it, later ones add argument text."""

    index: int
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass(slots=True)  # not frozen: one is built per token, and a frozen __init__ costs ~4x
class TokenEvent:
    token_id: int
    text: str  # chat streams: the answer's text only (thinking and tool calls are apart)
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] | None = None
    from_draft: bool | None = None  # speculative streams: the draft proposed it and the target kept it
    reasoning: str | None = None  # chat streams: thinking text
    tool_calls: list[ToolCallDelta] | None = None  # chat streams: tool-call pieces


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A whole tool call parsed from the output by the model's mlx-lm tool parser."""

    index: int
    call_id: str
    name: str
    arguments: Any  # the parsed arguments (a JSON object)


@dataclass(frozen=True, slots=True)
class ToolCallError:
    """A tool-call section that did not parse: its raw text and why."""

    index: int
    raw: str
    reason: str


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    """A chat stream's output read whole: the answer, the thinking, the calls."""

    content: str
    reasoning: str | None
    tool_calls: tuple[ToolCall, ...]
    tool_call_errors: tuple[ToolCallError, ...]
    reasoning_tokens: int


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
class PoolOutcome:
    """An embed or rerank job's results: one float32 row (embed) or score (rerank) per input."""

    rows: tuple[Any, ...]
    batches: int  # forward passes it took part in


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """The stream's end: exactly one per stream. `failure` is the exception of an errored stream
    (the protocol maps it to the wire; its text never goes out as it is)."""

    reason: FinishReason
    prompt_tokens: int
    generated_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    failure: BaseException | None = None
    guidance: GuidanceOutcome | None = None
    draft: DraftStats | None = None
    cached_tokens: int = 0  # prompt tokens served from the prompt cache (not prefilled)
    path: DecodePath | None = None  # the decode path it ended on; None if it never started
    handovers: int = 0
    kv_cache_bytes: int | None = None  # what its KV cache held at the end (solo streams; None: not measured)
    chat: ChatOutcome | None = None  # chat streams: answer, thinking and tool calls read whole
    pooled: PoolOutcome | None = None  # embed and rerank jobs: their results
    stop_sequence: str | None = None  # the stop sequence that ended the text (finish reason stop)

    @classmethod
    def unstarted(cls, job: Job, reason: FinishReason, now: float, failure: BaseException | None = None) -> Finished:
        """A stream that ends before the engine produced anything (queued, refused, cut off)."""
        return cls(
            reason=reason,
            prompt_tokens=job.prompt_size(),
            total_s=now - job.submitted_at,
            failure=failure,
        )


Event = PromptStarted | HandedOver | PromptProcessed | TokenEvent | Finished
