"""Loading on demand: a method that names a registered model that is not loaded waits for its load.

Every method that names models (`model_id`, `draft_model_id`, `draft_model`, in its params or in
each entry of its `requests`) is wrapped by `on_demand` in the method table. Aliases become ids;
ids that are neither loaded nor registered go through unchanged, so the handler answers -32005 as
before. A request that must wait is answered from the background pool once its models are ready
(their `model.progress` notifications meanwhile; concurrent requests share one load), bounded by
`max_queued` like the admission queue, and `$/cancelRequest` ends its wait.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

from runtime import faults
from runtime.catalog import parse_keep_alive
from runtime.methods.context import Handler, Services, request_key
from runtime.methods.loading import answer_when_loaded, on_demand_spec, settle, shared_load
from runtime.methods.spec import UNSET, Unset
from runtime.protocol.dispatch import AfterSend, CallContext, Reply

MODEL_FIELDS = ("model_id", "draft_model_id", "draft_model")


def on_demand(handler: Handler) -> Handler:
    def handle(services: Services, params: dict[str, Any], ctx: CallContext) -> Any:
        params = with_ids(services, params)
        names = named_models(params)
        keep_alive = _request_keep_alive(params)
        for name in names:  # held first, then looked at: a keep-alive unload either sees the hold or
            services.lifecycle.timers.hold(name)  # has marked the model unloading (then it reloads)
        handed_over = False
        try:
            missing = [name for name in names if _needs_load(services, name)]
            if missing:
                outcome: Any = _after_loads(services, handler, params, ctx, missing, names, keep_alive)
            else:
                _apply_keep_alive(services, names, keep_alive)
                outcome = handler(services, params, ctx)
            if isinstance(outcome, Reply) and outcome.future is not None:  # held until it is answered
                outcome.future.add_done_callback(lambda _: _release(services, names))
                handed_over = True
            return outcome
        finally:
            if not handed_over:
                _release(services, names)

    handle.__name__ = getattr(handler, "__name__", "handler")
    return handle


def _release(services: Services, names: list[str]) -> None:
    for name in names:
        services.lifecycle.timers.release(name)


def with_ids(services: Services, params: dict[str, Any]) -> dict[str, Any]:
    """The params with every alias replaced by its model's id (entries of `requests` too)."""
    catalog = services.catalog
    if not catalog.aliases:
        return params

    def rewrite(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: catalog.canonical(v) if k in MODEL_FIELDS and isinstance(v, str) else v for k, v in obj.items()}

    out = rewrite(params)
    if isinstance(params.get("requests"), list):
        out["requests"] = [rewrite(e) if isinstance(e, dict) else e for e in params["requests"]]
    return out


def named_models(params: dict[str, Any]) -> list[str]:
    entries = [params] + [e for e in params.get("requests") or [] if isinstance(e, dict)]
    names = [e.get(key) for e in entries for key in MODEL_FIELDS]
    return list(dict.fromkeys(n for n in names if isinstance(n, str)))


def _needs_load(services: Services, name: str) -> bool:
    if services.catalog.lookup(name) is None:
        return False
    return services.store.get(name) is None or name in services.unloading


def _after_loads(
    services: Services,
    handler: Handler,
    params: dict[str, Any],
    ctx: CallContext,
    missing: list[str],
    names: list[str],
    keep_alive: float | None | Unset,
) -> Reply:
    """Answer once the loads have landed: chained to them, so no thread waits meanwhile. The
    names stay held until the handler's answer is settled (its stream is open by then)."""
    key = request_key(ctx.request_id)
    with services.loads_lock:
        if services.waiting_for_models >= services.limits.max_queued:
            raise faults.Busy("too many requests are waiting for models to load", retry_after_ms=1000)
        services.waiting_for_models += 1
        services.preparing.add(key)  # so $/cancelRequest reaches the stream it may still start
    try:
        waits = [_wait_for_model(services, name, keep_alive, key) for name in missing]
    except BaseException:
        _let_go(services, key)
        raise
    answer: Future[Any] = Future()
    hooks: list[AfterSend] = []
    pending = [len(waits)]

    def landed(_: Future[Any]) -> None:
        with services.loads_lock:
            pending[0] -= 1
            if pending[0]:
                return
        services.background.submit(run_handler)

    def run_handler() -> None:
        try:
            failed = next((w.exception() for w in waits if w.exception() is not None), None)
            if failed is not None:
                raise failed
            if key in services.cancelled_while_preparing:
                raise faults.Cancelled("the request was cancelled while its model was loading")
            _apply_keep_alive(services, names, keep_alive)
            _settle(answer, handler(services, params, ctx), hooks)
        except BaseException as exc:  # the request's one answer
            settle(answer, None, exc)
        finally:
            answer.add_done_callback(lambda _: _let_go(services, key))

    for wait in waits:
        wait.add_done_callback(landed)

    def after_send() -> None:
        for hook in hooks:
            hook()

    return Reply(future=answer, after_send=after_send)


def _wait_for_model(services: Services, name: str, keep_alive: float | None | Unset, key: str) -> Future[Any]:
    """A future that resolves when `name` is loaded (or its load fails, or the request is cancelled)."""
    wait: Future[Any] = Future()
    spec = on_demand_spec(services, name, keep_alive)
    load = shared_load(services, spec, time.perf_counter())
    if load is None:
        wait.set_result(None)
    else:
        answer_when_loaded(services, load, key, wait)
    return wait


def _let_go(services: Services, key: str) -> None:
    with services.loads_lock:
        services.waiting_for_models -= 1
        services.preparing.discard(key)
        services.cancelled_while_preparing.discard(key)


def _settle(answer: Future[Any], outcome: Any, hooks: list[AfterSend]) -> None:
    """The handler's outcome becomes the answer, without blocking a pool thread on another future."""
    if not isinstance(outcome, Reply):
        settle(answer, outcome, None)
        return
    if outcome.after_send is not None:
        hooks.append(outcome.after_send)
    if outcome.future is None:
        settle(answer, outcome.result, None)
        return

    def copy(done: Future[Any]) -> None:
        error = done.exception()
        settle(answer, None if error else done.result(), error)

    outcome.future.add_done_callback(copy)


def _apply_keep_alive(services: Services, names: list[str], keep_alive: float | None | Unset) -> None:
    """A request's keep_alive becomes its models' (Ollama: the latest request decides)."""
    if not isinstance(keep_alive, Unset):
        for name in names:
            services.lifecycle.timers.set_keep_alive(name, keep_alive)


def _request_keep_alive(params: dict[str, Any]) -> float | None | Unset:
    """The request's keep_alive (UNSET when it gives none)."""
    if "keep_alive" not in params:
        return UNSET
    try:
        return parse_keep_alive(params["keep_alive"])
    except ValueError as exc:
        raise faults.InvalidInput.at("/keep_alive", str(exc)) from None
