"""`runtime bench` speculative scenario: draft-model decoding through the runtime beside raw mlx-lm.

Three pairs, all with the project's trained draft unless said: the trained target (tiny-chat), the
same target grown deeper with identity layers (same outputs, a costly forward pass: see
tinymodels/grow.py), and tiny-chat with a random-weight draft of its own size (which cannot help).
For each draft length, runs alternate: runtime without draft, runtime with it, raw
`mlx_lm.stream_generate` without, raw with the same draft; ratios are medians of per-repetition
ratios. Greedy, EOS suppressed, so every run makes the same number of tokens. check_draft with
measure: true is asked for its verdict on each pair, to see whether it predicts the outcome.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from runtime.bench.host import median, timed_stream

PROMPT = "<|im_start|>user\nTell me a story about a fox.<|im_end|>\n<|im_start|>assistant\n"
NO_EOS_BIAS = -100.0


def run_speculative(client: Any, args: Any, eos_ids: list[int]) -> dict[str, Any]:
    from runtime.engine.resolve import resolve
    from runtime.tinymodels.fixtures import build_random_model
    from runtime.tinymodels.grow import grow

    scratch = Path(tempfile.mkdtemp(prefix="bench-spec-"))
    target = resolve("tiny-chat").path
    deep, useless = scratch / "tiny-chat-deep", scratch / "random-draft"
    grow(target, deep, args.deep_layers)
    build_random_model(useless, arch="llama", hidden_size=192, num_hidden_layers=4, seed=3)
    draft = resolve("tiny-draft").path
    pairs = [
        ("tiny-chat", target, "tiny-draft", draft, [1, 2, 3, 4, 5, 6, 7, 8], args.spec_tokens),
        ("tiny-chat-deep", deep, "tiny-draft", draft, [1, 2, 3, 4, 6, 8], args.spec_tokens // 2),
        ("tiny-chat", target, "random-draft", useless, [1, 2], args.spec_tokens),
    ]
    results = []
    for target_id, target_path, draft_id, draft_path, counts, tokens in pairs:
        for model_id, path in ((target_id, target_path), (draft_id, draft_path)):
            client.request("load_model", {"model_id": model_id, "local_path": str(path)}, timeout=300)
        raw = _RawPair(target_path, draft_path, eos_ids)
        row = _measure_pair(client, raw, target_id, draft_id, counts, tokens, args.spec_runs, eos_ids)
        verdict = client.request(
            "check_draft", {"primary_id": target_id, "draft_id": draft_id, "measure": True}, timeout=600
        )["measurement"]
        row["check_draft"] = {k: verdict[k] for k in ("verdict", "speedup", "num_draft_tokens", "acceptance_rate")}
        row["check_draft_agrees"] = (verdict["verdict"] == "faster") == (row["best"]["runtime_speedup"] > 1.0)
        results.append(row)
        for model_id in (target_id, draft_id):
            client.request("unload_model", {"model_id": model_id}, timeout=120)
    return {"runs": args.spec_runs, "pairs": results, "targets": _targets()}


def _measure_pair(
    client: Any, raw: _RawPair, target_id: str, draft_id: str, counts: list[int], tokens: int, runs: int, eos: list[int]
) -> dict[str, Any]:
    bias = {str(i): NO_EOS_BIAS for i in eos}
    base = {"model_id": target_id, "prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "logit_bias": bias}
    _runtime(client, base)  # warm every path once
    _runtime(client, {**base, "draft_model": draft_id, "num_draft_tokens": counts[0]})
    raw.stream(tokens, None)
    raw.stream(tokens, counts[0])
    sweep = []
    for count in counts:
        spec = {**base, "draft_model": draft_id, "num_draft_tokens": count}
        reps = [
            (
                _runtime(client, {**base, "draft_model": None}),
                _runtime(client, spec),
                raw.stream(tokens, None),
                raw.stream(tokens, count),
            )
            for _ in range(runs)
        ]
        sweep.append(
            {
                "num_draft_tokens": count,
                "runtime_tps": median([r[1]["tps"] for r in reps]),
                "raw_tps": median([r[3]["tps"] for r in reps]),
                "runtime_vs_raw": median([r[1]["tps"] / r[3]["tps"] for r in reps]),
                "runtime_speedup": median([r[1]["tps"] / r[0]["tps"] for r in reps]),
                "raw_speedup": median([r[3]["tps"] / r[2]["tps"] for r in reps]),
                "acceptance_rate": median([r[1]["acceptance"] for r in reps]),
                "runtime_no_draft_tps": median([r[0]["tps"] for r in reps]),
                "raw_no_draft_tps": median([r[2]["tps"] for r in reps]),
            }
        )
    best = max(sweep, key=lambda row: row["runtime_speedup"])
    return {
        "target": target_id,
        "draft": draft_id,
        "tokens_per_run": tokens,
        "sweep": sweep,
        "best": best,
        "raw_best": max(sweep, key=lambda row: row["raw_speedup"]),
    }


def _runtime(client: Any, params: dict[str, Any]) -> dict[str, float]:
    timing = timed_stream(client, params)
    return {"tps": timing["decode_tps"], "acceptance": timing["stats"].get("draft", {}).get("acceptance_rate", 0.0)}


class _RawPair:
    """mlx-lm in this process on the same files: stream_generate with and without the draft."""

    def __init__(self, target: Path, draft: Path, eos_ids: list[int]) -> None:
        import mlx.core as mx
        from mlx_lm import load
        from mlx_lm.sample_utils import make_logits_processors

        if mx.default_device() == mx.cpu:
            mx.disable_compile()  # as the runtime does on CPU
        self.model, self.tokenizer = load(str(target))[:2]  # typed as 2 or 3 items
        self.draft = load(str(draft))[0]
        self.processors = make_logits_processors(logit_bias={i: NO_EOS_BIAS for i in eos_ids})

    def stream(self, tokens: int, num_draft: int | None) -> dict[str, float]:
        from mlx_lm import stream_generate

        extra: dict[str, Any] = {"draft_model": self.draft, "num_draft_tokens": num_draft} if num_draft else {}
        first, count = None, 0
        for _ in stream_generate(
            self.model, self.tokenizer, PROMPT, max_tokens=tokens, logits_processors=self.processors, **extra
        ):
            first = first or time.perf_counter()
            count += 1
        assert first is not None, "mlx-lm produced no token"
        return {"tps": (count - 1) / (time.perf_counter() - first)}


def _targets() -> dict[str, str]:
    return {
        "runtime_vs_raw": ">= 0.95 (same pair, same draft length)",
        "speedup": "> 1 where raw mlx-lm shows one",
        "check_draft": "its verdict agrees with the measured outcome",
    }


def print_speculative(report: dict[str, Any]) -> None:
    print(f"\nspeculative decoding, greedy, {report['runs']} alternating repetitions per draft length")
    for pair in report["pairs"]:
        print(f"\n{pair['target']} + {pair['draft']}, {pair['tokens_per_run']} tokens")
        print(f"{'k':>3}{'runtime':>10}{'raw':>9}{'rt/raw':>8}{'rt speedup':>12}{'raw speedup':>13}{'accept':>8}")
        for row in pair["sweep"]:
            print(
                f"{row['num_draft_tokens']:>3}{row['runtime_tps']:>10}{row['raw_tps']:>9}{row['runtime_vs_raw']:>8}"
                f"{row['runtime_speedup']:>12}{row['raw_speedup']:>13}{row['acceptance_rate']:>8}"
            )
        best, verdict = pair["best"], pair["check_draft"]
        print(
            f"best k={best['num_draft_tokens']}: {best['runtime_speedup']}x through the runtime "
            f"(raw best: k={pair['raw_best']['num_draft_tokens']}, {pair['raw_best']['raw_speedup']}x); "
            f"check_draft says {verdict['verdict']} ({verdict['speedup']}x at k={verdict['num_draft_tokens']}), "
            f"{'agrees' if pair['check_draft_agrees'] else 'DISAGREES'}"
        )
