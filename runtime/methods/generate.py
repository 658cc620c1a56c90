"""generate, batch_generate, cancel, $/cancelRequest: requests in, stream notifications out."""

from __future__ import annotations

import time
import uuid
from functools import partial
from typing import Any

from runtime import faults, schemas
from runtime.dispatch import CallContext, Method, Reply
from runtime.engine.events import Event, Finished, GenerationRequest, PromptProcessed, SamplingParams, TokenEvent
from runtime.engine.models import LoadedModel
from runtime.engine.worker import StreamJob
from runtime.errors import to_wire_error
from runtime.methods.prompts import prompt_tokens
from runtime.methods.services import Services
from runtime.protocol import notification
from runtime.scheduler.registry import DuplicateStream, StreamRecord, StreamState

SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
)


def build_request(services: Services, loaded: LoadedModel, params: dict[str, Any]) -> GenerationRequest:
    if params.get("guidance") is not None:
        raise faults.GuidanceFailed(
            "structured output (guidance) is not available in this version", model_id=loaded.model_id
        )
    if params.get("draft_model") is not None:
        raise faults.InvalidInput.at("/draft_model", "speculative decoding is not available in this version")
    tokens = prompt_tokens(loaded, params)
    max_tokens = params.get("max_tokens", services.limits.default_max_tokens)
    if max_tokens > services.limits.max_tokens:
        raise faults.InvalidInput.at("/max_tokens", f"must be <= {services.limits.max_tokens} (the runtime's limit)")
    sampling = {k: params[k] for k in SAMPLING_FIELDS if k in params}
    return GenerationRequest(
        prompt_tokens=tokens,
        max_tokens=max_tokens,
        sampling=SamplingParams(**sampling, logit_bias=_logit_bias(loaded, params.get("logit_bias"))),
        stop_sequences=tuple(params.get("stop_sequences", ())),
        stop_token_ids=frozenset(params.get("stop_token_ids", ())),
        logprobs=params.get("logprobs", False),
        top_logprobs=params.get("top_logprobs", 0),
    )


def _logit_bias(loaded: LoadedModel, bias: dict[str, float] | None) -> dict[int, float] | None:
    if not bias:
        return None
    for key in bias:
        if int(key) >= loaded.vocab_size:
            raise faults.InvalidInput.at(f"/logit_bias/{key}", f"token id must be < {loaded.vocab_size}")
    return {int(k): float(v) for k, v in bias.items()}


def open_stream(services: Services, params: dict[str, Any], ctx: CallContext) -> tuple[dict[str, Any], StreamJob]:
    """Validate and register one stream; returns its result and the job to start after replying."""
    if services.shutting_down:
        raise faults.ShuttingDown("the runtime is shutting down")
    loaded = services.store.require(params["model_id"])
    request = build_request(services, loaded, params)
    stream_id = params.get("stream_id") or str(uuid.uuid4())
    try:
        record = services.streams.register(stream_id, loaded.model_id, ctx.request_id)
    except DuplicateStream:
        raise faults.InvalidInput.at("/stream_id", f"stream {stream_id} is already active") from None
    job = StreamJob(
        stream_id,
        partial(_start, services, loaded, request, record),
        StreamPublisher(services, record, loaded),
        record.cancel,
    )
    return {"stream_id": stream_id, "started_at": time.time()}, job


def _start(services: Services, loaded: LoadedModel, request: GenerationRequest, record: StreamRecord):
    from runtime.engine.text import generate_events

    services.streams.advance(record.stream_id, StreamState.PREFILLING)
    return generate_events(loaded, request, record.cancel, services.limits.prefill_step)


def _chunk_message(stream_id: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return notification(
        "stream.chunk", {"stream_id": stream_id, "tokens": entries, "batch_size": len(entries), "is_batch": True}
    )


class StreamPublisher:
    """Turns one stream's engine events into notifications (runs on the engine thread)."""

    def __init__(self, services: Services, record: StreamRecord, loaded: LoadedModel) -> None:
        self.services, self.record, self.loaded = services, record, loaded

    def __call__(self, event: Event) -> None:
        if isinstance(event, TokenEvent):
            self.record.tokens_generated += 1
            self.services.writer.send_entry(self.record.stream_id, self._entry(event), _chunk_message)
        elif isinstance(event, PromptProcessed):
            self.services.streams.advance(self.record.stream_id, StreamState.DECODING)
        elif isinstance(event, Finished):
            self._finish(event)

    def _entry(self, event: TokenEvent) -> dict[str, Any]:
        entry: dict[str, Any] = {"token": event.text, "token_id": event.token_id, "is_final": False}
        if event.logprob is not None:
            entry["logprob"] = event.logprob
        if event.top_logprobs is not None:
            decode = self.loaded.tokenizer.decode
            entry["top_logprobs"] = [
                {"token_id": t, "token": decode([t]), "logprob": lp} for t, lp in event.top_logprobs
            ]
        return entry

    def _finish(self, event: Finished) -> None:
        if self.services.streams.finish(self.record.stream_id, event.reason) is None:
            return
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
        self.services.notify(
            "stream.stats",
            {
                "stream_id": stream_id,
                "tokens_generated": event.generated_tokens,
                "tokens_per_second": event.generated_tokens / decode_s if decode_s > 0 else 0.0,
                "time_to_first_token": event.ttft_s,
                "total_time": event.total_s,
                "prompt_tokens": event.prompt_tokens,
                "finish_reason": event.reason,
            },
        )
        self.services.notify(
            "stream.event",
            {"stream_id": stream_id, "event": "completed", "is_final": True, "finish_reason": event.reason},
        )


def generate(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    result, job = open_stream(services, params, ctx)
    return Reply(result, after_send=partial(services.worker.submit_stream, job))


def batch_generate(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Each entry succeeds or fails on its own; results come back in request order."""
    results, jobs = [], []
    generate_schema = schemas.method_schemas()["generate"]
    for index, entry in enumerate(params["requests"]):
        try:
            problems = schemas.check(generate_schema, "params", entry)
            if problems:
                raise faults.InvalidInput(
                    [{"path": f"/requests/{index}{p['path']}", "message": p["message"]} for p in problems]
                )
            result, job = open_stream(services, entry, ctx)
        except Exception as exc:
            error = to_wire_error(exc)
            results.append(
                {
                    "success": False,
                    "result": None,
                    "error": error["message"],
                    "code": error["code"],
                    "data": error.get("data"),
                }
            )
            continue
        results.append({"success": True, "result": result, "error": None})
        jobs.append(job)

    def start_all() -> None:
        for job in jobs:
            services.worker.submit_stream(job)

    return Reply({"results": results}, after_send=start_all)


def cancel(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    return {"stream_id": params["stream_id"], "cancelled": services.streams.cancel(params["stream_id"])}


def cancel_request(services: Services, params: dict[str, Any], ctx: CallContext) -> None:
    """`$/cancelRequest`: cancel the streams that request `id` started."""
    services.streams.cancel_where(request_id=params["id"])


def methods(services: Services) -> list[Method]:
    return [
        Method("generate", partial(generate, services)),
        Method("batch_generate", partial(batch_generate, services)),
        Method("cancel", partial(cancel, services), control=True),
        Method("$/cancelRequest", partial(cancel_request, services), control=True),
    ]
