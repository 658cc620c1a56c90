"""Loaded models: load with mlx-lm, unload and really free the memory. Engine thread only."""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import mlx.core as mx

from runtime import faultinject, faults
from runtime.engine import pooling
from runtime.engine.guidance import GuideCache
from runtime.engine.pooling import Pooler, Task
from runtime.engine.prompt_cache import PromptCache
from runtime.engine.resolve import ResolvedModel
from runtime.engine.weights import CpuWeights, Served, apply_cpu_weights

log = logging.getLogger(__name__)
DEFAULT_CONTEXT = 4096


def estimate_bytes(path: Path) -> int:
    """Memory the weights will take, from the files on disk (safetensors load at their stored size)."""
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


@dataclass(frozen=True)
class KvPolicy:
    """How a model's KV cache is kept: mlx-lm's quantized cache (`bits`), a rotating cache of
    `max_size` tokens (older ones dropped, the first few kept), or the full-precision cache."""

    bits: int | None = None
    max_size: int | None = None
    max_context: int | None = None  # low-memory mode: the context served is at most this many tokens
    group_size: int = 64

    @property
    def full(self) -> bool:
        return self.bits is None and self.max_size is None

    @property
    def batchable(self) -> bool:
        """mlx-lm's BatchGenerator makes its own full caches (its max_kv_size is ignored by models
        with their own make_cache, llama among them), so only full-cache models batch."""
        return self.full

    def new_cache(self, model: Any) -> list[Any]:
        """The model's own cache layers, each plain KVCache made a RotatingKVCache when bounded
        (make_prompt_cache ignores max_kv_size for models that make their own caches)."""
        from mlx_lm.models.cache import KVCache, RotatingKVCache, make_prompt_cache

        cache = make_prompt_cache(model)
        if self.max_size is None:
            return cache
        return [RotatingKVCache(max_size=self.max_size, keep=4) if type(c) is KVCache else c for c in cache]

    def describe(self) -> dict[str, int | None]:
        return {"kv_bits": self.bits, "max_kv_size": self.max_size}


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
    kind: str = "text"  # or "vision" (mlx-vlm), "embedding" or "reranker" (engine/pooling.py)
    processor: Any = None  # vision models: the mlx-vlm processor
    prompt_cache: PromptCache = field(default_factory=lambda: PromptCache(0, 0))
    # Set while the model is in the store; a queued job may still hold a model unloaded since.
    alive: threading.Event = field(default_factory=threading.Event)
    cpu_weights: Served | None = None  # what serves its quantized layers on the CPU (engine/weights.py)
    kv: KvPolicy = field(default_factory=KvPolicy)  # low-memory mode: quantized or bounded KV caches
    pooler: Pooler | None = None  # embedders and rerankers: what their requests run
    parallel: str | None = None  # across a distributed group: how it is split (engine/lockstep.shard)

    @property
    def task(self) -> Task:
        return self.pooler.task if self.pooler is not None else "generate"


@dataclass(frozen=True)
class Weights:
    """A model read into memory, before its warm-up: what ModelStore.read hands to ModelStore.admit."""

    model_id: str
    resolved: ResolvedModel
    model: Any
    tokenizer: Any
    processor: Any
    served: Served | None
    memory_before: int
    pooler: Pooler | None = None
    parallel: str | None = None


class ModelStore:
    """Read from any thread (`get`, `all`); changed only on the engine thread."""

    def __init__(self, guide_cache_size: int = 64, prompt_cache_bytes: int = 0, prompt_cache_entries: int = 0) -> None:
        self.guide_cache_size = guide_cache_size
        self.prompt_cache_limits = (prompt_cache_bytes, prompt_cache_entries)
        self.group: Any = None  # a distributed group: every model is read as this rank's shard
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
        """read, then admit: the weights, the warm-up token, and the model is in the store."""
        started = time.perf_counter() if started is None else started
        return self.admit(self.read(model_id, resolved, cpu_weights, room_bytes), context_length, started)

    def read(
        self,
        model_id: str,
        resolved: ResolvedModel,
        cpu_weights: CpuWeights = "auto",
        room_bytes: int = 0,
        task: Task | None = None,
        parallel: str = "auto",
    ) -> Weights:
        """The model's weights in memory (and its CPU weight format applied); not in the store yet.
        `task` (the load's) says what a decoder serves; otherwise the directory says (pooling.py)."""
        from mlx_lm.utils import load as mlx_lm_load

        from runtime.engine.vlm import is_vision_config, load_vision

        if faultinject.armed("read_fails"):
            raise faults.ModelLoadFailed(f"Failed to load model {model_id}: injected read failure", model_id=model_id)
        before = mx.get_active_memory()
        processor, pooler, split = None, None, None
        config = _config(resolved.path, model_id)
        served_task = pooling.detect_task(resolved.path, config, model_id, task)
        encoder = pooling.family_of(config) != "decoder"
        if self.group is not None:
            _check_shardable(model_id, served_task, encoder or is_vision_config(config))
        try:
            if served_task == "generate" and is_vision_config(config):
                eos = config.get("eos_token_id")
                model, processor, tokenizer = load_vision(resolved.path, [eos] if isinstance(eos, int) else eos)
            elif encoder:
                model, tokenizer = pooling.load_encoder(resolved.path)
            elif self.group is not None:  # read lazily: this rank materializes its shard only
                from runtime.engine import lockstep

                model, tokenizer = mlx_lm_load(str(resolved.path), lazy=True)[:2]
                split = lockstep.shard(model, self.group, parallel, model_id)
            else:
                model, tokenizer = mlx_lm_load(str(resolved.path))[:2]
            mx.eval(model.parameters())
            if served_task != "generate":
                pooler = pooling.make_pooler(served_task, resolved.path, config, model, tokenizer, model_id)
        except faults.Fault:
            raise
        except Exception as exc:
            raise faults.ModelLoadFailed(
                f"Failed to load model {model_id}: {type(exc).__name__}: {exc}", model_id=model_id
            ) from None
        # A refusal here is the caller's error; mlx-embeddings' encoders keep MLX's own layers.
        served = None if encoder else apply_cpu_weights(model, cpu_weights, room_bytes)
        return Weights(model_id, resolved, model, tokenizer, processor, served, before, pooler, split)

    def admit(
        self, weights: Weights, context_length: int | None, started: float, kv: KvPolicy | None = None
    ) -> LoadedModel:
        """A one-token warm-up, then the model is in the store, ready. `started` (perf_counter) is
        when the host's load_model was taken in, so the load time counts what the host waited for:
        resolving, the memory check, the first load's imports, the weights and the warm-up."""
        model_id, processor = weights.model_id, weights.processor
        if weights.pooler is not None:
            return self._admit_pooler(weights, weights.pooler, context_length, started)
        warm_up(model_id, weights.model, weights.tokenizer, processor is not None)
        kv = kv or KvPolicy()
        loaded = _describe(weights, context_length, started, self.guide_cache_size, kv)
        if processor is not None and not kv.full:
            log.info("%s: kv_bits / max_kv_size apply to text models; this vision model keeps a full cache", model_id)
            kv = KvPolicy()
        loaded = replace(loaded, cpu_weights=weights.served, kv=kv, parallel=weights.parallel)
        if processor is not None:
            loaded = replace(loaded, kind="vision", processor=processor)
        elif kv.full:  # not prefix-cached: vision prompts hold image features; quantized or rotating
            # caches cannot be trimmed back to a shared prefix
            per_token = _kv_bytes_per_token(weights, loaded.dtype) if self.group is not None else None
            limits = self.prompt_cache_limits if self.group is None or per_token else (0, 0)  # no common rule: off
            loaded = replace(loaded, prompt_cache=PromptCache(*limits, per_token))
        loaded.alive.set()
        with self._lock:
            self._models[model_id] = loaded
        return loaded

    def _admit_pooler(
        self, weights: Weights, pooler: Pooler, context_length: int | None, started: float
    ) -> LoadedModel:
        """An embedder or reranker: a warm-up pass, then in the store; no KV or prompt cache."""
        try:
            pooling.warm_up(pooler, _some_token(weights.tokenizer))
        except Exception as exc:
            raise faults.ModelLoadFailed(
                f"Failed to load model {weights.model_id}: the warm-up pass failed: {type(exc).__name__}: {exc}",
                model_id=weights.model_id,
                reason="warm_up",
            ) from None
        context = min(context_length, pooler.max_length) if context_length else pooler.max_length
        loaded = _describe(weights, context, started, self.guide_cache_size, KvPolicy())
        kind = "embedding" if pooler.task == "embed" else "reranker"
        loaded = replace(loaded, kind=kind, pooler=pooler, context_length=context)
        loaded.alive.set()
        with self._lock:
            self._models[weights.model_id] = loaded
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


def read_summary(weights: Weights) -> str:
    """What a read made that every rank of a group must agree on: the split, the CPU weight format."""
    return f"{weights.parallel}/{weights.served}"


def _kv_bytes_per_token(weights: Weights, dtype: str) -> int | None:
    """The whole model's KV bytes per token, from its config (the same on every rank)."""
    config = _config(weights.resolved.path, weights.model_id)
    config = config.get("text_config", config)
    layers, heads = config.get("num_hidden_layers"), config.get("num_attention_heads")
    if not layers or not heads:
        return None
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config.get("hidden_size", 0) // heads
    width = {"float32": 4, "float16": 2, "bfloat16": 2}.get(dtype, 2)
    return int(2 * layers * kv_heads * head_dim * width) or None


def _check_shardable(model_id: str, task: Task, other_kind: bool) -> None:
    """A group serves text generation: mlx-lm's shard() and pipeline() are for its decoders."""
    if task != "generate" or other_kind:
        raise faults.Unsupported(
            f"{model_id} cannot be served across a distributed group: only mlx-lm text models are split "
            "(embedders, rerankers and vision models run on one machine)",
            feature="distributed",
            model_id=model_id,
        )


def warm_up(model_id: str, model: Any, tokenizer: Any, vision: bool) -> None:
    """One token through the model with a fresh KV cache: the first request then meets no lazy
    first-call costs (kernel set-up, the native route's first dispatch, allocator growth)."""
    from mlx_lm.models.cache import make_prompt_cache

    language = getattr(model, "language_model", model) if vision else model
    token = tokenizer.bos_token_id if getattr(tokenizer, "bos_token_id", None) is not None else 0
    try:
        logits = language(mx.array([[token]]), cache=make_prompt_cache(language))
        logits = getattr(logits, "logits", logits)  # mlx-vlm language models return an output object
        mx.eval(mx.argmax(logits[:, -1, :], axis=-1))
    except Exception as exc:
        raise faults.ModelLoadFailed(
            f"Failed to load model {model_id}: the warm-up token failed: {type(exc).__name__}: {exc}",
            model_id=model_id,
            reason="warm_up",
        ) from None


def _describe(
    weights: Weights, context_length: int | None, started: float, guide_cache_size: int, kv: KvPolicy
) -> LoadedModel:
    from mlx.utils import tree_flatten

    model_id, resolved, model, tokenizer = weights.model_id, weights.resolved, weights.model, weights.tokenizer
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
        context_length=_capped(context_length or text_config.get("max_position_embeddings"), kv.max_context),
        parameter_count=sum(v.size for _, v in params),
        dtype=str(params[0][1].dtype).removeprefix("mlx.core.") if params else "unknown",
        vocab_size=vocab_size,
        memory_bytes=max(0, mx.get_active_memory() - weights.memory_before),
        load_seconds=time.perf_counter() - started,
        loaded_at=time.time(),
        guides=GuideCache(tokenizer, vocab_size, guide_cache_size),
    )


def _config(path: Path, model_id: str) -> dict[str, Any]:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise faults.ModelLoadFailed(
            f"Failed to load model {model_id}: config.json: {exc}", model_id=model_id
        ) from None
    if not isinstance(config, dict):
        raise faults.ModelLoadFailed(
            f"Failed to load model {model_id}: config.json is not an object", model_id=model_id
        )
    return config


def _some_token(tokenizer: Any) -> int:
    for name in ("bos_token_id", "cls_token_id", "eos_token_id"):
        token = getattr(tokenizer, name, None)
        if isinstance(token, int):
            return token
    return 0


def _capped(model_context: int | None, cap: int | None) -> int:
    context = model_context or DEFAULT_CONTEXT
    return min(context, cap) if cap else context
