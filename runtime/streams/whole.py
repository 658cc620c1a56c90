"""A stream answered whole (`streaming: false`): no stream notifications, one response at the end.

It is the stream's `StreamOutput` like the publisher, with the same formatting: the response holds
what `stream.stats` and the last `stream.event` would have said, plus the text. A stream that ends
in an error answers the request with that error (mapped by the protocol's one mapping).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from runtime import faults
from runtime.engine.events import Finished, TokenEvent
from runtime.engine.models import LoadedModel
from runtime.streams.publisher import outcome_fields, stats_fields, token_entry


class WholeOutput:
    __slots__ = ("stream_id", "loaded", "guided", "images", "started_at", "keep_tokens", "answer", "_text", "_tokens")

    def __init__(
        self, stream_id: str, loaded: LoadedModel, guided: str | None, images: int, started_at: float, keep_tokens: bool
    ) -> None:
        self.stream_id, self.loaded, self.guided, self.images = stream_id, loaded, guided, images
        self.started_at = started_at
        self.keep_tokens = keep_tokens  # logprobs were asked for: the token entries go in the answer
        self.answer: Future[dict[str, Any]] = Future()
        self._text: list[str] = []
        self._tokens: list[dict[str, Any]] = []

    def token(self, event: TokenEvent) -> None:
        self._text.append(event.text)
        if self.keep_tokens:
            self._tokens.append(token_entry(event, self.loaded))

    def end(self, event: Finished) -> None:
        if event.reason == "error":
            self.answer.set_exception(event.failure or faults.GenerationFailed("generation failed"))
            return
        stats = stats_fields(event, self.images)
        result: dict[str, Any] = {
            "stream_id": self.stream_id,
            "started_at": self.started_at,
            "content": "".join(self._text),
            **outcome_fields(event, self.guided),
            "usage": stats["usage"],
            "stats": stats,
        }
        if self.keep_tokens:
            result["tokens"] = self._tokens
        self.answer.set_result(result)
