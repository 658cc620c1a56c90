"""One stream's messages: `stream.chunk` (coalesced by the writer), `stream.stats`, `stream.event`.

Only formatting lives here; the stream's life (registry, queue, breaker) is the scheduler's
(scheduler/lifecycle.py), which calls `token` and `end` on the engine thread, in order.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.engine.events import ChatOutcome, DraftStats, Finished, GuidanceOutcome, TokenEvent, ToolCallDelta
from runtime.engine.models import LoadedModel
from runtime.protocol.envelope import notification
from runtime.protocol.errors import to_stream_error
from runtime.transport.writer import Writer


def chunk_message(stream_id: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return notification(
        "stream.chunk", {"stream_id": stream_id, "tokens": entries, "batch_size": len(entries), "is_batch": True}
    )


class StreamPublisher:
    """A StreamOutput that writes the wire's stream notifications."""

    __slots__ = ("writer", "stream_id", "loaded", "guided", "images", "_send_entry")

    def __init__(self, writer: Writer, stream_id: str, loaded: LoadedModel, guided: str | None, images: int) -> None:
        self.writer, self.stream_id, self.loaded = writer, stream_id, loaded
        self.guided = guided  # the structured-output mode, if any
        self.images = images
        self._send_entry = writer.send_entry  # bound once: called for every token

    def token(self, event: TokenEvent) -> None:
        self._send_entry(self.stream_id, token_entry(event, self.loaded), chunk_message)

    def end(self, event: Finished) -> None:
        if event.reason == "error":
            failure = event.failure or RuntimeError("generation failed")
            error = {"stream_id": self.stream_id, "event": "error", "is_final": True, "finish_reason": "error"}
            self._notify("stream.event", {**error, **to_stream_error(failure)})
            return
        self._notify("stream.stats", {"stream_id": self.stream_id, **stats_fields(event, self.images)})
        final = {"stream_id": self.stream_id, "event": "completed", "is_final": True}
        self._notify("stream.event", {**final, **outcome_fields(event, self.guided)})

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        self.writer.send(notification(method, params))


def token_entry(event: TokenEvent, loaded: LoadedModel) -> dict[str, Any]:
    """One token on the wire: its answer text, and for chat streams its thinking and call pieces."""
    entry: dict[str, Any] = {"token": event.text, "token_id": event.token_id, "is_final": False}
    if event.reasoning is not None:
        entry["reasoning"] = event.reasoning
    if event.tool_calls is not None:
        entry["tool_calls"] = [_delta(delta) for delta in event.tool_calls]
    if event.from_draft is not None:
        entry["from_draft"] = event.from_draft
    if event.logprob is not None:
        entry["logprob"] = event.logprob
    if event.top_logprobs is not None:
        decode = loaded.tokenizer.decode
        entry["top_logprobs"] = [{"token_id": t, "token": decode([t]), "logprob": lp} for t, lp in event.top_logprobs]
    return entry


def _delta(delta: ToolCallDelta) -> dict[str, Any]:
    """OpenAI's streamed tool-call delta: the first piece has id, type and name."""
    out: dict[str, Any] = {"index": delta.index}
    function: dict[str, Any] = {}
    if delta.call_id is not None:
        out["id"], out["type"] = delta.call_id, "function"
    if delta.name is not None:
        function["name"] = delta.name
    if delta.arguments is not None:
        function["arguments"] = delta.arguments
    out["function"] = function
    return out


def finish_reason(event: Finished) -> str:
    """The engine's reason, or "tool_calls" for a chat stream that stopped after calling tools."""
    if event.reason == "stop" and event.chat is not None and event.chat.tool_calls:
        return "tool_calls"
    return event.reason


def stats_fields(event: Finished, images: int) -> dict[str, Any]:
    decode_s = event.total_s - event.ttft_s
    generated = event.generated_tokens
    stats: dict[str, Any] = {
        "tokens_generated": generated,
        "tokens_per_second": generated / decode_s if decode_s > 0 and generated else 0.0,
        "time_to_first_token": event.ttft_s,
        "total_time": event.total_s,
        "prompt_tokens": event.prompt_tokens,
        "cached_tokens": event.cached_tokens,
        "prefill_tokens": event.prompt_tokens - event.cached_tokens,
        "finish_reason": finish_reason(event),
        "usage": usage(event),
    }
    if event.path is not None:
        stats["path"], stats["handovers"] = event.path, event.handovers
    if event.kv_cache_bytes is not None:
        stats["kv_cache_bytes"] = event.kv_cache_bytes
    if event.draft is not None:
        stats["draft"] = _draft_fields(event.draft)
    if images:
        stats["images"] = images
    return stats


def usage(event: Finished) -> dict[str, Any]:
    """OpenAI's usage: the counts flat, and in OpenAI's nested details as its SDKs read them."""
    reasoning = event.chat.reasoning_tokens if event.chat is not None else 0
    return {
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.generated_tokens,
        "total_tokens": event.prompt_tokens + event.generated_tokens,
        "cached_tokens": event.cached_tokens,
        "reasoning_tokens": reasoning,
        "prompt_tokens_details": {"cached_tokens": event.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def outcome_fields(event: Finished, guided: str | None) -> dict[str, Any]:
    """What the last message of a completed stream says: why it ended, the structured output's
    outcome, and for chat streams the answer, the thinking and the tool calls read whole."""
    fields: dict[str, Any] = {"finish_reason": finish_reason(event)}
    if event.stop_sequence is not None:
        fields["stop_sequence"] = event.stop_sequence
    if guided is not None:
        fields.update(_guidance_fields(guided, event.guidance))
    if event.chat is not None:
        fields.update(_chat_fields(event.chat))
    return fields


def _chat_fields(chat: ChatOutcome) -> dict[str, Any]:
    fields: dict[str, Any] = {"content": chat.content}
    if chat.reasoning is not None:
        fields["reasoning"] = chat.reasoning
    if chat.tool_calls:
        fields["tool_calls"] = [
            {
                "index": call.index,
                "id": call.call_id,
                "type": "function",
                "name": call.name,
                "arguments": call.arguments,
                "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
            }
            for call in chat.tool_calls
        ]
    if chat.tool_call_errors:
        fields["tool_call_errors"] = [
            {"index": error.index, "raw": error.raw, "reason": error.reason} for error in chat.tool_call_errors
        ]
    return fields


def _draft_fields(draft: DraftStats) -> dict[str, Any]:
    return {
        "model_id": draft.draft_id,
        "num_draft_tokens": draft.num_draft_tokens,
        "drafted": draft.drafted,
        "accepted": draft.accepted,
        "rejected": draft.drafted - draft.accepted,
        "acceptance_rate": round(draft.accepted / draft.drafted, 4) if draft.drafted else 0.0,
    }


def _guidance_fields(mode: str, outcome: GuidanceOutcome | None) -> dict[str, Any]:
    """`guidance: {mode, complete}`, and `parsed` (the JSON value) for a whole JSON output."""
    complete = outcome is not None and outcome.complete
    fields: dict[str, Any] = {"guidance": {"mode": mode, "complete": complete}}
    if complete and outcome and outcome.text is not None and mode in ("json_schema", "json_object"):
        fields["parsed"] = json.loads(outcome.text)
    return fields
