"""load_model and unload_model.

A load resolves the directory on a background thread (a hub download must not block anything),
then loads the weights on the engine thread between stream steps. Loading an id that is loaded
returns at once; concurrent loads of one id share one load (`SharedLoad`, kept in `Services.loads`).

The background pool is bounded, so no task in it may block on work still queued behind it: a task
that needs a model being loaded (an unload, a draft, load_vision_model) runs that load itself if
no thread has started it yet (`SharedLoad.run_or_wait`). So a pool thread only ever waits on the
engine thread or on a load another thread is running.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

from runtime import faults
from runtime.config import memory_budget_bytes
from runtime.engine.models import LoadedModel, estimate_bytes
from runtime.engine.resolve import resolve
from runtime.methods import drafts
from runtime.methods.context import Handler, Services
from runtime.protocol.dispatch import CallContext, Reply

UNLOAD_STREAM_WAIT_S = 5.0
LOAD_WAIT_S = 600.0


def model_info(loaded: LoadedModel) -> dict[str, Any]:
    return {
        "model_id": loaded.model_id,
        "state": "ready",
        "context_length": loaded.context_length,
        "parameter_count": loaded.parameter_count,
        "dtype": loaded.dtype,
        "is_vision_model": loaded.kind == "vision",
        "vocab_size": loaded.vocab_size,
        "memory_bytes": loaded.memory_bytes,
        "load_time_ms": round(loaded.load_seconds * 1000, 1),
        "source": loaded.source,
        "eos_token_ids": sorted(loaded.tokenizer.eos_token_ids),
        "has_chat_template": bool(getattr(loaded.tokenizer, "chat_template", None)),
        "cpu_weights": loaded.cpu_weights,
    }


# --- loading -----------------------------------------------------------------------------------------
class SharedLoad(Future[dict[str, Any]]):
    """One load of one id: the answer of every load_model of that id meanwhile, run exactly once by
    whichever thread gets to it first (the task submitted for it, or a task that needs the model)."""

    def __init__(self, work: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self._work: Callable[[], dict[str, Any]] | None = work
        self._claim = threading.Lock()

    def run(self) -> None:
        """Do the load here unless a thread has already started it; its outcome is this future's."""
        with self._claim:
            work, self._work = self._work, None
        if work is None:
            return
        try:
            self.set_result(work())
        except BaseException as exc:  # the error is every waiting caller's answer
            self.set_exception(exc)

    def run_or_wait(self) -> dict[str, Any]:
        self.run()
        return self.result(LOAD_WAIT_S)


def load_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Any:
    started = time.perf_counter()  # load_time_ms counts from here: what the host waits for
    _refuse_while_shutting_down(services)
    model_id = params["model_id"]
    loaded = services.store.get(model_id)
    if loaded is not None and params.get("draft_model_id"):
        return services.in_background(partial(_pair_loaded, services, loaded, params))
    if loaded is not None:
        return model_info(loaded)
    with services.loads_lock:
        load = services.loads.get(model_id)
        loaded = services.store.get(model_id)  # a load may have finished since the first look
        if loaded is not None and load is None:
            return model_info(loaded)
        if load is None:
            load = SharedLoad(partial(_load, services, params, started))
            # run() keeps every outcome in `load`. Submitted first: a closed pool registers nothing,
            # and the load's own clean-up waits for this lock, so it cannot end before it is registered.
            services.background.submit(load.run)
            services.loads[model_id] = load
    return Reply(future=load)


def _refuse_while_shutting_down(services: Services) -> None:
    if services.shutting_down:
        raise faults.ShuttingDown("the runtime is shutting down")


def _wait_for_load(load: Future[Any]) -> Any:
    """A load in `services.loads`: run it here if nobody has started it, else wait for it."""
    return load.run_or_wait() if isinstance(load, SharedLoad) else load.result(LOAD_WAIT_S)


def _load(services: Services, params: dict[str, Any], started: float) -> dict[str, Any]:
    """The work of a SharedLoad: load (and pair), then let go of the id."""
    try:
        return _load_and_pair(services, params, started)
    finally:
        with services.loads_lock:
            services.loads.pop(params["model_id"], None)


def _load_and_pair(services: Services, params: dict[str, Any], started: float) -> dict[str, Any]:
    model_id = params["model_id"]
    progress = partial(_progress, services, model_id)
    try:
        progress("resolving", 0.0)
        resolved = resolve(model_id, params.get("local_path"), params.get("revision"))
        room = _check_memory(services, model_id, resolved.path)
        progress("loading", 0.3)
        cpu_weights = params.get("cpu_weights", "auto")
        load = partial(
            services.store.load, model_id, resolved, params.get("context_length"), started, cpu_weights, room
        )
        loaded = services.worker.call(load).result()
        services.metrics.model_loaded(loaded.load_seconds)
        progress("ready", 1.0)
        info = model_info(loaded)
        if params.get("draft_model_id"):
            info["draft"] = _pair_after_load(services, model_id, params)
        return info
    except BaseException:
        progress("failed", 1.0)
        raise


def _pair_loaded(services: Services, loaded: LoadedModel, params: dict[str, Any]) -> dict[str, Any]:
    """A loaded target, paired now with its draft (which may need loading: a background task)."""
    return {**model_info(loaded), "draft": _pair_after_load(services, loaded.model_id, params)}


def _pair_after_load(services: Services, model_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """load_model with draft_model_id: the draft is loaded too (if it is not), then paired."""
    draft_id = params["draft_model_id"]
    _load_here(services, draft_id)
    drafts.pair(services, model_id, draft_id, params.get("num_draft_tokens"))
    return drafts.pairing_of(services, model_id) or {}


def _load_here(services: Services, model_id: str) -> None:
    """Load `model_id` in this thread, or wait for its load in flight; a loaded model returns at once
    (looked at first, so two targets that name each other as drafts never wait on each other)."""
    started = time.perf_counter()
    _refuse_while_shutting_down(services)
    if services.store.get(model_id) is not None:
        return
    with services.loads_lock:
        load = services.loads.get(model_id)
        if load is None and services.store.get(model_id) is not None:
            return
        if load is None:
            load = services.loads[model_id] = SharedLoad(partial(_load, services, {"model_id": model_id}, started))
    _wait_for_load(load)


def _check_memory(services: Services, model_id: str, path: Path) -> int:
    """Refuse a load that would not fit, before reading any weights: the memory budget (MLX's
    memory in use plus the model), and what the system can still give without swapping. Returns
    what both still allow once the model is in (the room cpu_weights fp32 may take)."""
    from runtime.engine.platform import mlx_active_bytes, system_memory

    needed, budget = estimate_bytes(path), memory_budget_bytes(services.limits)
    in_use, available = mlx_active_bytes(), system_memory()["available"]
    mb = 1024 * 1024
    details = {"model_id": model_id, "needed_bytes": needed, "budget_bytes": budget, "in_use_bytes": in_use}
    if needed + in_use > budget:
        raise faults.OutOfMemory(
            f"model {model_id} needs about {needed / mb:.1f} MB; the memory budget is {budget / mb:.1f} MB "
            f"with {in_use / mb:.1f} MB in use",
            **details,
        )
    if available is not None and needed > available:
        raise faults.OutOfMemory(
            f"model {model_id} needs about {needed / mb:.1f} MB; the system has {available / mb:.1f} MB available",
            **details,
            available_bytes=available,
        )
    room = budget - in_use - needed
    return room if available is None else min(room, available - needed)


def _progress(services: Services, model_id: str, stage: str, progress: float) -> None:
    services.notify("model.progress", {"model_id": model_id, "stage": stage, "progress": progress})


# --- unloading ---------------------------------------------------------------------------------------
def unload_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Streams on the model end as cancelled first (they hold the weights); then the engine frees them."""
    model_id = params["model_id"]
    services.unloading.add(model_id)  # from now on no new stream starts on it
    return services.in_background(partial(_unload, services, model_id))


def _unload(services: Services, model_id: str) -> dict[str, Any]:
    try:
        with services.loads_lock:
            loading = services.loads.get(model_id)
        if loading is not None:  # unload what is being loaded: let the load land first
            with contextlib.suppress(Exception):
                _wait_for_load(loading)
        services.lifecycle.cancel_where(model_id=model_id)
        services.streams.wait_idle(UNLOAD_STREAM_WAIT_S, model_id=model_id)
        return services.worker.call(partial(_free, services, model_id)).result()
    finally:
        services.unloading.discard(model_id)


def _free(services: Services, model_id: str) -> dict[str, Any]:
    """Engine thread: drop the model's streams, pairings and weights."""
    from runtime.engine.platform import mlx_active_bytes

    services.worker.forget_model(model_id)
    drafts.forget(services, model_id)
    was_loaded, freed = services.store.unload(model_id)
    return {
        "success": True,
        "model_id": model_id,
        "was_loaded": was_loaded,
        "freed_bytes": freed,
        "mlx_active_bytes": mlx_active_bytes(),
    }


# --- vision ------------------------------------------------------------------------------------------
def load_vision_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Any:
    """Peer-compatible: load_model, then insist on a vision model and describe its processor."""
    outcome = load_model(services, {k: v for k, v in params.items() if k != "quantization"}, ctx)
    if isinstance(outcome, Reply) and outcome.future is not None:  # a load in flight
        return services.in_background(partial(_vision_info_once_loaded, services, params, outcome.future))
    return _vision_info(services, params, outcome)


def _vision_info_once_loaded(services: Services, params: dict[str, Any], loading: Future[Any]) -> dict[str, Any]:
    return _vision_info(services, params, _wait_for_load(loading))


def _vision_info(services: Services, params: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    loaded = services.store.require(params["model_id"])
    if loaded.kind != "vision":
        raise faults.InvalidInput.at("/model_id", f"{params['model_id']} is not a vision model (use load_model)")
    return {**info, **_vision_details(loaded, params)}


def _vision_details(loaded: LoadedModel, params: dict[str, Any]) -> dict[str, Any]:
    processor = loaded.processor
    image_processor = getattr(processor, "image_processor", None)
    crop = getattr(image_processor, "crop_size", None) or getattr(image_processor, "size", None)
    size = _first_of(crop, ("height", "shortest_edge"))
    return {
        "processor_type": type(processor).__name__,
        "image_size": size,
        "revision": params.get("revision", "main"),
        "quantization": params.get("quantization"),
    }


def _first_of(value: Any, keys: tuple[str, ...]) -> int | None:
    """A size from a dict or a transformers SizeDict, whichever the processor keeps."""
    for key in keys:
        found = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        if isinstance(found, int):
            return found
    return None


METHODS: dict[str, Handler] = {
    "load_model": load_model,
    "load_vision_model": load_vision_model,
    "unload_model": unload_model,
}
