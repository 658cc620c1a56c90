"""The optional native module (native/, built by scripts/setup.sh): CPU kernels as MLX primitives.

`route(model)` makes a loaded model's affine-quantized linear layers (mlx-lm's QuantizedLinear, and
QuantizedEmbedding.as_linear for tied heads) call the native quantized matmul, and its bf16/fp16
nn.Linear layers (and nn.Embedding.as_linear) the native dense matmul, when MLX runs on the CPU.
fp32 weights keep MLX's path (BLAS serves them well). The models' code is unchanged: each supported
layer instance gets a subclass of its own class whose `__call__` (or `as_linear`) calls the native
primitive, inside MLX's lazy graph. Anything unsupported keeps MLX's path, with one log line.
`RUNTIME_NATIVE=0` turns it all off. See docs/native.md.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from runtime.engine.platform import mlx_version

log = logging.getLogger("runtime.engine.native")

BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)
_FLOATS = (mx.float32, mx.float16, mx.bfloat16)
HALF_WEIGHTS = (mx.float16, mx.bfloat16)  # the dense kernel's weight dtypes

_module: Any = None
_reason = "not loaded yet"
_loaded = False


def _load() -> Any:
    global _module, _reason, _loaded
    if _loaded:
        return _module
    _loaded = True
    if os.environ.get("RUNTIME_NATIVE", "1") == "0":
        _reason = "disabled by RUNTIME_NATIVE=0"
        return None
    try:
        from runtime.engine import _native  # type: ignore[attr-defined]
    except ImportError as exc:
        _reason = f"native module not available: {exc}"
        if "built against MLX" in str(exc):
            log.warning("native: %s; using MLX's kernels", exc)
        return None
    if getattr(_native, "built_mlx_version", None) != mlx_version():
        _reason = f"native module built against MLX {_native.built_mlx_version}, MLX {mlx_version()} loaded"
        log.warning("native: %s; using MLX's kernels", _reason)
        return None
    _module = _native
    _reason = f"loaded ({_native.isa()}, {_native.threads()} threads)"
    return _module


def module() -> Any:
    """The native extension module when it is importable and allowed, else None."""
    return _load()


def active() -> bool:
    """True when the native kernels are loaded and MLX's default device is the CPU."""
    return _load() is not None and mx.default_device() == mx.cpu


def status() -> dict[str, Any]:
    """For runtime/info and doctor: {available, reason, version}."""
    mod = _load()
    reason = _reason
    if mod is not None and mx.default_device() != mx.cpu:
        reason = "MLX's default device is not the CPU; MLX's own kernels are used"
    return {
        "available": mod is not None,
        "reason": reason,
        "version": getattr(mod, "built_mlx_version", None) if mod is not None else None,
        "isa": mod.isa() if mod is not None else None,
    }


def quantized_matmul(
    x: mx.array, w: mx.array, scales: mx.array, biases: mx.array, group_size: int, bits: int
) -> mx.array:
    return _load().quantized_matmul(x, w, scales, biases, group_size=group_size, bits=bits)


def matmul(x: mx.array, w: mx.array) -> mx.array:
    return _load().matmul(x, w)


def is_half_dense(layer: Any) -> bool:
    """An unquantized nn.Linear / nn.Embedding whose weight is bf16 or fp16 (the dense kernel's)."""
    return isinstance(layer, (nn.Linear, nn.Embedding)) and layer["weight"].dtype in HALF_WEIGHTS


def unsupported(layer: Any) -> str | None:
    """Why this layer cannot use a native kernel, or None when it can."""
    if isinstance(layer, (nn.Linear, nn.Embedding)):
        return _dense_unsupported(layer)
    if getattr(layer, "mode", "affine") != "affine":
        return f"mode {layer.mode}"
    if layer.bits not in BITS:
        return f"bits {layer.bits}"
    if layer.group_size not in GROUP_SIZES:
        return f"group size {layer.group_size}"
    if "biases" not in layer or layer["biases"] is None:
        return "no biases"
    if layer["scales"].dtype not in _FLOATS or layer["biases"].dtype != layer["scales"].dtype:
        return f"scales dtype {layer['scales'].dtype}"
    if layer["weight"].dtype != mx.uint32 or layer["weight"].ndim != 2:
        return "weight layout"
    return None


def _dense_unsupported(layer: Any) -> str | None:
    # A subclass with its own forward (e.g. a LoRA layer) would lose it to the swap.
    if isinstance(layer, nn.Linear) and type(layer).__call__ is not nn.Linear.__call__:
        return f"{type(layer).__name__} has its own __call__"
    if isinstance(layer, nn.Embedding) and type(layer).as_linear is not nn.Embedding.as_linear:
        return f"{type(layer).__name__} has its own as_linear"
    weight = layer["weight"]
    if weight.ndim != 2:
        return "weight layout"
    if weight.dtype not in HALF_WEIGHTS:
        return f"weight dtype {weight.dtype}"
    return None


def _native_call(self: Any, x: mx.array) -> mx.array:
    if x.dtype not in _FLOATS:
        return super(type(self), self).__call__(x)
    out = quantized_matmul(x, self["weight"], self["scales"], self["biases"], self.group_size, self.bits)
    if "bias" in self:
        out = out + self["bias"]
    return out


def _native_as_linear(self: Any, x: mx.array) -> mx.array:
    if x.dtype not in _FLOATS:
        return super(type(self), self).as_linear(x)
    return quantized_matmul(x, self["weight"], self["scales"], self["biases"], self.group_size, self.bits)


def _native_dense_call(self: Any, x: mx.array) -> mx.array:
    if x.dtype not in _FLOATS:
        return super(type(self), self).__call__(x)
    out = matmul(x, self["weight"])
    if "bias" in self:
        out = out + self["bias"]
    return out


def _native_dense_as_linear(self: Any, x: mx.array) -> mx.array:
    if x.dtype not in _FLOATS:
        return super(type(self), self).as_linear(x)
    return matmul(x, self["weight"])


_subclasses: dict[type, type] = {}


def _native_class(cls: type) -> type:
    sub = _subclasses.get(cls)
    if sub is None:
        body: dict[str, Any] = {"_runtime_native": True, "__module__": __name__}
        if issubclass(cls, nn.QuantizedEmbedding):
            body["as_linear"] = _native_as_linear
        elif issubclass(cls, nn.Embedding):
            body["as_linear"] = _native_dense_as_linear
        elif issubclass(cls, nn.Linear):
            body["__call__"] = _native_dense_call
        else:
            body["__call__"] = _native_call
        sub = type(f"Native{cls.__name__}", (cls,), body)
        _subclasses[cls] = sub
    return sub


def _candidate(layer: Any) -> bool:
    """A layer route() considers: quantized ones, and bf16/fp16 dense ones (fp32 keeps MLX's BLAS
    path without a log line: it is the better kernel there, not a gap)."""
    if getattr(layer, "_runtime_native", False):
        return False
    if isinstance(layer, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
        return True
    return isinstance(layer, (nn.Linear, nn.Embedding)) and layer["weight"].dtype != mx.float32


def route(model: Any) -> dict[str, int]:
    """Route the model's supported quantized and bf16/fp16 linear layers to the native kernels.
    Returns counts."""
    counts = {"routed": 0, "kept": 0}
    if not active():
        return counts
    skipped: dict[str, int] = {}
    for _, layer in model.named_modules():
        if not _candidate(layer):
            continue
        why = unsupported(layer)
        if why is not None:
            counts["kept"] += 1
            skipped[why] = skipped.get(why, 0) + 1
            continue
        layer.__class__ = _native_class(type(layer))
        counts["routed"] += 1
    if skipped:
        log.info(
            "native: %d layers keep MLX's path (%s)",
            counts["kept"],
            ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())),
        )
    if counts["routed"]:
        log.info("native: %d layers use the native kernels", counts["routed"])
    return counts


def unroute(model: Any) -> None:
    """Undo route() (tests and benches compare both paths on one loaded model)."""
    for _, layer in model.named_modules():
        if getattr(layer, "_runtime_native", False):
            layer.__class__ = type(layer).__mro__[1]
