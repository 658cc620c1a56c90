"""Find a model's directory: the embedded model, a local path, or a Hugging Face hub id.

No MLX here: resolution (and a hub download) runs off the engine thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime import faults
from runtime.engine import download
from runtime.engine.download import HUB_PATTERNS, DownloadProgress

EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"
__all__ = ["EMBEDDED_DIR", "HUB_PATTERNS", "ResolvedModel", "embedded_models", "resolve"]


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    source: str  # "embedded", "local" or "hub"


def embedded_models() -> list[str]:
    if not EMBEDDED_DIR.is_dir():
        return []
    return sorted(p.name for p in EMBEDDED_DIR.iterdir() if (p / "config.json").is_file())


def resolve(
    model_id: str,
    local_path: str | None = None,
    revision: str | None = None,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> ResolvedModel:
    """`on_progress` and `cancel` reach a hub download (see runtime.engine.download)."""
    if local_path:
        return ResolvedModel(_checked_dir(Path(local_path).expanduser(), model_id), "local")
    if model_id in embedded_models():
        return ResolvedModel(EMBEDDED_DIR / model_id, "embedded")
    if os.path.isabs(model_id) or model_id.startswith((".", "~")) or Path(model_id).is_dir():
        return ResolvedModel(_checked_dir(Path(model_id).expanduser(), model_id), "local")
    return ResolvedModel(_from_hub(model_id, revision, on_progress, cancel), "hub")


def _checked_dir(path: Path, model_id: str) -> Path:
    if not path.is_dir():
        raise faults.ModelLoadFailed(f"Failed to load model {model_id}: {path} is not a directory", model_id=model_id)
    if not (path / "config.json").is_file():
        raise faults.ModelLoadFailed(f"Failed to load model {model_id}: no config.json in {path}", model_id=model_id)
    return path.resolve()


def _from_hub(
    repo_id: str,
    revision: str | None,
    on_progress: Callable[[DownloadProgress], None] | None,
    cancel: threading.Event | None,
) -> Path:
    """The snapshot from the local cache without any network, else a resumable, verified download
    (which refuses ids with path tricks before it reaches the network)."""
    cached = download.cached_snapshot(repo_id, revision)
    if cached is not None:
        return cached
    return download.download(repo_id, revision, on_progress=on_progress, cancel=cancel)
