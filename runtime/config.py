"""Runtime limits and settings: defaults, then a JSON config file, then RUNTIME_* env, then CLI flags.

Every value shows in `runtime/state.limits`, so a host can see what it is talking to.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "RUNTIME_"
CONFIG_ENV = "RUNTIME_CONFIG"


@dataclass(frozen=True)
class Limits:
    max_line_bytes: int = 16 * 1024 * 1024
    default_max_tokens: int = 512
    max_tokens: int = 32768
    max_prompt_tokens: int = 131072
    prefill_step: int = 512
    max_active_streams: int = 16
    max_queued: int = 256
    max_outbound_queue: int = 1024  # messages/tokens waiting for a slow host before generation pauses
    coalesce_ms: int = 8  # a stream's tokens are gathered this long into one stream.chunk (first token: at once)
    breaker_threshold: int = 5
    breaker_window_ms: int = 60000
    breaker_cooldown_ms: int = 10000
    memory_budget_mb: int = 0  # 0: 75% of the machine's memory
    batching: bool = True
    max_guidance_bytes: int = 65536  # a structured-output schema or grammar larger than this gets -32004
    guide_cache_size: int = 64  # compiled structured-output grammars kept per model (least recently used out)
    max_image_bytes: int = 10 * 1024 * 1024  # one image, encoded
    max_image_pixels: int = 40_000_000  # one image, decoded (decompression bombs)
    max_images: int = 8  # per request
    image_dirs: tuple[str, ...] = ()  # directories image file paths may come from (none: paths refused)
    image_url_prefixes: tuple[str, ...] = ()  # URL prefixes images may be fetched from (none: URLs refused)
    prompt_cache_bytes: int = 1024 * 1024 * 1024  # KV caches kept for prefix reuse, per model
    prompt_cache_entries: int = 32  # per model; 0 turns prefix reuse off
    cache_dir: str = "~/.cache/mlx-rpc-runtime/sessions"  # where session/save writes
    models: str = ""  # the models file (the registry; docs/models.md); "" for none
    model_dirs: tuple[str, ...] = ()  # directories local models may be loaded from (none: any directory)
    max_loaded_models: int = 0  # models loaded at once (0: no count limit, only the memory budget)
    switch_policy: str = "drain"  # the streams of a model evicted to make room: drain (finish) or cancel
    low_memory: bool = False  # quantized, bounded KV caches, smaller prefill steps, a small MLX cache
    thermal_policy: str = "off"  # under thermal pressure new streams are: off (not looked at), pace, pause
    thermal_limit_c: int = 85  # the hottest thermal zone at or above this is pressure (+10 °C: critical)
    thermal_pace_ms: int = 1000  # thermal_policy pace: one new stream per this long under pressure
    embed_batch_size: int = 32  # embed/rerank inputs in one forward pass (one pass runs between two decode steps)
    embed_batch_tokens: int = 16384  # padded tokens in one such pass (a longer single input runs alone)
    max_embed_inputs: int = 2048  # inputs (or rerank documents) in one request
    embed_cache_entries: int = 16384  # embeddings kept for reuse, all models (least recently used out; 0: off)
    embed_cache_bytes: int = 256 * 1024 * 1024  # their float32 vectors' bytes
    keep_alive: str = "5m"  # how long a model loaded on demand stays once idle (0: unload at once; -1: never)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConfigError(ValueError):
    pass


OPTIONAL_STRINGS = ("models",)
ZERO_ALLOWED = (
    "memory_budget_mb",
    "prompt_cache_entries",
    "max_loaded_models",
    "embed_cache_entries",
    "embed_cache_bytes",
)
CHOICES = {"switch_policy": ("drain", "cancel"), "thermal_policy": ("off", "pace", "pause")}


def _checked_choice(name: str, value: str) -> str:
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(f"{name}: expected one of {', '.join(CHOICES[name])}, got {value!r}")
    if name == "keep_alive":
        from runtime.catalog import parse_keep_alive

        try:
            parse_keep_alive(value)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return value


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is tuple:  # lists: JSON arrays in the config file, comma-separated in the environment
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{name}: expected a list of strings, got {value!r}")
        return tuple(i.strip() for i in items if i.strip())
    if kind is str:
        if not isinstance(value, str) or (not value and name not in OPTIONAL_STRINGS):
            raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
        return _checked_choice(name, value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected a boolean, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if number < 0 or (number == 0 and name not in ZERO_ALLOWED):
        raise ConfigError(f"{name}: must be positive, got {number}")
    return number


def load_limits(
    config_file: str | None = None, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> Limits:
    """Merge the sources in order of precedence; unknown keys and bad values raise ConfigError."""
    environ = dict(os.environ if environ is None else environ)
    kinds = {f.name: _kind(f.type) for f in fields(Limits)}
    merged: dict[str, Any] = {}
    path = config_file or environ.get(CONFIG_ENV)
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        unknown = set(data) - set(kinds)
        if unknown:
            raise ConfigError(f"config file {path}: unknown settings {sorted(unknown)}")
        merged.update(data)
    for name in kinds:
        if ENV_PREFIX + name.upper() in environ:
            merged[name] = environ[ENV_PREFIX + name.upper()]
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return replace(Limits(), **{k: _coerce(k, v, kinds[k]) for k, v in merged.items()})


def _kind(annotation: Any) -> type:
    text = str(annotation)
    if text in ("str", "<class 'str'>"):
        return str
    return bool if text in ("bool", "<class 'bool'>") else tuple if text.startswith("tuple") else int


def memory_budget_bytes(limits: Limits) -> int:
    if limits.memory_budget_mb:
        return limits.memory_budget_mb * 1024 * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.75)
