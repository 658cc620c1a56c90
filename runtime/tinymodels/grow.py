"""Grow a trained model deeper without changing what it computes: the benchmark's expensive target.

Appended llama layers have their output projections (attention `o_proj`, MLP `down_proj`) set to
zero, so each adds nothing to the residual stream and the logits stay exactly those of the source
model, while every added layer still costs its full compute. Against such a target a small draft
behaves as against a real deep model whose forward pass is expensive; its acceptance rate is the
source model's, since the outputs are identical.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import cast


def grow(source: Path, out_dir: Path, total_layers: int, seed: int = 0) -> dict:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    config = json.loads((source / "config.json").read_text())
    if config["model_type"] != "llama":
        raise ValueError("only llama models can be grown")
    grown = {**config, "num_hidden_layers": total_layers}
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(grown))
    weights = dict(tree_flatten(model.parameters()))
    source_weights = cast("dict[str, mx.array]", mx.load(str(source / "model.safetensors")))
    weights.update(source_weights)  # the source's layers and embeddings
    for layer in range(config["num_hidden_layers"], total_layers):
        for name in ("self_attn.o_proj.weight", "mlp.down_proj.weight"):
            key = f"model.layers.{layer}.{name}"
            weights[key] = mx.zeros_like(weights[key])
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out_dir / "config.json").write_text(json.dumps(grown, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, out_dir / name)
    return {"path": str(out_dir), "layers": total_layers, "parameters": sum(v.size for v in weights.values())}
