"""models/list, the keep-alive reaper and the default model: the registry as the host sees it.

models/list answers on the reader thread from what is known (sizes on disk are summed from the
directories, never fetched). The reaper is one daemon thread that sleeps until the next idle model
falls due (its keep-alive passed) and unloads it the normal way; a stream opening meanwhile keeps
the model. The default model, when the models file names one, is loaded at start in the background.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path
from typing import Any

from runtime.catalog import EMBEDDED, FOREVER, HUB, ModelEntry, describe_keep_alive
from runtime.engine.models import LoadedModel
from runtime.methods.context import Handler, Services
from runtime.methods.loading import hold_and_wait, on_demand_spec
from runtime.methods.unloading import Unload, abandon_unload, begin_unload, run_unload
from runtime.protocol.dispatch import CallContext

log = logging.getLogger(__name__)
REAPER_MAX_SLEEP_S = 60.0


def list_models(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    catalog = services.catalog
    loaded = {m.model_id: m for m in services.store.all()}
    ids = list(catalog.entries) + [m for m in loaded if m not in catalog.entries]
    ids += [m for m in sorted(services.model_states) if m not in ids]  # loads in flight, unregistered
    return {
        "models": [
            describe(services, model_id, catalog.entries.get(model_id), loaded.get(model_id)) for model_id in ids
        ],
        "default_model": catalog.canonical(catalog.default_model) if catalog.default_model else None,
        "models_file": catalog.path,
    }


def describe(services: Services, model_id: str, entry: ModelEntry | None, loaded: LoadedModel | None) -> dict[str, Any]:
    timer = services.lifecycle.timers.snapshot(model_id) if loaded else None
    return {
        "model_id": model_id,
        "registered": entry is not None,
        "aliases": list(entry.aliases) if entry else [],
        "source": entry.describe_source() if entry else {"kind": loaded.source if loaded else "unknown"},
        "state": state_of(services, model_id, loaded),
        "pinned": bool(entry and entry.pinned),
        "keep_alive": _keep_alive_text(entry, timer),
        "draft_model_id": entry.draft_model_id if entry else None,
        "disk_bytes": _disk_bytes(entry, loaded),
        "memory_bytes": loaded.memory_bytes if loaded else None,
        "expires_in_s": timer["expires_in_s"] if timer else None,
    }


def state_of(services: Services, model_id: str, loaded: LoadedModel | None) -> str:
    """available, downloading, loading, warming, ready or unloading."""
    state = services.model_states.get(model_id)
    if state is not None:
        return state
    return "ready" if loaded is not None else "available"


def _keep_alive_text(entry: ModelEntry | None, timer: dict[str, Any] | None) -> str | None:
    if timer is not None:
        return describe_keep_alive(timer["keep_alive_s"])
    if entry is not None and entry.keep_alive_set:
        return describe_keep_alive(entry.keep_alive)
    return None


def _disk_bytes(entry: ModelEntry | None, loaded: LoadedModel | None) -> int | None:
    """The model's files on disk, where they are here: the loaded directory, the embedded one or a
    local one; a hub model not yet in the cache has none."""
    if loaded is not None:
        return _directory_bytes(loaded.path)
    if entry is None:
        return None
    if entry.kind == EMBEDDED:
        from runtime.engine.resolve import EMBEDDED_DIR

        return _directory_bytes(EMBEDDED_DIR / entry.name)
    if entry.kind == HUB:
        return _cached_hub_bytes(entry)
    return _directory_bytes(Path(entry.name))


def _cached_hub_bytes(entry: ModelEntry) -> int | None:
    from runtime.engine import download

    snapshot = download.cached_snapshot(entry.name, entry.revision)
    return _directory_bytes(snapshot) if snapshot else None


def _directory_bytes(path: Path) -> int | None:
    if not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


# --- keep-alive ------------------------------------------------------------------------------------
def start_reaper(services: Services) -> threading.Thread:
    thread = threading.Thread(target=_reap, args=(services,), name="keep-alive", daemon=True)
    thread.start()
    return thread


def _reap(services: Services) -> None:
    timers = services.lifecycle.timers
    while not services.shutting_down:
        for model_id in timers.wait_due(REAPER_MAX_SLEEP_S):
            if services.shutting_down:
                return
            _expire(services, model_id)


def _expire(services: Services, model_id: str) -> None:
    """Unload an idle model whose keep-alive passed, unless a request holds it or a stream opened on
    it meanwhile (the unload is claimed first, then idleness checked: a request holds the model
    first, then checks for an unload, so one of the two always sees the other)."""
    timers = services.lifecycle.timers
    if model_id in services.unloading or services.store.get(model_id) is None:
        timers.forget(model_id)
        return
    if _draft_in_use(services, model_id):  # a loaded target drafts with it: it lives as long
        timers.touch(model_id)
        return
    unload = begin_unload(services, model_id)
    if not timers.is_idle(model_id):
        abandon_unload(services, unload)
        return
    timers.forget(model_id)  # due once: the unload below is its end
    log.info("unloading %s: idle past its keep-alive", model_id)
    services.background.submit(partial(_unload_logged, services, unload))


def _draft_in_use(services: Services, model_id: str) -> bool:
    return any(p.draft_id == model_id and services.store.get(t) is not None for t, p in services.drafts.items())


def _unload_logged(services: Services, unload: Unload) -> None:
    try:
        run_unload(services, unload)
    except Exception:
        log.warning("unloading %s after its keep-alive failed", unload.model_id, exc_info=True)


# --- the default model -----------------------------------------------------------------------------
def load_default_model(services: Services) -> None:
    """runtime --stdio with a default model: load it now, so the first request finds it ready."""
    default = services.catalog.default_model
    if default is None:
        return
    entry = services.catalog.lookup(default)
    keep_alive = entry.keep_alive if entry and entry.keep_alive_set else FOREVER  # it stays unless told

    def load() -> None:
        try:
            hold_and_wait(services, on_demand_spec(services, default, keep_alive))
        except Exception as exc:
            log.warning("the default model %s did not load: %s", default, exc)

    services.background.submit(load)


METHODS: dict[str, Handler] = {
    "models/list": list_models,
}
