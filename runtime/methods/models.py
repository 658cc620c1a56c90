"""load_model and unload_model.

A load resolves the directory on a loader thread (a hub download must not block anything), then
loads the weights on the engine thread between stream steps. Loading an id that is loaded returns
at once; concurrent loads of one id share one load.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

from runtime import faults
from runtime.config import memory_budget_bytes
from runtime.engine.models import LoadedModel, estimate_bytes
from runtime.engine.resolve import resolve
from runtime.methods import drafts
from runtime.methods.context import Services
from runtime.protocol.dispatch import CallContext, Method, Reply

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
    }


def load_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Any:
    if services.shutting_down:
        raise faults.ShuttingDown("the runtime is shutting down")
    model_id = params["model_id"]
    loaded = services.store.get(model_id)
    if loaded is not None and params.get("draft_model_id"):
        return _pair_loaded(services, loaded, params)
    if loaded is not None:
        return model_info(loaded)
    with services.loads_lock:
        future = services.loads.get(model_id)
        loaded = services.store.get(model_id)  # a load may have finished since the first look
        if loaded is not None and future is None:
            return model_info(loaded)
        if future is None:
            future = services.loads[model_id] = Future()
            threading.Thread(
                target=_load, args=(services, params, future), name=f"load-{model_id}", daemon=True
            ).start()
    return Reply(future=future)


def _load(services: Services, params: dict[str, Any], future: Future[Any]) -> None:
    model_id = params["model_id"]
    progress = partial(_progress, services, model_id)
    try:
        progress("resolving", 0.0)
        resolved = resolve(model_id, params.get("local_path"), params.get("revision"))
        _check_memory(services, model_id, resolved.path)
        progress("loading", 0.3)
        loaded = services.worker.call(services.store.load, model_id, resolved, params.get("context_length")).result()
        progress("ready", 1.0)
        info = model_info(loaded)
        if params.get("draft_model_id"):
            info["draft"] = _pair_after_load(services, model_id, params)
        future.set_result(info)
    except BaseException as exc:
        progress("failed", 1.0)
        future.set_exception(exc)
    finally:
        with services.loads_lock:
            services.loads.pop(model_id, None)


def _pair_loaded(services: Services, loaded: LoadedModel, params: dict[str, Any]) -> Reply:
    """A loaded target, paired now with its draft (which may need loading: off the reader thread)."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result({**model_info(loaded), "draft": _pair_after_load(services, loaded.model_id, params)})
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name=f"pair-{loaded.model_id}", daemon=True).start()
    return Reply(future=future)


def _pair_after_load(services: Services, model_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """load_model with draft_model_id: the draft is loaded too (if it is not), then paired."""
    draft_id = params["draft_model_id"]
    outcome = load_model(services, {"model_id": draft_id}, CallContext(None, True))
    if isinstance(outcome, Reply) and outcome.future is not None:
        outcome.future.result(LOAD_WAIT_S)
    drafts.pair(services, model_id, draft_id, params.get("num_draft_tokens"))
    return drafts.pairing_of(services, model_id) or {}


def _check_memory(services: Services, model_id: str, path: Path) -> None:
    """Refuse a load that would not fit the memory budget, before reading any weights."""
    from runtime.engine.platform import memory

    needed, budget = estimate_bytes(path), memory_budget_bytes(services.limits)
    in_use = memory()["mlx_active"]
    if needed + in_use > budget:
        mb = 1024 * 1024
        raise faults.OutOfMemory(
            f"model {model_id} needs about {needed / mb:.1f} MB; the memory budget is {budget / mb:.1f} MB "
            f"with {in_use / mb:.1f} MB in use",
            model_id=model_id,
            needed_bytes=needed,
            budget_bytes=budget,
            in_use_bytes=in_use,
        )


def _progress(services: Services, model_id: str, stage: str, progress: float) -> None:
    services.notify("model.progress", {"model_id": model_id, "stage": stage, "progress": progress})


def unload_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Streams on the model end as cancelled first (they hold the weights); then the engine frees them."""
    model_id = params["model_id"]
    future: Future[Any] = Future()

    def unload() -> dict[str, Any]:
        from runtime.engine.platform import memory

        services.worker.forget_model(model_id)
        drafts.forget(services, model_id)
        was_loaded, freed = services.store.unload(model_id)
        return {
            "success": True,
            "model_id": model_id,
            "was_loaded": was_loaded,
            "freed_bytes": freed,
            "mlx_active_bytes": memory()["mlx_active"],
        }

    def run() -> None:
        with services.loads_lock:
            loading = services.loads.get(model_id)
        if loading is not None:  # unload what is being loaded: wait for the load to land first
            with contextlib.suppress(Exception):
                loading.result(LOAD_WAIT_S)
        services.cancel_streams(services.streams.cancel_where(model_id=model_id))
        services.streams.wait_idle(UNLOAD_STREAM_WAIT_S, model_id=model_id)

        def done(outcome: Future[Any]) -> None:
            services.unloading.discard(model_id)
            _copy_outcome(outcome, future)

        services.worker.call(unload).add_done_callback(done)

    services.unloading.add(model_id)  # from now on no new stream starts on it
    threading.Thread(target=run, name=f"unload-{model_id}", daemon=True).start()
    return Reply(future=future)


def _copy_outcome(source: Future[Any], target: Future[Any]) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


def load_vision_model(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Peer-compatible: load_model, then insist on a vision model and describe its processor."""
    outcome = load_model(services, {k: v for k, v in params.items() if k != "quantization"}, ctx)
    loaded_future: Future[Any] = Future()
    if isinstance(outcome, Reply) and outcome.future is not None:
        outcome.future.add_done_callback(lambda f: _copy_outcome(f, loaded_future))
    else:
        loaded_future.set_result(outcome)
    answer: Future[Any] = Future()

    def describe(done: Future[Any]) -> None:
        try:
            info = done.result()
            loaded = services.store.require(params["model_id"])
            if loaded.kind != "vision":
                raise faults.InvalidInput.at(
                    "/model_id", f"{params['model_id']} is not a vision model (use load_model)"
                )
            answer.set_result({**info, **_vision_details(loaded, params)})
        except BaseException as exc:
            answer.set_exception(exc)

    loaded_future.add_done_callback(describe)
    return Reply(future=answer)


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


def methods(services: Services) -> list[Method]:
    return [
        Method("load_model", partial(load_model, services)),
        Method("load_vision_model", partial(load_vision_model, services)),
        Method("unload_model", partial(unload_model, services)),
    ]
