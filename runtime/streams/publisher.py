"""One stream's messages: `stream.chunk` (coalesced by the writer), `stream.stats`, `stream.event`.

Only formatting lives here; the stream's life (registry, queue, breaker) is the scheduler's
(scheduler/lifecycle.py), which calls `token` and `end` on the engine thread, in order.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.engine.events import DraftStats, Finished, GuidanceOutcome, TokenEvent
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
        entry: dict[str, Any] = {"token": event.text, "token_id": event.token_id, "is_final": False}
        if event.from_draft is not None:
            entry["from_draft"] = event.from_draft
        if event.logprob is not None:
            entry["logprob"] = event.logprob
        if event.top_logprobs is not None:
            decode = self.loaded.tokenizer.decode
            entry["top_logprobs"] = [
                {"token_id": t, "token": decode([t]), "logprob": lp} for t, lp in event.top_logprobs
            ]
        self._send_entry(self.stream_id, entry, chunk_message)

    def end(self, event: Finished) -> None:
        if event.reason == "error":
            failure = event.failure or RuntimeError("generation failed")
            error = {"stream_id": self.stream_id, "event": "error", "is_final": True, "finish_reason": "error"}
            self._notify("stream.event", {**error, **to_stream_error(failure)})
            return
        self._notify("stream.stats", self._stats(event))
        final = {"stream_id": self.stream_id, "event": "completed", "is_final": True, "finish_reason": event.reason}
        if self.guided is not None:
            final.update(_guidance_fields(self.guided, event.guidance))
        self._notify("stream.event", final)

    def _stats(self, event: Finished) -> dict[str, Any]:
        decode_s = event.total_s - event.ttft_s
        generated = event.generated_tokens
        stats: dict[str, Any] = {
            "stream_id": self.stream_id,
            "tokens_generated": generated,
            "tokens_per_second": generated / decode_s if decode_s > 0 and generated else 0.0,
            "time_to_first_token": event.ttft_s,
            "total_time": event.total_s,
            "prompt_tokens": event.prompt_tokens,
            "cached_tokens": event.cached_tokens,
            "prefill_tokens": event.prompt_tokens - event.cached_tokens,
            "finish_reason": event.reason,
        }
        if event.path is not None:
            stats["path"], stats["handovers"] = event.path, event.handovers
        if event.kv_cache_bytes is not None:
            stats["kv_cache_bytes"] = event.kv_cache_bytes
        if event.draft is not None:
            stats["draft"] = _draft_fields(event.draft)
        if self.images:
            stats["images"] = self.images
        return stats

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        self.writer.send(notification(method, params))


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
