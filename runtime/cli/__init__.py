"""`runtime --stdio` serves the protocol; `runtime demo|bench|doctor` are for people.

For --stdio the order matters: claim stdout, then logging, then the BLAS preload, and only then
anything that imports mlx.
"""

from __future__ import annotations

import argparse
import os
import sys


def _add_limits(parser: argparse.ArgumentParser, default: object = None) -> None:
    """The limit flags, on the top level (`runtime --stdio ...`) and on `runtime serve`; a
    subcommand's copies default to SUPPRESS so they never overwrite a top-level value."""
    limits = parser.add_argument_group("limits (flags override the config file and RUNTIME_* env)")
    for flag, kind, text in [
        ("--max-line-bytes", int, "longest accepted input line (default 16 MiB)"),
        ("--max-tokens", int, "largest max_tokens a request may ask (default 32768)"),
        ("--default-max-tokens", int, "max_tokens when a request gives none (default 512)"),
        ("--max-prompt-tokens", int, "longest accepted prompt in tokens (default 131072)"),
        ("--prefill-step", int, "prompt tokens per prefill chunk (default 512)"),
        ("--max-active-streams", int, "streams decoded at once, per batch (default 16)"),
        ("--max-queued", int, "streams that may wait beyond the active ones (default 256)"),
        ("--max-outbound-queue", int, "messages waiting for a slow host before generation pauses (default 1024)"),
        ("--coalesce-ms", int, "gather a stream's tokens this long into one stream.chunk (default 8)"),
        ("--breaker-threshold", int, "engine faults within the window that open the breaker (default 5)"),
        ("--breaker-window-ms", int, "fault counting window (default 60000)"),
        ("--breaker-cooldown-ms", int, "open time before a probe may run (default 10000)"),
        ("--memory-budget-mb", int, "refuse loads beyond this (default: 75%% of memory)"),
        ("--max-guidance-bytes", int, "largest structured-output schema or grammar, as JSON (default 65536)"),
        ("--guide-cache-size", int, "compiled structured-output grammars kept per model (default 64)"),
        ("--max-image-bytes", int, "largest image, encoded (default 10 MiB)"),
        ("--max-image-pixels", int, "largest image, decoded (default 40000000)"),
        ("--max-images", int, "images per request (default 8)"),
        ("--prompt-cache-bytes", int, "KV cache kept for prefix reuse, per model (default 1 GiB)"),
        ("--prompt-cache-entries", int, "cached prefixes per model; 0 turns prefix reuse off (default 32)"),
        ("--cache-dir", str, "where session/save writes (default ~/.cache/mlx-rpc-runtime/sessions)"),
        ("--models", str, "the models file: the registry of models served by id (also RUNTIME_MODELS)"),
        ("--max-loaded-models", int, "models loaded at once; 0: only the memory budget limits them (default 0)"),
        ("--switch-policy", str, "streams of a model unloaded to make room: drain or cancel (default drain)"),
        ("--thermal-policy", str, "new streams under thermal pressure: off, pace or pause (default off)"),
        ("--thermal-limit-c", int, "the hottest thermal zone at or above this is pressure (default 85)"),
        ("--thermal-pace-ms", int, "thermal-policy pace: one new stream per this long (default 1000)"),
        ("--embed-batch-size", int, "embed/rerank inputs in one forward pass (default 32)"),
        ("--embed-batch-tokens", int, "padded tokens in one embed/rerank pass (default 16384)"),
        ("--max-embed-inputs", int, "inputs or documents in one embed/rerank request (default 2048)"),
        ("--embed-cache-entries", int, "embeddings kept for reuse, all models; 0: off (default 16384)"),
        ("--embed-cache-bytes", int, "bytes of vectors the embedding cache keeps (default 256 MiB)"),
        ("--keep-alive", str, "how long a model loaded on demand stays idle: 5m, 300, 0, -1 (default 5m)"),
    ]:
        limits.add_argument(flag, type=kind, default=default, help=text)
    limits.add_argument(
        "--allow-image-dir",
        dest="image_dirs",
        action="append",
        default=default,
        help="a directory image file paths may come from (repeatable; default: none, paths are refused)",
    )
    limits.add_argument(
        "--allow-image-url",
        dest="image_url_prefixes",
        action="append",
        default=default,
        help="a URL prefix images may be fetched from, e.g. https://example.com/img/ (repeatable; default: none)",
    )
    limits.add_argument(
        "--allow-model-dir",
        dest="model_dirs",
        action="append",
        default=default,
        help="a directory local models may be loaded from (repeatable; default: any directory)",
    )
    limits.add_argument(
        "--low-memory",
        dest="low_memory",
        action="store_const",
        const=True,
        default=default,
        help="8-bit KV caches, contexts of at most 4096 tokens, prefill steps of at most 128, a 64 MB MLX cache",
    )
    limits.add_argument(
        "--no-batching",
        dest="batching",
        action="store_const",
        const=False,
        default=default,
        help="decode streams one by one, round-robin, instead of in one batch",
    )


def _parser() -> argparse.ArgumentParser:
    # No abbreviations: `runtime demo --prompt` must not be taken for the top level's --prompt-cache-*.
    parser = argparse.ArgumentParser(
        prog="runtime", description="MLX models over JSON-RPC 2.0 on stdio.", allow_abbrev=False
    )
    parser.add_argument("--stdio", action="store_true", help="serve line-delimited JSON-RPC on stdin/stdout")
    parser.add_argument("--log-format", choices=["human", "json"], default="human")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--config", help="JSON file of limits (also RUNTIME_CONFIG); env RUNTIME_<NAME> overrides it")
    _add_limits(parser)
    parser.add_argument("--no-blas", action="store_true", help="do not preload OpenBLAS/MKL (slow on Linux)")
    parser.add_argument("--jit", action="store_true", help="keep mx.compile on (g++ JIT stalls on CPU)")
    parser.add_argument(
        "--distributed",
        metavar="HOSTFILE",
        default=None,
        help="serve across the ranks of this mlx.launch-style hostfile (ring backend); docs/distributed.md",
    )
    parser.add_argument(
        "--distributed-timeout",
        type=float,
        default=None,
        help="seconds a rank may stay silent before it is taken for lost (default 10)",
    )
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="spawn the runtime and stream a chat answer from the tiny model")
    demo.add_argument("--model", default=None, help="a model id (default: the models file's default, else tiny-chat)")
    demo.add_argument("--prompt", default="Tell me a story about a brave fox.")
    demo.add_argument("--max-tokens", type=int, default=160)
    demo.add_argument("--temperature", type=float, default=0.7)
    demo.add_argument("--seed", type=int, default=7)
    bench = sub.add_parser("bench", help="runtime vs raw mlx-lm: decode tok/s, TTFT, spawn-to-ready")
    bench.add_argument("--model", default="tiny-chat")
    bench.add_argument("--tokens", type=int, default=256)
    bench.add_argument("--runs", type=int, default=12, help="alternating single-stream runs")
    bench.add_argument("--concurrency", default="1,2,4,8", help="stream counts to measure ('' to skip)")
    bench.add_argument("--batch-tokens", type=int, default=128, help="tokens per stream in the concurrency runs")
    bench.add_argument("--batch-runs", type=int, default=3, help="alternating runs per stream count")
    bench.add_argument("--structured-runs", type=int, default=6, help="alternating structured-output runs (0 skips)")
    bench.add_argument("--structured-tokens", type=int, default=256, help="tokens per structured-output run")
    bench.add_argument("--spec-runs", type=int, default=3, help="alternating speculative repetitions (0 skips)")
    bench.add_argument("--spec-tokens", type=int, default=192, help="tokens per speculative run (deep pair: half)")
    bench.add_argument("--deep-layers", type=int, default=24, help="layers of the grown deep target")
    bench.add_argument("--vision-runs", type=int, default=8, help="alternating vision runs (0 skips)")
    bench.add_argument("--vision-tokens", type=int, default=128, help="tokens per vision run")
    bench.add_argument(
        "--cache-runs", type=int, default=3, help="multi-turn conversations with/without the cache (0 skips)"
    )
    bench.add_argument(
        "--low-memory-runs", type=int, default=2, help="alternating normal / --low-memory runs, 8 streams (0 skips)"
    )
    bench.add_argument("--plain-runs", type=int, default=12, help="alternating plain-host pairs (0 skips)")
    bench.add_argument(
        "--cpu-format-runs", type=int, default=2, help="rounds per format of the 134M CPU-formats scenario (0 skips)"
    )
    bench.add_argument("--embed-runs", type=int, default=6, help="alternating embeddings repetitions (0 skips)")
    bench.add_argument("--http-runs", type=int, default=6, help="rotating HTTP / stdio / raw rounds (0 skips)")
    bench.add_argument(
        "--distributed-runs", type=int, default=4, help="alternating 1-process / 2-rank pairs per model (0 skips)"
    )
    bench.add_argument("--distributed-tokens", type=int, default=96, help="tokens per distributed run")
    bench.add_argument(
        "--only",
        choices=["embeddings", "http", "distributed"],
        default=None,
        help="run only this scenario (--model for its stream)",
    )
    bench.add_argument("--out", default="bench.json")
    http = sub.add_parser(
        "serve", help="serve OpenAI- and Anthropic-compatible HTTP (SSE) on loopback", allow_abbrev=False
    )
    http.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    http.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    http.add_argument("--api-key", default=None, help="require this key (Authorization: Bearer, or x-api-key)")
    http.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host without --api-key")
    http.add_argument("--config", default=argparse.SUPPRESS, help="JSON file of limits (also RUNTIME_CONFIG)")
    http.add_argument("--log-level", default=argparse.SUPPRESS)
    http.add_argument("--distributed", metavar="HOSTFILE", default=argparse.SUPPRESS, help="serve across a group")
    http.add_argument("--distributed-timeout", type=float, default=argparse.SUPPRESS)
    _add_limits(http, argparse.SUPPRESS)
    doctor = sub.add_parser("doctor", help="report backend, device, BLAS and versions")
    doctor.add_argument(
        "--distributed",
        metavar="HOSTFILE",
        default=argparse.SUPPRESS,
        help="also form this hostfile's group and report its ranks",
    )
    pull = sub.add_parser("pull", help="download a hub model into the Hugging Face cache (resumes; Ctrl-C stops)")
    pull.add_argument(
        "model_id", metavar="ID|REPO", help="a registry id or a hub repo, e.g. mlx-community/SmolLM2-135M-Instruct"
    )
    sub.add_parser("models", help="list the registry (--models) and the Hugging Face cache, with sizes and states")
    pull.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.stdio:
        return serve(args)
    if args.command == "serve":
        return serve(args, http=True)
    if args.command == "demo":
        from runtime.cli.demo import run_demo

        return run_demo(args)
    if args.command == "bench":
        from runtime.bench import run_bench

        return run_bench(args)
    if args.command == "doctor":
        from runtime.cli.doctor import run_doctor

        return run_doctor(args)
    if args.command == "models":
        from runtime.cli.models import run_models

        return run_models(args)
    if args.command == "pull":
        from runtime.cli.pull import run_pull

        return run_pull(args)
    _parser().print_help()
    return 2


def serve(args: argparse.Namespace, http: bool = False) -> int:
    """`--stdio` (the protocol on the claimed stdin/stdout) or `serve` (HTTP; stdout stays free)."""
    from runtime.transport.stdio import claim_stdio

    fds = None if http else claim_stdio()
    from runtime.server import logs
    from runtime.server.blas import preload_blas

    logs.configure(args.log_format, args.log_level)
    blas = preload_blas(enabled=not args.no_blas)
    from runtime.config import ConfigError, Limits, load_limits
    from runtime.server.app import App

    names = [f for f in Limits.__dataclass_fields__]
    try:
        limits = load_limits(args.config, {name: getattr(args, name, None) for name in names})
    except ConfigError as exc:
        print(f"runtime: {exc}", file=sys.stderr)
        return 2
    from runtime.server.models_file import ModelsFileError, read_models_file

    try:
        catalog = read_models_file(limits)
    except ModelsFileError as exc:
        print(f"runtime: {exc}", file=sys.stderr)
        return 2
    group = None
    from runtime.server import distributed

    if getattr(args, "distributed", None) or distributed.launched_rank() is not None:
        timeout_s = getattr(args, "distributed_timeout", None) or distributed.DEFAULT_TIMEOUT_S
        rank = distributed.launched_rank()
        if rank is not None and rank > 0:  # a follower: no protocol (docs/distributed.md)
            from runtime.server.follower import run_follower

            os._exit(run_follower(limits, timeout_s))
        settings = {"limits": limits.as_dict(), "disable_compile": not args.jit}
        try:
            group = distributed.form_group(getattr(args, "distributed", None), timeout_s, sys.argv[1:], settings)
        except distributed.GroupError as exc:
            print(f"runtime: {exc}", file=sys.stderr)
            return 2
    if fds is None:
        from runtime.server.http import RemoteRefused, ServeOptions, serve_http

        options = ServeOptions(args.host, args.port, args.api_key, args.allow_remote)
        try:
            code = serve_http(options, limits, blas, not args.jit, catalog, group)
        except RemoteRefused as exc:
            print(f"runtime serve: {exc}", file=sys.stderr)
            return 2
    else:
        code = App(fds, limits, blas, disable_compile=not args.jit, catalog=catalog, group=group).run()
    sys.stderr.flush()
    # Skip interpreter teardown: daemon threads may sit inside MLX, and the work is already done.
    os._exit(code)
