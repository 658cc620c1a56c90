"""Unloads: by hand (unload_model), by keep-alive, and to make room for another model.

An unload is claimed the moment it is decided (`begin_unload`, under `loads_lock`): the model is
marked unloading (no new stream starts on it) and the unload's future is registered, together with
the load of the same id in flight at that moment, if any. Loads and unloads of one id thus form one
order, fixed under one lock: a load waits only for unloads claimed before it was created, an unload
only for the load in flight when it was claimed, so neither can wait on the other in a cycle.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from runtime.methods import drafts
from runtime.methods.context import Services
from runtime.methods.shared import wait_for

UNLOAD_STREAM_WAIT_S = 5.0
UNLOAD_WAIT_S = 120.0
DRAIN_WAIT_S = 60.0  # switch_policy drain: how long an evicted model's streams may run on


@dataclass
class Unload:
    model_id: str
    done: Future[dict[str, Any]]
    previous: Future[dict[str, Any]] | None  # an unload of the same id claimed before this one
    landing: Future[Any] | None  # the load of the id in flight when this unload was claimed


def begin_unload(services: Services, model_id: str) -> Unload:
    """Claim an unload of `model_id` now; `run_unload` (any thread) carries it out."""
    with services.loads_lock:
        services.unloading.add(model_id)
        unload = Unload(model_id, Future(), services.unloads.get(model_id), services.loads.get(model_id))
        services.unloads[model_id] = unload.done
    return unload


def run_unload(services: Services, unload: Unload, drain: bool = False) -> dict[str, Any]:
    """Wait for what came before it (an earlier unload, the load in flight), end or drain the
    model's streams, free it. Concurrent unloads run one after another: one reports was_loaded."""
    model_id = unload.model_id
    try:
        if unload.previous is not None:
            with contextlib.suppress(Exception):
                unload.previous.result(UNLOAD_WAIT_S)
        if unload.landing is not None:
            with contextlib.suppress(Exception):
                wait_for(unload.landing)
        result = _unload(services, model_id, drain)
        unload.done.set_result(result)
        return result
    except BaseException as exc:
        unload.done.set_exception(exc)
        raise
    finally:
        _release(services, unload)


def abandon_unload(services: Services, unload: Unload) -> None:
    """An unload claimed and then not wanted (a stream arrived first): nothing was unloaded."""
    unload.done.set_result({"success": True, "model_id": unload.model_id, "was_loaded": False, "freed_bytes": 0})
    _release(services, unload)


def _release(services: Services, unload: Unload) -> None:
    with services.loads_lock:
        if services.unloads.get(unload.model_id) is unload.done:
            del services.unloads[unload.model_id]
        if services.model_states.get(unload.model_id) == "unloading":
            del services.model_states[unload.model_id]
    services.unloading.discard(unload.model_id)


def unloads_before(services: Services, model_id: str) -> Future[dict[str, Any]] | None:
    """The unload a load created now must wait for (call under `loads_lock`)."""
    return services.unloads.get(model_id)


def _unload(services: Services, model_id: str, drain: bool) -> dict[str, Any]:
    services.model_states[model_id] = "unloading"
    if drain:
        services.streams.wait_idle(DRAIN_WAIT_S, model_id=model_id)
    services.lifecycle.cancel_where(model_id=model_id)
    services.streams.wait_idle(UNLOAD_STREAM_WAIT_S, model_id=model_id)
    op = {"op": "unload", "model_id": model_id}
    return services.worker.call_mirrored(op, partial(_free, services, model_id)).result()


def _free(services: Services, model_id: str) -> dict[str, Any]:
    """Engine thread: drop the model's streams, pairings, timers, checks and weights."""
    from runtime.engine.platform import mlx_active_bytes

    services.worker.forget_model(model_id)
    drafts.forget(services, model_id)
    services.lifecycle.timers.forget(model_id)
    for pair in [k for k in services.draft_checks if model_id in (k[0], k[2])]:
        services.draft_checks.pop(pair, None)
    for loaded_key in [k for k in services.fingerprints if k[0] == model_id]:
        services.fingerprints.pop(loaded_key, None)
    was_loaded, freed = services.store.unload(model_id)
    return {
        "success": True,
        "model_id": model_id,
        "was_loaded": was_loaded,
        "freed_bytes": freed,
        "mlx_active_bytes": mlx_active_bytes(),
    }
