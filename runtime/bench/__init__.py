"""`runtime bench`: the runtime over stdio against raw mlx-lm in-process, in one run.

Single stream: runtime vs `mlx_lm.stream_generate`, through the lean threaded host and through a
plain host (main-thread `readline()` + `json.loads`, bench/plain.py: its own runtime process,
alternating pairs, the ratio's spread and the runtime's cost per token). Concurrency: 1, 2, 4 and 8
streams through the runtime vs mlx-lm's `BatchGenerator` driven in-process on the same prompts.
Runs alternate (runtime, raw, runtime, raw, ...) and each ratio is the median of per-pair ratios,
so machine noise hits both sides alike. EOS is suppressed on both sides so every run makes the same number of tokens.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from concurrent.futures import wait
from typing import Any

from runtime.bench.host import median, timed_stream, timing_medians
from runtime.server.blas import preload_blas

NO_EOS_BIAS = -100.0
PROMPT = "Once upon a time, there was a little fox named Ruby. One day"
PROMPTS = [
    PROMPT,
    "Lily had a red ball and a blue kite. She went to the park with her friend Max.",
    "<|im_start|>user\nTell me a story about a cat.<|im_end|>\n<|im_start|>assistant\n",
    "Max went to the river and found a green stone.",
    "A little owl lived near the old house and loved to eat berries. One day, the owl",
    "Ben and Mia played with the yellow drum all day long.",
    "<|im_start|>user\nGive me a JSON object for a dog named Max.<|im_end|>\n<|im_start|>assistant\n",
    "The brave tiger",
]


def run_bench(args: argparse.Namespace) -> int:
    blas = preload_blas()
    if args.only == "embeddings":
        return _embeddings_only(args, blas.name)
    if args.only == "http":
        return _http_only(args, blas.name)
    if args.only == "distributed":
        return _distributed_only(args, blas.name)
    from runtime.bench.cache import print_cache, run_cache
    from runtime.bench.cpu_formats import FORMATS, print_cpu_formats, run_cpu_formats
    from runtime.bench.distributed import print_distributed, run_distributed
    from runtime.bench.embeddings import print_embeddings, run_embeddings
    from runtime.bench.host import LeanHost
    from runtime.bench.http import print_http, run_http
    from runtime.bench.low_memory import print_low_memory, run_low_memory
    from runtime.bench.plain import run_plain
    from runtime.bench.speculative import print_speculative, run_speculative
    from runtime.bench.structured import print_structured, run_structured
    from runtime.bench.vision import print_vision, run_vision

    ready = [_spawn_to_ready(LeanHost) for _ in range(3)]
    client = LeanHost(ready_timeout=60)
    try:
        info = client.request("load_model", {"model_id": args.model}, timeout=120)
        raw = _RawMlxLm(args.model, info["eos_token_ids"])
        bias = {str(i): NO_EOS_BIAS for i in info["eos_token_ids"]}
        single = _single_stream(client, raw, args, bias)
        plain = (
            run_plain(raw, args.model, PROMPT, args.tokens, args.plain_runs, NO_EOS_BIAS) if args.plain_runs else None
        )
        http = run_http(raw, args.model, PROMPT, args.tokens, args.http_runs, NO_EOS_BIAS) if args.http_runs else None
        concurrency = _concurrency(client, raw, args, bias) if args.concurrency else {}
        structured = (
            run_structured(client, args.model, args.structured_tokens, args.structured_runs, info["eos_token_ids"])
            if args.structured_runs
            else None
        )
        cache = run_cache(client, args.model, args.cache_runs, info["eos_token_ids"]) if args.cache_runs else None
        vision = run_vision(client, args.vision_runs, args.vision_tokens) if args.vision_runs else None
        speculative = run_speculative(client, args, info["eos_token_ids"]) if args.spec_runs else None
    finally:
        client.close()
    low_memory = run_low_memory(args.model, args.low_memory_runs) if args.low_memory_runs else None
    embeddings = run_embeddings(args.embed_runs, args.model, info["eos_token_ids"]) if args.embed_runs else None
    cpu_formats = run_cpu_formats(args.cpu_format_runs, 64, list(FORMATS)) if args.cpu_format_runs else None
    distributed = run_distributed(args.distributed_runs, args.distributed_tokens) if args.distributed_runs else None
    report = _report(args, blas.name, ready, single, concurrency)
    report["cpu_formats"] = cpu_formats
    report["single_stream_plain_host"] = plain
    report["structured"] = structured
    report["speculative"] = speculative
    report["vision"] = vision
    report["prompt_cache"] = cache
    report["low_memory"] = low_memory
    report["embeddings"] = embeddings
    report["http"] = http
    report["distributed"] = distributed
    _print(report)
    if structured:
        print_structured(structured)
    if speculative:
        print_speculative(speculative)
    if vision:
        print_vision(vision)
    if cache:
        print_cache(cache)
    if low_memory:
        print_low_memory(low_memory)
    if cpu_formats:
        print_cpu_formats(cpu_formats)
    if embeddings:
        print_embeddings(embeddings)
    if http:
        print_http(http)
    if distributed:
        print_distributed(distributed)
    return _write_report(report, args.out)


def _embeddings_only(args: argparse.Namespace, blas: str) -> int:
    from runtime.bench.embeddings import print_embeddings, run_embeddings
    from runtime.bench.host import LeanHost

    client = LeanHost(ready_timeout=60)
    try:
        eos_ids = client.request("load_model", {"model_id": args.model}, timeout=120)["eos_token_ids"]
    finally:
        client.close()
    embeddings = run_embeddings(args.embed_runs, args.model, eos_ids)
    report = {"blas": blas, "platform": platform.platform(), "embeddings": embeddings}
    print_embeddings(embeddings)
    return _write_report(report, args.out)


def _http_only(args: argparse.Namespace, blas: str) -> int:
    from runtime.bench.http import print_http, run_http

    raw = _RawMlxLm(args.model, [])
    raw.eos_ids = sorted(raw.tokenizer.eos_token_ids)
    http = run_http(raw, args.model, PROMPT, args.tokens, args.http_runs, NO_EOS_BIAS)
    print_http(http)
    return _write_report({"blas": blas, "platform": platform.platform(), "http": http}, args.out)


def _distributed_only(args: argparse.Namespace, blas: str) -> int:
    from runtime.bench.distributed import print_distributed, run_distributed

    distributed = run_distributed(args.distributed_runs or 4, args.distributed_tokens)
    print_distributed(distributed)
    return _write_report({"blas": blas, "platform": platform.platform(), "distributed": distributed}, args.out)


def _write_report(report: dict[str, Any], path: str) -> int:
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwritten to {path}")
    return 0


def _spawn_to_ready(host_class: Any) -> float:
    started = time.perf_counter()
    client = host_class(ready_timeout=60)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


# --- single stream -----------------------------------------------------------------------------
def _single_stream(client: Any, raw: _RawMlxLm, args: argparse.Namespace, bias: dict[str, float]) -> dict[str, Any]:
    params = {"model_id": args.model, "prompt": PROMPT, "max_tokens": args.tokens, "temperature": 0, "logit_bias": bias}
    _stream_through_runtime(client, params)  # warm both paths once
    raw.stream(16)
    pairs = [(_stream_through_runtime(client, params), raw.stream(args.tokens)) for _ in range(args.runs)]
    ours, theirs = [p[0] for p in pairs], [p[1] for p in pairs]
    return {
        "runtime": timing_medians(ours),
        "raw_mlx_lm": timing_medians(theirs),
        "decode_ratio": median([a["decode_tps"] / b["decode_tps"] for a, b in pairs]),
        "ttft_overhead_ms": median([a["ttft_ms"] - b["ttft_ms"] for a, b in pairs]),
        "pairs": pairs,
    }


def _stream_through_runtime(client: Any, params: dict[str, Any]) -> dict[str, float]:
    timing = timed_stream(client, params)
    return {"ttft_ms": timing["ttft_ms"], "decode_tps": timing["decode_tps"]}


# --- concurrency -------------------------------------------------------------------------------
def _concurrency(client: Any, raw: _RawMlxLm, args: argparse.Namespace, bias: dict[str, float]) -> dict[str, Any]:
    """Streams submitted together (one batch_generate envelope, as the peer host sends concurrent
    calls, and as raw BatchGenerator inserts them) and, for reference, as separate generate calls."""
    levels = [int(n) for n in args.concurrency.split(",")]
    results: dict[str, Any] = {}
    for level in levels:
        runs = [
            (
                _batch_through_runtime(client, args, bias, level, True),
                raw.batch(level, args.batch_tokens),
                _batch_through_runtime(client, args, bias, level, False),
            )
            for _ in range(args.batch_runs)
        ]
        together, theirs, separate = ([r[i] for r in runs] for i in range(3))
        results[str(level)] = {
            "runtime_tps": median([r["tps"] for r in together]),
            "raw_batch_generator_tps": median([r["tps"] for r in theirs]),
            "ratio": median([a["tps"] / b["tps"] for a, b, _ in runs]),
            "ttft_p50_ms": _percentile([t for r in together for t in r["ttfts_ms"]], 0.5),
            "ttft_p95_ms": _percentile([t for r in together for t in r["ttfts_ms"]], 0.95),
            "raw_ttft_p50_ms": _percentile([t for r in theirs for t in r["ttfts_ms"]], 0.5),
            "separate_calls_tps": median([r["tps"] for r in separate]),
            "separate_calls_ratio": median([c["tps"] / b["tps"] for _, b, c in runs]),
            "separate_calls_ttft_p95_ms": _percentile([t for r in separate for t in r["ttfts_ms"]], 0.95),
        }
    if "1" in results and str(levels[-1]) in results:
        results["scaling_vs_own_single"] = round(
            results[str(levels[-1])]["runtime_tps"] / results["1"]["runtime_tps"], 2
        )
    return results


def _batch_through_runtime(
    client: Any, args: argparse.Namespace, bias: dict[str, float], level: int, together: bool
) -> dict[str, Any]:
    requests = [
        {
            "model_id": args.model,
            "prompt": PROMPTS[i % len(PROMPTS)],
            "max_tokens": args.batch_tokens,
            "temperature": 0,
            "logit_bias": bias,
        }
        for i in range(level)
    ]
    sent = time.perf_counter()
    if together:
        results = client.request("batch_generate", {"requests": requests})["results"]
        stream_ids = [r["result"]["stream_id"] for r in results]
    else:
        futures = [client.call_async("generate", r) for r in requests]
        wait(futures, 60)
        stream_ids = [f.result()["result"]["stream_id"] for f in futures]
    total = 0
    for stream_id in stream_ids:
        for message in client.stream(stream_id, timeout=300):
            if message["method"] == "stream.chunk":
                total += len(message["params"]["tokens"])
    firsts = [client.arrival_times[(sid, "first")] for sid in stream_ids]  # recorded by the client's reader
    ends = [client.arrival_times[(sid, "end")] for sid in stream_ids]
    return {"tps": (total - level) / (max(ends) - min(firsts)), "ttfts_ms": [(f - sent) * 1000 for f in firsts]}


class _RawMlxLm:
    """mlx-lm in this process, on the same files, prompts and settings."""

    def __init__(self, model_id: str, eos_ids: list[int]) -> None:
        import mlx.core as mx
        from mlx_lm import load

        from runtime.engine.resolve import resolve

        if mx.default_device() == mx.cpu:
            mx.disable_compile()  # the runtime does the same on CPU
        self.model, self.tokenizer = load(str(resolve(model_id).path))[:2]  # typed as 2 or 3 items
        self.eos_ids = eos_ids

    def _processors(self) -> list[Any]:
        from mlx_lm.sample_utils import make_logits_processors

        return make_logits_processors(logit_bias={i: NO_EOS_BIAS for i in self.eos_ids})

    def stream(self, tokens: int) -> dict[str, float]:
        from mlx_lm import stream_generate

        started, first, count = time.perf_counter(), None, 0
        for _ in stream_generate(
            self.model, self.tokenizer, PROMPT, max_tokens=tokens, logits_processors=self._processors()
        ):
            first = first or time.perf_counter()
            count += 1
        assert first is not None, "mlx-lm produced no token"
        return {"ttft_ms": (first - started) * 1000, "decode_tps": (count - 1) / (time.perf_counter() - first)}

    def batch(self, level: int, tokens: int) -> dict[str, Any]:
        from mlx_lm.generate import BatchGenerator

        prompts = [self.tokenizer.encode(PROMPTS[i % len(PROMPTS)]) for i in range(level)]
        generator = BatchGenerator(self.model, completion_batch_size=16, prefill_step_size=512)
        started = time.perf_counter()
        generator.insert(prompts, max_tokens=[tokens] * level, logits_processors=[self._processors()] * level)
        firsts: dict[int, float] = {}
        total, done = 0, 0
        while done < level:
            for response in generator.next_generated():
                firsts.setdefault(response.uid, time.perf_counter())
                total += 1
                done += response.finish_reason is not None
        elapsed = time.perf_counter() - min(firsts.values())
        generator.close()
        return {"tps": (total - level) / elapsed, "ttfts_ms": [(t - started) * 1000 for t in firsts.values()]}


# --- report ------------------------------------------------------------------------------------
def _report(
    args: argparse.Namespace, blas: str, ready: list[float], single: dict[str, Any], concurrency: dict[str, Any]
) -> dict[str, Any]:
    import mlx.core as mx

    from runtime.engine.platform import mlx_version

    return {
        "model": args.model,
        "tokens_per_run": args.tokens,
        "runs": args.runs,
        "prompt": PROMPT,
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "mlx": mlx_version(),
            "device": str(mx.default_device()),
            "blas": blas,
        },
        "spawn_to_ready_s": {"median": median(ready), "all": [round(r, 3) for r in ready]},
        "single_stream": single,
        "concurrency": concurrency,
        "targets": {
            "decode_ratio": ">= 0.97",
            "ttft_overhead_ms": "<= 5",
            "spawn_to_ready_s": "<= 1.0",
            "concurrency_8_ratio": ">= 0.90",
            "scaling_vs_own_single": ">= 3.5",
        },
    }


def _print(report: dict[str, Any]) -> None:
    single = report["single_stream"]
    print(f"model {report['model']}, {report['machine']['device']}, BLAS {report['machine']['blas']}\n")
    print(f"single stream, {report['tokens_per_run']} tokens x {report['runs']} alternating runs")
    print(f"{'metric':<26}{'runtime (stdio)':>18}{'raw mlx-lm':>14}  median of per-run ratios")
    print(
        f"{'decode tokens/s':<26}{single['runtime']['decode_tps']:>18}{single['raw_mlx_lm']['decode_tps']:>14}  "
        f"{single['decode_ratio']:.3f} (target >= 0.97)"
    )
    print(
        f"{'time to first token (ms)':<26}{single['runtime']['ttft_ms']:>18}{single['raw_mlx_lm']['ttft_ms']:>14}  "
        f"{single['ttft_overhead_ms']:+.2f} ms (target <= 5)"
    )
    plain = report.get("single_stream_plain_host")
    if plain:
        spread, cost = plain["decode_ratio_spread"], plain["runtime_us_per_token"]
        print(
            f"{'decode tok/s, plain host':<26}{plain['runtime_decode_tps']:>18}{plain['raw_decode_tps']:>14}  "
            f"{plain['decode_ratio']:.3f} (q1..q3 {spread['q1']:.3f}..{spread['q3']:.3f}, "
            f"{plain['pairs']} pairs), {cost:.1f} us/token (targets >= 0.97, <= 40 us)"
        )
    print(f"{'spawn to ready (s)':<26}{report['spawn_to_ready_s']['median']:>18}{'-':>14}  target <= 1.0")
    concurrency = report["concurrency"]
    if not concurrency:
        return
    print("\nconcurrency: aggregate decode tokens/s, runtime vs raw BatchGenerator in-process")
    print(f"{'streams':>8}{'runtime':>10}{'raw':>10}{'ratio':>8}{'ttft p50':>10}{'ttft p95':>10}{'raw p50':>10}")
    for level, row in concurrency.items():
        if isinstance(row, dict):
            print(
                f"{level:>8}{row['runtime_tps']:>10}{row['raw_batch_generator_tps']:>10}{row['ratio']:>8}"
                f"{row['ttft_p50_ms']:>10}{row['ttft_p95_ms']:>10}{row['raw_ttft_p50_ms']:>10}"
            )
    if "scaling_vs_own_single" in concurrency:
        print(f"runtime scaling, most streams vs one: {concurrency['scaling_vs_own_single']}x (target >= 3.5)")
