"""`runtime bench` CPU-formats scenario: one 134M-parameter model in 4-bit, 8-bit, bf16 and fp32.

The random-weight llama of issue 12 (hidden 1024, 12 layers, intermediate 2816, vocab 960) is built
at bench time in a tmp dir, never committed. For each format: decode and prefill tokens/s through
the runtime (the plain host, `cpu_weights: auto`, so the native kernels where they are in use)
beside raw mlx-lm on MLX's own path in this process, alternating, medians; and the bandwidth bound
(read bandwidth over the bytes of weights one token reads). MLX's CPU path for quantized weights
decodes at ~1 tok/s, so its side runs fewer tokens (said in the table).

Run it alone: `python -m runtime.bench.cpu_formats --rounds 3`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from runtime.bench.plain import PlainHost, partial_character_tokens

FORMATS = {"4-bit": ("q", 4), "8-bit": ("q", 8), "bf16": ("bfloat16", 0), "fp32": ("float32", 0)}
SHAPE = {
    "hidden_size": 1024,
    "num_hidden_layers": 12,
    "intermediate_size": 2816,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
}
PREFILL_TOKENS = 256
NO_EOS = -100.0


def build(out: Path, fmt: str) -> int:
    """The model in `fmt` under `out`; returns the bytes of its weights (what a token reads)."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    from runtime.tinymodels.fixtures import DEFAULT_TOKENIZER_SOURCE, build_random_model

    build_random_model(
        out,
        arch="llama",
        hidden_size=SHAPE["hidden_size"],
        num_hidden_layers=SHAPE["num_hidden_layers"],
        intermediate_size=SHAPE["intermediate_size"],
        num_attention_heads=SHAPE["num_attention_heads"],
        num_key_value_heads=SHAPE["num_key_value_heads"],
    )
    config = json.loads((out / "config.json").read_text())
    model = llama.Model(llama.ModelArgs.from_dict(config))
    model.load_weights(str(out / "model.safetensors"))
    kind, bits = FORMATS[fmt]
    if kind == "q":
        model.set_dtype(mx.bfloat16)
        nn.quantize(model, group_size=64, bits=bits)
        config["quantization"] = {"group_size": 64, "bits": bits}
    else:
        model.set_dtype(getattr(mx, kind))
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(config))
    assert (out / "tokenizer.json").exists() and DEFAULT_TOKENIZER_SOURCE.exists()
    return sum(v.nbytes for v in weights.values())


def read_bandwidth(megabytes: int = 512) -> float:
    """Bytes per second one core reads (numpy sum over a buffer larger than the caches), best of 3."""
    import numpy as np

    data = np.ones(megabytes * 2**20 // 8)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        data.sum()
        best = max(best, data.nbytes / (time.perf_counter() - started))
    return best


def _runtime_side(path: Path, banned: list[int], tokens: int, rounds: int) -> dict[str, Any]:
    """Decode and prefill through the runtime; `banned`: EOS and partial-character tokens (a
    stream holds those back, so the host would time a burst instead of the decode)."""
    host = PlainHost()
    try:
        info = host.request("load_model", {"model_id": "bench", "local_path": str(path)})
        bias = {str(i): NO_EOS for i in banned}
        decode = {"model_id": "bench", "prompt": "Once upon a time", "max_tokens": tokens, "temperature": 0}
        # The prompt cache off: every round prefills the whole prompt (a hit would time nothing).
        prefill = {
            "model_id": "bench",
            "prompt_tokens": [5 + i % 900 for i in range(PREFILL_TOKENS)],
            "prompt_cache": False,
        }
        decode_runs, prefill_runs = [], []
        for _ in range(rounds):
            decode_runs.append(host.timed_stream({**decode, "logit_bias": bias})["decode_tps"])
            ttft = host.timed_stream({**prefill, "max_tokens": 1, "temperature": 0, "logit_bias": bias})["ttft_ms"]
            prefill_runs.append(PREFILL_TOKENS / (ttft / 1000))
        return {
            "decode_tps": round(statistics.median(decode_runs), 1),
            "prefill_tps": round(statistics.median(prefill_runs), 1),
            "cpu_weights": info["cpu_weights"],
        }
    finally:
        host.close()


def _raw_side(path: Path, tokens: int, prompt_tokens: int, rounds: int) -> dict[str, Any]:
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = load(str(path))[:2]
    decode_runs, prefill_runs = [], []
    for _ in range(rounds):
        prompt = [5 + i % 900 for i in range(prompt_tokens)]
        last = list(stream_generate(model, tokenizer, prompt, max_tokens=tokens, sampler=make_sampler(temp=0.0)))[-1]
        decode_runs.append(last.generation_tps)
        prefill_runs.append(last.prompt_tps)
    return {
        "decode_tps": round(statistics.median(decode_runs), 1),
        "prefill_tps": round(statistics.median(prefill_runs), 1),
        "tokens": tokens,
        "prompt_tokens": prompt_tokens,
        "reduced": tokens < 32,  # MLX's slow quantized path: fewer tokens and a shorter prompt
    }


def run_cpu_formats(rounds: int, tokens: int, formats: list[str]) -> dict[str, Any]:
    bandwidth = read_bandwidth()
    rows = []
    for fmt in formats:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"llama-134m-{fmt}"
            weight_bytes = build(path, fmt)
            eos = json.loads((path / "config.json").read_text())["eos_token_id"]
            slow = FORMATS[fmt][0] == "q"  # MLX's own quantized CPU path: ~1 tok/s
            raw = _raw_side(path, 8 if slow else tokens, 32 if slow else PREFILL_TOKENS, 1 if slow else rounds)
            banned = [*(eos if isinstance(eos, list) else [eos]), *partial_character_tokens(str(path))]
            runtime = _runtime_side(path, banned, tokens, rounds)
        rows.append(
            {
                "format": fmt,
                "weights_mb": round(weight_bytes / 2**20, 1),
                "runtime": runtime,
                "raw_mlx_lm": raw,
                "bandwidth_bound_tps": round(bandwidth / weight_bytes, 1),
            }
        )
    return {"read_bandwidth_gb_s": round(bandwidth / 1e9, 1), "rows": rows, "model": SHAPE}


def print_cpu_formats(result: dict[str, Any]) -> None:
    print(f"\nCPU formats, 134M llama (read bandwidth {result['read_bandwidth_gb_s']} GB/s, one core)")
    print(
        f"{'format':<8}{'MB':>8}{'runtime decode':>16}{'raw decode':>12}{'runtime prefill':>17}{'raw prefill':>13}"
        f"{'bound':>8}  served by"
    )
    for row in result["rows"]:
        rt, raw = row["runtime"], row["raw_mlx_lm"]
        print(
            f"{row['format']:<8}{row['weights_mb']:>8}{rt['decode_tps']:>16}{raw['decode_tps']:>12}"
            f"{rt['prefill_tps']:>17}{raw['prefill_tps']:>13}{row['bandwidth_bound_tps']:>8}  {rt['cpu_weights']}"
            + (f" (raw: {raw['tokens']} tokens, {raw['prompt_tokens']}-token prompt)" if raw["reduced"] else "")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.bench.cpu_formats", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--out", default="bench-cpu-formats.json")
    args = parser.parse_args(argv)
    from runtime.server.blas import preload_blas

    preload_blas()
    result = run_cpu_formats(args.rounds, args.tokens, [f for f in args.formats.split(",") if f])
    print_cpu_formats(result)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
