"""What serves a quantized or bf16/fp16 model's layers on the CPU: load_model's `cpu_weights` policy.

MLX's CPU kernels for quantized matmuls are very slow (docs/native.md: ~1 tok/s on a 134M 4-bit
model). So on the CPU a quantized model is served by

- `native`: the native kernels (runtime/engine/native.py), keeping the weights quantized;
- `fp32`: its quantized layers dequantized to fp32 once, at load (4-8x the memory, then MLX's fast
  fp32 matmuls with BLAS): the honest fallback where the kernels are absent and memory allows;
- `auto` (the default): native when the kernels are in use, else fp32 when the memory budget
  allows it, else MLX's own quantized path.

A model with bf16/fp16 (unquantized) linear layers and no quantized ones is served by the native
dense kernel under `native`/`auto` when the kernels are in use (`native`), else by MLX's own
half-precision path (`mlx`; `fp32` does not upcast it). On Metal and CUDA, and for fp32 models,
nothing changes (`None`).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from runtime import faults
from runtime.engine import native

log = logging.getLogger(__name__)

CpuWeights = Literal["native", "fp32", "auto"]
Served = Literal["native", "fp32", "mlx"]
QUANTIZED = (nn.QuantizedLinear, nn.QuantizedEmbedding)


def apply_cpu_weights(model: Any, policy: CpuWeights, room_bytes: int) -> Served | None:
    """Serve `model`'s quantized (or bf16/fp16) layers as `policy` says; `room_bytes` is what the memory budget
    still allows (for fp32's extra memory). Returns what serves them, or None when nothing applies."""
    layers = [(name, layer) for name, layer in model.named_modules() if isinstance(layer, QUANTIZED)]
    half = any(native.is_half_dense(layer) for _, layer in model.named_modules())
    if not (layers or half) or mx.default_device() != mx.cpu:
        return None
    if policy in ("native", "auto") and native.active():
        routed = native.route(model)["routed"]
        return "native" if routed or layers else "mlx"
    if policy == "native":
        raise faults.InvalidInput.at("/cpu_weights", f"the native kernels are not in use: {native.status()['reason']}")
    if not layers:  # bf16/fp16 only: nothing to dequantize
        log.info("cpu_weights %s: the bf16/fp16 layers keep MLX's own path", policy)
        return "mlx"
    extra = sum(_fp32_bytes(layer) for _, layer in layers)
    if policy == "fp32" or extra <= room_bytes:
        _dequantize(model, layers)
        log.info("cpu_weights: %d quantized layers dequantized to fp32 (+%.1f MB)", len(layers), extra / 2**20)
        return "fp32"
    log.warning("cpu_weights: fp32 would need %.1f MB more than the budget allows; MLX's quantized path", extra / 2**20)
    return "mlx"


def _fp32_bytes(layer: Any) -> int:
    """What the layer's weight takes once dequantized to fp32."""
    rows, packed = layer.weight.shape
    return int(rows * packed * 32 // layer.bits * 4)


def _dequantize(model: Any, layers: list[tuple[str, Any]]) -> None:
    replacements = [(name, _dense(layer)) for name, layer in layers]
    model.update_modules(tree_unflatten(replacements))
    mx.eval(model.parameters())


def _dense(layer: Any) -> nn.Module:
    weight = mx.dequantize(
        layer.weight,
        layer.scales,
        layer.get("biases"),
        group_size=layer.group_size,
        bits=layer.bits,
        mode=getattr(layer, "mode", "affine"),
    ).astype(mx.float32)
    if isinstance(layer, nn.QuantizedEmbedding):
        embedding = nn.Embedding(*weight.shape)
        embedding.weight = weight
        return embedding
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias="bias" in layer)
    linear.weight = weight
    if "bias" in layer:
        linear.bias = layer.bias.astype(mx.float32)
    return linear
