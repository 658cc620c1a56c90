"""`runtime bench` structured-output scenario: what enforcing a JSON Schema costs, through the runtime.

Per-token overhead: the same prompt decoded with and without a schema, the same number of tokens
(EOS suppressed without the schema; with it, a schema that cannot end within the run). Time to
first token: a schema the model has never compiled (cold), the same schema again (cached), and no
schema. Both grammar engines (llguidance, outlines) run the same schema, in the same rounds. Runs
alternate and ratios are medians of per-round ratios, as in the rest of the bench.
"""

from __future__ import annotations

import uuid
from typing import Any

from runtime.bench.host import median, timed_stream

PROMPT = "<|im_start|>user\nGive me a JSON list of pets.<|im_end|>\n<|im_start|>assistant\n"
# An array that needs more items than any run writes, so the grammar never lets a stream end early.
# Few hundred, not more: outlines-core writes counted repetitions out into its automaton.
BOTH_PETS: dict[str, Any] = {"type": "array", "items": {"enum": ["dog", "cat", "bird", "fish"]}, "minItems": 400}
ENGINES = ("llguidance", "outlines")


def run_structured(client: Any, model: str, tokens: int, runs: int, eos_ids: list[int]) -> dict[str, Any]:
    base = {"model_id": model, "prompt": PROMPT, "temperature": 0}
    free = {**base, "max_tokens": tokens, "logit_bias": {str(i): -100.0 for i in eos_ids}}
    guided = {e: {**base, "max_tokens": tokens, "guidance": _guidance(BOTH_PETS, e)} for e in ENGINES}
    _decode(client, free)  # warm every path (and compile the schema) once
    for params in guided.values():
        _decode(client, params)
    rounds = [{"free": _decode(client, free), **{e: _decode(client, guided[e]) for e in ENGINES}} for _ in range(runs)]
    engines = {engine: _engine_report(client, base, rounds, engine, runs) for engine in ENGINES}
    return {
        "tokens_per_run": tokens,
        "runs": runs,
        "unconstrained_decode_tps": median([r["free"] for r in rounds]),
        **engines["llguidance"],
        "engines": engines,
        "targets": {"per_token_overhead": "<= 0.15", "cached_ttft_vs_unconstrained": "<= 1.10"},
    }


def _guidance(schema: dict[str, Any], engine: str) -> dict[str, Any]:
    return {"mode": "json_schema", "schema": schema, "engine": engine}


def _engine_report(
    client: Any, base: dict[str, Any], rounds: list[dict[str, float]], engine: str, runs: int
) -> dict[str, Any]:
    ttft_rounds = [_ttft_round(client, base, engine) for _ in range(runs)]
    return {
        "constrained_decode_tps": median([r[engine] for r in rounds]),
        "per_token_overhead": median([r["free"] / r[engine] - 1 for r in rounds]),
        "per_token_overhead_ms": median([(1000 / r[engine] - 1000 / r["free"]) for r in rounds]),
        "ttft_ms": {key: median([r[key] for r in ttft_rounds]) for key in ("unconstrained", "cold", "cached")},
        "cached_ttft_vs_unconstrained": median([r["cached"] / r["unconstrained"] for r in ttft_rounds]),
        "cold_ttft_vs_unconstrained": median([r["cold"] / r["unconstrained"] for r in ttft_rounds]),
    }


def _decode(client: Any, params: dict[str, Any]) -> float:
    """Decode tokens/s after the first token."""
    return timed_stream(client, params)["decode_tps"]


def _ttft_round(client: Any, base: dict[str, Any], engine: str) -> dict[str, float]:
    """One cold schema (a choice never seen before), the same schema cached, and none."""
    schema = {**BOTH_PETS, "items": {"enum": [*BOTH_PETS["items"]["enum"], f"pet{uuid.uuid4().hex[:8]}"]}}
    guided = {**base, "max_tokens": 4, "guidance": _guidance(schema, engine)}
    return {
        "cold": _first_token_ms(client, guided),
        "cached": _first_token_ms(client, guided),
        "unconstrained": _first_token_ms(client, {**base, "max_tokens": 4}),
    }


def _first_token_ms(client: Any, params: dict[str, Any]) -> float:
    return timed_stream(client, params, exact=False)["ttft_ms"]


def print_structured(report: dict[str, Any]) -> None:
    for engine, numbers in report["engines"].items():
        _print_engine(engine, {**report, **numbers})


def _print_engine(engine: str, report: dict[str, Any]) -> None:
    ttft = report["ttft_ms"]
    print(
        f"\nstructured output (JSON Schema, {engine}), {report['tokens_per_run']} tokens x {report['runs']} "
        "alternating runs"
    )
    print(f"{'decode tokens/s':<34}{'unconstrained':>14}{'constrained':>13}")
    print(f"{'':<34}{report['unconstrained_decode_tps']:>14}{report['constrained_decode_tps']:>13}")
    print(
        f"per-token overhead: {report['per_token_overhead'] * 100:.1f}% "
        f"({report['per_token_overhead_ms']:.3f} ms/token, target <= 15%)"
    )
    print(f"{'time to first token (ms)':<34}{'none':>14}{'cold':>13}{'cached':>10}")
    print(f"{'':<34}{ttft['unconstrained']:>14}{ttft['cold']:>13}{ttft['cached']:>10}")
    print(
        f"cached schema TTFT vs unconstrained: {report['cached_ttft_vs_unconstrained']:.3f}x (target <= 1.10); "
        f"cold: {report['cold_ttft_vs_unconstrained']:.3f}x"
    )
