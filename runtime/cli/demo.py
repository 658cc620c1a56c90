"""`runtime demo`: spawn the runtime exactly as a host would and stream a chat answer."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from mlx_rpc_client import RuntimeClient

from runtime.cli.pull import human_size

DEFAULT_MODEL = "tiny-chat"  # the embedded model: the default when no models file names one


def run_demo(args: argparse.Namespace) -> int:
    return asyncio.run(_demo(args))


def _model_and_args(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The model to show (--model, else the models file's default, else the embedded tiny model)
    and the flags the runtime needs to find it."""
    from runtime.cli.models import registry

    catalog = registry(args)
    flags = ["--models", catalog.path] if catalog.path else []
    return args.model or catalog.default_model or DEFAULT_MODEL, flags


def _show_download(message: dict[str, Any]) -> None:
    """model.progress while the runtime downloads what it lacks: one line on stderr."""
    params = message.get("params") if message.get("method") == "model.progress" else None
    if params and params.get("stage") == "downloading":
        done, total = params["bytes_done"], params["bytes_total"]
        end = "\n" if done >= total else ""
        print(f"\rdownloading {params['model_id']}: {human_size(done)} / {human_size(total)}", end=end, file=sys.stderr)


async def _demo(args: argparse.Namespace) -> int:
    out = sys.stdout
    started = time.perf_counter()
    model_id, flags = _model_and_args(args)

    def observe(message: Any) -> None:
        if isinstance(message, dict):
            _show_download(message)

    spawn = RuntimeClient.spawn(
        command=[sys.executable, "-m", "runtime"], args=flags, ready_timeout=60, on_message=observe
    )
    async with spawn as runtime:
        ready_s = time.perf_counter() - started
        info = await runtime.info()
        model = await runtime.load_model(model_id)
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
                "model_id": model["model_id"],
                "messages": [{"role": "user", "content": args.prompt}],
                "max_tokens": args.max_tokens,
                "temperature": args.temperature,
                "seed": args.seed,
            }
        )
        thinking = False
        async for token in generation:
            if token.get("reasoning") and not thinking:
                out.write("(thinking) ")
            if token["token"] and thinking:
                out.write("\n(answer) ")
            thinking = bool(token.get("reasoning")) or (thinking and not token["token"])
            out.write(token.get("reasoning", "") + token["token"])
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
