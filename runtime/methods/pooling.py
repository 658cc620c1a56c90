"""embed and rerank: short jobs through the same registry, breaker and admission queue as streams.

The request is read (requests/pooling.py), the embedding cache answers what it holds, and the rest
runs on the engine thread as one PoolJob (engine/paths/pooling.py: one bounded forward pass per
engine turn, between decode steps). The response is the job's result; `$/cancelRequest` and
`timeout_ms` end it like a stream. A request with many inputs is read on the preparer thread, so
the reader never tokenizes thousands of texts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from runtime import faults
from runtime.engine.events import Finished
from runtime.engine.jobs import PoolJob, PoolRequest
from runtime.engine.models import LoadedModel
from runtime.methods.context import Handler, Services, request_key, single_machine_only
from runtime.methods.generate import chain
from runtime.protocol.dispatch import CallContext, Reply
from runtime.requests import pooling
from runtime.requests.pooling import EmbedPlan, RerankPlan
from runtime.scheduler.embed_cache import input_key
from runtime.streams.pooled import PooledOutput

INLINE_INPUTS = 64  # more inputs than this (or text than INLINE_CHARS) are read on the preparer thread
INLINE_CHARS = 65536


def embed(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    single_machine_only(services, "embed")
    return _answer(services, params, ctx, _size(params["input"]), _embed)


def rerank(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    single_machine_only(services, "rerank")
    return _answer(services, params, ctx, _size(params["documents"]), _rerank)


Start = Callable[[Services, dict[str, Any], CallContext], Future[Any]]


def _answer(services: Services, params: dict[str, Any], ctx: CallContext, size: tuple[int, int], start: Start) -> Reply:
    if size[0] <= INLINE_INPUTS and size[1] <= INLINE_CHARS:
        return Reply(future=start(services, params, ctx))
    key = request_key(ctx.request_id)
    services.preparing.add(key)
    answer: Future[Any] = Future()

    def prepare_then_start() -> None:
        try:
            chain(start(services, params, ctx), answer)
        except BaseException as exc:
            answer.set_exception(exc)
        finally:
            services.preparing.discard(key)
            services.cancelled_while_preparing.discard(key)

    services.preparer.submit(prepare_then_start)
    return Reply(future=answer)


def _embed(services: Services, params: dict[str, Any], ctx: CallContext) -> Future[Any]:
    loaded = _ready(services, params)
    plan = pooling.embed_plan(services.limits, loaded, params)
    pooler = loaded.pooler
    assert pooler is not None
    cache = services.embed_cache
    keys = [input_key(loaded.model_id, pooler.fingerprint, plan.pooling, ids) for ids in plan.inputs]
    rows: list[bytes | None] = [cache.get(key) for key in keys] if cache.enabled else [None] * len(keys)
    misses = [i for i, row in enumerate(rows) if row is None]

    def complete(event: Finished | None) -> dict[str, Any]:
        computed = event.pooled.rows if event is not None and event.pooled is not None else ()
        for index, row in zip(misses, computed, strict=True):
            rows[index] = data = row.tobytes()
            cache.put(keys[index], data)
        batches = event.pooled.batches if event is not None and event.pooled is not None else 0
        return _embed_result(loaded, plan, [r for r in rows if r is not None], misses, batches)

    if not misses:
        answer: Future[Any] = Future()
        answer.set_result(complete(None))
        return answer
    request = PoolRequest("embed", tuple(plan.inputs[i] for i in misses), plan.pooling)  # type: ignore[arg-type]
    return _run(services, params, ctx, loaded, request, complete, "embed")


def _rerank(services: Services, params: dict[str, Any], ctx: CallContext) -> Future[Any]:
    loaded = _ready(services, params)
    plan = pooling.rerank_plan(services.limits, loaded, params)

    def complete(event: Finished) -> dict[str, Any]:
        assert event.pooled is not None
        return _rerank_result(loaded, plan, [float(s) for s in event.pooled.rows], event.pooled.batches)

    return _run(services, params, ctx, loaded, PoolRequest("score", tuple(plan.inputs)), complete, "rerank")


def _ready(services: Services, params: dict[str, Any]) -> LoadedModel:
    if services.shutting_down:
        raise faults.ShuttingDown("the runtime is shutting down")
    loaded = services.store.require(params["model_id"])
    if loaded.model_id in services.unloading:
        raise faults.ModelNotLoaded(f"Model is being unloaded: {loaded.model_id}", model_id=loaded.model_id)
    return loaded


def _run(
    services: Services,
    params: dict[str, Any],
    ctx: CallContext,
    loaded: LoadedModel,
    request: PoolRequest,
    complete: Callable[[Finished], Any],
    what: str,
) -> Future[Any]:
    """Register the job, reserve its place, queue it; its answer is the job's result."""
    if request_key(ctx.request_id) in services.cancelled_while_preparing:
        raise faults.Cancelled(f"the {what} request was cancelled before it started")
    answer: Future[Any] = Future()
    job_id = f"{what}-{uuid.uuid4().hex[:12]}"
    submitted_at = time.perf_counter()
    timeout_ms = params.get("timeout_ms")
    deadline = submitted_at + timeout_ms / 1000 if timeout_ms else None
    handle = services.lifecycle.open(job_id, loaded.model_id, ctx.request_id, PooledOutput(answer, complete, what))
    job = PoolJob(job_id, loaded, request, handle, handle.record.cancel, submitted_at, deadline)
    services.lifecycle.start(handle, job, params.get("priority", "normal"), deadline)
    return answer


def _embed_result(
    loaded: LoadedModel, plan: EmbedPlan, rows: list[bytes], computed: list[int], batches: int
) -> dict[str, Any]:
    vectors = pooling.finish_vectors(rows, plan)
    tokens = sum(len(ids) for ids in plan.inputs)
    computed_tokens = sum(len(plan.inputs[i]) for i in computed)
    return {
        "model_id": loaded.model_id,
        "data": [{"index": i, "embedding": vector} for i, vector in enumerate(vectors)],
        "dimensions": _dimensions(rows[0], plan),
        "encoding_format": plan.encoding,
        "truncated": plan.truncated,
        "usage": {
            "prompt_tokens": tokens,
            "total_tokens": tokens,
            "cached_inputs": len(plan.inputs) - len(computed),
            "cached_tokens": tokens - computed_tokens,
        },
        "batches": batches,
    }


def _rerank_result(loaded: LoadedModel, plan: RerankPlan, scores: list[float], batches: int) -> dict[str, Any]:
    tokens = sum(len(ids) for ids in plan.inputs)
    return {
        "model_id": loaded.model_id,
        "results": pooling.ranked(plan, scores),
        "truncated": plan.truncated,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "batches": batches,
    }


def _dimensions(row: bytes, plan: EmbedPlan) -> int:
    pooled = len(row) // 4  # float32
    return min(plan.dimensions, pooled) if plan.dimensions else pooled


def _size(value: Any) -> tuple[int, int]:
    """How many inputs and characters a request carries (before it is read)."""
    if isinstance(value, str):
        return 1, len(value)
    if not isinstance(value, list):
        return 0, 0
    return len(value), sum(len(v) for v in value if isinstance(v, str | list))


METHODS: dict[str, Handler] = {"embed": embed, "rerank": rerank}
