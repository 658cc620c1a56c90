"""Find a model's directory: the embedded model, a local path, or a Hugging Face hub id.

No MLX here: resolution (and a hub download) runs off the engine thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runtime import faults

EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    source: str  # "embedded", "local" or "hub"


def embedded_models() -> list[str]:
    if not EMBEDDED_DIR.is_dir():
        return []
    return sorted(p.name for p in EMBEDDED_DIR.iterdir() if (p / "config.json").is_file())


def resolve(model_id: str, local_path: str | None = None, revision: str | None = None) -> ResolvedModel:
    if local_path:
        return ResolvedModel(_checked_dir(Path(local_path).expanduser(), model_id), "local")
    if model_id in embedded_models():
        return ResolvedModel(EMBEDDED_DIR / model_id, "embedded")
    if os.path.isabs(model_id) or model_id.startswith((".", "~")) or Path(model_id).is_dir():
        return ResolvedModel(_checked_dir(Path(model_id).expanduser(), model_id), "local")
    return ResolvedModel(_from_hub(model_id, revision), "hub")


def _checked_dir(path: Path, model_id: str) -> Path:
    if not path.is_dir():
        raise faults.ModelLoadFailed(f"Failed to load model {model_id}: {path} is not a directory", model_id=model_id)
    if not (path / "config.json").is_file():
        raise faults.ModelLoadFailed(f"Failed to load model {model_id}: no config.json in {path}", model_id=model_id)
    return path.resolve()


def _from_hub(repo_id: str, revision: str | None) -> Path:
    """The hub snapshot from the local cache, downloading it when the hub can be reached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except HFValidationError as exc:
        raise faults.ModelLoadFailed(
            f"Failed to load model {repo_id}: not a valid hub id or local path ({exc})", model_id=repo_id
        ) from None
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE"):
        raise faults.ModelLoadFailed(
            f"Failed to load model {repo_id}: not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
            model_id=repo_id,
            reason="offline",
        )
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # network, auth, missing repo: all end as a clear load error
        raise faults.ModelLoadFailed(
            f"Failed to load model {repo_id}: not in the local cache and the hub could not provide it "
            f"({type(exc).__name__}: {_first_line(exc)})",
            model_id=repo_id,
            reason="unavailable",
        ) from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
