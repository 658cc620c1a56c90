"""generate, batch_generate, cancel, $/cancelRequest: requests in, stream notifications out."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

from runtime import faults
from runtime.engine.events import (
    DraftStats,
    Event,
    Finished,
    GuidanceOutcome,
    PromptProcessed,
    PromptStarted,
    TokenEvent,
)
from runtime.engine.jobs import StreamJob
from runtime.engine.models import LoadedModel
from runtime.methods import drafts
from runtime.methods.context import Services
from runtime.protocol.batches import run_entries
from runtime.protocol.dispatch import AfterSend, CallContext, Method, Reply
from runtime.protocol.envelope import notification
from runtime.requests import guidance, prompts
from runtime.requests.build import build_request
from runtime.scheduler.breaker import CircuitOpen
from runtime.scheduler.queue import QueueFull
from runtime.scheduler.registry import DuplicateStream, RegistryClosed, StreamRecord, StreamState

OUTCOMES = {"error": "fault", "stop": "ok", "length": "ok"}  # breaker outcome of each finish reason


def open_stream(services: Services, params: dict[str, Any], ctx: CallContext) -> tuple[dict[str, Any], AfterSend]:
    """Validate, register and reserve a place for one stream.

    Returns its result and the step that queues it, to run once the response is on its way (so the
    host always has the stream_id before the first chunk).
    """
    if services.shutting_down:
        raise faults.ShuttingDown("the runtime is shutting down")
    loaded = services.store.require(params["model_id"])
    if loaded.model_id in services.unloading:
        raise faults.ModelNotLoaded(f"Model is being unloaded: {loaded.model_id}", model_id=loaded.model_id)
    request = build_request(services.limits, loaded, params, drafts.draft_for(services, loaded, params))
    if request_key(ctx.request_id) in services.cancelled_while_preparing:  # while its images loaded
        raise faults.Cancelled("the request was cancelled before its stream started")
    stream_id = params.get("stream_id") or str(uuid.uuid4())
    submitted_at = time.perf_counter()
    timeout_ms = params.get("timeout_ms")
    deadline = submitted_at + timeout_ms / 1000 if timeout_ms else None
    try:
        record = services.streams.register(stream_id, loaded.model_id, ctx.request_id)
    except DuplicateStream:
        raise faults.InvalidInput.at("/stream_id", f"stream {stream_id} is already active") from None
    except RegistryClosed:
        raise faults.ShuttingDown("the runtime is shutting down") from None
    try:
        _admit(services, stream_id)
    except BaseException:
        services.streams.discard(stream_id)
        raise
    guided = request.guide.mode if request.guide else None
    publisher = record.sink = StreamPublisher(services, record, loaded, guided, len(request.images))
    job = StreamJob(stream_id, loaded, request, publisher, record.cancel, submitted_at, deadline)

    def enqueue() -> None:
        services.queue.submit(stream_id, job, params.get("priority", "normal"), deadline)
        services.worker.wake()

    return {"stream_id": stream_id, "started_at": time.time()}, enqueue


def _admit(services: Services, stream_id: str) -> None:
    """The breaker, then the queue: either may refuse at once, with a retry hint."""
    try:
        services.breaker.admit(stream_id)
    except CircuitOpen as exc:
        raise faults.CircuitOpen(
            "the engine's circuit breaker is open after repeated faults", retry_after_ms=exc.retry_after_ms
        ) from None
    try:
        services.queue.reserve(stream_id)
    except QueueFull as exc:
        services.breaker.record(stream_id, "neutral")
        raise faults.Busy("the request queue is full", retry_after_ms=exc.retry_after_ms) from None


def _chunk_message(stream_id: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return notification(
        "stream.chunk", {"stream_id": stream_id, "tokens": entries, "batch_size": len(entries), "is_batch": True}
    )


class StreamPublisher:
    """Turns one stream's engine events into notifications and scheduler bookkeeping."""

    def __init__(
        self, services: Services, record: StreamRecord, loaded: LoadedModel, guided: str | None, images: int = 0
    ) -> None:
        self.services, self.record, self.loaded = services, record, loaded
        self.guided = guided  # the structured-output mode, if any
        self.images = images

    def __call__(self, event: Event) -> None:
        if self.record.state is StreamState.FINISHED:
            return  # ended already (shutdown ends streams itself): nothing may follow the last event
        if isinstance(event, TokenEvent):
            self.record.tokens_generated += 1
            self.services.writer.send_entry(self.record.stream_id, self._entry(event), _chunk_message)
        elif isinstance(event, PromptStarted):
            self.services.streams.advance(self.record.stream_id, StreamState.PREFILLING)
        elif isinstance(event, PromptProcessed):
            self.services.streams.advance(self.record.stream_id, StreamState.DECODING)
        elif isinstance(event, Finished):
            self._finish(event)

    def _entry(self, event: TokenEvent) -> dict[str, Any]:
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
        return entry

    def _finish(self, event: Finished) -> None:
        stream_id = self.record.stream_id
        if self.services.streams.finish(stream_id, event.reason) is None:
            return
        self.services.queue.release(stream_id, time.perf_counter())
        self.services.breaker.record(stream_id, OUTCOMES.get(event.reason, "neutral"))
        try:
            self._publish_end(event)
        finally:
            self.services.streams.forget(stream_id)

    def _publish_end(self, event: Finished) -> None:
        stream_id = self.record.stream_id
        if event.reason == "error":
            self.services.notify(
                "stream.event",
                {
                    "stream_id": stream_id,
                    "event": "error",
                    "is_final": True,
                    "finish_reason": "error",
                    "error": event.error or "generation failed",
                },
            )
            return
        decode_s = event.total_s - event.ttft_s
        stats: dict[str, Any] = {
            "stream_id": stream_id,
            "tokens_generated": event.generated_tokens,
            "tokens_per_second": event.generated_tokens / decode_s if decode_s > 0 and event.generated_tokens else 0.0,
            "time_to_first_token": event.ttft_s,
            "total_time": event.total_s,
            "prompt_tokens": event.prompt_tokens,
            "cached_tokens": event.cached_tokens,
            "prefill_tokens": event.prompt_tokens - event.cached_tokens,
            "finish_reason": event.reason,
        }
        if event.draft is not None:
            stats["draft"] = _draft_fields(event.draft)
        if self.images:
            stats["images"] = self.images
        self.services.notify("stream.stats", stats)
        final = {"stream_id": stream_id, "event": "completed", "is_final": True, "finish_reason": event.reason}
        if self.guided is not None:
            final.update(_guidance_fields(self.guided, event.guidance))
        self.services.notify("stream.event", final)


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


def generate(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    def start() -> tuple[dict[str, Any], list[AfterSend]]:
        result, enqueue = open_stream(services, params, ctx)
        return result, [enqueue]

    return _when_prepared(services, [params], start, ctx)


def generate_with_image(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Peer-compatible: a prompt and one `image` (base64 or data: URI; paths and URLs when allowed)."""
    return generate(services, params, ctx)


def batch_generate(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Each entry succeeds or fails on its own; the streams are queued once the answer is sent."""

    def start() -> tuple[dict[str, Any], list[AfterSend]]:
        queued: list[AfterSend] = []

        def start_one(entry: dict[str, Any]) -> dict[str, Any]:
            result, enqueue = open_stream(services, entry, ctx)
            queued.append(enqueue)
            return result

        return {"results": run_entries("generate", params["requests"], start_one)}, queued

    return _when_prepared(services, params["requests"], start, ctx)


Start = Callable[[], tuple[dict[str, Any], list[AfterSend]]]


def _when_prepared(services: Services, entries: list[Any], start: Start, ctx: CallContext) -> Reply:
    """Handlers answer at once, so a request that needs preparing (a grammar its model has not
    compiled yet, images to load and decode: milliseconds to seconds) is prepared on the preparer
    thread, and answered from there."""
    if all(_prepared(services, entry) for entry in entries):
        result, hooks = start()
        return Reply(result, after_send=_run_all(hooks))
    future: Future[Any] = Future()
    hooks: list[AfterSend] = []
    key = request_key(ctx.request_id)
    services.preparing.add(key)

    def compile_then_start() -> None:
        try:
            result, started = start()  # compiles on a cache miss; every error is reported as usual
            hooks.extend(started)
            future.set_result(result)
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            services.preparing.discard(key)
            services.cancelled_while_preparing.discard(key)

    services.preparer.submit(compile_then_start)
    return Reply(future=future, after_send=_run_all(hooks))


def _prepared(services: Services, entry: Any) -> bool:
    """False for a request with images to load, or a valid constraint its model has not compiled."""
    try:
        if prompts.has_images(entry):
            return False
        loaded = services.store.get(entry["model_id"])
        return loaded is None or guidance.ready_without_work(entry, loaded)
    except Exception:
        return True  # a malformed entry: start() reports it


def _run_all(hooks: list[AfterSend]) -> AfterSend:
    def run() -> None:
        for hook in hooks:
            hook()

    return run


def cancel(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    cancelled = services.streams.cancel(params["stream_id"])
    if cancelled:
        services.cancel_streams([params["stream_id"]])
    return {"stream_id": params["stream_id"], "cancelled": cancelled}


def cancel_request(services: Services, params: dict[str, Any], ctx: CallContext) -> None:
    """`$/cancelRequest`: cancel the streams that request `id` started, or, while that request is
    still being prepared (images, a grammar), keep its streams from starting at all."""
    key = request_key(params["id"])
    if key in services.preparing:
        services.cancelled_while_preparing.add(key)
    services.cancel_streams(services.streams.cancel_where(request_id=params["id"]))


def request_key(request_id: Any) -> str:
    return json.dumps(request_id, sort_keys=True)


def methods(services: Services) -> list[Method]:
    return [
        Method("generate", partial(generate, services)),
        Method("generate_with_image", partial(generate_with_image, services)),
        Method("batch_generate", partial(batch_generate, services)),
        Method("cancel", partial(cancel, services)),
        Method("$/cancelRequest", partial(cancel_request, services)),
    ]
