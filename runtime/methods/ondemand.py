"""Loading on demand: a method that names a registered model that is not loaded waits for its load.

Every method that names models (`model_id`, `draft_model_id`, `draft_model`, in its params or in
each entry of its `requests`) is wrapped by `on_demand` in the method table. Aliases become ids;
ids that are neither loaded nor registered go through unchanged, so the handler answers -32005 as
before. A request that must wait is answered from the background pool once its models are ready
(their `model.progress` notifications meanwhile; concurrent requests share one load), bounded by
`max_queued` like the admission queue, and `$/cancelRequest` ends its wait.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from runtime import faults
from runtime.catalog import parse_keep_alive
from runtime.methods import models
from runtime.methods.context import Handler, Services, request_key
from runtime.protocol.dispatch import AfterSend, CallContext, Reply

MODEL_FIELDS = ("model_id", "draft_model_id", "draft_model")


def on_demand(handler: Handler) -> Handler:
    def handle(services: Services, params: dict[str, Any], ctx: CallContext) -> Any:
        params = with_ids(services, params)
        names = named_models(params)
        missing = [name for name in names if _needs_load(services, name)]
        if not missing:
            _apply_keep_alive(services, params, names)
            return handler(services, params, ctx)
        return _after_loads(services, handler, params, ctx, missing)

    handle.__name__ = getattr(handler, "__name__", "handler")
    return handle


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
    services: Services, handler: Handler, params: dict[str, Any], ctx: CallContext, missing: list[str]
) -> Reply:
    keep_alive = _request_keep_alive(params)
    key = request_key(ctx.request_id)
    with services.loads_lock:
        if services.waiting_for_models >= services.limits.max_queued:
            raise faults.Busy("too many requests are waiting for models to load", retry_after_ms=1000)
        services.waiting_for_models += 1
        services.preparing.add(key)  # so $/cancelRequest can end the wait
    answer: Future[Any] = Future()
    hooks: list[AfterSend] = []

    def work() -> None:
        try:
            try:
                for name in missing:
                    models.ensure_loaded(services, name, keep_alive, waiter=key)
                if key in services.cancelled_while_preparing:
                    raise faults.Cancelled("the request was cancelled while its model was loading")
            finally:
                with services.loads_lock:
                    services.waiting_for_models -= 1
                    services.preparing.discard(key)
                    services.cancelled_while_preparing.discard(key)
            _settle(answer, handler(services, params, ctx), hooks)
        except BaseException as exc:  # the request's one answer
            answer.set_exception(exc)

    services.background.submit(work)

    def after_send() -> None:
        for hook in hooks:
            hook()

    return Reply(future=answer, after_send=after_send)


def _settle(answer: Future[Any], outcome: Any, hooks: list[AfterSend]) -> None:
    """The handler's outcome becomes the answer, without blocking a pool thread on another future."""
    if not isinstance(outcome, Reply):
        answer.set_result(outcome)
        return
    if outcome.after_send is not None:
        hooks.append(outcome.after_send)
    if outcome.future is None:
        answer.set_result(outcome.result)
        return

    def copy(done: Future[Any]) -> None:
        error = done.exception()
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(done.result())

    outcome.future.add_done_callback(copy)


def _apply_keep_alive(services: Services, params: dict[str, Any], names: list[str]) -> None:
    """A request's keep_alive becomes its models' (Ollama: the latest request decides)."""
    keep_alive = _request_keep_alive(params)
    if not isinstance(keep_alive, models.Unset):
        for name in names:
            services.lifecycle.timers.set_keep_alive(name, keep_alive)


def _request_keep_alive(params: dict[str, Any]) -> float | None | models.Unset:
    """The request's keep_alive (UNSET when it gives none)."""
    if "keep_alive" not in params:
        return models.UNSET
    try:
        return parse_keep_alive(params["keep_alive"])
    except ValueError as exc:
        raise faults.InvalidInput.at("/keep_alive", str(exc)) from None
