"""`runtime bench` low-memory scenario: 8 streams with ~1k-token prompts at once, in a runtime
started normally and in one started with --low-memory; peak MLX memory, peak RSS and tokens/s.

Each side is a fresh runtime (peak memory is a process's own), and the sides alternate over the
runs; the table shows medians. The normal side batches the 8 streams; the low-memory side decodes
them one by one (an 8-bit KV cache cannot join mlx-lm's batch), which is the price of its memory.
"""

from __future__ import annotations

import time
from typing import Any

from runtime.bench.host import LeanHost, median

STREAMS = 8
SIDES = {"normal": (), "low_memory": ("--low-memory",)}
STORY = "Once upon a time there was a little fox named Ruby who lived by the river. "


def run_low_memory(model: str, runs: int, prompt_tokens: int = 1000, tokens: int = 64) -> dict[str, Any]:
    measured: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for _ in range(runs):
        for side, flags in SIDES.items():
            measured[side].append(_one_run(model, flags, prompt_tokens, tokens))
    sides = {side: {key: median(r[key] for r in rows) for key in rows[0]} for side, rows in measured.items()}
    normal, low = sides["normal"], sides["low_memory"]
    return {
        "model": model,
        "streams": STREAMS,
        "prompt_tokens": prompt_tokens,
        "tokens_per_stream": tokens,
        "runs": runs,
        "sides": sides,
        "mlx_peak_ratio": round(low["mlx_peak_mb"] / normal["mlx_peak_mb"], 3),
        "throughput_ratio": round(low["tokens_per_s"] / normal["tokens_per_s"], 3),
    }


def _one_run(model: str, flags: tuple[str, ...], prompt_tokens: int, tokens: int) -> dict[str, float]:
    host = LeanHost(ready_timeout=60, args=flags)
    try:
        info = host.request("load_model", {"model_id": model}, timeout=120)
        prompt = _prompt(host, model, prompt_tokens)
        bias = {str(i): -100.0 for i in info["eos_token_ids"]}
        requests = [
            {
                "model_id": model,
                "prompt": f"{i}. {prompt}",
                "max_tokens": tokens,
                "temperature": 0,
                "logit_bias": bias,
                "prompt_cache": False,
            }
            for i in range(STREAMS)
        ]
        started = time.perf_counter()
        results = host.request("batch_generate", {"requests": requests})["results"]
        stats = [_stats_of(host, r["result"]["stream_id"]) for r in results]
        elapsed = time.perf_counter() - started
        memory = host.request("runtime/info")["memory"]
        generated = sum(s["tokens_generated"] for s in stats)
        kv = [s["kv_cache_bytes"] for s in stats if "kv_cache_bytes" in s]
        return {
            "tokens_per_s": round(generated / elapsed, 1),
            "mlx_peak_mb": round(memory["mlx_peak"] / 1e6, 1),
            "peak_rss_mb": round((memory["peak_rss"] or 0) / 1e6, 1),
            # only streams decoded solo report their cache (the batch's is shared): -1 = not measured
            "kv_cache_mb": round(sum(kv) / 1e6, 2) if len(kv) == STREAMS else -1.0,
            "wall_s": round(elapsed, 2),
        }
    finally:
        host.close()


def _prompt(host: LeanHost, model: str, prompt_tokens: int) -> str:
    per_story = len(host.request("tokenize", {"model_id": model, "text": STORY})["tokens"])
    return STORY * max(1, prompt_tokens // max(1, per_story))


def _stats_of(host: LeanHost, stream_id: str) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for message in host.stream(stream_id, timeout=600):
        if message["method"] == "stream.stats":
            stats = message["params"]
    return stats


def print_low_memory(result: dict[str, Any]) -> None:
    print(
        f"\nlow-memory mode: {result['streams']} streams x ~{result['prompt_tokens']}-token prompts, "
        f"{result['tokens_per_stream']} tokens each ({result['model']}, medians of {result['runs']})"
    )
    print(f"  {'side':<12} {'tok/s':>8} {'MLX peak MB':>12} {'peak RSS MB':>12} {'KV MB':>8}")
    for side, row in result["sides"].items():
        print(
            f"  {side:<12} {row['tokens_per_s']:>8} {row['mlx_peak_mb']:>12} {row['peak_rss_mb']:>12} "
            f"{row['kv_cache_mb'] if row['kv_cache_mb'] >= 0 else '-':>8}"
        )
    print(f"  MLX peak ratio {result['mlx_peak_ratio']}, throughput ratio {result['throughput_ratio']}")
