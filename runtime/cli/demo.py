"""`runtime demo`: spawn the runtime exactly as a host would and stream a chat answer."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from mlx_rpc_client import RuntimeClient


def run_demo(args: argparse.Namespace) -> int:
    return asyncio.run(_demo(args))


async def _demo(args: argparse.Namespace) -> int:
    out = sys.stdout
    started = time.perf_counter()
    async with RuntimeClient.spawn(command=[sys.executable, "-m", "runtime"], ready_timeout=60) as runtime:
        ready_s = time.perf_counter() - started
        info = await runtime.info()
        model = await runtime.load_model(args.model)
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
        generation = runtime.generate(
            {
                "model_id": args.model,
                "messages": [{"role": "user", "content": args.prompt}],
                "max_tokens": args.max_tokens,
                "temperature": args.temperature,
                "seed": args.seed,
            }
        )
        async for token in generation:
            out.write(token["token"])
            out.flush()
        result = await generation.result()
        stats = result["stats"]
        out.write("\n\n")
        if stats:
            out.write(
                f"[{stats['tokens_generated']} tokens | {stats['tokens_per_second']:.1f} tok/s | "
                f"first token {stats['time_to_first_token'] * 1000:.1f} ms | finish: {stats['finish_reason']}]\n"
            )
    return 0
