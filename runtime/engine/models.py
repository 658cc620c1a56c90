"""Loaded models: load with mlx-lm, unload and really free the memory. Engine thread only."""

from __future__ import annotations

import gc
import json
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import mlx.core as mx

from runtime import faultinject, faults
from runtime.engine.guidance import GuideCache
from runtime.engine.prompt_cache import PromptCache
from runtime.engine.resolve import ResolvedModel
from runtime.engine.weights import CpuWeights, Served, apply_cpu_weights

DEFAULT_CONTEXT = 4096


def estimate_bytes(path: Path) -> int:
    """Memory the weights will take, from the files on disk (safetensors load at their stored size)."""
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    path: Path
    source: str
    model: Any
    tokenizer: Any
    context_length: int
    parameter_count: int
    dtype: str
    vocab_size: int
    memory_bytes: int
    load_seconds: float
    loaded_at: float
    guides: GuideCache  # structured-output grammars compiled for this model's tokenizer
    kind: str = "text"  # or "vision" (mlx-vlm)
    processor: Any = None  # vision models: the mlx-vlm processor
    prompt_cache: PromptCache = field(default_factory=lambda: PromptCache(0, 0))
    # Set while the model is in the store; a queued job may still hold a model unloaded since.
    alive: threading.Event = field(default_factory=threading.Event)
    cpu_weights: Served | None = None  # what serves its quantized layers on the CPU (engine/weights.py)


class ModelStore:
    """Read from any thread (`get`, `all`); changed only on the engine thread."""

    def __init__(self, guide_cache_size: int = 64, prompt_cache_bytes: int = 0, prompt_cache_entries: int = 0) -> None:
        self.guide_cache_size = guide_cache_size
        self.prompt_cache_limits = (prompt_cache_bytes, prompt_cache_entries)
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, model_id: str) -> LoadedModel | None:
        with self._lock:
            return self._models.get(model_id)

    def require(self, model_id: str) -> LoadedModel:
        loaded = self.get(model_id)
        if loaded is None:
            raise faults.ModelNotLoaded(f"Model not loaded: {model_id}", model_id=model_id)
        return loaded

    def all(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def load(
        self,
        model_id: str,
        resolved: ResolvedModel,
        context_length: int | None,
        started: float | None = None,
        cpu_weights: CpuWeights = "auto",
        room_bytes: int = 0,
    ) -> LoadedModel:
        """`started` (perf_counter) is when the host's load_model was taken in, so the load time counts
        what the host waited for: resolving, the memory check, the first load's imports, the weights."""
        started = time.perf_counter() if started is None else started
        from mlx_lm.utils import load as mlx_lm_load

        from runtime.engine.vlm import is_vision_config, load_vision

        before = mx.get_active_memory()
        processor = None
        try:
            config = json.loads((resolved.path / "config.json").read_text())
            if is_vision_config(config):
                eos = config.get("eos_token_id")
                model, processor, tokenizer = load_vision(resolved.path, [eos] if isinstance(eos, int) else eos)
            else:
                model, tokenizer = mlx_lm_load(str(resolved.path))[:2]
            mx.eval(model.parameters())
        except Exception as exc:
            raise faults.ModelLoadFailed(
                f"Failed to load model {model_id}: {type(exc).__name__}: {exc}", model_id=model_id
            ) from None
        served = apply_cpu_weights(model, cpu_weights, room_bytes)  # a refusal here is the caller's error
        loaded = _describe(model_id, resolved, model, tokenizer, context_length, started, before, self.guide_cache_size)
        loaded = replace(loaded, cpu_weights=served)
        if processor is not None:
            loaded = replace(loaded, kind="vision", processor=processor)
        else:  # vision models are not prefix-cached (their prompts hold image features)
            loaded = replace(loaded, prompt_cache=PromptCache(*self.prompt_cache_limits))
        loaded.alive.set()
        with self._lock:
            self._models[model_id] = loaded
        return loaded

    def unload(self, model_id: str) -> tuple[bool, int]:
        """Drop the model and give its memory back; returns (was loaded, bytes freed)."""
        if faultinject.armed("engine_crash_on_unload"):
            raise faultinject.InjectedCrash("injected: engine_crash_on_unload")
        with self._lock:
            loaded = self._models.pop(model_id, None)
        if loaded is not None:
            loaded.alive.clear()
        was_loaded, before = loaded is not None, mx.get_active_memory()
        del loaded
        gc.collect()
        mx.clear_cache()
        return was_loaded, max(0, before - mx.get_active_memory())


def _describe(
    model_id: str,
    resolved: ResolvedModel,
    model: Any,
    tokenizer: Any,
    context_length: int | None,
    started: float,
    memory_before: int,
    guide_cache_size: int,
) -> LoadedModel:
    from mlx.utils import tree_flatten

    params = cast("list[tuple[str, mx.array]]", tree_flatten(model.parameters()))
    config = json.loads((resolved.path / "config.json").read_text())
    text_config = config.get("text_config", config)
    vocab_size = text_config.get("vocab_size") or len(tokenizer)
    return LoadedModel(
        model_id=model_id,
        path=resolved.path,
        source=resolved.source,
        model=model,
        tokenizer=tokenizer,
        context_length=context_length or text_config.get("max_position_embeddings") or DEFAULT_CONTEXT,
        parameter_count=sum(v.size for _, v in params),
        dtype=str(params[0][1].dtype).removeprefix("mlx.core.") if params else "unknown",
        vocab_size=vocab_size,
        memory_bytes=max(0, mx.get_active_memory() - memory_before),
        load_seconds=time.perf_counter() - started,
        loaded_at=time.time(),
        guides=GuideCache(tokenizer, vocab_size, guide_cache_size),
    )
