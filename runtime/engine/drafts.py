"""Whether a draft model can serve a target, and (measured) whether it makes the target faster.

Compatibility is checked on the things speculative decoding needs, not on sizes alone: the same
vocabulary (every token string to the same id), the same special tokens, and KV caches that can be
trimmed (rejected draft tokens are cut from both caches). The measurement decodes a short probe on
the engine thread with and without the draft and reports the speed ratio, so a pair that is slower
on this machine says so.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.engine.jobs import StreamJob
from runtime.engine.models import LoadedModel
from runtime.engine.request import DraftChoice, GenerationRequest, SamplingParams

PROBE_PROMPT = "<|im_start|>user\nTell me a story about a fox.<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class Compatibility:
    compatible: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)


def check_pair(target: LoadedModel, draft: LoadedModel) -> Compatibility:
    from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache

    errors, warnings = [], []
    vocab_difference = _vocabulary_difference(target.tokenizer, draft.tokenizer)
    if vocab_difference:
        errors.append(f"different vocabularies: {vocab_difference}")
    special_difference = _special_token_difference(target.tokenizer, draft.tokenizer)
    if special_difference:
        errors.append(f"different special tokens: {special_difference}")
    trimmable = {m.model_id: can_trim_prompt_cache(make_prompt_cache(m.model)) for m in (target, draft)}
    for model_id, ok in trimmable.items():
        if not ok:
            errors.append(f"{model_id} has a KV cache that cannot be trimmed (rotating or recurrent layers)")
    if target.model_id == draft.model_id:
        warnings.append("the draft is the target itself: every token is drafted and verified by the same model")
    elif draft.parameter_count >= target.parameter_count:
        warnings.append("the draft is not smaller than the target: speculation cannot be faster")
    if target.vocab_size != draft.vocab_size:
        warnings.append(f"embedding sizes differ ({target.vocab_size} vs {draft.vocab_size}); the tokens agree")
    checks = {
        "same_vocabulary": not vocab_difference,
        "same_special_tokens": not special_difference,
        "target_cache_trimmable": trimmable[target.model_id],
        "draft_cache_trimmable": trimmable[draft.model_id],
    }
    return Compatibility(not errors, errors, warnings, checks)


def _vocabulary_difference(a: Any, b: Any) -> str:
    vocab_a, vocab_b = a._tokenizer.get_vocab(), b._tokenizer.get_vocab()
    if vocab_a == vocab_b:
        return ""
    differing = [t for t in vocab_a.keys() | vocab_b.keys() if vocab_a.get(t) != vocab_b.get(t)]
    example = sorted(differing, key=str)[0]
    return (
        f"{len(vocab_a)} vs {len(vocab_b)} tokens, {len(differing)} differ "
        f"(e.g. {example!r}: {vocab_a.get(example)} vs {vocab_b.get(example)})"
    )


def _special_token_difference(a: Any, b: Any) -> str:
    pairs = {
        "eos_token_ids": (sorted(a.eos_token_ids), sorted(b.eos_token_ids)),
        "bos_token": (a.bos_token, b.bos_token),
        "special_tokens": (sorted(a.all_special_tokens), sorted(b.all_special_tokens)),
    }
    return "; ".join(f"{name} {x} vs {y}" for name, (x, y) in pairs.items() if x != y)


def probe(target: LoadedModel, choice: DraftChoice | None, tokens: int) -> dict[str, float]:
    """One greedy decode of the probe prompt (engine thread): tokens/s after the first token."""
    from runtime.engine.paths.solo import SoloStream
    from runtime.engine.paths.speculative import SpeculativeStream

    prompt = target.tokenizer.encode(PROBE_PROMPT)
    no_eos = {i: -100.0 for i in target.tokenizer.eos_token_ids}
    request = GenerationRequest(
        prompt, tokens, SamplingParams(temperature=0.0, logit_bias=no_eos), draft=choice, use_prompt_cache=False
    )
    finished: list[Any] = []
    job = StreamJob("probe", target, request, finished.append, threading.Event(), time.perf_counter())
    stream: Any = (
        SpeculativeStream(job, choice.loaded, choice.num_draft_tokens, 512) if choice else SoloStream(job, 512)
    )
    stream.step()  # prefill and the first token(s)
    started = time.perf_counter()
    while not stream.done:
        stream.step()
    elapsed, end = time.perf_counter() - started, finished[-1]
    accepted = end.draft.accepted / end.draft.drafted if end.draft and end.draft.drafted else 0.0
    return {"tokens_per_second": (end.generated_tokens - 1) / elapsed, "acceptance_rate": accepted}


def measure(
    on_engine: Callable[..., Any],
    target: LoadedModel,
    draft: LoadedModel,
    counts: list[int],
    tokens: int,
    pairs: int = 3,
) -> dict[str, Any]:
    """Alternate runs without and with the draft (`pairs` per draft length) and take the median of
    the per-pair speed ratios, so machine noise hits both sides alike. Each run is its own engine
    call: other streams go on between runs. The best draft length wins."""
    on_engine(probe, target, None, tokens)  # warm both models
    on_engine(probe, target, DraftChoice(draft, counts[0]), tokens)
    sweep, baselines = [], []
    for count in counts:
        runs = [
            (on_engine(probe, target, None, tokens), on_engine(probe, target, DraftChoice(draft, count), tokens))
            for _ in range(pairs)
        ]
        baselines += [base["tokens_per_second"] for base, _ in runs]
        sweep.append(
            {
                "num_draft_tokens": count,
                "tokens_per_second": round(statistics.median(s["tokens_per_second"] for _, s in runs), 1),
                "acceptance_rate": round(statistics.median(s["acceptance_rate"] for _, s in runs), 3),
                "speedup": round(
                    statistics.median(s["tokens_per_second"] / b["tokens_per_second"] for b, s in runs), 3
                ),
            }
        )
    # A draft length whose proposals were never kept saved no target pass: any gain measured there is
    # machine noise (seen as 2x on a loaded machine), so it cannot be the best, and such a draft is slower.
    useful = [row for row in sweep if row["acceptance_rate"] > 0]
    best = max(useful or sweep, key=lambda row: row["speedup"])
    verdict = "faster" if best["speedup"] > 1.03 else "slower" if best["speedup"] < 0.97 else "no difference"
    if not useful:
        verdict = "slower"
    return {
        "verdict": verdict,
        "speedup": best["speedup"],
        "num_draft_tokens": best["num_draft_tokens"],
        "acceptance_rate": best["acceptance_rate"],
        "baseline_tokens_per_second": round(statistics.median(baselines), 1),
        "speculative_tokens_per_second": best["tokens_per_second"],
        "probe_tokens": tokens,
        "sweep": sweep,
    }
