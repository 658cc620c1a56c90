"""`runtime models`: the registry and the Hugging Face cache, with sizes and states, like `ollama list`.

No runtime is started: the states are what is on this machine (ready to load, partly downloaded,
not downloaded). The registry is the models file of --models / RUNTIME_MODELS (or --config).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from runtime.catalog import EMBEDDED, HUB, Catalog, ModelEntry, describe_keep_alive
from runtime.cli.pull import human_size
from runtime.config import ConfigError, load_limits
from runtime.engine import download
from runtime.engine.resolve import EMBEDDED_DIR, embedded_models


def registry(args: argparse.Namespace) -> Catalog:
    """The models file the runtime would read with these flags and this environment."""
    from runtime.server.models_file import read_models_file

    return read_models_file(load_limits(getattr(args, "config", None), {"models": getattr(args, "models", None)}))


def run_models(args: argparse.Namespace) -> int:
    from runtime.server.models_file import ModelsFileError

    try:
        catalog = registry(args)
    except (ConfigError, ModelsFileError) as exc:
        print(f"runtime models: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    rows: list[tuple[str, ...]] = [("ID", "SOURCE", "STATE", "SIZE", "KEEP-ALIVE", "ALIASES")]
    rows += [_entry_row(entry, catalog) for entry in catalog.entries.values()]
    listed = {e.name for e in catalog.entries.values() if e.kind == EMBEDDED}
    rows += [
        (name, "embedded", "on disk", _size_of(EMBEDDED_DIR / name), "", "")
        for name in embedded_models()
        if name not in listed
    ]
    out.write(f"registry: {catalog.path or 'none (--models FILE or RUNTIME_MODELS)'}\n")
    _table(out, rows)
    out.write(f"\nHugging Face cache: {download.cache_dir()}\n")
    cached = _cache_rows()
    if cached:
        _table(out, [("REPO", "STATE", "SIZE"), *cached])
    else:
        out.write("  (empty)\n")
    return 0


def _entry_row(entry: ModelEntry, catalog: Catalog) -> tuple[str, ...]:
    marks = " (default)" if catalog.default_model and catalog.canonical(catalog.default_model) == entry.model_id else ""
    keep = describe_keep_alive(entry.keep_alive) if entry.keep_alive_set else ""
    source = f"{entry.kind}:{entry.name}" + (f"@{entry.revision}" if entry.revision else "")
    if entry.kind == HUB:
        state, size = _hub_state(entry.name, entry.revision)
    else:
        path = EMBEDDED_DIR / entry.name if entry.kind == EMBEDDED else Path(entry.name)
        state, size = ("on disk", _size_of(path)) if (path / "config.json").is_file() else ("missing", "")
    pinned = ", pinned" if entry.pinned else ""
    return (entry.model_id + marks, source, state + pinned, size, keep, ", ".join(entry.aliases))


def _hub_state(repo: str, revision: str | None) -> tuple[str, str]:
    snapshot = download.cached_snapshot(repo, revision)
    if snapshot is not None:
        return "downloaded", _size_of(snapshot)
    partial = _partial_bytes(download.storage_dir(repo))
    return ("partly downloaded", human_size(partial)) if partial else ("not downloaded", "")


def _cache_rows() -> list[tuple[str, ...]]:
    root = download.cache_dir()
    if not root.is_dir():
        return []
    rows: list[tuple[str, ...]] = []
    for storage in sorted(root.glob("models--*")):
        repo = storage.name.removeprefix("models--").replace("--", "/", 1)
        complete = download.cached_snapshot(repo) is not None
        partial = _partial_bytes(storage)
        state = "downloaded" if complete else "partly downloaded" if partial else "incomplete"
        rows.append((repo, state, human_size(_blob_bytes(storage))))
    return rows


def _partial_bytes(storage: Path) -> int:
    return sum(p.stat().st_size for p in (storage / "blobs").glob("*.incomplete")) if storage.is_dir() else 0


def _blob_bytes(storage: Path) -> int:
    blobs = storage / "blobs"
    return sum(p.stat().st_size for p in blobs.iterdir() if p.is_file()) if blobs.is_dir() else 0


def _size_of(path: Path) -> str:
    files = [p for p in path.iterdir() if p.is_file()] if path.is_dir() else []
    return human_size(sum(p.stat().st_size for p in files)) if files else ""


def _table(out: TextIO, rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.write("  " + cells.rstrip() + "\n")
