"""Making room for a load: `max_loaded_models` and the memory, by unloading other models.

One load at a time makes room (under `Services.room_changed`). Candidates are loaded models that
are not pinned, not being loaded or unloaded, and not protected by this load (its own draft, its target); idle ones
come before busy ones, least recently used first. A load that could not fit even with every
candidate gone is refused before anything is unloaded. Loads past this point reserve their
estimate until they land; a load over the count limit because of another load's reservation waits
for that load (`room_changed`) rather than fail.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from runtime import faults
from runtime.config import memory_budget_bytes
from runtime.engine.models import estimate_bytes
from runtime.methods.context import Services
from runtime.methods.spec import LoadSpec
from runtime.methods.unloading import begin_unload, run_unload

log = logging.getLogger(__name__)
RESERVATION_WAIT_S = 600.0
SOON_POLL_S = 0.05  # how often a load waiting for room looks again
MB = 1024 * 1024


def make_room(services: Services, spec: LoadSpec, path: Path) -> int:
    """Unload what must go, then reserve the load's memory; returns the room left once it is in
    (what cpu_weights fp32 may take)."""
    needed = estimate_bytes(path)
    with services.room_changed:
        _fit_the_count(services, spec)
        room = _fit_the_memory(services, spec, needed)
        services.reserved_bytes[spec.model_id] = needed
        return room


def release_reservation(services: Services, model_id: str) -> None:
    with services.room_changed:
        services.reserved_bytes.pop(model_id, None)
        services.room_changed.notify_all()


def _fit_the_count(services: Services, spec: LoadSpec) -> None:
    limit = services.limits.max_loaded_models
    deadline = time.monotonic() + RESERVATION_WAIT_S
    while limit and len(_others(services, spec)) >= limit:
        if _evict_one(services, spec):
            continue
        if _soon_evictable(services, spec) and time.monotonic() < deadline:
            services.room_changed.wait(SOON_POLL_S)  # a load lands, or a request opens its stream
            continue
        raise faults.OutOfMemory(
            f"cannot load {spec.model_id}: {limit} models are loaded or loading (max_loaded_models) and "
            "none of them may be unloaded (pinned, in use by this load, or still loading)",
            model_id=spec.model_id,
            max_loaded_models=limit,
            loaded_models=sorted(_others(services, spec)),
        )


def _soon_evictable(services: Services, spec: LoadSpec) -> bool:
    """Another load will land (then its model may go), or a request holds a model it is about to
    use (then its stream may be drained or cancelled): worth waiting for rather than refusing."""
    if any(m != spec.model_id for m in services.reserved_bytes):
        return True
    keep = {spec.model_id, spec.draft_model_id, *spec.protect}
    timers = services.lifecycle.timers
    return any(m.model_id not in keep and timers.is_held(m.model_id) for m in services.store.all())


def _others(services: Services, spec: LoadSpec) -> set[str]:
    others = {m.model_id for m in services.store.all()} | set(services.reserved_bytes)
    others.discard(spec.model_id)
    return others


def _fit_the_memory(services: Services, spec: LoadSpec, needed: int) -> int:
    deadline = time.monotonic() + RESERVATION_WAIT_S
    while True:
        budget, in_use, available = _memory(services, spec.model_id)
        problem = _shortfall(spec.model_id, needed, budget, in_use, available)
        if problem is None:
            room = budget - in_use - needed
            return room if available is None else min(room, available - needed)
        evictable = sum(m.memory_bytes for m in (services.store.get(c) for c in _candidates(services, spec)) if m)
        hopeless = _shortfall(spec.model_id, needed, budget, in_use - evictable, _plus(available, evictable))
        waiting_helps = not _candidates(services, spec) and _soon_evictable(services, spec)
        if hopeless is None and waiting_helps and time.monotonic() < deadline:
            services.room_changed.wait(SOON_POLL_S)
            continue
        if hopeless is not None or not _evict_one(services, spec):
            loaded = sorted(m.model_id for m in services.store.all())
            problem.details.update(evictable_bytes=evictable, loaded_models=loaded)
            raise problem


def _plus(available: int | None, more: int) -> int | None:
    return None if available is None else available + more


def _memory(services: Services, model_id: str) -> tuple[int, int, int | None]:
    """The budget, what is in use (MLX's active memory plus other loads' reservations) and what
    the system can still give without swapping (None where unknown)."""
    from runtime.engine.platform import mlx_active_bytes, system_memory

    reserved = sum(b for m, b in services.reserved_bytes.items() if m != model_id)
    return memory_budget_bytes(services.limits), mlx_active_bytes() + reserved, system_memory()["available"]


def _shortfall(
    model_id: str, needed: int, budget: int, in_use: int, available: int | None
) -> faults.OutOfMemory | None:
    details = {"model_id": model_id, "needed_bytes": needed, "budget_bytes": budget, "in_use_bytes": in_use}
    if needed + in_use > budget:
        return faults.OutOfMemory(
            f"model {model_id} needs about {needed / MB:.1f} MB; the memory budget is {budget / MB:.1f} MB "
            f"with {in_use / MB:.1f} MB in use",
            **details,
        )
    if available is not None and needed > available:
        return faults.OutOfMemory(
            f"model {model_id} needs about {needed / MB:.1f} MB; the system has {available / MB:.1f} MB available",
            **details,
            available_bytes=available,
        )
    return None


def _candidates(services: Services, spec: LoadSpec) -> list[str]:
    """What may be unloaded for this load, best first: idle before busy, least recently used first."""
    timers = services.lifecycle.timers
    keep = {spec.model_id, spec.draft_model_id, *spec.protect}
    found = [
        m.model_id
        for m in services.store.all()
        if m.model_id not in keep
        and m.model_id not in services.unloading
        and m.model_id not in services.loads  # still loading (or pairing its draft): not a candidate yet
        and not timers.snapshot(m.model_id)["pinned"]
        and not timers.is_held(m.model_id)  # a request is about to open its stream on it
    ]
    return sorted(found, key=lambda m: (not timers.is_idle(m), timers.last_used(m)))


def _evict_one(services: Services, spec: LoadSpec) -> bool:
    candidates = _candidates(services, spec)
    if not candidates:
        return False
    victim = candidates[0]
    log.info("unloading %s to make room for %s", victim, spec.model_id)
    run_unload(services, begin_unload(services, victim), drain=services.limits.switch_policy == "drain")
    return True
