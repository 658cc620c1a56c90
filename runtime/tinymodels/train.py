"""Train the embedded tiny chat model on the synthetic corpus with MLX (CPU is enough).

Deterministic: the corpus, the tokenizer, the initial weights and the batch order all derive from
`seed`. Training stops after `steps` or `time_budget_s`, whichever comes first; the step count reached
is written into the model's `training.json` so a rebuild can reproduce it with `--steps`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.tinymodels.corpus import documents
from runtime.tinymodels.tokenizer import EOS_TOKEN, train_tokenizer


@dataclass(frozen=True)
class TrainConfig:
    hidden_size: int = 192
    num_hidden_layers: int = 4
    intermediate_size: int = 512
    num_attention_heads: int = 3
    num_key_value_heads: int = 1
    vocab_size: int = 4096  # the BPE's upper bound; the model uses the size it reaches
    documents: int = 60_000
    seq_len: int = 384  # a conversation with tools (~100 tokens of instructions, ~60 per tool) fits
    batch_size: int = 4
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    steps: int = 1200
    time_budget_s: float = 720.0
    seed: int = 0


# The draft for speculative decoding: same corpus, seed and tokenizer as the chat model, a quarter
# of its size and half its depth (a draft's cost per token is mostly per-layer dispatch on CPU).
PRESETS: dict[str, dict[str, int | float]] = {
    "chat": {},
    "draft": {"hidden_size": 128, "num_hidden_layers": 2, "intermediate_size": 384, "num_attention_heads": 2},
}


def model_config(cfg: TrainConfig, vocab_size: int, eos_ids: list[int]) -> dict:
    return {
        "model_type": "llama",
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "intermediate_size": cfg.intermediate_size,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "max_position_embeddings": 2048,
        "eos_token_id": eos_ids,
    }


def _encode_corpus(out_dir: Path, cfg: TrainConfig):
    import numpy as np
    from tokenizers import Tokenizer

    docs = list(documents(cfg.documents, seed=cfg.seed))
    train_tokenizer(docs, out_dir, vocab_size=cfg.vocab_size)
    tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    separator = tokenizer.token_to_id("<|endoftext|>")
    assert separator is not None, "the trained tokenizer has <|endoftext|>"
    ids: list[int] = []
    for encoding in tokenizer.encode_batch(docs):
        ids.extend(encoding.ids)
        ids.append(separator)
    # The chat turn ends with <|im_end|>; <|endoftext|> ends a document, so both stop generation.
    eos_ids = [tokenizer.token_to_id(EOS_TOKEN), separator]
    # BPE stops merging early on a small corpus: size the embedding to the real vocab (x64).
    vocab_size = -(-tokenizer.get_vocab_size() // 64) * 64
    return np.array(ids, dtype=np.int32), vocab_size, eos_ids


def _lr_schedule(cfg: TrainConfig):
    import mlx.optimizers as optim

    warmup = optim.linear_schedule(cfg.learning_rate / cfg.warmup_steps, cfg.learning_rate, cfg.warmup_steps)
    decay = optim.cosine_decay(cfg.learning_rate, cfg.steps - cfg.warmup_steps, cfg.learning_rate * 0.1)
    return optim.join_schedules([warmup, decay], [cfg.warmup_steps])


def train(out_dir: Path, cfg: TrainConfig, log=print) -> dict:
    """Build tokenizer and weights into `out_dir`; return the training summary."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    mx.random.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tokens, vocab_size, eos_ids = _encode_corpus(out_dir, cfg)
    split = int(len(tokens) * 0.97)
    train_ids, val_ids = tokens[:split], tokens[split:]
    config = model_config(cfg, vocab_size, eos_ids)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    optimizer = optim.AdamW(learning_rate=_lr_schedule(cfg), weight_decay=0.01)

    def loss_fn(model, x, y):
        return nn.losses.cross_entropy(model(x), y, reduction="mean")

    step_fn = nn.value_and_grad(model, loss_fn)

    def batch(source):
        starts = rng.integers(0, len(source) - cfg.seq_len - 1, cfg.batch_size)
        window = np.stack([source[s : s + cfg.seq_len + 1] for s in starts])
        return mx.array(window[:, :-1]), mx.array(window[:, 1:])

    started, step, loss = time.perf_counter(), 0, float("nan")
    while step < cfg.steps and time.perf_counter() - started < cfg.time_budget_s:
        x, y = batch(train_ids)
        loss_value, grads = step_fn(model, x, y)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state, loss_value)
        loss, step = loss_value.item(), step + 1
        if step % 25 == 0:
            log(f"step {step} loss {loss:.3f} {time.perf_counter() - started:.0f}s")

    val_losses = [loss_fn(model, *batch(val_ids)).item() for _ in range(8)]
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    summary = {
        "train_config": asdict(cfg),
        "steps_done": step,
        "train_loss": round(loss, 4),
        "val_loss": round(sum(val_losses) / len(val_losses), 4),
        "tokens_seen": step * cfg.batch_size * cfg.seq_len,
        "parameters": sum(v.size for v in weights.values()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2))
    return summary
