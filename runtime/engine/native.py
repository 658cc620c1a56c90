"""The optional native module (native/, built by scripts/setup.sh): CPU kernels as MLX primitives.

`route(model)` makes a loaded model's affine-quantized linear layers (mlx-lm's QuantizedLinear, and
QuantizedEmbedding.as_linear for tied heads) call the native quantized matmul, and its bf16/fp16
nn.Linear layers (and nn.Embedding.as_linear) the native dense matmul, when MLX runs on the CPU.
fp32 weights keep MLX's path (BLAS serves them well). The models' code is unchanged: each supported
layer instance gets a subclass of its own class whose `__call__` (or `as_linear`) calls the native
primitive, inside MLX's lazy graph. Anything unsupported keeps MLX's path, with one log line.

Layer ops: MLX's CPU backend runs `mx.fast.scaled_dot_product_attention`, `mx.fast.rms_norm` and
`mx.fast.rope` as their fallbacks, graphs of small ops (~9 nodes a norm, ~25 a rope), and the
attention's fp16/bf16 matmuls on MLX's half-precision gemm (half of a 4-bit decode step at 256
tokens of context). The first route() that routes a layer wraps those three functions (the models
call them through mlx-lm's, mlx-vlm's and mlx.nn's own code, which stays unchanged): on the CPU,
fp16/bf16 calls go to one native primitive each (attention with no mask, "causal" or a bool or
additive mask array, and no sinks; rope with an int or per-row offset); everything else goes to
MLX's function as before.

`RUNTIME_NATIVE=0` turns it all off (`RUNTIME_NATIVE_LAYER_OPS=0` the layer ops alone). See
docs/native.md.
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


# mx.fast functions as MLX defined them, before install_layer_ops() wrapped them.
_mlx_fast: dict[str, Any] = {}
_layer_ops_on = False


def _half_on_cpu(*arrays: mx.array) -> bool:
    dtype = arrays[0].dtype
    return dtype in HALF_WEIGHTS and all(a.dtype == dtype for a in arrays) and mx.default_device() == mx.cpu


def _mask_view(mask: mx.array, q: mx.array, k: mx.array) -> mx.array | None:
    """An array mask as the native attention reads it: [B, Hq, Lq, Lk] (a broadcast view), or None
    when it does not broadcast there or has another dtype."""
    if mask.dtype != mx.bool_ and mask.dtype not in _FLOATS:
        return None
    try:
        return mx.broadcast_to(mask, (q.shape[0], q.shape[1], q.shape[2], k.shape[2]))
    except ValueError:
        return None


def attention_applies(q: mx.array, k: mx.array, v: mx.array, mask: Any, sinks: Any) -> bool:
    """True when the native attention serves this call (else MLX's function does)."""
    known_mask = mask is None or isinstance(mask, mx.array) or (isinstance(mask, str) and mask == "causal")
    if not _layer_ops_on or sinks is not None or not known_mask:
        return False
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4 or not _half_on_cpu(q, k, v):
        return False
    hq, hk = q.shape[1], k.shape[1]
    same = k.shape[0] == q.shape[0] == v.shape[0] and v.shape[1] == hk and v.shape[2] == k.shape[2]
    if not same or hk == 0 or hq % hk != 0 or k.shape[3] != q.shape[3]:
        return False
    return not isinstance(mask, str) or k.shape[2] >= q.shape[2]  # "causal" needs Lk >= Lq


def _attention(q: mx.array, k: mx.array, v: mx.array, *args: Any, **kwargs: Any) -> mx.array:
    mask, sinks = kwargs.get("mask"), kwargs.get("sinks")
    if args or "stream" in kwargs or not attention_applies(q, k, v, mask, sinks):
        return _mlx_fast["scaled_dot_product_attention"](q, k, v, *args, **kwargs)
    scale = float(kwargs["scale"])
    if isinstance(mask, mx.array):
        view = _mask_view(mask, q, k)
        if view is None:
            return _mlx_fast["scaled_dot_product_attention"](q, k, v, *args, **kwargs)
        return _load().attention(q, k, v, scale=scale, mask=view)
    return _load().attention(q, k, v, scale=scale, causal=mask == "causal")


def _rms_norm(x: mx.array, weight: mx.array | None, eps: float, **kwargs: Any) -> mx.array:
    served = _layer_ops_on and not kwargs and x.ndim >= 1
    if weight is None:
        served = served and _half_on_cpu(x)
    else:
        served = served and _half_on_cpu(x, weight) and weight.ndim == 1 and weight.shape[0] == x.shape[-1]
    if not served:
        return _mlx_fast["rms_norm"](x, weight, eps, **kwargs)
    return _load().rms_norm(x, weight, float(eps))


def _rope(a: mx.array, dims: int, **kwargs: Any) -> mx.array:  # `a`: MLX's name, for keyword callers
    offset, freqs, base = kwargs.get("offset", 0), kwargs.get("freqs"), kwargs.get("base")
    known = set(kwargs) <= {"traditional", "base", "scale", "offset", "freqs"}
    served = _layer_ops_on and known and a.ndim >= 3 and _half_on_cpu(a) and 0 < dims <= a.shape[-1] and dims % 2 == 0
    if not served or (base is None) == (freqs is None) or isinstance(offset, bool):
        return _mlx_fast["rope"](a, dims, **kwargs)
    fixed = isinstance(offset, int)
    if not fixed and not (isinstance(offset, mx.array) and offset.ndim <= 1 and offset.size in (1, a.shape[0])):
        return _mlx_fast["rope"](a, dims, **kwargs)
    return _load().rope(
        a,
        dims,
        traditional=bool(kwargs.get("traditional", False)),
        base=None if base is None else float(base),
        scale=float(kwargs.get("scale", 1.0)),
        offset=offset if fixed else 0,
        offsets=None if fixed else offset,
        freqs=freqs,
    )


_WRAPPERS = {"scaled_dot_product_attention": _attention, "rms_norm": _rms_norm, "rope": _rope}


def install_layer_ops() -> None:
    """Wrap mx.fast's attention, rms_norm and rope once per process (see the module docstring)."""
    global _layer_ops_on
    if os.environ.get("RUNTIME_NATIVE_LAYER_OPS", "1") == "0" or _load() is None:
        return
    for name, wrapper in _WRAPPERS.items():
        if name not in _mlx_fast:
            _mlx_fast[name] = getattr(mx.fast, name)
            setattr(mx.fast, name, wrapper)
    _layer_ops_on = True


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
        install_layer_ops()
    return counts


def unroute(model: Any) -> None:
    """Undo route() (tests and benches compare both paths on one loaded model); the attention
    goes back to MLX's functions too."""
    global _layer_ops_on
    _layer_ops_on = False
    for _, layer in model.named_modules():
        if getattr(layer, "_runtime_native", False):
            layer.__class__ = type(layer).__mro__[1]
