"""Loads: resolve (a hub download if need be), make room, read the weights and warm up on the
engine thread, pair the draft. One `SharedLoad` per id in flight, in `Services.loads`.

Who waits, and how:
- a request (load_model, or a method that names a registered model) gets its own answer future,
  chained to the load (`answer_when_loaded`): no thread waits for it, and `$/cancelRequest` ends
  that request's wait at once; the load itself stops when no request and no holder waits any more;
- the runtime's own waiters (a target's draft, the default model at start) hold the load
  (`holders`) and wait in their thread; such a thread only ever waits on a load another thread is
  running, or runs it itself (`SharedLoad.run_or_wait`), so the bounded pool cannot deadlock.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import asdict, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from runtime import faultinject, faults
from runtime.engine.models import LoadedModel
from runtime.engine.resolve import ResolvedModel, resolve
from runtime.methods import drafts
from runtime.methods.context import Services, group_intact
from runtime.methods.room import make_room, release_reservation
from runtime.methods.shared import SharedLoad, wait_for
from runtime.methods.spec import UNSET, LoadSpec, Unset, draft_spec, load_spec
from runtime.methods.unloading import unloads_before

if TYPE_CHECKING:
    from runtime.engine.pooling import Pooler


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
        "eos_token_ids": sorted(getattr(loaded.tokenizer, "eos_token_ids", None) or ()),
        "has_chat_template": bool(getattr(loaded.tokenizer, "chat_template", None)),
        "cpu_weights": loaded.cpu_weights,
        "kv_cache": loaded.kv.describe(),
        "task": loaded.task,
        **({"parallel": loaded.parallel} if loaded.parallel is not None else {}),
        **({"pooling": pooling_info(loaded.pooler)} if loaded.pooler is not None else {}),
    }


def pooling_info(pooler: Pooler) -> dict[str, Any]:
    """What an embedder or reranker is, for model_info and models/list."""
    info: dict[str, Any] = {"family": pooler.family, "max_length": pooler.max_length}
    if pooler.task == "embed":
        info.update(dimensions=pooler.dimensions, pooling=pooler.pooling, poolings=list(pooler.poolings))
        info["prompts"] = sorted(pooler.prompts)
    return info


def refuse_while_shutting_down(services: Services) -> None:
    if services.shutting_down:
        raise faults.ShuttingDown("the runtime is shutting down")


# --- one load per id ----------------------------------------------------------------------------
def shared_load(services: Services, spec: LoadSpec, started: float, submit: bool = True) -> SharedLoad | None:
    """The load of `spec.model_id` in flight, or a new one (on the background pool when `submit`);
    None when the model is loaded and not being unloaded. A load whose every waiter was cancelled
    is not joined: a fresh one starts after it."""
    with services.loads_lock:
        load = services.loads.get(spec.model_id)
        if isinstance(load, SharedLoad) and not load.stopped.is_set():
            return load
        if load is None and services.store.get(spec.model_id) is not None and spec.model_id not in services.unloading:
            return None
        stopped = threading.Event()
        after = (load, unloads_before(services, spec.model_id))
        fresh = SharedLoad(partial(_load, services, spec, started, stopped, after), stopped)
        if submit:  # first: a closed pool raises here and registers nothing
            services.background.submit(fresh.run)
        services.loads[spec.model_id] = fresh
        return fresh


def answer_when_loaded(services: Services, load: SharedLoad, key: str | None, answer: Future[Any]) -> None:
    """`answer` gets the load's outcome; the request `key` may cancel its own wait."""
    if key is not None:
        with services.loads_lock:
            load.requests.add(key)
            services.load_waiters.setdefault(key, []).append((load, answer))

    def landed(done: Future[Any]) -> None:
        if key is not None:
            with services.loads_lock:
                load.requests.discard(key)
                waits = services.load_waiters.get(key, [])
                if (load, answer) in waits:
                    waits.remove((load, answer))
                if not waits:
                    services.load_waiters.pop(key, None)
        error = done.exception()
        settle(answer, None if error else done.result(), error)

    load.add_done_callback(landed)


def stop_waiting(services: Services, key: str) -> bool:
    """$/cancelRequest of a request waiting for loads: its answers fail with -32009 now, and each
    load stops when nobody else waits for it."""
    with services.loads_lock:
        waits = services.load_waiters.pop(key, [])
        for load, _ in waits:
            load.requests.discard(key)
            if not load.requests and not load.holders:
                load.stopped.set()
    for _, answer in waits:
        settle(answer, None, faults.Cancelled("the request was cancelled while its model was loading"))
    return bool(waits)


def stop_all_loads(services: Services) -> None:
    """Shutdown: every load in flight stops at its next check (a download stops resumably)."""
    with services.loads_lock:
        for load in services.loads.values():
            if isinstance(load, SharedLoad):
                load.stopped.set()


def settle(answer: Future[Any], result: Any, error: BaseException | None) -> None:
    """Set a future once; a second outcome (a cancel racing a landing) is dropped."""
    try:
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(result)
    except InvalidStateError:
        pass


def hold_and_wait(services: Services, spec: LoadSpec) -> None:
    """The runtime's own wait for a model (a draft, the default model): it cannot be cancelled by a
    request; runs the load here if nobody has started it."""
    load = shared_load(services, spec, time.perf_counter(), submit=False)
    if load is None:
        return
    with services.loads_lock:
        load.holders += 1
    try:
        wait_for(load)
    finally:
        with services.loads_lock:
            load.holders -= 1


# --- the work of a load --------------------------------------------------------------------------
def _load(
    services: Services,
    spec: LoadSpec,
    started: float,
    stopped: threading.Event,
    after: tuple[Future[Any] | None, Future[Any] | None],
) -> dict[str, Any]:
    """After what came before (a stopped load of the id, an unload claimed before this load was
    created): load and pair, then let go of the id."""
    try:
        for earlier in after:
            if earlier is not None:
                with contextlib.suppress(Exception):  # its outcome was its own callers' answer
                    wait_for(earlier)
        return _load_and_pair(services, spec, started, stopped)
    finally:
        with services.loads_lock:
            current = services.loads.get(spec.model_id)
            if isinstance(current, SharedLoad) and current.stopped is stopped:
                del services.loads[spec.model_id]
            if services.model_states.get(spec.model_id) in LOADING_STATES:
                del services.model_states[spec.model_id]


def _load_and_pair(services: Services, spec: LoadSpec, started: float, stopped: threading.Event) -> dict[str, Any]:
    model_id = spec.model_id
    progress = partial(_progress, services, model_id)
    try:
        progress("resolving", 0.0)
        resolved = resolve(spec.source, spec.local_path, spec.revision, _on_download(services, model_id), stopped)
        _check_stopped(stopped, model_id)
        room = make_room(services, spec, resolved.path)
        try:
            progress("loading", 0.3)
            if faultinject.armed("slow_load"):
                time.sleep(faultinject.SLOW_LOAD_S)
            loaded = _load_on_engine(services, spec, resolved, started, room, stopped)
        finally:
            release_reservation(services, model_id)
        services.lifecycle.timers.track(model_id, spec.keep_alive, spec.pinned)
        services.metrics.model_loaded(loaded.load_seconds)
        progress("ready", 1.0)
        info = model_info(loaded)
        if spec.draft_model_id:
            info["draft"] = pair_after_load(services, spec)
        return info
    except BaseException:
        progress("failed", 1.0)
        raise


def _check_stopped(stopped: threading.Event, model_id: str) -> None:
    if stopped.is_set():  # every request waiting for it was cancelled, or the runtime stops
        raise faults.Cancelled(f"the load of {model_id} was cancelled")


def _load_on_engine(
    services: Services, spec: LoadSpec, resolved: ResolvedModel, started: float, room: int, stopped: threading.Event
) -> LoadedModel:
    """Two engine calls: the weights, then a one-token warm-up; only then is the model ready (in
    the store). "warming" is sent between them, in order with the other stages."""
    store, worker, model_id = services.store, services.worker, spec.model_id
    group_intact(services)
    # In a group each step is every rank's (engine/lockstep.py): all ranks read their shard, and
    # only once every read succeeded do they warm up together (the warm-up token meets the sharded
    # model's collectives); a rank that fails a step fails it for all.
    read_op = {
        "op": "read",
        "model_id": model_id,
        "path": str(resolved.path),
        "source": resolved.source,
        "cpu_weights": spec.cpu_weights,
        "room_bytes": room,
        "task": spec.task,
        "parallel": spec.parallel,
    }
    read = partial(store.read, model_id, resolved, spec.cpu_weights, room, spec.task, spec.parallel)
    weights = worker.call_mirrored(read_op, read).result()
    try:
        _check_stopped(stopped, model_id)  # the weights are dropped with this frame
    except faults.Cancelled:
        worker.call_mirrored({"op": "drop", "model_id": model_id}, lambda: None)  # the others' too
        raise
    _progress(services, model_id, "warming", 0.9)
    admit_op = {"op": "admit", "model_id": model_id, "context_length": spec.context_length, "kv": asdict(spec.kv)}
    admit = partial(store.admit, weights, spec.context_length, started, spec.kv)
    return worker.call_mirrored(admit_op, admit, undo=partial(store.unload, model_id)).result()


def pair_after_load(services: Services, spec: LoadSpec) -> dict[str, Any]:
    """A load with a draft: the draft is loaded too (if it is not), then paired."""
    assert spec.draft_model_id is not None
    hold_and_wait(services, draft_spec(services, spec))
    drafts.pair(services, spec.model_id, spec.draft_model_id, spec.num_draft_tokens)
    return drafts.pairing_of(services, spec.model_id) or {}


def on_demand_spec(services: Services, name: str, keep_alive: float | None | Unset = UNSET) -> LoadSpec:
    """The spec of a load the runtime causes (a request naming the model, the default model at
    start); a keep-alive given here (seconds, None: never) replaces the usual one."""
    spec = load_spec(services, {"model_id": name}, on_demand=True)
    return spec if isinstance(keep_alive, Unset) else replace(spec, keep_alive=keep_alive)


# --- progress ------------------------------------------------------------------------------------
STAGE_STATES = {"resolving": "loading", "downloading": "downloading", "loading": "loading", "warming": "warming"}
LOADING_STATES = frozenset(STAGE_STATES.values())


def _progress(services: Services, model_id: str, stage: str, progress: float) -> None:
    state = STAGE_STATES.get(stage)
    with services.loads_lock:
        if state is not None:
            services.model_states[model_id] = state
        elif services.model_states.get(model_id) in LOADING_STATES:  # ready or failed
            del services.model_states[model_id]
    services.notify("model.progress", {"model_id": model_id, "stage": stage, "progress": progress})


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
