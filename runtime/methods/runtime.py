"""runtime/info, runtime/state and shutdown: control methods, answered on the reader thread."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from functools import partial
from typing import Any

from runtime import PROTOCOL, __version__
from runtime.engine.models import LoadedModel
from runtime.methods import drafts, registry
from runtime.methods.context import Handler, Services
from runtime.protocol.dispatch import CallContext, Reply

FEATURES = [
    "logprobs",
    "top_logprobs",
    "stop_sequences",
    "seed",
    "chat_messages",
    "model_progress",
    "guidance",
    "response_format",
    "speculative_decoding",
    "vision",
    "prompt_cache",
    "sessions",
    "metrics",
    "model_registry",
    "keep_alive",
    "load_on_demand",
]


def identity(services: Services) -> dict[str, Any]:
    """Who is answering: the same in runtime/ready and runtime/info."""
    from runtime.engine import platform

    described = platform.describe()
    return {
        "version": __version__,
        "protocol": PROTOCOL,
        "mlx_version": described["mlx_version"],
        "backend": described["backend"],
        "device": described["device"],
        "capabilities": services.capabilities + FEATURES,
    }


def info(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    from runtime.engine import native, platform

    return {
        **platform.describe(),
        **identity(services),
        "mlx_supported": True,  # peer compatibility: a runtime that answers runs MLX
        "blas": services.blas,
        "native": native.status(),
        "memory": platform.memory(),
        "thermal": platform.thermal(),
        "pid": os.getpid(),
        "limits": services.limits.as_dict(),
        "distributed": None if services.group is None else services.group.describe(),
    }


def state(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    now = time.monotonic()
    streams = services.streams.active()
    with services.loads_lock:
        loading = sorted(services.loads)
    loaded = [_model_state(services, m) for m in services.store.all()]
    return {
        "loaded_models": loaded,
        "ready_models": [m["model_id"] for m in loaded if m["state"] == "ready"],
        "loading_models": loading,
        "active_streams": len(streams),
        "streams": [
            {
                "stream_id": r.stream_id,
                "model_id": r.model_id,
                "state": r.state.value,
                "tokens_generated": r.tokens_generated,
                "path": r.path,
                "handovers": r.handovers,
                "age_ms": round((now - r.created_at) * 1000),
            }
            for r in streams
        ],
        "queue_depth": services.queue.queued(),
        "queue": services.queue.snapshot(),
        "engine_calls_pending": services.worker.pending_calls(),
        "breaker": services.breaker.snapshot(),
        "limits": services.limits.as_dict(),
        "outbound_queue": services.writer.queued(),
        "streams_finished": services.streams.finished_total,
        "restart_count": 0,
        "uptime_s": round(time.time() - services.started_at, 3),
        "shutting_down": services.shutting_down,
        "thermal": services.thermal.snapshot() if services.thermal else None,
        "distributed": None if services.group is None else services.group.state(),
    }


def _model_state(services: Services, loaded: LoadedModel) -> dict[str, Any]:
    state = {
        "model_id": loaded.model_id,
        "state": registry.state_of(services, loaded.model_id, loaded),
        "type": loaded.kind,
        "guides": loaded.guides.stats(),
        "prompt_cache": loaded.prompt_cache.stats(),
        "keep_alive": services.lifecycle.timers.snapshot(loaded.model_id),
    }
    pairing = drafts.pairing_of(services, loaded.model_id)
    if pairing:
        state["draft"] = pairing
    return state


def shutdown(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Ends (or with drain, finishes) every stream, unloads models, answers, then the process exits."""
    done = services.begin_shutdown(params.get("drain", False), params.get("timeout_ms", 30000) / 1000)
    answered: Future[Any] = Future()
    done.add_done_callback(lambda _: answered.set_result({"success": True}))
    return Reply(future=answered, after_send=partial(services.request_exit, 0))


METHODS: dict[str, Handler] = {
    "runtime/info": info,
    "runtime/state": state,
    "shutdown": shutdown,
}
