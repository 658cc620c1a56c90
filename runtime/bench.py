"""`runtime bench`: the runtime over stdio against raw mlx-lm in-process, in one run.

Runs alternate (runtime, raw, runtime, raw, ...) so that machine noise hits both sides alike.
Decode speed is measured on the host side for the runtime (first chunk to final event) and on the
caller side for raw mlx-lm (first to last yielded token); EOS is suppressed on both so every run
produces exactly the same number of tokens.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from typing import Any

from runtime.blas import preload_blas

NO_EOS_BIAS = -100.0
PROMPT = "Once upon a time, there was a little fox named Ruby. One day"


def run_bench(args: argparse.Namespace) -> int:
    blas = preload_blas()
    from runtime.client import RuntimeClient

    ready = [_spawn_to_ready(RuntimeClient) for _ in range(3)]
    client = RuntimeClient.spawn(ready_timeout=60)
    try:
        client.request("load_model", {"model_id": args.model}, timeout=120)
        raw = _RawMlxLm(args.model, client.request("load_model", {"model_id": args.model})["eos_token_ids"])
        via_runtime, direct = [], []
        _through_runtime(client, args.model, 16, raw.eos_ids)  # warm both paths once
        raw.run(16)
        for _ in range(args.runs):
            via_runtime.append(_through_runtime(client, args.model, args.tokens, raw.eos_ids))
            direct.append(raw.run(args.tokens))
    finally:
        client.close()
    report = _report(args, blas.name, ready, via_runtime, direct)
    _print_table(report)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwritten to {args.out}")
    return 0


def _spawn_to_ready(client_class: Any) -> float:
    started = time.perf_counter()
    client = client_class.spawn(ready_timeout=60)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def _through_runtime(client: Any, model: str, tokens: int, eos_ids: list[int]) -> dict[str, float]:
    params = {
        "model_id": model,
        "prompt": PROMPT,
        "max_tokens": tokens,
        "temperature": 0,
        "logit_bias": {str(i): NO_EOS_BIAS for i in eos_ids},
    }
    sent = time.perf_counter()
    stream_id = client.request("generate", params)["stream_id"]
    first, count = None, 0
    for message in client.stream(stream_id, timeout=300):
        if message["method"] == "stream.chunk":
            first = first or time.perf_counter()
            count += len(message["params"]["tokens"])
    done = time.perf_counter()
    assert first is not None and count == tokens, f"expected {tokens} tokens, got {count}"
    return {"ttft_ms": (first - sent) * 1000, "decode_tps": (count - 1) / (done - first)}


class _RawMlxLm:
    """mlx_lm.stream_generate in this process, on the same files, prompt and settings."""

    def __init__(self, model_id: str, eos_ids: list[int]) -> None:
        import mlx.core as mx
        from mlx_lm import load

        from runtime.engine.resolve import resolve

        if mx.default_device() == mx.cpu:
            mx.disable_compile()  # the runtime does the same on CPU
        self.model, self.tokenizer = load(str(resolve(model_id).path))
        self.eos_ids = eos_ids

    def run(self, tokens: int) -> dict[str, float]:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_logits_processors

        processors = make_logits_processors(logit_bias={i: NO_EOS_BIAS for i in self.eos_ids})
        started, first, count = time.perf_counter(), None, 0
        for _ in stream_generate(self.model, self.tokenizer, PROMPT, max_tokens=tokens, logits_processors=processors):
            first = first or time.perf_counter()
            count += 1
        done = time.perf_counter()
        return {"ttft_ms": (first - started) * 1000, "decode_tps": (count - 1) / (done - first)}


def _median(runs: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def _report(
    args: argparse.Namespace,
    blas: str,
    ready: list[float],
    via_runtime: list[dict[str, float]],
    direct: list[dict[str, float]],
) -> dict[str, Any]:
    import mlx.core as mx

    runtime_tps, raw_tps = _median(via_runtime, "decode_tps"), _median(direct, "decode_tps")
    runtime_ttft, raw_ttft = _median(via_runtime, "ttft_ms"), _median(direct, "ttft_ms")
    return {
        "model": args.model,
        "tokens_per_run": args.tokens,
        "runs": args.runs,
        "prompt": PROMPT,
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "mlx": mx.__version__,
            "device": str(mx.default_device()),
            "blas": blas,
        },
        "spawn_to_ready_s": {"median": round(statistics.median(ready), 3), "all": [round(r, 3) for r in ready]},
        "runtime": {"decode_tps": runtime_tps, "ttft_ms": runtime_ttft, "runs": via_runtime},
        "raw_mlx_lm": {"decode_tps": raw_tps, "ttft_ms": raw_ttft, "runs": direct},
        "decode_ratio": round(runtime_tps / raw_tps, 4),
        "ttft_overhead_ms": round(runtime_ttft - raw_ttft, 2),
        "targets": {"decode_ratio": ">= 0.97", "ttft_overhead_ms": "<= 5", "spawn_to_ready_s": "<= 1.0"},
    }


def _print_table(report: dict[str, Any]) -> None:
    rows = [
        (
            "decode tokens/s",
            report["runtime"]["decode_tps"],
            report["raw_mlx_lm"]["decode_tps"],
            f"ratio {report['decode_ratio']:.3f} (target >= 0.97)",
        ),
        (
            "time to first token (ms)",
            report["runtime"]["ttft_ms"],
            report["raw_mlx_lm"]["ttft_ms"],
            f"overhead {report['ttft_overhead_ms']:+.2f} ms (target <= 5)",
        ),
        ("spawn to ready (s)", report["spawn_to_ready_s"]["median"], "-", "target <= 1.0"),
    ]
    print(
        f"model {report['model']}, {report['tokens_per_run']} tokens x {report['runs']} runs, "
        f"{report['machine']['device']}, BLAS {report['machine']['blas']}\n"
    )
    print(f"{'metric':<26}{'runtime (stdio)':>18}{'raw mlx-lm':>14}  note")
    for name, ours, raw, note in rows:
        print(f"{name:<26}{ours:>18}{raw:>14}  {note}")
