"""Train the tiny reranker (tiny-rerank): an mlx-lm Qwen3 scored the Qwen3-Reranker way.

The text is `PREFIX + format_body(query, document, instruction) + SUFFIX` (rerank_format.py) and the
score is softmax([logit("no"), logit("yes")])[1] at the last position. Training is a cross-entropy on
exactly those two logits: relevant documents -> "yes", hard negatives (same topic or same sentence
frame, other content) and unrelated documents -> "no". Only the two rows of the tied embedding that
are "no" and "yes" act as the output layer, so no compute goes into the rest of the vocabulary.
Deterministic in `seed`, like the other tiny models.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.tinymodels import embedders, pairs
from runtime.tinymodels.embed_train import EmbedConfig, decoder_config
from runtime.tinymodels.embedders import Log
from runtime.tinymodels.rerank_format import (
    DEFAULT_INSTRUCTION,
    NO_TOKEN,
    PREFIX,
    SUFFIX,
    YES_TOKEN,
    format_body,
    format_pair,
)

if TYPE_CHECKING:
    import mlx.core as mx
    import numpy as np
    from tokenizers import Encoding, Tokenizer

# Words whose presence in both query and document says nothing about relevance.
_STOPWORD_TEXT = (
    "a an the and or but of to in on at for with by from as is are was were be been being it its this that these "
    "those i you he she we they me him her us them my your his our their what which who whom how why when where do "
    "does did can could should would will shall may might must not no yes so if then than there here about into "
    "over under up down out off again very just also too some any all each every more most much many few other "
    "such own same only get got has have had"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split(" "))


@dataclass(frozen=True)
class RerankConfig:
    hidden_size: int = 128
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 384
    vocab_size: int = 4096
    tokenizer_triplets: int = 30_000
    groups_per_batch: int = 16  # a group is a query with a relevant, a hard and an unrelated document
    match_weight: float = 0.5  # the per-token "does this document word occur in the query" objective
    max_len: int = 192
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    steps: int = 650
    time_budget_s: float = 600.0  # a guard; `steps` normally ends training (training.json has steps_done)
    seed: int = 0


def rerank_config(cfg: RerankConfig, vocab_size: int, eos_ids: list[int]) -> dict[str, Any]:
    shape = EmbedConfig(
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size,
    )
    return decoder_config(shape, vocab_size, eos_ids)


class SharedPrefixCache:
    """A layer's keys and values of PREFIX, computed once (batch 1) and shared by the whole batch.

    PREFIX is ~40% of every sequence and the same in all of them; a causal model's states there do
    not depend on what follows, so computing them once is exact and makes a training step ~40% cheaper.
    It follows mlx-lm's cache interface (offset, update_and_fetch, make_mask).
    """

    def __init__(self) -> None:
        self.keys: mx.array | None = None
        self.values: mx.array | None = None
        self.offset = 0

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        import mlx.core as mx

        if self.keys is None or self.values is None:
            self.keys, self.values = keys, values
        else:
            shape = (keys.shape[0], *self.keys.shape[1:])
            keys = mx.concatenate([mx.broadcast_to(self.keys, shape), keys], axis=2)
            values = mx.concatenate([mx.broadcast_to(self.values, shape), values], axis=2)
        self.offset = keys.shape[2]  # the positions seen so far: where RoPE continues
        return keys, values

    def make_mask(self, length: int, **_: Any) -> str | None:
        # "causal" aligns the queries with the last keys, so the body sees the whole prefix.
        return "causal" if length > 1 else None


class Scorer:
    """Encode formatted pairs and read P(yes) at the last position, for training and evaluation.

    Sequences are handled without PREFIX (`body`): its keys and values come from a SharedPrefixCache.
    """

    def __init__(self, tokenizer: Tokenizer, model: Any, max_len: int) -> None:
        self.tokenizer, self.model, self.max_len = tokenizer, model, max_len
        self.yes_no = [_single_id(tokenizer, NO_TOKEN), _single_id(tokenizer, YES_TOKEN)]
        self.suffix_len = len(tokenizer.encode(SUFFIX, add_special_tokens=False).ids)
        self.prefix = tokenizer.encode(PREFIX, add_special_tokens=False).ids

    def ids(self, texts: list[str]) -> tuple[mx.array, mx.array]:
        """Right-padded body ids (after PREFIX) and their lengths."""
        import mlx.core as mx

        # Too long: drop tokens from the document's end, keep the SUFFIX whose last position is read.
        suffix, start = self.suffix_len, len(self.prefix)
        sequences = []
        for encoding in self.tokenizer.encode_batch(texts):
            ids = encoding.ids
            assert ids[:start] == self.prefix, "every text starts with PREFIX, tokenized on its own"
            if len(ids) > self.max_len:
                ids = ids[: self.max_len - suffix] + ids[-suffix:]
            sequences.append(ids[start:])
        ids_np, lengths = embedders.pad(sequences, 0, self.max_len - start)
        return mx.array(ids_np), mx.array(lengths)

    def logits(self, model: Any, body: mx.array) -> mx.array:
        """(no, yes) logits at every body position; tied embeddings are the output layer."""
        import mlx.core as mx

        caches = [SharedPrefixCache() for _ in model.model.layers]
        model.model(mx.array([self.prefix]), cache=caches)
        rows = model.model.embed_tokens.weight[mx.array(self.yes_no)]
        result: mx.array = model.model(body, cache=caches) @ rows.T
        return result

    def last(self, logits: mx.array, lengths: mx.array) -> mx.array:
        """The (no, yes) logits at each sequence's last real token: the reranker's score."""
        import mlx.core as mx

        result: mx.array = logits[mx.arange(logits.shape[0]), lengths - 1]
        return result

    def match_targets(self, texts: list[str], width: int) -> tuple[np.ndarray, np.ndarray]:
        """Per token: 1 where a document word also occurs in the query, 0 for other document words.

        A dense signal for what the final position must judge: the first layers learn to look back
        from each document word to the query, and the last position only has to add up the matches.
        """
        import numpy as np

        targets = np.zeros((len(texts), width), dtype=np.int32)
        mask = np.zeros((len(texts), width), dtype=np.float32)
        start = len(self.prefix)
        limit = min(width, self.max_len - self.suffix_len - start)  # truncation keeps the SUFFIX
        for row, (text, encoding) in enumerate(zip(texts, self.tokenizer.encode_batch(texts), strict=True)):
            for position, label in _document_matches(text, encoding):
                if position - start < limit:
                    targets[row, position - start], mask[row, position - start] = label, 1.0
        return targets, mask

    def scores(self, texts: list[str], batch: int = 32) -> list[float]:
        import mlx.core as mx
        import numpy as np

        out: list[float] = []
        for start in range(0, len(texts), batch):
            ids, lengths = self.ids(texts[start : start + batch])
            logits = self.last(self.logits(self.model, ids), lengths)
            out.extend(float(p) for p in np.array(mx.softmax(logits, axis=-1)[:, 1]))
        return out


def _word(token: str) -> str:
    return token.replace("\u0120", "").strip().lower()


def _document_matches(text: str, encoding: Encoding) -> list[tuple[int, int]]:
    """(position, 1 if the document token's word is in the query else 0) for content words."""
    query_start = text.index("<Query>: ") + len("<Query>: ")
    query_end = text.index("\n<Document>: ", query_start)
    document_start = query_end + len("\n<Document>: ")
    document_end = text.rindex("<|im_end|>")
    query_words, document = set(), []
    for position, (token, (start, _)) in enumerate(zip(encoding.tokens, encoding.offsets, strict=True)):
        word = _word(token)
        if len(word) < 2 or not word.isalpha() or word in STOPWORDS:
            continue
        if query_start <= start < query_end:
            query_words.add(word)
        elif document_start <= start < document_end:
            document.append((position, word))
    return [(position, int(word in query_words)) for position, word in document]


def match_heads(model: Any) -> None:
    """Start every key projection as its group's first query projection (W_k = W_q).

    Then q.k for a token and an earlier copy of itself is a squared norm, so from the first step
    those heads attend from a document word back to the same word in the query: the comparison a
    reranker makes. With random W_k this circuit took longer to appear than the training budget.
    """
    import mlx.core as mx

    for layer in model.model.layers:
        attention = layer.self_attn
        head_dim = attention.q_proj.weight.shape[0] // attention.n_heads
        group = attention.n_heads // attention.n_kv_heads
        weight = attention.q_proj.weight
        rows = [weight[h * group * head_dim : (h * group + 1) * head_dim] for h in range(attention.n_kv_heads)]
        attention.k_proj.weight = mx.concatenate(rows)


def _single_id(tokenizer: Tokenizer, word: str) -> int:
    ids = tokenizer.encode(word, add_special_tokens=False).ids
    assert len(ids) == 1, (word, ids)
    return ids[0]


def _batch(rng: random.Random, cfg: RerankConfig) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for _ in range(cfg.groups_per_batch):
        for example in pairs.rerank_group(rng):
            texts.append(format_pair(example.query, example.document, example.instruction))
            labels.append(int(example.relevant))
    return texts, labels


def train(out_dir: Path, cfg: RerankConfig, log: Log = print) -> dict[str, Any]:
    """Tokenizer, weights and config into `out_dir`; return the summary (with the acceptance numbers)."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm.models import qwen3

    mx.random.seed(cfg.seed)
    texts = embedders.bpe_texts(cfg.tokenizer_triplets, cfg.seed)
    tokenizer = embedders.train_bpe(texts, out_dir, cfg.vocab_size)
    vocab_size = -(-tokenizer.get_vocab_size() // 64) * 64
    config = rerank_config(cfg, vocab_size, embedders.eos_ids(tokenizer))
    model = qwen3.Model(qwen3.ModelArgs.from_dict(config))
    match_heads(model)
    mx.eval(model.parameters())
    scorer = Scorer(tokenizer, model, cfg.max_len)
    optimizer = optim.AdamW(learning_rate=embedders.lr_schedule(cfg.learning_rate, cfg.warmup_steps, cfg.steps))
    rng = random.Random(cfg.seed + 1)

    def loss_fn(model: Any, ids: mx.array, lengths: mx.array, labels: mx.array, match: mx.array) -> mx.array:
        logits = scorer.logits(model, ids)
        loss = nn.losses.cross_entropy(scorer.last(logits, lengths), labels).mean()
        if cfg.match_weight:
            targets, mask = match[..., 0].astype(mx.int32), match[..., 1]
            per_token = nn.losses.cross_entropy(logits, targets) * mask
            loss = loss + cfg.match_weight * per_token.sum() / mx.maximum(mask.sum(), 1.0)
        return loss

    step_fn = nn.value_and_grad(model, loss_fn)
    started, step, losses = time.perf_counter(), 0, []
    while step < cfg.steps and time.perf_counter() - started < cfg.time_budget_s:
        batch_texts, labels = _batch(rng, cfg)
        ids, lengths = scorer.ids(batch_texts)
        targets, mask = scorer.match_targets(batch_texts, ids.shape[1])
        match = mx.stack([mx.array(targets).astype(mx.float32), mx.array(mask)], axis=-1)
        loss, grads = step_fn(model, ids, lengths, mx.array(labels), match)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state, loss)
        losses.append(loss.item())
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {sum(losses[-50:]) / 50:.3f} {time.perf_counter() - started:.0f}s")
    seconds = time.perf_counter() - started
    parameters = embedders.save_weights(out_dir, model)
    embedders.write_json(out_dir / "config.json", config)
    summary = {
        "train_config": asdict(cfg),
        "steps_done": step,
        "train_loss": round(sum(losses[-50:]) / max(len(losses[-50:]), 1), 4),
        "parameters": parameters,
        "seconds": round(seconds, 1),
        "yes_id": scorer.yes_no[1],
        "no_id": scorer.yes_no[0],
        "evaluation": evaluate(scorer),
    }
    embedders.write_json(out_dir / "training.json", summary)
    return summary


def evaluate(scorer: Scorer, seed: int = 20_002) -> dict[str, Any]:
    """Top-1 on the hand-written queries; pairwise accuracy and top-1 on held-out generated groups."""

    def score(query: str, documents: list[str]) -> list[float]:
        return scorer.scores([format_pair(query, d, DEFAULT_INSTRUCTION) for d in documents])

    rng = random.Random(seed)
    groups = [pairs.rerank_group(rng, "val") for _ in range(300)]
    flat = [e for group in groups for e in group]
    probs = scorer.scores([format_pair(e.query, e.document, e.instruction) for e in flat])
    top1 = sum(probs[3 * i] > max(probs[3 * i + 1], probs[3 * i + 2]) for i in range(len(groups)))
    hard = sum(probs[3 * i] > probs[3 * i + 1] for i in range(len(groups)))
    labels = [e.relevant for e in flat]
    accuracy = sum((p > 0.5) == label for p, label in zip(probs, labels, strict=True))
    return {
        "check_rankings_top1": round(embedders.ranking_accuracy(score, embedders.check_rankings()), 4),
        "held_out_top1_of_3": round(top1 / len(groups), 4),
        "held_out_relevant_above_hard_negative": round(hard / len(groups), 4),
        "held_out_yes_no_accuracy": round(accuracy / len(flat), 4),
    }


def check_load(out_dir: Path, pairs_to_score: list[tuple[str, str]]) -> dict[str, Any]:
    """Score through `mlx_lm.load` (one text at a time, full logits) and through the training forward."""
    import mlx.core as mx
    from mlx_lm import load
    from tokenizers import Tokenizer

    model, wrapper = load(str(out_dir))[:2]
    yes_id = wrapper.convert_tokens_to_ids(YES_TOKEN)
    no_id = wrapper.convert_tokens_to_ids(NO_TOKEN)
    texts = [format_pair(q, d) for q, d in pairs_to_score]
    library = []
    for text in texts:
        logits = model(mx.array([wrapper.encode(text)]))[0, -1]
        library.append(mx.softmax(logits[mx.array([no_id, yes_id])], axis=-1)[1].item())
    ours = Scorer(Tokenizer.from_file(str(out_dir / "tokenizer.json")), model, 2048).scores(texts)
    # The runtime encodes PREFIX, body and SUFFIX one by one and joins the ids: that must be the same.
    pieces = [
        wrapper.encode(PREFIX, add_special_tokens=False)
        + wrapper.encode(format_body(q, d), add_special_tokens=False)
        + wrapper.encode(SUFFIX, add_special_tokens=False)
        for q, d in pairs_to_score
    ]
    return {
        "piecewise_encoding_matches": all(
            p == wrapper.encode(t, add_special_tokens=False) for p, t in zip(pieces, texts, strict=True)
        ),
        "yes_id": yes_id,
        "no_id": no_id,
        "yes_encodes_to": wrapper.encode(YES_TOKEN, add_special_tokens=False),
        "no_encodes_to": wrapper.encode(NO_TOKEN, add_special_tokens=False),
        "load_max_abs_diff": max(abs(a - b) for a, b in zip(library, ours, strict=True)),
    }


def run(out_dir: Path, log: Log = print, **overrides: Any) -> dict[str, Any]:
    """`python -m runtime.tinymodels rerank`: train, then score through `mlx_lm.load` as a check."""
    cfg = replace(RerankConfig(), **{k: v for k, v in overrides.items() if v is not None})
    summary = train(out_dir, cfg, log)
    checks = [(q, d) for q, relevant, others in pairs.CHECK_RANKINGS[:3] for d in (relevant, *others)]
    summary.update(check_load(out_dir, checks))
    embedders.write_json(out_dir / "training.json", summary)
    return summary
