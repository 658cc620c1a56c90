"""Train the tiny embedders contrastively on the `pairs` corpus with MLX (CPU is enough).

Two presets:
- `encoder` (tiny-embed): mlx-embeddings' BERT, a WordPiece tokenizer, mean pooling over the
  attention mask and L2 normalisation, which is exactly what `model(...).text_embeds` returns.
- `decoder` (tiny-embed-decoder): mlx-lm's Qwen3 in the Qwen3-Embedding style: queries get
  `Instruct: {instruction}\\nQuery:` in front, every text ends with <|endoftext|>, and the embedding is
  the final (normed) hidden state there, L2-normalised.

Loss: symmetric InfoNCE (temperature 0.05) with in-batch negatives plus one hard negative per anchor.
Deterministic: tokenizer corpus, initial weights and batches all derive from `seed`.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.tinymodels import embedders, pairs
from runtime.tinymodels.embedders import ENDOFTEXT, QUERY_PROMPT, Log
from runtime.tinymodels.rerank_format import DEFAULT_INSTRUCTION

if TYPE_CHECKING:
    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class EmbedConfig:
    preset: str = "encoder"
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2  # decoder only
    # 256, not BERT's 4x: GELU's erf is the slowest op on this CPU and 2x wider bought nothing here.
    intermediate_size: int = 256
    vocab_size: int = 6000  # the tokenizer's upper bound; the embedding uses the size it reaches
    tokenizer_triplets: int = 30_000
    batch_size: int = 96  # triplets: 96 anchors against 192 candidates per step
    max_len: int = 96
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    temperature: float = 0.05
    steps: int = 480
    time_budget_s: float = 600.0  # a guard; `steps` normally ends training (training.json has steps_done)
    seed: int = 0


PRESETS: dict[str, dict[str, Any]] = {
    "encoder": {},
    "decoder": {"preset": "decoder", "vocab_size": 4096, "intermediate_size": 384, "batch_size": 64, "steps": 700},
}


# ---- the two architectures -------------------------------------------------------------------


def encoder_config(cfg: EmbedConfig, vocab_size: int) -> dict[str, Any]:
    return {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "vocab_size": vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": "gelu",
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        # Trained without dropout: a few minutes of training is far from overfitting this corpus.
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "pad_token_id": 0,
    }


def decoder_config(cfg: EmbedConfig, vocab_size: int, eos_ids: list[int]) -> dict[str, Any]:
    return {
        "model_type": "qwen3",
        "architectures": ["Qwen3ForCausalLM"],
        "vocab_size": vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.hidden_size // cfg.num_attention_heads,
        "intermediate_size": cfg.intermediate_size,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,  # Qwen3's: slow rotations keep a word's key close to its query
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
        "eos_token_id": eos_ids,
        "bos_token_id": None,
        "pad_token_id": 0,
    }


def build_encoder(config: dict[str, Any]) -> nn.Module:
    """mlx-embeddings' BERT with zero position embeddings: positions never seen in training add nothing."""
    import mlx.core as mx
    from mlx_embeddings.models import bert

    model = bert.Model(bert.ModelArgs.from_dict(config))
    embeddings = model.embeddings
    embeddings.position_embeddings.weight = mx.zeros_like(embeddings.position_embeddings.weight)
    embeddings.token_type_embeddings.weight = mx.zeros_like(embeddings.token_type_embeddings.weight)
    # Word embeddings at BERT's scale (0.02), not MLX's 1/sqrt(d): LayerNorm follows, so only the
    # ratio to the (zero) positions matters, and small rows move faster under AdamW.
    embeddings.word_embeddings.weight = embeddings.word_embeddings.weight * (0.02 * config["hidden_size"] ** 0.5)
    return model


def build_decoder(config: dict[str, Any]) -> nn.Module:
    from mlx_lm.models import qwen3

    return qwen3.Model(qwen3.ModelArgs.from_dict(config))


def encoder_forward(model: Any, ids: mx.array, lengths: mx.array) -> mx.array:
    """`text_embeds` of mlx-embeddings: mean over the attention mask, then L2 normalisation."""
    import mlx.core as mx

    mask = (mx.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(mx.float32)
    embeds: mx.array = model(ids, attention_mask=mask).text_embeds
    return embeds


def decoder_forward(model: Any, ids: mx.array, lengths: mx.array) -> mx.array:
    """The normed last hidden state at each sequence's last real token (right padding, causal mask)."""
    import mlx.core as mx

    hidden = model.model(ids)
    last = hidden[mx.arange(ids.shape[0]), lengths - 1]
    norms: mx.array = mx.maximum(mx.linalg.norm(last, axis=-1, keepdims=True), 1e-9)
    return last / norms


# ---- text preparation ----------------------------------------------------------------------------


def query_prompt(instruction: str = DEFAULT_INSTRUCTION) -> str:
    return QUERY_PROMPT.format(instruction=instruction)


def decoder_views(rng: random.Random, item: pairs.Triplet) -> tuple[str, str, str]:
    """Qwen3-Embedding usage: an instructed query against plain documents; sentence pairs sometimes
    both plain, sometimes both instructed, so either way of calling it works."""
    if item.kind.startswith("paraphrase") or item.kind == "query/paraphrase":
        roll = rng.random()
        if roll < 0.5:
            return item.anchor, item.positive, item.negative
        prompt = query_prompt(rng.choice(pairs.SIMILARITY_INSTRUCTIONS + [DEFAULT_INSTRUCTION]))
        if roll < 0.75:
            return prompt + item.anchor, item.positive, item.negative
        return prompt + item.anchor, prompt + item.positive, prompt + item.negative
    instruction = DEFAULT_INSTRUCTION if rng.random() < 0.6 else rng.choice(pairs.INSTRUCTIONS)
    return query_prompt(instruction) + item.anchor, item.positive, item.negative


class Encoder:
    """Tokenize and embed texts with one preset's forward pass (training and evaluation alike)."""

    def __init__(self, preset: str, tokenizer: Tokenizer, model: Any, max_len: int) -> None:
        self.preset, self.tokenizer, self.model, self.max_len = preset, tokenizer, model, max_len
        self.forward = encoder_forward if preset == "encoder" else decoder_forward

    def ids(self, texts: list[str]) -> tuple[mx.array, mx.array]:
        import mlx.core as mx

        encodings = self.tokenizer.encode_batch(texts)
        sequences = [e.ids for e in encodings]
        if self.preset == "decoder":
            # Truncation must keep the final <|endoftext|>: its state is the embedding.
            end = self.tokenizer.token_to_id(ENDOFTEXT)
            assert end is not None, "the BPE has <|endoftext|>"
            sequences = [s if len(s) <= self.max_len else [*s[: self.max_len - 1], end] for s in sequences]
        ids, lengths = embedders.pad(sequences, 0, self.max_len)
        return mx.array(ids), mx.array(lengths)

    def __call__(self, texts: list[str]) -> mx.array:
        ids, lengths = self.ids(texts)
        return self.forward(self.model, ids, lengths)

    def numpy(self, texts: list[str], batch: int = 64) -> np.ndarray:
        import numpy as np

        chunks = [np.array(self(texts[i : i + batch])) for i in range(0, len(texts), batch)]
        return np.concatenate(chunks)


# ---- training -------------------------------------------------------------------------------------


def _build(out_dir: Path, cfg: EmbedConfig) -> tuple[Tokenizer, dict[str, Any], Any]:
    if cfg.preset == "encoder":
        texts = pairs.texts_for_tokenizer(cfg.tokenizer_triplets, cfg.seed)
        tokenizer = embedders.train_wordpiece(texts, out_dir, cfg.vocab_size)
        vocab_size = -(-tokenizer.get_vocab_size() // 64) * 64
        config = encoder_config(cfg, vocab_size)
        return tokenizer, config, build_encoder(config)
    tokenizer = embedders.train_bpe(
        embedders.bpe_texts(cfg.tokenizer_triplets, cfg.seed), out_dir, cfg.vocab_size, append_eos=True
    )
    vocab_size = -(-tokenizer.get_vocab_size() // 64) * 64
    config = decoder_config(cfg, vocab_size, embedders.eos_ids(tokenizer))
    return tokenizer, config, build_decoder(config)


def train(out_dir: Path, cfg: EmbedConfig, log: Log = print) -> dict[str, Any]:
    """Build tokenizer, weights and sentence-transformers files into `out_dir`; return the summary."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    mx.random.seed(cfg.seed)
    tokenizer, config, model = _build(out_dir, cfg)
    mx.eval(model.parameters())
    encoder = Encoder(cfg.preset, tokenizer, model, cfg.max_len)
    optimizer = optim.AdamW(learning_rate=embedders.lr_schedule(cfg.learning_rate, cfg.warmup_steps, cfg.steps))
    rng = random.Random(cfg.seed + 1)

    def loss_fn(model: Any, batch: list[tuple[mx.array, mx.array]]) -> mx.array:
        anchors, positives, negatives = (encoder.forward(model, ids, lengths) for ids, lengths in batch)
        return embedders.info_nce(anchors, positives, negatives, cfg.temperature)

    step_fn = nn.value_and_grad(model, loss_fn)
    started, step, losses = time.perf_counter(), 0, []
    while step < cfg.steps and time.perf_counter() - started < cfg.time_budget_s:
        batch = _batch(rng, encoder, cfg)
        loss, grads = step_fn(model, batch)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state, loss)
        losses.append(loss.item())
        step += 1
        if step % 50 == 0:
            recent = sum(losses[-50:]) / len(losses[-50:])
            log(f"step {step} loss {recent:.3f} {time.perf_counter() - started:.0f}s")
    seconds = time.perf_counter() - started
    model.eval()
    parameters = _write_model(out_dir, cfg, config, model)
    summary = {
        "train_config": asdict(cfg),
        "steps_done": step,
        "train_loss": round(sum(losses[-50:]) / max(len(losses[-50:]), 1), 4),
        "parameters": parameters,
        "seconds": round(seconds, 1),
        "evaluation": evaluate(encoder),
    }
    embedders.write_json(out_dir / "training.json", summary)
    return summary


def _batch(rng: random.Random, encoder: Encoder, cfg: EmbedConfig) -> list[tuple[mx.array, mx.array]]:
    items = [pairs.triplet(rng) for _ in range(cfg.batch_size)]
    if cfg.preset == "decoder":
        views = [decoder_views(rng, item) for item in items]
    else:
        views = [(item.anchor, item.positive, item.negative) for item in items]
    return [encoder.ids([v[i] for v in views]) for i in range(3)]


def _write_model(out_dir: Path, cfg: EmbedConfig, config: dict[str, Any], model: Any) -> int:
    parameters = embedders.save_weights(out_dir, model)
    embedders.write_json(out_dir / "config.json", config)
    if cfg.preset == "encoder":
        embedders.write_sentence_transformers(out_dir, "mean", cfg.hidden_size)
    else:
        prompts = {"query": query_prompt(), "document": ""}
        embedders.write_sentence_transformers(out_dir, "lasttoken", cfg.hidden_size, prompts)
    return parameters


# ---- evaluation ----------------------------------------------------------------------------------


def evaluate(encoder: Encoder, seed: int = 10_001) -> dict[str, Any]:
    """The acceptance numbers: hand-written checks and held-out generated triplets."""

    prompt = query_prompt() if encoder.preset == "decoder" else ""

    def embed(texts: list[str]) -> np.ndarray:
        return encoder.numpy(texts)

    def score(query: str, documents: list[str]) -> list[float]:
        vectors = embed([prompt + query, *documents])
        return [embedders.cosine(vectors[0], v) for v in vectors[1:]]

    def triplet_acc(items: list[pairs.Triplet], prompted: bool) -> float:
        first = prompt if prompted else ""
        return embedders.triplet_accuracy(embed, [(first + t.anchor, t.positive, t.negative) for t in items])

    paraphrases = embedders.held_out(600, seed, "paraphrase")
    queries = embedders.held_out(600, seed + 1, "query/")
    facts = embedders.held_out(300, seed + 2, "fact")
    return {
        "check_triplets": round(embedders.triplet_accuracy(embed, pairs.CHECK_TRIPLETS), 4),
        "check_rankings_top1": round(embedders.ranking_accuracy(score, embedders.check_rankings()), 4),
        "held_out_paraphrase_triplets": round(triplet_acc(paraphrases, False), 4),
        "held_out_query_triplets": round(triplet_acc(queries, True), 4),
        "held_out_fact_triplets": round(triplet_acc(facts, True), 4),
    }


def check_load(out_dir: Path, texts: list[str]) -> float:
    """Max |difference| between the vectors of the library's own loader and of the training forward."""
    import numpy as np
    from tokenizers import Tokenizer

    config = embedders.load_json(out_dir / "config.json")
    tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    if config["model_type"] == "bert":
        import mlx.core as mx
        from mlx_embeddings.utils import load as load_embedder

        model, wrapper = load_embedder(str(out_dir))
        batch = wrapper(texts, padding=True, return_tensors="np")
        library = np.array(
            model(mx.array(batch["input_ids"]), attention_mask=mx.array(batch["attention_mask"])).text_embeds
        )
        ours = Encoder("encoder", tokenizer, build_encoder(config), 512)
    else:
        import mlx.core as mx
        from mlx_lm import load as load_lm

        model, wrapper = load_lm(str(out_dir))[:2]
        rows = []
        for text in texts:  # one at a time: mlx-lm has no padding mask
            ids = wrapper.encode(text)
            rows.append(np.array(decoder_forward(model, mx.array([ids]), mx.array([len(ids)]))[0]))
        library = np.stack(rows)
        ours = Encoder("decoder", tokenizer, build_decoder(config), 2048)
    ours.model.load_weights(str(out_dir / "model.safetensors"))
    ours.model.eval()
    return float(np.abs(library - ours.numpy(texts)).max())


def run(out_dir: Path, preset: str, log: Log = print, **overrides: Any) -> dict[str, Any]:
    """`python -m runtime.tinymodels embed`: train, then verify the files load with the real libraries."""
    cfg = replace(EmbedConfig(), **PRESETS[preset])
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    summary = train(out_dir, cfg, log)
    texts = [t for triplet in pairs.CHECK_TRIPLETS[:4] for t in triplet]
    summary["load_max_abs_diff"] = check_load(out_dir, texts)
    embedders.write_json(out_dir / "training.json", summary)
    return summary
