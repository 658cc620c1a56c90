"""generate, batch_generate, cancel, $/cancelRequest: requests in, stream notifications out."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

from runtime import faults
from runtime.engine.jobs import StreamJob
from runtime.methods import drafts, loading
from runtime.methods.context import Handler, Services, group_intact, request_key, single_machine_only
from runtime.protocol.batches import run_entries
from runtime.protocol.dispatch import AfterSend, CallContext, Reply
from runtime.requests import guidance, prompts
from runtime.requests.build import build_request
from runtime.streams.publisher import StreamPublisher
from runtime.streams.whole import WholeOutput


def open_stream(
    services: Services, params: dict[str, Any], ctx: CallContext, whole: list[WholeOutput] | None = None
) -> tuple[dict[str, Any], AfterSend]:
    """Validate, then open the stream (registered, place reserved).

    Returns its result and the step that queues it, to run once the response is on its way (so the
    host always has the stream_id before the first chunk). With `whole` (a non-streaming request)
    the stream's output is collected instead, and appended there.
    """
    if services.shutting_down:
        raise faults.ShuttingDown("the runtime is shutting down")
    loaded = services.store.require(params["model_id"])
    if loaded.model_id in services.unloading:
        raise faults.ModelNotLoaded(f"Model is being unloaded: {loaded.model_id}", model_id=loaded.model_id)
    origin = _in_group(services, params)
    params = origin or params  # in a group, rank 0's request too is built from what every rank gets
    request = build_request(services.limits, loaded, params, drafts.draft_for(services, loaded, params))
    if request_key(ctx.request_id) in services.cancelled_while_preparing:  # while its images loaded
        raise faults.Cancelled("the request was cancelled before its stream started")
    stream_id = params.get("stream_id") or str(uuid.uuid4())
    submitted_at = time.perf_counter()
    timeout_ms = params.get("timeout_ms")
    deadline = submitted_at + timeout_ms / 1000 if timeout_ms else None
    guided = request.guide.mode if request.guide else None
    started_at = time.time()
    output: StreamPublisher | WholeOutput
    if whole is None:
        output = StreamPublisher(services.writer, stream_id, loaded, guided, len(request.images))
    else:
        keep_tokens = bool(request.logprobs or request.top_logprobs)
        output = WholeOutput(stream_id, loaded, guided, len(request.images), started_at, keep_tokens)
        whole.append(output)
    handle = services.lifecycle.open(stream_id, loaded.model_id, ctx.request_id, output)
    job = StreamJob(stream_id, loaded, request, handle, handle.record.cancel, submitted_at, deadline, origin)
    start = partial(services.lifecycle.start, handle, job, params.get("priority", "normal"), deadline)
    return {"stream_id": stream_id, "started_at": started_at, "prompt_tokens": len(request.prompt_tokens)}, start


def _in_group(services: Services, params: dict[str, Any]) -> dict[str, Any] | None:
    """A distributed group's stream: the params every rank builds the same request from, its seed
    fixed here (a seed each rank drew for itself would sample different tokens)."""
    if services.group is None:
        return None
    group_intact(services)
    for name, feature in (("session_id", "sessions"), ("draft_model", "speculative decoding")):
        if params.get(name) is not None:
            single_machine_only(services, feature)
    seed = params.get("seed")
    return {**params, "seed": seed if seed is not None else int.from_bytes(os.urandom(4), "little")}


def streams(params: dict[str, Any]) -> bool:
    """`streaming` (the peer's name) or `stream` (OpenAI's): false answers the request whole."""
    if "streaming" in params and "stream" in params and params["streaming"] != params["stream"]:
        raise faults.InvalidInput.at("/stream", "stream and streaming disagree")
    return bool(params.get("streaming", params.get("stream", True)))


def generate(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    if not streams(params):
        return _generate_whole(services, params, ctx)

    def start() -> tuple[dict[str, Any], list[AfterSend]]:
        result, enqueue = open_stream(services, params, ctx)
        return result, [enqueue]

    return _when_prepared(services, [params], start, ctx)


def _generate_whole(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """A non-streaming generate: the stream starts at once and the response is its whole output."""
    answer: Future[Any] = Future()

    def start() -> tuple[dict[str, Any], list[AfterSend]]:
        whole: list[WholeOutput] = []
        result, enqueue = open_stream(services, params, ctx, whole)
        chain(whole[0].answer, answer)
        enqueue()
        return result, []

    reply = _when_prepared(services, [params], start, ctx)
    if reply.future is not None:  # prepared off the reader thread: its failure is the answer
        reply.future.add_done_callback(lambda done: _fail(answer, done.exception()))
    return Reply(future=answer)


def generate_with_image(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Peer-compatible: a prompt and one `image` (base64 or data: URI; paths and URLs when allowed)."""
    return generate(services, params, ctx)


def chain(source: Future[Any], target: Future[Any]) -> None:
    def copy(done: Future[Any]) -> None:
        error = done.exception()
        if error is not None:
            _fail(target, error)
        elif not target.done():
            target.set_result(done.result())

    source.add_done_callback(copy)


def _fail(target: Future[Any], error: BaseException | None) -> None:
    if error is not None and not target.done():
        target.set_exception(error)


def batch_generate(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Each entry succeeds or fails on its own; the streams are queued once the answer is sent."""

    def start() -> tuple[dict[str, Any], list[AfterSend]]:
        queued: list[AfterSend] = []

        def start_one(entry: dict[str, Any]) -> dict[str, Any]:
            if not streams(entry):
                raise faults.InvalidInput.at("/streaming", "batch_generate streams; send generate for a whole answer")
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
        result, started = start()
        return Reply(result, after_send=_run_all(started))
    hooks: list[AfterSend] = []
    key = request_key(ctx.request_id)
    services.preparing.add(key)

    def prepare_then_start() -> dict[str, Any]:
        try:
            result, started = start()  # compiles on a cache miss; every error is reported as usual
            hooks.extend(started)
            return result
        finally:
            services.preparing.discard(key)
            services.cancelled_while_preparing.discard(key)

    return Reply(future=services.preparer.submit(prepare_then_start), after_send=_run_all(hooks))


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
    return {"stream_id": params["stream_id"], "cancelled": services.lifecycle.cancel(params["stream_id"])}


def cancel_request(services: Services, params: dict[str, Any], ctx: CallContext) -> None:
    """`$/cancelRequest`: cancel the streams that request `id` started, or, while that request is
    still being prepared (images, a grammar), keep its streams from starting at all."""
    key = request_key(params["id"])
    if key in services.preparing:
        services.cancelled_while_preparing.add(key)
    loading.stop_waiting(services, key)  # a load_model, or a request waiting for its model's load
    services.lifecycle.cancel_where(request_id=params["id"])


METHODS: dict[str, Handler] = {
    "generate": generate,
    "generate_with_image": generate_with_image,
    "batch_generate": batch_generate,
    "cancel": cancel,
    "$/cancelRequest": cancel_request,
}
