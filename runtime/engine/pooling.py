"""Models that pool instead of generate: embedders and rerankers, read and run on the engine thread.

Which kind a model directory is comes from its files (`detect_task`), the way sentence-transformers
and the model cards describe them:
- an encoder family mlx-embeddings knows (BERT, ModernBERT, XLM-RoBERTa) embeds through
  mlx-embeddings; one whose architecture is `...ForSequenceClassification` is a cross-encoder
  reranker (mlx-embeddings runs the classifier head);
- a decoder mlx-lm knows embeds when the directory has a sentence-transformers Pooling module
  (Qwen3-Embedding: last-token pooling over the final norm's output);
- a decoder is a reranker in the Qwen3-Reranker style (the "yes"/"no" logits of a fixed prompt)
  when its name says reranker, as those models are published without any other mark;
- a load may name the task itself (`task`), which wins.

`Pooler.embed` and `Pooler.score` take token ids already built by the request (requests/pooling.py
owns the text side: prompts, special tokens, truncation) and return NumPy float32 rows, one per input.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import mlx.core as mx

from runtime import faults

Task = Literal["generate", "embed", "rerank"]
Family = Literal["encoder", "decoder", "cross-encoder"]
Pooling = Literal["mean", "cls", "last", "max"]

# model_type values mlx-embeddings loads as text encoders (its models/ folder, hyphen or underscore).
ENCODER_TYPES = frozenset({"bert", "modernbert", "xlm_roberta", "xlm-roberta"})
# Poolings each family can do: a causal decoder's first token has seen only itself, so no cls.
POOLINGS: dict[Family, tuple[Pooling, ...]] = {"encoder": ("mean", "cls", "max"), "decoder": ("last", "mean")}
ST_POOLING_KEYS: dict[str, Pooling] = {
    "pooling_mode_lasttoken": "last",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
}


@dataclass(frozen=True)
class Pooler:
    """What a pooling model is and how to run it; `model` is the mlx-lm or mlx-embeddings module."""

    task: Literal["embed", "rerank"]
    family: Family
    model: Any
    max_length: int  # tokens per input, special tokens included
    dimensions: int = 0  # embedders: the vector's length
    pooling: Pooling = "mean"  # embedders: the model's own pooling
    prompts: dict[str, str] = field(default_factory=dict)  # sentence-transformers prompts (query, document)
    yes_no: tuple[int, int] | None = None  # decoder rerankers: the "yes" and "no" token ids
    fingerprint: str = ""  # the weights' identity: embeddings cached under it survive a reload

    @property
    def poolings(self) -> tuple[Pooling, ...]:
        return POOLINGS.get(self.family, ())

    def embed(self, batch: list[list[int]], pooling: Pooling) -> Any:
        """One forward pass over `batch` (right-padded here): the pooled rows, float32 (B, D)."""
        ids, lengths = _padded(batch)
        # A decoder's hidden states are the final norm's output: mlx-lm's inner transformer.
        hidden = _encoder_hidden(self.model, ids, lengths) if self.family == "encoder" else self.model.model(ids)
        pooled = hidden if hidden.ndim == 2 else _pool(hidden, lengths, pooling)
        return _rows(pooled)

    def score(self, batch: list[list[int]]) -> Any:
        """One forward pass over query-document inputs: a relevance in [0, 1] per input (B,)."""
        ids, lengths = _padded(batch)
        if self.family == "cross-encoder":
            out = self.model(ids, attention_mask=_mask(lengths, ids.shape[1]))
            probs = out.pooler_output  # mlx-embeddings applies sigmoid (one label) or softmax
            relevance = probs[:, -1] if probs.ndim == 2 else probs
            if getattr(self.model, "is_regression", False):  # a raw logit: sentence-transformers' sigmoid
                relevance = mx.sigmoid(relevance)
        else:
            assert self.yes_no is not None
            last = _last(self.model.model(ids), lengths)
            logits = _output_logits(self.model, last)
            yes, no = self.yes_no
            relevance = mx.sigmoid(logits[:, yes] - logits[:, no])  # = softmax([no, yes])[1]
        return _rows(relevance)


def detect_task(path: Path, config: dict[str, Any], model_id: str, asked: Task | None = None) -> Task:
    """What the model directory serves (module docstring); `asked` (the load's `task`) wins."""
    family = family_of(config)
    if asked is not None:
        if asked == "generate" and family != "decoder":
            raise faults.InvalidInput.at(
                "/task", f"{model_id} is an encoder ({config.get('model_type')}): it cannot generate"
            )
        if asked == "embed" and family == "cross-encoder":
            raise faults.InvalidInput.at("/task", f"{model_id} is a cross-encoder: it can only rerank")
        if asked == "rerank" and family == "encoder":
            raise faults.InvalidInput.at("/task", f"{model_id} is an encoder without a classifier: it can only embed")
        return asked
    if family == "cross-encoder":
        return "rerank"
    if family == "encoder" or _st_pooling(path) is not None:
        return "embed"
    names = f"{model_id} {path.name}".lower()
    return "rerank" if "rerank" in names else "generate"


def family_of(config: dict[str, Any]) -> Family:
    architectures = config.get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "cross-encoder"
    return "encoder" if config.get("model_type") in ENCODER_TYPES else "decoder"


def load_encoder(path: Path) -> tuple[Any, Any]:
    """An encoder or cross-encoder through mlx-embeddings: (model, its Hugging Face tokenizer)."""
    from mlx_embeddings.utils import load

    model, tokenizer = load(str(path))
    return model, getattr(tokenizer, "_tokenizer", tokenizer)


def make_pooler(
    task: Literal["embed", "rerank"], path: Path, config: dict[str, Any], model: Any, tokenizer: Any, model_id: str
) -> Pooler:
    family = family_of(config)
    text_config = config.get("text_config", config)
    max_length = _max_length(path, text_config)
    fingerprint = weights_fingerprint(path)
    if task == "rerank":
        yes_no = None if family == "cross-encoder" else _yes_no(tokenizer, model_id)
        return Pooler("rerank", family, model, max_length, yes_no=yes_no, fingerprint=fingerprint)
    pooling = _st_pooling(path) or ("mean" if family == "encoder" else "last")
    return Pooler(
        "embed",
        family,
        model,
        max_length,
        dimensions=int(text_config.get("hidden_size", 0)),
        pooling=pooling,
        prompts=_st_prompts(path),
        fingerprint=fingerprint,
    )


def warm_up(pooler: Pooler, token: int) -> None:
    """One short input through the model, so the first request meets no first-call costs."""
    if pooler.task == "embed":
        pooler.embed([[token, token]], pooler.pooling)
    else:
        pooler.score([[token, token]])


def weights_fingerprint(path: Path) -> str:
    """The config and the weight files' names, sizes and times: the same files give the same key."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.rglob("*.safetensors")):
        stat = weights.stat()
        digest.update(f"{weights.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


# --- the forward pass ---------------------------------------------------------------------------
def _padded(batch: list[list[int]]) -> tuple[mx.array, mx.array]:
    """Right padding with token 0: a causal decoder's real tokens never see it, and an encoder's
    attention mask hides it."""
    width = max(len(ids) for ids in batch)
    rows = [ids + [0] * (width - len(ids)) for ids in batch]
    return mx.array(rows, dtype=mx.int32), mx.array([len(ids) for ids in batch], dtype=mx.int32)


def _mask(lengths: mx.array, width: int) -> mx.array:
    return (mx.arange(width)[None, :] < lengths[:, None]).astype(mx.float32)


def _encoder_hidden(model: Any, ids: mx.array, lengths: mx.array) -> mx.array:
    out = model(ids, attention_mask=_mask(lengths, ids.shape[1]))
    hidden: mx.array = out.last_hidden_state  # ModernBERT's own head may pool already: (B, H)
    return hidden


def _pool(hidden: mx.array, lengths: mx.array, pooling: Pooling) -> mx.array:
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        return _last(hidden, lengths)
    mask = _mask(lengths, hidden.shape[1])[..., None]
    if pooling == "max":
        return mx.max(hidden.astype(mx.float32) + (mask - 1) * 1e9, axis=1)
    return mx.sum(hidden.astype(mx.float32) * mask, axis=1) / mx.maximum(mx.sum(mask, axis=1), 1e-9)


def _last(hidden: mx.array, lengths: mx.array) -> mx.array:
    return hidden[mx.arange(hidden.shape[0]), lengths - 1]


def _output_logits(model: Any, hidden: mx.array) -> mx.array:
    """The language-model head on a few rows only (a reranker needs two logits of the last token)."""
    if getattr(model, "lm_head", None) is not None:
        logits: mx.array = model.lm_head(hidden)
    else:  # tied embeddings, as mlx-lm's models apply them
        logits = model.model.embed_tokens.as_linear(hidden)
    return logits.astype(mx.float32)


def _rows(values: mx.array) -> Any:
    import numpy as np

    values = values.astype(mx.float32)
    mx.eval(values)
    return np.array(values, copy=False)


# --- what the directory says ---------------------------------------------------------------------
def _st_pooling(path: Path) -> Pooling | None:
    """The sentence-transformers Pooling module's mode, if the directory has one."""
    config = _st_module_config(path, "sentence_transformers.models.Pooling")
    if config is None:
        return None
    for key, pooling in ST_POOLING_KEYS.items():
        if config.get(key):
            return pooling
    return None


def _st_module_config(path: Path, module_type: str) -> dict[str, Any] | None:
    modules = _json(path / "modules.json")
    if not isinstance(modules, list):
        return None
    for module in modules:
        if isinstance(module, dict) and module.get("type") == module_type:
            config = _json(path / str(module.get("path", "")) / "config.json")
            return config if isinstance(config, dict) else {}
    return None


def _st_prompts(path: Path) -> dict[str, str]:
    config = _json(path / "config_sentence_transformers.json")
    prompts = config.get("prompts") if isinstance(config, dict) else None
    if not isinstance(prompts, dict):
        return {}
    return {str(k): v for k, v in prompts.items() if isinstance(v, str)}


def _max_length(path: Path, text_config: dict[str, Any]) -> int:
    positions = int(text_config.get("max_position_embeddings") or 4096)
    st = _json(path / "sentence_bert_config.json")
    seq = st.get("max_seq_length") if isinstance(st, dict) else None
    return min(positions, int(seq)) if isinstance(seq, int) and seq > 0 else positions


def _yes_no(tokenizer: Any, name: str) -> tuple[int, int]:
    ids = []
    for word in ("yes", "no"):
        token = tokenizer.convert_tokens_to_ids(word)
        if not isinstance(token, int) or token == getattr(tokenizer, "unk_token_id", None):
            raise faults.ModelLoadFailed(f"{name}: a reranker's vocabulary needs '{word}' as one token", model_id=name)
        ids.append(token)
    return ids[0], ids[1]


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
