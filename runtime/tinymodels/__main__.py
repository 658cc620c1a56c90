"""`python -m runtime.tinymodels train|fixture|vlm|embed|rerank ...`: build the project's tiny models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.tinymodels")
    sub = parser.add_subparsers(dest="command", required=True)
    train_cmd = sub.add_parser("train", help="train an embedded model (the chat model, or its draft)")
    train_cmd.add_argument("--out", type=Path, required=True)
    train_cmd.add_argument("--preset", choices=["chat", "draft"], default="chat")
    train_cmd.add_argument("--steps", type=int, default=None)
    train_cmd.add_argument("--time-budget", type=float, default=None)
    fixture_cmd = sub.add_parser("fixture", help="build a random-weight fixture model")
    fixture_cmd.add_argument("--out", type=Path, required=True)
    fixture_cmd.add_argument("--arch", default="qwen2", choices=["llama", "qwen2"])
    fixture_cmd.add_argument("--seed", type=int, default=0)
    vlm_cmd = sub.add_parser("vlm", help="build the tiny vision model (LLaVA) around a trained language model")
    vlm_cmd.add_argument("--out", type=Path, required=True)
    vlm_cmd.add_argument(
        "--lm-from", type=Path, default=Path(__file__).resolve().parents[1] / "assets" / "models" / "tiny-chat"
    )
    embed_cmd = sub.add_parser("embed", help="train an embedding model (BERT encoder or Qwen3 decoder)")
    embed_cmd.add_argument("--out", type=Path, required=True)
    embed_cmd.add_argument("--preset", choices=["encoder", "decoder"], default="encoder")
    embed_cmd.add_argument("--steps", type=int, default=None)
    embed_cmd.add_argument("--time-budget", type=float, default=None)
    rerank_cmd = sub.add_parser("rerank", help="train the Qwen3-Reranker-style reranker")
    rerank_cmd.add_argument("--out", type=Path, required=True)
    rerank_cmd.add_argument("--steps", type=int, default=None)
    rerank_cmd.add_argument("--time-budget", type=float, default=None)
    args = parser.parse_args(argv)

    from runtime.server.blas import preload_blas

    preload_blas()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.command == "train":
        from runtime.tinymodels.train import PRESETS, TrainConfig, train

        overrides = {**PRESETS[args.preset], "steps": args.steps, "time_budget_s": args.time_budget}
        cfg = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
        summary = train(args.out, cfg, log=log)
    elif args.command == "embed":
        from runtime.tinymodels.embed_train import run as run_embed

        summary = run_embed(args.out, args.preset, log, steps=args.steps, time_budget_s=args.time_budget)
    elif args.command == "rerank":
        from runtime.tinymodels.rerank_train import run as run_rerank

        summary = run_rerank(args.out, log, steps=args.steps, time_budget_s=args.time_budget)
    elif args.command == "vlm":
        from runtime.tinymodels.vlm import build_vlm

        summary = build_vlm(args.out, args.lm_from)
    else:
        from runtime.tinymodels.fixtures import build_random_model

        summary = build_random_model(args.out, arch=args.arch, seed=args.seed)
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
