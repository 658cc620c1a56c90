"""`runtime bench` embeddings scenario: embed and rerank through the runtime as a host sees them.

- embeddings/s for 32 inputs in one `embed` request against the same 32 as one request each;
- the same batch against `mlx-embeddings` driven directly in this process on the same model
  (tokenizer padding, the model's forward pass, `text_embeds` to NumPy): target >= 0.95;
- the decode speed of a stream while another host thread keeps embedding batches of 32, against
  the same stream alone (the engine runs one bounded pass between two decode steps).
Each is measured on the tiny embedder and on a random-weight BERT with bge-small's body (hidden
384, 12 layers) built here in a temporary directory. Runs alternate (runtime, direct, runtime, ...);
ratios are medians of per-pair ratios. Every repetition embeds texts of its own, so the embedding
cache never answers.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from runtime.bench.host import LeanHost, median, timed_stream

BATCH = 32
WORDS = ("the", "garden", "river", "morning", "bread", "music", "station", "winter", "market", "letter", "window")


def run_embeddings(runs: int, chat_model: str, eos_ids: list[int]) -> dict[str, Any]:
    from runtime.engine.resolve import EMBEDDED_DIR
    from runtime.tinymodels.fixtures import build_random_bert

    tiny = EMBEDDED_DIR / "tiny-embed"
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        small = Path(tmp) / "bert-small-random"
        build_random_bert(small, tiny)
        client = LeanHost(ready_timeout=60)
        try:
            client.request("load_model", {"model_id": chat_model}, timeout=120)
            results = {}
            for name, path in (("tiny-embed", tiny), ("bert-small-random", small)):
                client.request("load_model", {"model_id": name, "local_path": str(path)}, timeout=120)
                results[name] = _one_model(client, name, path, runs)
            results["decode_while_embedding"] = _decode_while_embedding(
                client, chat_model, "bert-small-random", runs, eos_ids
            )
        finally:
            client.close()
    results["targets"] = {"runtime_vs_direct_batch32": ">= 0.95"}
    return results


def _texts(tag: str, count: int = BATCH) -> list[str]:
    """Sentences of 8 to 40 words, unique to `tag` (so the embedding cache never answers)."""
    return [
        f"{tag} {i} " + " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8 + (i * 7) % 33)) for i in range(count)
    ]


def _one_model(client: LeanHost, model_id: str, path: Path, runs: int) -> dict[str, Any]:
    direct = _Direct(path)
    _through_runtime(client, model_id, _texts("warm"))
    direct.embed(_texts("warm"))
    pairs, singles = [], []
    for rep in range(runs):
        texts = _texts(f"r{rep}")
        ours = _through_runtime(client, model_id, texts)
        theirs = direct.embed(texts)
        pairs.append((ours, theirs))
        singles.append(_one_at_a_time(client, model_id, _texts(f"s{rep}")))
    return {
        "batch": BATCH,
        "runtime_batch_per_s": median(BATCH / p[0] for p in pairs),
        "runtime_one_at_a_time_per_s": median(BATCH / s for s in singles),
        "direct_mlx_embeddings_per_s": median(BATCH / p[1] for p in pairs),
        "runtime_vs_direct_batch32": median(p[1] / p[0] for p in pairs),
        "batched_vs_one_at_a_time": median(s / p[0] for s, p in zip(singles, pairs, strict=True)),
    }


def _through_runtime(client: LeanHost, model_id: str, texts: list[str]) -> float:
    started = time.perf_counter()
    result = client.request("embed", {"model_id": model_id, "input": texts}, timeout=600)
    elapsed = time.perf_counter() - started
    assert len(result["data"]) == len(texts) and result["usage"]["cached_inputs"] == 0
    return elapsed


def _one_at_a_time(client: LeanHost, model_id: str, texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        client.request("embed", {"model_id": model_id, "input": text}, timeout=600)
    return time.perf_counter() - started


class _Direct:
    """mlx-embeddings as its README drives it: batch_encode_plus, the model, text_embeds."""

    def __init__(self, path: Path) -> None:
        from mlx_embeddings.utils import load

        self.model, self.tokenizer = load(str(path))

    def embed(self, texts: list[str]) -> float:
        import mlx.core as mx
        import numpy as np

        started = time.perf_counter()
        inputs = self.tokenizer.batch_encode_plus(
            texts, return_tensors="mlx", padding=True, truncation=True, max_length=512
        )
        out = self.model(inputs["input_ids"], attention_mask=inputs["attention_mask"])
        vectors = np.array(out.text_embeds)
        mx.eval()
        assert vectors.shape[0] == len(texts)
        return time.perf_counter() - started


def _decode_while_embedding(
    client: LeanHost, chat_model: str, embed_model: str, runs: int, eos_ids: list[int]
) -> dict[str, Any]:
    bias = {str(i): -100.0 for i in eos_ids}
    params = {
        "model_id": chat_model,
        "prompt": "Once upon a time",
        "max_tokens": 200,
        "temperature": 0,
        "logit_bias": bias,
    }
    alone, together, rates = [], [], []
    for rep in range(runs):
        alone.append(timed_stream(client, params)["decode_tps"])
        stop, done = threading.Event(), [0]
        worker = threading.Thread(target=_keep_embedding, args=(client, embed_model, f"d{rep}", stop, done))
        started = time.perf_counter()
        worker.start()
        together.append(timed_stream(client, params)["decode_tps"])
        stop.set()
        worker.join(600)
        rates.append(done[0] / (time.perf_counter() - started))
    return {
        "stream_tokens": params["max_tokens"],
        "decode_tps_alone": median(alone),
        "decode_tps_while_embedding": median(together),
        "slowdown": median(a / t for a, t in zip(alone, together, strict=True)),
        "embeddings_per_s_meanwhile": median(rates),
        "embed_model": embed_model,
    }


def _keep_embedding(client: LeanHost, model_id: str, tag: str, stop: threading.Event, done: list[int]) -> None:
    """Batches of 32 back to back until `stop`; `done` counts the inputs embedded."""
    batch = 0
    while not stop.is_set():
        client.request("embed", {"model_id": model_id, "input": _texts(f"{tag}-{batch}")}, timeout=600)
        batch += 1
        done[0] += BATCH


def print_embeddings(report: dict[str, Any]) -> None:
    print("\nembeddings (batch of 32; per second)")
    columns = ("runtime batch", "one at a time", "direct mlx-emb", "vs direct", "batched x")
    print(f"{'model':<20} " + " ".join(f"{c:>14}" for c in columns))
    for name in ("tiny-embed", "bert-small-random"):
        r = report[name]
        print(
            f"{name:<20} {r['runtime_batch_per_s']:>14.1f} {r['runtime_one_at_a_time_per_s']:>14.1f} "
            f"{r['direct_mlx_embeddings_per_s']:>14.1f} {r['runtime_vs_direct_batch32']:>14.3f} "
            f"{r['batched_vs_one_at_a_time']:>14.2f}"
        )
    d = report["decode_while_embedding"]
    print(
        f"decode {d['decode_tps_alone']:.1f} tok/s alone, {d['decode_tps_while_embedding']:.1f} while embedding "
        f"({d['embeddings_per_s_meanwhile']:.0f} embeddings/s): slowdown x{d['slowdown']:.2f}"
    )
