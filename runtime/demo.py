"""`runtime demo`: spawn the runtime exactly as a host would and stream a chat answer."""

from __future__ import annotations

import argparse
import sys
import time

from runtime.client import RuntimeClient


def run_demo(args: argparse.Namespace) -> int:
    out = sys.stdout
    started = time.perf_counter()
    with RuntimeClient.spawn(ready_timeout=60) as runtime:
        ready_s = time.perf_counter() - started
        info = runtime.request("runtime/info")
        model = runtime.request("load_model", {"model_id": args.model}, timeout=120)
        out.write(
            f"runtime {info['version']} ready in {ready_s:.2f}s | mlx {info['mlx_version']} "
            f"on {info['backend']} | BLAS {info['blas']['name']}\n"
        )
        out.write(
            f"model {model['model_id']}: {model['parameter_count'] / 1e6:.2f}M params, {model['dtype']}, "
            f"loaded in {model['load_time_ms']:.0f} ms\n\n"
        )
        out.write(f"user> {args.prompt}\nassistant> ")
        out.flush()
        params = {
            "model_id": args.model,
            "messages": [{"role": "user", "content": args.prompt}],
            "max_tokens": args.max_tokens,
            "temperature": args.temperature,
            "seed": args.seed,
        }
        stats, final = None, None
        for message in runtime.generate(params, timeout=120):
            if message["method"] == "stream.chunk":
                out.write("".join(t["token"] for t in message["params"]["tokens"]))
                out.flush()
            elif message["method"] == "stream.stats":
                stats = message["params"]
            else:
                final = message["params"]
        out.write("\n\n")
        if stats:
            out.write(
                f"[{stats['tokens_generated']} tokens | {stats['tokens_per_second']:.1f} tok/s | "
                f"first token {stats['time_to_first_token'] * 1000:.1f} ms | "
                f"finish: {stats['finish_reason']}]\n"
            )
        if final and final["event"] == "error":
            out.write(f"[error: {final['error']}]\n")
            return 1
    return 0
