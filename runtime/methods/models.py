"""load_model, unload_model and load_vision_model: the wire's side of loads and unloads.

The work is elsewhere: methods/loading.py (one shared load per id, on the background pool),
methods/room.py (making room), methods/unloading.py (unloads, claimed when decided), and
methods/spec.py (what a load is). A load_model of a loaded model answers at once; otherwise its
answer is chained to the id's shared load, and `$/cancelRequest` ends its wait.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from functools import partial
from typing import Any

from runtime import faults
from runtime.engine.models import LoadedModel
from runtime.methods.context import Handler, Services, request_key
from runtime.methods.loading import (
    answer_when_loaded,
    model_info,
    pair_after_load,
    refuse_while_shutting_down,
    settle,
    shared_load,
)
from runtime.methods.spec import LoadSpec, load_spec
from runtime.methods.unloading import begin_unload, run_unload
from runtime.protocol.dispatch import CallContext, Reply


def load_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Any:
    started = time.perf_counter()  # load_time_ms counts from here: what the host waited for
    refuse_while_shutting_down(services)
    spec = load_spec(services, params)
    loaded = services.store.get(spec.model_id)
    if loaded is not None and spec.model_id not in services.unloading:
        if "keep_alive" in params:
            services.lifecycle.timers.set_keep_alive(spec.model_id, spec.keep_alive)
        if params.get("draft_model_id"):
            return services.in_background(partial(_pair_loaded, services, loaded, spec))
        return model_info(loaded)
    load = shared_load(services, spec, started)
    if load is None:  # it landed meanwhile
        return model_info(services.store.require(spec.model_id))
    answer: Future[Any] = Future()
    answer_when_loaded(services, load, None if ctx.is_notification else request_key(ctx.request_id), answer)
    return Reply(future=answer)


def _pair_loaded(services: Services, loaded: LoadedModel, spec: LoadSpec) -> dict[str, Any]:
    """A loaded target, paired now with its draft (which may need loading: a background task)."""
    return {**model_info(loaded), "draft": pair_after_load(services, spec)}


def unload_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Streams on the model end as cancelled first (they hold the weights); then the engine frees
    them. Claimed here, on the reader thread: no stream starts on the model from now on."""
    unload = begin_unload(services, services.catalog.canonical(params["model_id"]))
    return services.in_background(partial(run_unload, services, unload))


# --- vision ------------------------------------------------------------------------------------------
def load_vision_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Any:
    """Peer-compatible: load_model, then insist on a vision model and describe its processor."""
    outcome = load_model(services, {k: v for k, v in params.items() if k != "quantization"}, ctx)
    if not (isinstance(outcome, Reply) and outcome.future is not None):
        return _vision_info(services, params, outcome)
    answer: Future[Any] = Future()

    def landed(done: Future[Any]) -> None:
        try:
            settle(answer, _vision_info(services, params, done.result()), None)
        except BaseException as exc:  # the load's error, or not a vision model
            settle(answer, None, exc)

    outcome.future.add_done_callback(landed)
    return Reply(future=answer)


def _vision_info(services: Services, params: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    loaded = services.store.require(services.catalog.canonical(params["model_id"]))
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
