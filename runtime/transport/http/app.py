"""The HTTP front door: OpenAI- and Anthropic-compatible endpoints, health, readiness, metrics.

A Starlette app over the in-process bridge (bridge.py): each endpoint reads its body (bounded:
413 past the limit), maps it to a wire method's params (openai_shapes.py, anthropic_shapes.py),
and calls the method through the same dispatcher as stdio, so bodies are validated against the
same JSON Schemas (a precise 400 naming the field), a full queue is a 429 with Retry-After and an
open breaker a 503. Streams go out as server-sent events through Starlette's StreamingResponse; a
client that disconnects mid-stream cancels its stream in the engine at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from runtime.transport.http import anthropic_shapes, openai_shapes
from runtime.transport.http.bridge import Bridge, Subscription
from runtime.transport.http.errors import HttpError, anthropic_error_body, openai_error_body

OPENAI, ANTHROPIC = openai_shapes.PARAM_NAMES, anthropic_shapes.PARAM_NAMES
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PING_EVERY_S = 10.0


@dataclass(frozen=True)
class HttpOptions:
    api_key: str | None = None  # checked on every request but /health, in constant time
    max_body_bytes: int = 16 * 1024 * 1024
    default_model: Callable[[], str | None] = lambda: None  # the model a body without `model` gets
    ready: Callable[[], bool] = lambda: True  # the default model is loaded and warmed


Handler = Callable[[Request], Awaitable[Response]]


def build_app(bridge: Bridge, options: HttpOptions) -> Starlette:
    api = _Api(bridge, options)
    routes = [
        Route("/health", api.health, methods=["GET"]),
        Route("/ready", api.ready, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/embeddings", api.embeddings, methods=["POST"]),
        Route("/v1/rerank", api.rerank, methods=["POST"]),
        Route("/v1/messages", api.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", api.count_tokens, methods=["POST"]),
    ]
    return Starlette(routes=routes)


class _Api:
    def __init__(self, bridge: Bridge, options: HttpOptions) -> None:
        self.bridge, self.options = bridge, options

    # --- health --------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """Open, like /health: orchestrators probe without keys."""
        if self.options.ready():
            return JSONResponse({"status": "ready", "model": self.options.default_model()})
        return JSONResponse({"status": "loading", "model": self.options.default_model()}, status_code=503)

    async def metrics(self, request: Request) -> Response:
        if denied := self._denied(request, openai_error_body):
            return denied
        result = await self.bridge.call("runtime/metrics", {"format": "prometheus"})
        return PlainTextResponse(result["text"], media_type=result["content_type"])

    # --- OpenAI --------------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        return await self._openai(request, self._models, body=False)

    async def _models(self, body: dict[str, Any]) -> Response:
        return JSONResponse(openai_shapes.models_list(await self.bridge.call("models/list", {})))

    async def chat(self, request: Request) -> Response:
        return await self._openai(request, self._chat)

    async def _chat(self, body: dict[str, Any]) -> Response:
        params = self._with_model(openai_shapes.chat_params(body))
        completion_id, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), params["model_id"]
        if not params.get("streaming", False):
            result = await self.bridge.call("generate", params, OPENAI)
            return JSONResponse(openai_shapes.chat_completion(result, model, completion_id, created))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        shaper = openai_shapes.ChatStream(completion_id, model, created, include_usage, bool(body.get("logprobs")))
        subscription = await self.bridge.open_stream("generate", params, OPENAI)
        return _sse(_openai_events(subscription, shaper.first(), shaper.chunk, shaper.end))

    async def completions(self, request: Request) -> Response:
        return await self._openai(request, self._completions)

    async def _completions(self, body: dict[str, Any]) -> Response:
        params = self._with_model(openai_shapes.completion_params(body))
        completion_id, created, model = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time()), params["model_id"]
        if not params.get("streaming", False):
            result = await self.bridge.call("generate", params, OPENAI)
            return JSONResponse(openai_shapes.completion(result, model, completion_id, created))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        shaper = openai_shapes.CompletionStream(completion_id, model, created, include_usage, body.get("logprobs"))
        subscription = await self.bridge.open_stream("generate", params, OPENAI)
        return _sse(_openai_events(subscription, [], shaper.chunk, shaper.end))

    async def embeddings(self, request: Request) -> Response:
        return await self._openai(request, self._embeddings)

    async def _embeddings(self, body: dict[str, Any]) -> Response:
        params = self._with_model(openai_shapes.embeddings_params(body))
        result = await self.bridge.call("embed", params, OPENAI)
        return JSONResponse(openai_shapes.embeddings_response(result, params["model_id"]))

    async def rerank(self, request: Request) -> Response:
        return await self._openai(request, self._rerank)

    async def _rerank(self, body: dict[str, Any]) -> Response:
        params = self._with_model(openai_shapes.rerank_params(body))
        result = await self.bridge.call("rerank", params, OPENAI)
        return JSONResponse(openai_shapes.rerank_response(result, params["model_id"]))

    # --- Anthropic -----------------------------------------------------------------------------
    async def messages(self, request: Request) -> Response:
        return await self._anthropic(request, self._messages)

    async def _messages(self, body: dict[str, Any]) -> Response:
        params = self._with_model(anthropic_shapes.messages_params(body))
        message_id, model = f"msg_{uuid.uuid4().hex[:24]}", params["model_id"]
        if not params.get("streaming", False):
            result = await self.bridge.call("generate", params, ANTHROPIC)
            return JSONResponse(anthropic_shapes.message_response(result, model, message_id))
        subscription = await self.bridge.open_stream("generate", params, ANTHROPIC)
        shaper = anthropic_shapes.MessagesStream(message_id, model, int(subscription.response.get("prompt_tokens", 0)))
        return _sse(_anthropic_events(subscription, shaper))

    async def count_tokens(self, request: Request) -> Response:
        return await self._anthropic(request, self._count_tokens)

    async def _count_tokens(self, body: dict[str, Any]) -> Response:
        params = self._with_model(anthropic_shapes.count_tokens_params(body))
        result = await self.bridge.call("count_tokens", params, ANTHROPIC)
        return JSONResponse(anthropic_shapes.count_tokens_response(result))

    # --- the frame around each endpoint ---------------------------------------------------------
    async def _openai(
        self, request: Request, handle: Callable[[dict[str, Any]], Awaitable[Response]], body: bool = True
    ) -> Response:
        return await self._answer(request, handle, openai_error_body, body)

    async def _anthropic(self, request: Request, handle: Callable[[dict[str, Any]], Awaitable[Response]]) -> Response:
        return await self._answer(request, handle, anthropic_error_body, True)

    async def _answer(
        self,
        request: Request,
        handle: Callable[[dict[str, Any]], Awaitable[Response]],
        error_body: Callable[[HttpError], dict[str, Any]],
        has_body: bool,
    ) -> Response:
        if denied := self._denied(request, error_body):
            return denied
        try:
            body = await _read_json(request, self.options.max_body_bytes) if has_body else {}
            return await _unless_gone(request, handle(body))
        except HttpError as error:
            return _error_response(error, error_body)

    def _denied(self, request: Request, error_body: Callable[[HttpError], dict[str, Any]]) -> Response | None:
        key = self.options.api_key
        if key is None:
            return None
        given = request.headers.get("x-api-key") or _bearer(request.headers.get("authorization", ""))
        if given is not None and hmac.compare_digest(given.encode(), key.encode()):
            return None
        return _error_response(HttpError(401, "a valid API key is required", "authentication_error"), error_body)

    def _with_model(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("model_id"):
            return params
        default = self.options.default_model()
        if default is None:
            raise HttpError(
                400, "model is required (this server has no default model)", "invalid_request_error", "model"
            )
        return {**params, "model_id": default}


# --- bodies, errors, events -----------------------------------------------------------------------
async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"the body is over the {limit}-byte limit", "request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body is over the {limit}-byte limit", "request_too_large")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except ValueError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}", "invalid_request_error") from None
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object", "invalid_request_error")
    return body


async def _unless_gone(request: Request, work: Awaitable[Response]) -> Response:
    """The endpoint's answer, unless the client goes away first: then the work is cancelled, and
    with it its JSON-RPC request (the bridge sends $/cancelRequest: a whole generate stops in the
    engine at once, a load waiting for it stops waiting). Streams go on to their own watch."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, HttpError):
        await task
    return Response(status_code=499)  # nginx's "client closed request": nobody reads it


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _error_response(error: HttpError, error_body: Callable[[HttpError], dict[str, Any]]) -> Response:
    retry_after = error.retry_after_header()
    headers = {"Retry-After": retry_after} if retry_after else None
    return JSONResponse(error_body(error), status_code=error.status, headers=headers)


def _sse(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n"


def _event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n"


async def _openai_events(
    subscription: Subscription,
    first: list[dict[str, Any]],
    chunk: Callable[[dict[str, Any]], list[dict[str, Any]]],
    end: Callable[[dict[str, Any] | None, dict[str, Any]], list[dict[str, Any]]],
) -> AsyncIterator[str]:
    """OpenAI's SSE: `data: {chunk}` lines, then `data: [DONE]`; an engine error mid-stream goes
    out as a `data: {"error": ...}` line, as OpenAI sends it. A disconnect cancels the stream."""
    try:
        for payload in first:
            yield _data(payload)
        stats: dict[str, Any] | None = None
        while True:
            message = await subscription.next()
            method, params = message["method"], message["params"]
            if method == "stream.chunk":
                for payload in chunk(params):
                    yield _data(payload)
            elif method == "stream.stats":
                stats = params
            elif method == "stream.event":
                try:
                    for payload in end(stats, params):
                        yield _data(payload)
                except HttpError as error:
                    yield _data(openai_error_body(error))
                break
        yield "data: [DONE]\n\n"
    finally:
        subscription.cancel()  # a no-op once the stream ended


async def _anthropic_events(subscription: Subscription, shaper: anthropic_shapes.MessagesStream) -> AsyncIterator[str]:
    """Anthropic's SSE: named events in its order, a `ping` when the stream is quiet; an engine
    error mid-stream is an `error` event."""
    try:
        for name, payload in shaper.start():
            yield _event(name, payload)
        yield _event(*anthropic_shapes.ping())  # as Anthropic's API does, right after message_start
        stats: dict[str, Any] | None = None
        while True:
            try:
                message = await asyncio.wait_for(subscription.next(), PING_EVERY_S)
            except asyncio.TimeoutError:  # a long prefill or a queue wait: keep the connection alive
                yield _event(*anthropic_shapes.ping())
                continue
            method, params = message["method"], message["params"]
            if method == "stream.chunk":
                for name, payload in shaper.chunk(params):
                    yield _event(name, payload)
            elif method == "stream.stats":
                stats = params
            elif method == "stream.event":
                try:
                    for name, payload in shaper.end(stats, params):
                        yield _event(name, payload)
                except HttpError as error:
                    yield _event("error", anthropic_error_body(error))
                break
    finally:
        subscription.cancel()
