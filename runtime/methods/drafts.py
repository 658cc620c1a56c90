"""Speculative decoding from the host's side: check_draft, batch_check_draft, set_draft, and the
draft of a request.

A target can be paired with a draft (set_draft, or load_model with draft_model_id); a request
then drafts with it unless it names another draft (`draft_model`) or none (`draft_model: null`).
Every pair is checked before use (engine/drafts.py) and the verdict is kept per loaded pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from runtime import faults
from runtime.engine.drafts import Compatibility, check_pair, measure
from runtime.engine.models import LoadedModel
from runtime.engine.request import DraftChoice
from runtime.methods.context import Handler, Services, single_machine_only
from runtime.protocol.batches import run_entries
from runtime.protocol.dispatch import CallContext, Reply

DEFAULT_DRAFT_TOKENS = 3
SWEEP = [1, 2, 3, 4, 6]


@dataclass(frozen=True)
class Pairing:
    draft_id: str
    num_draft_tokens: int


def compatibility(services: Services, target: LoadedModel, draft: LoadedModel) -> Compatibility:
    key = (target.model_id, target.loaded_at, draft.model_id, draft.loaded_at)
    verdict = services.draft_checks.get(key)
    if verdict is None:
        verdict = services.draft_checks[key] = check_pair(target, draft)
    return verdict


def draft_for(services: Services, target: LoadedModel, params: dict[str, Any]) -> DraftChoice | None:
    """The request's draft: the one it names, none if it says null, else the target's pairing."""
    pairing = services.drafts.get(target.model_id)
    draft_id = params.get("draft_model", pairing.draft_id if pairing else None)
    if draft_id is None:
        if "num_draft_tokens" in params:
            raise faults.InvalidInput.at("/num_draft_tokens", "needs a draft (draft_model, or a paired draft)")
        return None
    draft = _loaded_draft(services, draft_id)
    _require_text_pair(target, draft, "/draft_model")
    _require_compatible(services, target, draft, "/draft_model")
    default = pairing.num_draft_tokens if pairing and pairing.draft_id == draft_id else DEFAULT_DRAFT_TOKENS
    return DraftChoice(draft, params.get("num_draft_tokens", default))


def pair(services: Services, target_id: str, draft_id: str | None, num_draft_tokens: int | None) -> dict[str, Any]:
    target = services.store.require(target_id)
    if draft_id is not None:
        single_machine_only(services, "speculative decoding")
    if draft_id is None:
        services.drafts.pop(target_id, None)
        return {"model_id": target_id, "draft_model_id": None, "num_draft_tokens": None}
    draft = _loaded_draft(services, draft_id)
    _require_text_pair(target, draft, "/draft_model_id")
    _require_compatible(services, target, draft, "/draft_model_id")
    pairing = services.drafts[target_id] = Pairing(draft_id, num_draft_tokens or DEFAULT_DRAFT_TOKENS)
    return {"model_id": target_id, "draft_model_id": draft_id, "num_draft_tokens": pairing.num_draft_tokens}


def _require_text_pair(target: LoadedModel, draft: LoadedModel, path: str) -> None:
    if target.kind != "text" or draft.kind != "text":
        raise faults.InvalidInput.at(path, "speculative decoding needs two text models")
    if not (target.kv.full and draft.kv.full):  # drafting trims both caches token by token
        raise faults.InvalidInput.at(path, "speculative decoding needs models loaded without kv_bits / max_kv_size")


def forget(services: Services, model_id: str) -> None:
    """An unloaded model is nobody's target or draft any more."""
    services.drafts.pop(model_id, None)
    for target_id in [t for t, p in services.drafts.items() if p.draft_id == model_id]:
        services.drafts.pop(target_id, None)


def pairing_of(services: Services, model_id: str) -> dict[str, Any] | None:
    pairing = services.drafts.get(model_id)
    return {"model_id": pairing.draft_id, "num_draft_tokens": pairing.num_draft_tokens} if pairing else None


def _loaded_draft(services: Services, draft_id: str) -> LoadedModel:
    draft = services.store.get(draft_id)
    if draft is None or draft_id in services.unloading:
        raise faults.ModelNotLoaded(f"Draft model not loaded: {draft_id}", model_id=draft_id)
    return draft


def _require_compatible(services: Services, target: LoadedModel, draft: LoadedModel, path: str) -> None:
    verdict = compatibility(services, target, draft)
    if not verdict.compatible:
        reasons = "; ".join(verdict.errors)
        raise faults.InvalidInput.at(path, f"draft {draft.model_id} cannot serve {target.model_id}: {reasons}")


# --- methods -----------------------------------------------------------------------------------------
def check_draft(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """The verdict (and with measure: true, a measured speed-up) of a target/draft pair."""
    single_machine_only(services, "check_draft")
    target, draft = _pair_models(services, params)  # a model not loaded is answered at once
    return services.in_background(partial(_check, services, target, draft, params))


def batch_check_draft(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    """Several check_draft calls, one result per entry in order, each succeeding or failing on its own.

    One background task runs the entries one after another: measurements never overlap (they would
    slow each other and skew the speed-ups), and the task never waits on the pool it runs in.
    """
    single_machine_only(services, "batch_check_draft")
    return services.in_background(partial(_check_entries, services, params["requests"]))


def _check_entries(services: Services, entries: list[Any]) -> dict[str, Any]:
    return {"results": run_entries("check_draft", entries, partial(_check_entry, services))}


def _check_entry(services: Services, params: dict[str, Any]) -> dict[str, Any]:
    target, draft = _pair_models(services, params)
    return _check(services, target, draft, params)


def _pair_models(services: Services, params: dict[str, Any]) -> tuple[LoadedModel, LoadedModel]:
    return services.store.require(params["primary_id"]), _loaded_draft(services, params["draft_id"])


def _check(services: Services, target: LoadedModel, draft: LoadedModel, params: dict[str, Any]) -> dict[str, Any]:
    """Off the reader thread: comparing vocabularies and measuring take milliseconds to seconds."""
    verdict = compatibility(services, target, draft)
    result = _verdict_result(target, draft, verdict)
    if params.get("measure") and verdict.compatible:
        counts = [params["num_draft_tokens"]] if "num_draft_tokens" in params else SWEEP
        probe = params.get("probe_tokens", 64)
        measured = measure(_on_engine(services), target, draft, counts, probe)
        result["measurement"] = measured
        result["details"]["performance_estimate"] = _estimate(measured, result["details"]["size_ratio"])
    return result


def _on_engine(services: Services) -> Any:
    def run(fn: Any, *args: Any) -> Any:
        return services.worker.call(fn, *args).result()

    return run


def _verdict_result(target: LoadedModel, draft: LoadedModel, verdict: Compatibility) -> dict[str, Any]:
    return {
        "compatible": verdict.compatible,
        "errors": verdict.errors,
        "warnings": verdict.warnings,
        "details": {
            "primary_model": _describe(target),
            "draft_model": _describe(draft),
            "size_ratio": round(draft.parameter_count / target.parameter_count, 4),
            "checks": verdict.checks,
        },
    }


def _describe(loaded: LoadedModel) -> dict[str, Any]:
    return {
        "id": loaded.model_id,
        "vocab_size": loaded.vocab_size,
        "parameter_count": loaded.parameter_count,
        "architecture": getattr(loaded.model, "model_type", None) or type(loaded.model).__module__.rsplit(".", 1)[-1],
    }


def _estimate(measured: dict[str, Any], size_ratio: float) -> dict[str, Any]:
    """The peer's performance_estimate shape, filled from the measurement (not a formula)."""
    verdict = measured["verdict"]
    advice = {
        "faster": f"use it with num_draft_tokens={measured['num_draft_tokens']}",
        "slower": "do not use it on this machine: drafting costs more than it saves",
        "no difference": "no measurable gain on this machine",
    }[verdict]
    return {
        "expected_speedup": f"{measured['speedup']:.2f}x",
        "size_ratio": f"{size_ratio * 100:.1f}%",
        "recommendation": advice,
    }


def set_draft(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    return pair(services, params["model_id"], params["draft_model_id"], params.get("num_draft_tokens"))


METHODS: dict[str, Handler] = {
    "check_draft": check_draft,
    "batch_check_draft": batch_check_draft,
    "set_draft": set_draft,
}
