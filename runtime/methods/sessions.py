"""session/save, session/load, session/list, session/drop: conversations' KV caches, kept and moved.

A session is the prompt-cache entry that `generate` with a `session_id` pins (engine/prompt_cache.py).
Files live in the configured cache directory only, one per session id (ids are plain names: no
separators, no traversal). Hashing and file reading run on the background pool
(`Services.background`); reading and writing the arrays runs on the engine thread.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runtime import faults
from runtime.engine.models import LoadedModel
from runtime.engine.prompt_cache import SessionFileError, fingerprint, load_session, read_header, save_session
from runtime.methods.context import Handler, Services, single_machine_only
from runtime.protocol.dispatch import CallContext, Reply

SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SUFFIX = ".safetensors"


def session_path(services: Services, session_id: str) -> Path:
    """The file of a session id, confined to the cache directory."""
    if not SESSION_ID.match(session_id) or ".." in session_id:
        raise faults.InvalidInput.at("/session_id", "a session id is 1-128 letters, digits, '_', '-' or '.'")
    root = cache_dir(services)
    path = (root / f"{session_id}{SUFFIX}").resolve()
    if path.parent != root:
        raise faults.InvalidInput.at("/session_id", "the session id leaves the cache directory")
    return path


def cache_dir(services: Services) -> Path:
    return Path(services.limits.cache_dir).expanduser().resolve()


def model_fingerprint(services: Services, loaded: LoadedModel) -> str:
    key = (loaded.model_id, loaded.loaded_at)
    if key not in services.fingerprints:
        services.fingerprints[key] = fingerprint(loaded.path)
    return services.fingerprints[key]


def _holder(services: Services, session_id: str) -> LoadedModel:
    for loaded in services.store.all():
        if loaded.prompt_cache.session_entry(session_id) is not None:
            return loaded
    raise faults.InvalidInput.at("/session_id", f"no session {session_id} in memory (generate with session_id first)")


def save(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    single_machine_only(services, "session/save")
    session_id = params["session_id"]
    path = session_path(services, session_id)
    loaded = _holder(services, session_id)

    def work() -> dict[str, Any]:
        tag = model_fingerprint(services, loaded)

        def write() -> tuple[int, int]:
            entry = loaded.prompt_cache.session_entry(session_id)
            if entry is None:
                raise faults.InvalidInput.at("/session_id", f"session {session_id} was dropped")
            return save_session(path, entry, loaded.model_id, tag), int(entry.tokens.size)

        size, tokens = services.worker.call(write).result()
        return {"session_id": session_id, "model_id": loaded.model_id, "tokens": tokens, "file_bytes": size}

    return services.in_background(work)


def load(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    single_machine_only(services, "session/load")
    session_id = params["session_id"]
    path = session_path(services, session_id)

    def work() -> dict[str, Any]:
        try:
            header = read_header(path)
        except SessionFileError as exc:
            raise faults.InvalidInput.at("/session_id", str(exc)) from None
        model_id = params.get("model_id") or header.get("model_id", "")
        loaded = services.store.require(model_id)
        if not loaded.prompt_cache.enabled:
            raise faults.InvalidInput.at("/model_id", f"model {model_id} keeps no prompt cache")
        tag = model_fingerprint(services, loaded)

        def read() -> int:
            tokens, cache = load_session(path, loaded.model_id, tag)
            loaded.prompt_cache.drop_session(session_id)
            loaded.prompt_cache.store(tokens, cache, session_id)
            return len(tokens)

        try:
            tokens = services.worker.call(read).result()
        except SessionFileError as exc:
            raise faults.InvalidInput.at("/session_id", str(exc)) from None
        return {"session_id": session_id, "model_id": loaded.model_id, "tokens": tokens}

    return services.in_background(work)


def list_sessions(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    def work() -> dict[str, Any]:
        found: dict[str, dict[str, Any]] = {}
        for loaded in services.store.all():
            for entry in loaded.prompt_cache.sessions():
                found[entry["session_id"]] = {
                    "session_id": entry["session_id"],
                    "model_id": loaded.model_id,
                    "tokens": entry["tokens"],
                    "bytes": entry["bytes"],
                    "in_memory": True,
                    "on_disk": False,
                }
        root = cache_dir(services)
        for path in sorted(root.glob(f"*{SUFFIX}")) if root.is_dir() else []:
            try:
                header = read_header(path)
            except SessionFileError:
                continue
            row = found.setdefault(
                path.stem,
                {"session_id": path.stem, "model_id": header.get("model_id"), "in_memory": False},
            )
            row.update(on_disk=True, file_bytes=path.stat().st_size)
        return {"sessions": sorted(found.values(), key=lambda r: r["session_id"]), "cache_dir": str(root)}

    return services.in_background(work)


def drop(services: Services, params: dict[str, Any], ctx: CallContext) -> Reply:
    single_machine_only(services, "session/drop")
    session_id = params["session_id"]
    path = session_path(services, session_id)

    def work() -> dict[str, Any]:
        results = [
            services.worker.call(loaded.prompt_cache.drop_session, session_id).result()
            for loaded in services.store.all()
        ]
        dropped = any(results)
        deleted = False
        if params.get("delete_file") and path.is_file():
            path.unlink()
            deleted = True
        return {"session_id": session_id, "dropped": dropped, "deleted_file": deleted}

    return services.in_background(work)


METHODS: dict[str, Handler] = {
    "session/save": save,
    "session/load": load,
    "session/list": list_sessions,
    "session/drop": drop,
}
