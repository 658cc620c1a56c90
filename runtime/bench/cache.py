"""`runtime bench` multi-turn scenario: time to first token per turn of a 10-turn chat, with the
prompt cache and without it (`prompt_cache: false`, the same prompts), and a session resumed from
disk against a full prefill.

Each repetition is its own conversation (a numbered system message), so it cannot reuse another's
entries; within a turn the cached and the uncached request alternate. Answers are 100 tokens (EOS
suppressed), so the prompt grows by ~110 tokens a turn, to ~1000 at turn 10.
"""

from __future__ import annotations

import time
from typing import Any

from runtime.bench.host import median, timed_stream

TURNS = 10
ANSWER_TOKENS = 100
QUESTIONS = [
    f"Tell me a story about a {animal}."
    for animal in ("fox", "owl", "cat", "dog", "bird", "fish", "bee", "duck", "frog", "bear", "lion")
]


def run_cache(client: Any, model: str, runs: int, eos_ids: list[int]) -> dict[str, Any]:
    bias = {str(i): -100.0 for i in eos_ids}
    rounds = [_conversation(client, model, rep, bias) for rep in range(runs)]
    cached = [median([r["cached"][t] for r in rounds]) for t in range(TURNS)]
    uncached = [median([r["uncached"][t] for r in rounds]) for t in range(TURNS)]
    resume = {key: median([r["resume"][key] for r in rounds]) for key in rounds[0]["resume"]}
    return {
        "turns": TURNS,
        "answer_tokens": ANSWER_TOKENS,
        "runs": runs,
        "prompt_tokens": rounds[0]["prompt_tokens"],
        "ttft_ms_cached": cached,
        "ttft_ms_uncached": uncached,
        "cached_tokens": rounds[0]["cached_tokens"],
        "turn10_vs_turn1_cached": round(cached[-1] / cached[0], 3),
        "turn10_vs_turn1_uncached": round(uncached[-1] / uncached[0], 3),
        "resume": resume,
        "targets": {"turn10_vs_turn1_cached": "<= 1.5"},
    }


def _conversation(client: Any, model: str, rep: int, bias: dict[str, float]) -> dict[str, Any]:
    session = f"bench-{rep}-{int(time.time() * 1000)}"
    messages: list[dict[str, Any]] = [{"role": "system", "content": f"Conversation number {rep}."}]
    base = {"model_id": model, "max_tokens": ANSWER_TOKENS, "temperature": 0, "logit_bias": bias}
    cached, uncached, prompt_tokens, cached_tokens = [], [], [], []
    for question in QUESTIONS[:TURNS]:
        messages.append({"role": "user", "content": question})
        hit = _turn(client, {**base, "messages": messages, "session_id": session})
        cold = _turn(client, {**base, "messages": messages, "prompt_cache": False, "max_tokens": 1})
        cached.append(hit["ttft_ms"])
        uncached.append(cold["ttft_ms"])
        prompt_tokens.append(hit["stats"]["prompt_tokens"])
        cached_tokens.append(hit["stats"]["cached_tokens"])
        messages.append({"role": "assistant", "content": hit["text"]})
    messages.append({"role": "user", "content": QUESTIONS[TURNS]})
    return {
        "cached": cached,
        "uncached": uncached,
        "prompt_tokens": prompt_tokens,
        "cached_tokens": cached_tokens,
        "resume": _resume(client, base, messages, session),
    }


def _resume(client: Any, base: dict[str, Any], messages: list[dict[str, Any]], session: str) -> dict[str, float]:
    """Save the session, drop it from memory, load it back from disk, then the next turn."""
    started = time.perf_counter()
    client.request("session/save", {"session_id": session})
    saved = time.perf_counter()
    client.request("session/drop", {"session_id": session})
    dropped = time.perf_counter()
    client.request("session/load", {"session_id": session})
    loaded = time.perf_counter()
    resumed = _turn(client, {**base, "messages": messages, "session_id": session, "max_tokens": 1})
    full = _turn(client, {**base, "messages": messages, "prompt_cache": False, "max_tokens": 1})
    client.request("session/drop", {"session_id": session, "delete_file": True})
    return {
        "save_ms": (saved - started) * 1000,
        "load_ms": (loaded - dropped) * 1000,
        "ttft_after_load_ms": resumed["ttft_ms"],
        "load_plus_ttft_ms": (loaded - dropped) * 1000 + resumed["ttft_ms"],
        "full_prefill_ttft_ms": full["ttft_ms"],
        "prompt_tokens": resumed["stats"]["prompt_tokens"],
        "cached_tokens_after_load": resumed["stats"]["cached_tokens"],
    }


def _turn(client: Any, params: dict[str, Any]) -> dict[str, Any]:
    return timed_stream(client, params, exact=False)


def print_cache(report: dict[str, Any]) -> None:
    print(
        f"\nprompt cache, {report['turns']}-turn chat, {report['answer_tokens']}-token answers, {report['runs']} runs"
    )
    print(f"{'turn':>5}{'prompt':>8}{'cached':>8}{'TTFT cached':>13}{'TTFT uncached':>15}")
    for t in range(report["turns"]):
        print(
            f"{t + 1:>5}{report['prompt_tokens'][t]:>8}{report['cached_tokens'][t]:>8}"
            f"{report['ttft_ms_cached'][t]:>13}{report['ttft_ms_uncached'][t]:>15}"
        )
    print(
        f"turn 10 / turn 1: {report['turn10_vs_turn1_cached']}x with the cache (target <= 1.5), "
        f"{report['turn10_vs_turn1_uncached']}x without"
    )
    r = report["resume"]
    print(
        f"resume from disk ({r['prompt_tokens']} prompt tokens): load {r['load_ms']:.2f} ms + TTFT "
        f"{r['ttft_after_load_ms']:.2f} ms = {r['load_plus_ttft_ms']:.2f} ms "
        f"vs full prefill {r['full_prefill_ttft_ms']:.2f} ms"
    )
