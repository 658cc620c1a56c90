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
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

from runtime import faults
from runtime.catalog import FOREVER, LOCAL, ModelEntry, looks_like_path, outside_allowed, parse_keep_alive
from runtime.config import memory_budget_bytes
from runtime.engine.models import KvPolicy, LoadedModel, estimate_bytes
from runtime.engine.resolve import ResolvedModel, resolve
from runtime.engine.weights import CpuWeights
from runtime.methods import drafts
from runtime.methods.context import Handler, Services, request_key
from runtime.protocol.dispatch import CallContext, Reply

log = logging.getLogger(__name__)
UNLOAD_STREAM_WAIT_S = 5.0
UNLOAD_WAIT_S = 120.0
DRAIN_WAIT_S = 60.0  # switch_policy drain: how long an evicted model's streams may run on
LOAD_WAIT_S = 600.0
LOW_MEMORY_KV_BITS = 8  # mlx-lm's quantized KV cache: about half of fp16's memory, near-identical text
LOW_MEMORY_CONTEXT = 4096  # low-memory mode: the longest context a model serves (prompt tokens)


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
        "kv_cache": loaded.kv.describe(),
    }


# --- loading -----------------------------------------------------------------------------------------
class SharedLoad(Future[dict[str, Any]]):
    """One load of one id: the answer of every load_model of that id meanwhile, run exactly once by
    whichever thread gets to it first (the task submitted for it, or a task that needs the model)."""

    def __init__(self, work: Callable[[], dict[str, Any]], cancel: threading.Event | None = None) -> None:
        super().__init__()
        self._work: Callable[[], dict[str, Any]] | None = work
        self._claim = threading.Lock()
        # Set once every request waiting on it was cancelled: a download stops (resumable).
        self.stopped = cancel or threading.Event()
        self.requests: set[str] = set()  # keys (context.request_key) of the requests waiting on it

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


class Unset:
    """No keep-alive given (None already means "never")."""


UNSET = Unset()


@dataclass(frozen=True)
class LoadSpec:
    """One load: the id it is served under, where its weights come from, and how long it stays."""

    model_id: str
    source: str  # what resolve() looks up: an embedded name, a hub repo or path, or the id itself
    local_path: str | None = None
    revision: str | None = None
    context_length: int | None = None
    cpu_weights: CpuWeights = "auto"
    draft_model_id: str | None = None
    num_draft_tokens: int | None = None
    keep_alive: float | None = FOREVER  # seconds idle before it is unloaded; None: never
    pinned: bool = False
    kv: KvPolicy = KvPolicy()  # low-memory mode: a quantized or bounded KV cache


def load_spec(services: Services, params: dict[str, Any], on_demand: bool = False) -> LoadSpec:
    """The wire's params over the registry entry's options. A host that loads by hand keeps the model
    until it unloads it (keep-alive -1) unless it says otherwise; a load on demand gets the
    runtime's `keep_alive` default (Ollama's 5 minutes)."""
    entry = services.catalog.lookup(params["model_id"])
    model_id = entry.model_id if entry else params["model_id"]
    options = {**(entry.load if entry else {}), **params}
    local_path = params.get("local_path") or (entry.name if entry and entry.kind == LOCAL else None)
    _check_local_policy(services, params, local_path)
    draft = params.get("draft_model_id") or (entry.draft_model_id if entry else None)
    return LoadSpec(
        model_id=model_id,
        source=entry.name if entry and entry.kind != LOCAL else model_id,
        local_path=local_path,
        revision=params.get("revision") or (entry.revision if entry else None),
        context_length=options.get("context_length"),
        cpu_weights=options.get("cpu_weights", "auto"),
        draft_model_id=services.catalog.canonical(draft) if draft else None,
        num_draft_tokens=params.get("num_draft_tokens") or (entry.num_draft_tokens if entry else None),
        keep_alive=_keep_alive(services, params, entry, on_demand),
        pinned=bool(entry and entry.pinned),
        kv=_kv_policy(services, options),
    )


def _kv_policy(services: Services, options: dict[str, Any]) -> KvPolicy:
    """kv_bits / max_kv_size as given; `low_memory` (the runtime's or the model's) adds an 8-bit
    cache (unless a max_kv_size is given) and caps the context served at 4096 tokens."""
    bits, max_size = options.get("kv_bits"), options.get("max_kv_size")
    if bits is not None and max_size is not None:  # mlx-lm cannot quantize a rotating cache
        raise faults.InvalidInput.at("/max_kv_size", "max_kv_size cannot be combined with kv_bits (choose one)")
    if not options.get("low_memory", services.limits.low_memory):
        return KvPolicy(bits=bits, max_size=max_size)
    if max_size is None and bits is None:
        bits = LOW_MEMORY_KV_BITS
    return KvPolicy(bits=bits, max_size=max_size, max_context=LOW_MEMORY_CONTEXT)


def _keep_alive(services: Services, params: dict[str, Any], entry: ModelEntry | None, on_demand: bool) -> float | None:
    if "keep_alive" in params:
        try:
            return parse_keep_alive(params["keep_alive"])
        except ValueError as exc:
            raise faults.InvalidInput.at("/keep_alive", str(exc)) from None
    if entry is not None and entry.keep_alive_set:
        return entry.keep_alive
    return parse_keep_alive(services.limits.keep_alive) if on_demand else FOREVER


def _check_local_policy(services: Services, params: dict[str, Any], local_path: str | None) -> None:
    """With `model_dirs` set, local models load only from those directories."""
    if not services.limits.model_dirs:
        return
    candidates = [("/local_path", local_path)] if local_path else []
    if not local_path and looks_like_path(params["model_id"]):
        candidates.append(("/model_id", params["model_id"]))
    for where, path in candidates:
        problem = outside_allowed(str(path), services.limits.model_dirs)
        if problem:
            raise faults.InvalidInput.at(where, problem)


def load_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Any:
    started = time.perf_counter()  # load_time_ms counts from here: what the host waited for
    _refuse_while_shutting_down(services)
    spec = load_spec(services, params)
    loaded = services.store.get(spec.model_id)
    if loaded is not None and spec.model_id not in services.unloading:
        if "keep_alive" in params:
            services.lifecycle.timers.set_keep_alive(spec.model_id, spec.keep_alive)
        if params.get("draft_model_id"):
            return services.in_background(partial(_pair_loaded, services, loaded, spec))
        return model_info(loaded)
    load = shared_load(services, spec, started)
    if isinstance(load, dict):
        return load
    if not ctx.is_notification:
        watch(services, load, request_key(ctx.request_id))
    return Reply(future=load)


def shared_load(services: Services, spec: LoadSpec, started: float) -> SharedLoad | dict[str, Any]:
    """The load of `spec.model_id` in flight, or a new one on the background pool; the model's info
    if it landed meanwhile."""
    with services.loads_lock:
        load = services.loads.get(spec.model_id)
        loaded = services.store.get(spec.model_id)  # a load may have finished since the first look
        if loaded is not None and load is None and spec.model_id not in services.unloading:
            return model_info(loaded)
        if load is None:
            cancel = threading.Event()
            load = SharedLoad(partial(_load, services, spec, started, cancel), cancel)
            # run() keeps every outcome in `load`. Submitted first: a closed pool registers nothing,
            # and the load's own clean-up waits for this lock, so it cannot end before it is registered.
            services.background.submit(load.run)
            services.loads[spec.model_id] = load
    return cast(SharedLoad, load)


def ensure_loaded(
    services: Services, name: str, keep_alive: float | None | Unset = UNSET, waiter: str | None = None
) -> LoadedModel:
    """Load a registered model on demand (or wait for its load in flight), in this pool thread.
    `waiter` is the request key whose $/cancelRequest may stop the load (when nobody else waits)."""
    _refuse_while_shutting_down(services)
    params: dict[str, Any] = {"model_id": name}
    if not isinstance(keep_alive, Unset):
        params["keep_alive"] = -1 if keep_alive is None else keep_alive
    spec = load_spec(services, params, on_demand=True)
    outcome = shared_load(services, spec, time.perf_counter())
    if isinstance(outcome, SharedLoad):
        if waiter is not None:
            watch(services, outcome, waiter)
        _wait_for_load(outcome)
    return services.store.require(spec.model_id)


def watch(services: Services, load: SharedLoad, key: str) -> None:
    """The request `key` waits on `load` until it ends."""
    with services.loads_lock:
        load.requests.add(key)
        services.load_waiters[key] = load

    def forget(_: Future[Any]) -> None:
        with services.loads_lock:
            if services.load_waiters.get(key) is load:
                del services.load_waiters[key]

    load.add_done_callback(forget)


def stop_waiting(services: Services, key: str) -> bool:
    """$/cancelRequest of a request waiting on a load: the load stops when nobody else waits."""
    with services.loads_lock:
        load = services.load_waiters.pop(key, None)
        if not isinstance(load, SharedLoad):
            return False
        load.requests.discard(key)
        if not load.requests:
            load.stopped.set()
    return True


def _refuse_while_shutting_down(services: Services) -> None:
    if services.shutting_down:
        raise faults.ShuttingDown("the runtime is shutting down")


def _wait_for_load(load: Future[Any]) -> Any:
    """A load in `services.loads`: run it here if nobody has started it, else wait for it."""
    return load.run_or_wait() if isinstance(load, SharedLoad) else load.result(LOAD_WAIT_S)


def _load(services: Services, spec: LoadSpec, started: float, cancel: threading.Event) -> dict[str, Any]:
    """The work of a SharedLoad: load (and pair), then let go of the id."""
    try:
        return _load_and_pair(services, spec, started, cancel)
    finally:
        with services.loads_lock:
            services.loads.pop(spec.model_id, None)
            services.model_states.pop(spec.model_id, None)


def _load_and_pair(services: Services, spec: LoadSpec, started: float, cancel: threading.Event) -> dict[str, Any]:
    model_id = spec.model_id
    progress = partial(_progress, services, model_id)
    _wait_for_unload(services, model_id)
    try:
        progress("resolving", 0.0)
        resolved = resolve(spec.source, spec.local_path, spec.revision, _on_download(services, model_id), cancel)
        if cancel.is_set():  # every request waiting for it was cancelled: read no weights
            raise faults.Cancelled(f"the load of {model_id} was cancelled")
        room = make_room(services, spec, resolved.path)
        try:
            progress("loading", 0.3)
            loaded = _load_on_engine(services, spec, resolved, started, room)
        finally:
            services.reserved_bytes.pop(model_id, None)
        services.lifecycle.timers.track(model_id, spec.keep_alive, spec.pinned)
        services.metrics.model_loaded(loaded.load_seconds)
        progress("ready", 1.0)
        info = model_info(loaded)
        if spec.draft_model_id:
            info["draft"] = _pair_after_load(services, spec)
        return info
    except BaseException:
        progress("failed", 1.0)
        raise


def _load_on_engine(
    services: Services, spec: LoadSpec, resolved: ResolvedModel, started: float, room: int
) -> LoadedModel:
    """Two engine calls: the weights, then a one-token warm-up; only then is the model ready (in
    the store). "warming" is sent between them, in order with the other stages."""
    store = services.store
    weights = services.worker.call(partial(store.read, spec.model_id, resolved, spec.cpu_weights, room)).result()
    _progress(services, spec.model_id, "warming", 0.9)
    return services.worker.call(partial(store.admit, weights, spec.context_length, started, spec.kv)).result()


def _pair_loaded(services: Services, loaded: LoadedModel, spec: LoadSpec) -> dict[str, Any]:
    """A loaded target, paired now with its draft (which may need loading: a background task)."""
    return {**model_info(loaded), "draft": _pair_after_load(services, spec)}


def _pair_after_load(services: Services, spec: LoadSpec) -> dict[str, Any]:
    """A load with a draft: the draft is loaded too (if it is not), then paired."""
    assert spec.draft_model_id is not None
    _load_here(services, spec.draft_model_id)
    drafts.pair(services, spec.model_id, spec.draft_model_id, spec.num_draft_tokens)
    return drafts.pairing_of(services, spec.model_id) or {}


def _load_here(services: Services, model_id: str) -> None:
    """Load `model_id` in this thread, or wait for its load in flight; a loaded model returns at once
    (looked at first, so two targets that name each other as drafts never wait on each other)."""
    started = time.perf_counter()
    _refuse_while_shutting_down(services)
    if services.store.get(model_id) is not None:
        return
    spec = load_spec(services, {"model_id": model_id})
    with services.loads_lock:
        load = services.loads.get(spec.model_id)
        if load is None and services.store.get(spec.model_id) is not None:
            return
        if load is None:
            cancel = threading.Event()
            load = SharedLoad(partial(_load, services, spec, started, cancel), cancel)
            services.loads[spec.model_id] = load
    _wait_for_load(load)


def _on_download(services: Services, model_id: str) -> Callable[[Any], None]:
    """model.progress notifications of a hub download's stage "downloading" (bytes, rate, ETA)."""
    from runtime.engine.download import DownloadProgress

    def notify(step: DownloadProgress) -> None:
        done, total = step.bytes_done, step.bytes_total
        services.model_states[model_id] = "downloading"
        services.notify(
            "model.progress",
            {
                "model_id": model_id,
                "stage": "downloading",
                "progress": min(1.0, done / total) if total else 1.0,
                "bytes_done": done,
                "bytes_total": total,
                "rate_bytes_per_s": round(step.rate_bytes_per_s, 1),
                "eta_s": None if step.eta_s is None else round(step.eta_s, 1),
                "file": step.file,
            },
        )

    return notify


# --- making room -------------------------------------------------------------------------------------
def make_room(services: Services, spec: LoadSpec, path: Path) -> int:
    """Unload idle (then, by `switch_policy`, busy) unpinned models, least recently used first, until
    the load fits `max_loaded_models` and the memory; reserve its memory. Returns the room left."""
    needed = estimate_bytes(path)
    with services.room_lock:
        while _over_count(services, spec):
            if not _evict_one(services, spec):
                raise faults.OutOfMemory(
                    f"cannot load {spec.model_id}: {services.limits.max_loaded_models} models are loaded "
                    "(max_loaded_models) and none of them may be unloaded (pinned, or a draft of this load)",
                    model_id=spec.model_id,
                    max_loaded_models=services.limits.max_loaded_models,
                    loaded_models=[m.model_id for m in services.store.all()],
                )
        while True:
            try:
                room = _check_memory(services, spec.model_id, needed)
                break
            except faults.OutOfMemory as exc:
                if not _evict_one(services, spec):
                    exc.details["loaded_models"] = [m.model_id for m in services.store.all()]
                    raise
        services.reserved_bytes[spec.model_id] = needed
        return room


def _over_count(services: Services, spec: LoadSpec) -> bool:
    limit = services.limits.max_loaded_models
    if not limit:
        return False
    others = {m.model_id for m in services.store.all()} | set(services.reserved_bytes)
    others.discard(spec.model_id)
    return len(others) >= limit


def _evict_one(services: Services, spec: LoadSpec) -> bool:
    """Unload the best candidate (idle before busy, least recently used first); False if none."""
    timers = services.lifecycle.timers
    keep = {spec.model_id, spec.draft_model_id}
    candidates = [
        m.model_id
        for m in services.store.all()
        if m.model_id not in keep and m.model_id not in services.unloading and not timers.snapshot(m.model_id)["pinned"]
    ]
    if not candidates:
        return False
    victim = min(candidates, key=lambda m: (not timers.is_idle(m), timers.last_used(m)))
    log.info("unloading %s to make room for %s", victim, spec.model_id)
    services.unloading.add(victim)
    unload_here(services, victim, drain=services.limits.switch_policy == "drain")
    return True


def _check_memory(services: Services, model_id: str, needed: int) -> int:
    """Refuse a load that would not fit, before reading any weights: the memory budget (MLX's
    memory in use, plus what loads in flight reserved, plus the model), and what the system can
    still give without swapping. Returns what both still allow once the model is in (the room
    cpu_weights fp32 may take)."""
    from runtime.engine.platform import mlx_active_bytes, system_memory

    budget = memory_budget_bytes(services.limits)
    in_use = mlx_active_bytes() + sum(b for m, b in services.reserved_bytes.items() if m != model_id)
    available = system_memory()["available"]
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


STAGE_STATES = {"resolving": "loading", "downloading": "downloading", "loading": "loading", "warming": "warming"}


def _progress(services: Services, model_id: str, stage: str, progress: float) -> None:
    state = STAGE_STATES.get(stage)
    if state is not None:
        services.model_states[model_id] = state
    services.notify("model.progress", {"model_id": model_id, "stage": stage, "progress": progress})


# --- unloading ---------------------------------------------------------------------------------------
def unload_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Streams on the model end as cancelled first (they hold the weights); then the engine frees them."""
    model_id = services.catalog.canonical(params["model_id"])
    services.unloading.add(model_id)  # from now on no new stream starts on it
    return services.in_background(partial(unload_here, services, model_id))


def unload_here(services: Services, model_id: str, drain: bool = False) -> dict[str, Any]:
    """Unload in this thread. A load of the id in flight lands first; an unload of it in flight ends
    first (then this one finds the model gone: one unload reports was_loaded). With `drain`, the
    model's streams may finish first (up to DRAIN_WAIT_S); whatever is left is cancelled."""
    services.unloading.add(model_id)  # from now on no new stream starts on it
    try:
        _let_load_land(services, model_id)
        mine = _claim_unload(services, model_id)
        try:
            result = _unload(services, model_id, drain)
            mine.set_result(result)
            return result
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        finally:
            with services.loads_lock:
                services.unloads.pop(model_id, None)
    finally:
        services.model_states.pop(model_id, None)
        services.unloading.discard(model_id)


def _let_load_land(services: Services, model_id: str) -> None:
    with services.loads_lock:
        loading = services.loads.get(model_id)
    if loading is not None:  # unload what is being loaded: let the load land first
        with contextlib.suppress(Exception):
            _wait_for_load(loading)


def _claim_unload(services: Services, model_id: str) -> Future[dict[str, Any]]:
    """Become the one unload of `model_id` in flight (loads started later wait for it)."""
    while True:
        with services.loads_lock:
            running = services.unloads.get(model_id)
            if running is None:
                mine: Future[dict[str, Any]] = Future()
                services.unloads[model_id] = mine
                return mine
        with contextlib.suppress(Exception):
            running.result(UNLOAD_WAIT_S)


def _wait_for_unload(services: Services, model_id: str) -> None:
    with services.loads_lock:
        running = services.unloads.get(model_id)
    if running is not None:
        with contextlib.suppress(Exception):
            running.result(UNLOAD_WAIT_S)


def _unload(services: Services, model_id: str, drain: bool) -> dict[str, Any]:
    services.model_states[model_id] = "unloading"
    if drain:
        services.streams.wait_idle(DRAIN_WAIT_S, model_id=model_id)
    services.lifecycle.cancel_where(model_id=model_id)
    services.streams.wait_idle(UNLOAD_STREAM_WAIT_S, model_id=model_id)
    return services.worker.call(partial(_free, services, model_id)).result()


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
