"""What one load is: the wire's params over the registry entry's options (`LoadSpec`).

No threads and no MLX here: a spec is built on whatever thread takes the request, and every
refusal (a keep-alive that does not parse, kv options that do not combine, a local path outside the
allowed directories) is the caller's error before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from runtime import faults
from runtime.catalog import FOREVER, LOCAL, ModelEntry, looks_like_path, outside_allowed, parse_keep_alive
from runtime.engine.models import KvPolicy
from runtime.engine.pooling import Task
from runtime.engine.weights import CpuWeights
from runtime.methods.context import Services, single_machine_only

LOW_MEMORY_KV_BITS = 8  # mlx-lm's quantized KV cache: about half of fp16's memory, near-identical text
LOW_MEMORY_CONTEXT = 4096  # low-memory mode: the longest context a model serves (prompt tokens)


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
    task: Task | None = None  # what the model serves (generate, embed, rerank); None: its files say
    parallel: str = "auto"  # a distributed group: tensor (mlx-lm shard()) or pipeline parallel
    on_demand: bool = False  # loaded because a request named it (not by load_model)
    protect: frozenset[str] = field(default_factory=frozenset)  # ids its load must not evict (its target)


def load_spec(services: Services, params: dict[str, Any], on_demand: bool = False) -> LoadSpec:
    """The wire's params over the registry entry's options. A host that loads by hand keeps the model
    until it unloads it (keep-alive -1) unless it says otherwise; a load on demand gets the
    runtime's `keep_alive` default (Ollama's 5 minutes)."""
    entry = services.catalog.lookup(params["model_id"])
    model_id = entry.model_id if entry else params["model_id"]
    options = {**(entry.load if entry else {}), **params}
    local_path = params.get("local_path") or (entry.name if entry and entry.kind == LOCAL else None)
    _check_local_policy(services, params, local_path)
    if params.get("draft_model_id"):
        single_machine_only(services, "speculative decoding")
    # Across a group a registered model's draft is left out (speculative decoding runs on one machine).
    draft = params.get("draft_model_id") or (entry.draft_model_id if entry and services.group is None else None)
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
        task=options.get("task"),
        parallel=options.get("parallel", "auto"),
        on_demand=on_demand,
    )


def draft_spec(services: Services, target: LoadSpec) -> LoadSpec:
    """The spec of a target's draft: loaded the way its target was, staying as long as its target
    (unless its own entry says otherwise), and never evicting the target to make room."""
    assert target.draft_model_id is not None
    spec = load_spec(services, {"model_id": target.draft_model_id}, on_demand=target.on_demand)
    entry = services.catalog.lookup(target.draft_model_id)
    keep_alive = spec.keep_alive if entry and entry.keep_alive_set else target.keep_alive
    return replace(spec, keep_alive=keep_alive, protect=frozenset({target.model_id}))


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
