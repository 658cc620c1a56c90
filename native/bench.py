"""Decode tokens/s of a random llama (hidden 1024, 12 layers, intermediate 2816, vocab 960), 4/8-bit
or bf16/fp16: MLX's CPU path vs the native route, in-process with mlx_lm.stream_generate,
alternating, medians.

    .venv/bin/python native/bench.py [--rounds 3] [--tokens 32] [--format q|bf16|fp16] [--bits 4] [--group-size 64]

The model is built at bench time in a tmp dir (never committed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path


def build(out: Path, fmt: str, bits: int, group_size: int) -> None:
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    src = Path(__file__).resolve().parents[1] / "runtime/assets/models/tiny-chat"
    config = {
        "model_type": "llama",
        "hidden_size": 1024,
        "num_hidden_layers": 12,
        "intermediate_size": 2816,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-5,
        "vocab_size": 960,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "max_position_embeddings": 2048,
        "eos_token_id": json.loads((src / "config.json").read_text())["eos_token_id"],
    }
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    model.set_dtype(mx.float16 if fmt == "fp16" else mx.bfloat16)
    if fmt == "q":
        nn.quantize(model, group_size=group_size, bits=bits)
        config["quantization"] = {"group_size": group_size, "bits": bits}
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(
        str(out / "model.safetensors"), dict(tree_flatten(model.parameters())), metadata={"format": "mlx"}
    )
    (out / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, out / name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--format", choices=("q", "bf16", "fp16"), default="q", help="q: quantized (--bits)")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=256, help="length of the prefill prompt")
    args = ap.parse_args()
    import mlx.core as mx
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    from runtime.engine import native

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-llama"
        build(path, args.format, args.bits, args.group_size)
        model, tokenizer = load(str(path))
    logits = {}
    results: dict[str, list[float]] = {"mlx": [], "native": []}
    prefill: dict[str, list[float]] = {"mlx": [], "native": []}
    prompt = "Once upon a time"
    ids = tokenizer.encode(prompt)
    long_prompt = (ids * (args.prompt_tokens // len(ids) + 1))[: args.prompt_tokens]
    for r in range(args.rounds):
        for side in ("mlx", "native"):
            (native.route if side == "native" else native.unroute)(model)
            responses = stream_generate(
                model, tokenizer, prompt, max_tokens=args.tokens, sampler=make_sampler(temp=0.0)
            )
            last = list(responses)[-1]
            results[side].append(last.generation_tps)
            # MLX's quantized path takes minutes for a long prompt: its prefill is measured in round 0 only.
            pre_tps = float("nan")
            if side == "native" or r == 0:
                pre = list(stream_generate(model, tokenizer, long_prompt, max_tokens=1, sampler=make_sampler(temp=0.0)))
                pre_tps = pre[-1].prompt_tps
                prefill[side].append(pre_tps)
            print(
                f"round {r} {side}: {last.generation_tps:.2f} tok/s decode, "
                f"{len(long_prompt)}-token prefill {pre_tps:.2f} tok/s",
                flush=True,
            )
            if r == 0:
                logits[side] = model(mx.array([tokenizer.encode(prompt)]))[0, -1].astype(mx.float32)
    diff = mx.abs(logits["mlx"] - logits["native"]).max().item() / mx.abs(logits["mlx"]).max().item()
    out = {k: statistics.median(v) for k, v in results.items()}
    out["speedup"] = out["native"] / out["mlx"]
    out["prefill_mlx"] = statistics.median(prefill["mlx"])
    out["prefill_native"] = statistics.median(prefill["native"])
    out["max_rel_logit_diff"] = diff
    print(json.dumps({**out, "status": native.status()}))


if __name__ == "__main__":
    main()
