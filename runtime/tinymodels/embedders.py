"""Shared pieces of the tiny embedders and reranker: tokenizers, batches, schedules, checks, file layout.

`embed_train` builds the encoder (BERT, mean pooling) and decoder (Qwen3, last-token pooling)
embedders, `rerank_train` the Qwen3-Reranker-style reranker; both take their corpus from `pairs`.
MLX is imported inside the functions that need it, as in the rest of `runtime.tinymodels`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from runtime.tinymodels import pairs
from runtime.tinymodels.rerank_format import DEFAULT_INSTRUCTION, NO_TOKEN, YES_TOKEN, format_pair
from runtime.tinymodels.tokenizer import EOS_TOKEN, train_tokenizer

if TYPE_CHECKING:
    import mlx.core as mx
    import numpy as np
    from tokenizers import Tokenizer

WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Every character gets a word-initial and a "##" continuation token, so an unseen word always splits
# into known pieces (at worst single letters) instead of becoming [UNK].
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()[]{}-_/\\&%$#@*+=<>|~^`"
ENDOFTEXT = "<|endoftext|>"
# Qwen3-Embedding's query prompt: the instruction, a newline and "Query:" directly before the text.
QUERY_PROMPT = "Instruct: {instruction}\nQuery:"

Log = Callable[[str], None]


def train_wordpiece(texts: Iterable[str], out_dir: Path, vocab_size: int) -> Tokenizer:
    """A lowercasing BERT WordPiece tokenizer: [PAD]=0, [CLS] ... [SEP], every character covered."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    def fresh(model: Any) -> Tokenizer:
        tokenizer = Tokenizer(model)
        # strip_accents=None follows `lowercase`: café -> cafe, as uncased BERT does.
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        return tokenizer

    tokenizer = fresh(models.WordPiece(unk_token="[UNK]"))
    # The trainer gives "##x" pieces ids in hash-map order, and merge ties are broken by id, so the
    # vocabulary changed from run to run. Passing them in as (temporary) special tokens fixes their ids.
    continuations = [f"##{c}" for c in ALPHABET]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=WORDPIECE_SPECIALS + continuations,
        initial_alphabet=list(ALPHABET),
        limit_alphabet=len(ALPHABET),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    vocab = tokenizer.get_vocab()
    missing = [c for c in ALPHABET if c not in vocab]
    vocab = {**vocab, **{piece: len(vocab) + i for i, piece in enumerate(missing)}}
    # A fresh model from the vocabulary: only the five real special tokens stay special.
    tokenizer = fresh(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.add_special_tokens(WORDPIECE_SPECIALS)
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    assert [vocab[t] for t in WORDPIECE_SPECIALS] == [0, 1, 2, 3, 4], "special tokens come first"
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    _save_wordpiece(tokenizer, out_dir)
    return tokenizer


def _save_wordpiece(tokenizer: Tokenizer, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    # vocab.txt lets tools that rebuild a BERT tokenizer from the vocabulary (not tokenizer.json) agree.
    (out_dir / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")
    names = ["pad_token", "unk_token", "cls_token", "sep_token", "mask_token"]
    specials = dict(zip(names, WORDPIECE_SPECIALS, strict=True))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 512,
        "do_lower_case": True,
        "padding_side": "right",
        "truncation_side": "right",
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        **specials,
    }
    write_json(out_dir / "tokenizer_config.json", config)
    write_json(out_dir / "special_tokens_map.json", specials)


def train_bpe(texts: Iterable[str], out_dir: Path, vocab_size: int, append_eos: bool = False) -> Tokenizer:
    """The tiny-chat style byte-level BPE (same special tokens and template), checked for yes/no.

    `append_eos` adds a post-processor that ends every encoding with <|endoftext|>, as Qwen3-Embedding's
    tokenizer does, so `tokenizer(text)` gives the sequence whose last state is the embedding.
    """
    from tokenizers import Tokenizer, processors

    # "yes" and "no" at the start of a line (after the reranker's SUFFIX) make them single tokens.
    train_tokenizer(_with_answers(texts), out_dir, vocab_size=vocab_size)
    tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    for word in (YES_TOKEN, NO_TOKEN):
        ids = tokenizer.encode(word, add_special_tokens=False).ids
        if len(ids) != 1 or tokenizer.token_to_id(word) is None:
            raise RuntimeError(f"{word!r} is not a single token in the trained BPE: {ids}")
    if append_eos:
        eos_id = tokenizer.token_to_id(ENDOFTEXT)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A {ENDOFTEXT}", pair=f"$A {ENDOFTEXT} $B:1 {ENDOFTEXT}:1", special_tokens=[(ENDOFTEXT, eos_id)]
        )
        tokenizer.save(str(out_dir / "tokenizer.json"))
        _check_marker_flags(out_dir / "tokenizer.json")
        tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    config = json.loads((out_dir / "tokenizer_config.json").read_text())
    config.update({"model_max_length": 2048, "padding_side": "right", "pad_token": ENDOFTEXT, "eos_token": EOS_TOKEN})
    write_json(out_dir / "tokenizer_config.json", config)
    write_json(out_dir / "special_tokens_map.json", {"eos_token": EOS_TOKEN, "pad_token": ENDOFTEXT})
    return tokenizer


def _check_marker_flags(path: Path) -> None:
    """Saving again must keep tiny-chat's flags: <think> a plain single token, <|endoftext|> special."""
    content = json.loads(path.read_text(encoding="utf-8"))
    flags = {t["content"]: t["special"] for t in content["added_tokens"]}
    assert flags.get("<think>") is False and flags.get(ENDOFTEXT) is True, flags


def _with_answers(texts: Iterable[str]) -> Iterable[str]:
    """The texts, with a bare "yes" or "no" now and then: the reranker's answers, as whole tokens."""
    for i, text in enumerate(texts):
        yield text
        if i % 8 == 0:
            yield YES_TOKEN if i % 16 == 0 else NO_TOKEN


def bpe_texts(count: int, seed: int) -> Iterable[str]:
    """The corpus sentences plus the two prompt formats the decoders read (reranker, query prompt)."""
    import random

    rng = random.Random(seed + 7)
    for i, text in enumerate(pairs.texts_for_tokenizer(count, seed)):
        yield text
        if i % 6 == 0:
            instruction = rng.choice([DEFAULT_INSTRUCTION, *pairs.INSTRUCTIONS, *pairs.SIMILARITY_INSTRUCTIONS])
            yield format_pair(text, text, instruction)
            yield QUERY_PROMPT.format(instruction=instruction) + text


def eos_ids(tokenizer: Tokenizer) -> list[int]:
    """<|im_end|> ends a turn, <|endoftext|> a text: generation stops at either (as in tiny-chat)."""
    ids = [tokenizer.token_to_id(EOS_TOKEN), tokenizer.token_to_id(ENDOFTEXT)]
    if None in ids:
        raise RuntimeError(f"the tokenizer lacks {EOS_TOKEN} or {ENDOFTEXT}")
    return [i for i in ids if i is not None]


def pad(sequences: Sequence[Sequence[int]], pad_id: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ids (truncated to `max_len`) and their lengths."""
    import numpy as np

    clipped = [list(s[:max_len]) for s in sequences]
    width = max(len(s) for s in clipped)
    ids = np.full((len(clipped), width), pad_id, dtype=np.int32)
    for row, seq in enumerate(clipped):
        ids[row, : len(seq)] = seq
    return ids, np.array([len(s) for s in clipped], dtype=np.int32)


def lr_schedule(learning_rate: float, warmup: int, steps: int) -> Any:
    import mlx.optimizers as optim

    ramp = optim.linear_schedule(learning_rate / warmup, learning_rate, warmup)
    decay = optim.cosine_decay(learning_rate, max(steps - warmup, 1), learning_rate * 0.05)
    return optim.join_schedules([ramp, decay], [warmup])


def info_nce(anchors: mx.array, positives: mx.array, negatives: mx.array, temperature: float) -> mx.array:
    """Symmetric InfoNCE with in-batch negatives; the hard negatives are extra columns for the anchors."""
    import mlx.core as mx
    import mlx.nn as nn

    targets = mx.arange(anchors.shape[0])
    forward = anchors @ mx.concatenate([positives, negatives]).T / temperature
    backward = positives @ anchors.T / temperature
    return (nn.losses.cross_entropy(forward, targets).mean() + nn.losses.cross_entropy(backward, targets).mean()) / 2


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    import numpy as np

    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-9))


Embed = Callable[[list[str]], "np.ndarray"]


def triplet_accuracy(embed: Embed, triplets: Sequence[tuple[str, str, str]]) -> float:
    """Share of triplets with cos(anchor, paraphrase) > cos(anchor, unrelated)."""
    if not triplets:
        return float("nan")
    flat = [text for triplet in triplets for text in triplet]
    vectors = embed(flat)
    wins = 0
    for i in range(len(triplets)):
        anchor, positive, negative = vectors[3 * i], vectors[3 * i + 1], vectors[3 * i + 2]
        wins += cosine(anchor, positive) > cosine(anchor, negative)
    return wins / len(triplets)


Score = Callable[[str, list[str]], Sequence[float]]


def ranking_accuracy(score: Score, rankings: Sequence[tuple[str, str, Sequence[str]]]) -> float:
    """Share of queries whose relevant document (given first) scores above every other one."""
    wins = 0
    for query, relevant, others in rankings:
        scores = list(score(query, [relevant, *others]))
        wins += all(scores[0] > s for s in scores[1:])
    return wins / len(rankings)


def check_rankings() -> list[tuple[str, str, Sequence[str]]]:
    return [(query, relevant, list(others)) for query, relevant, others in pairs.CHECK_RANKINGS]


def held_out(count: int, seed: int, kind: str | None = None) -> list[pairs.Triplet]:
    """Validation triplets from held-out frames; `kind` keeps one family ("paraphrase", "query", "fact")."""
    items = pairs.triplets(count * (3 if kind else 1), seed, split="val")
    if kind:
        items = [t for t in items if t.kind.startswith(kind)]
    return items[:count]


Pooling = Literal["mean", "lasttoken"]


def write_sentence_transformers(
    out_dir: Path, pooling: Pooling, dimension: int, prompts: dict[str, str] | None = None
) -> None:
    """modules.json (Transformer, Pooling, Normalize), the pooling config and the prompts."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    write_json(out_dir / "modules.json", modules)
    modes = ["cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken"]
    chosen = "mean_tokens" if pooling == "mean" else "lasttoken"
    pooling_config: dict[str, Any] = {"word_embedding_dimension": dimension}
    pooling_config.update({f"pooling_mode_{mode}": mode == chosen for mode in modes})
    pooling_config["include_prompt"] = True
    (out_dir / "1_Pooling").mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "1_Pooling" / "config.json", pooling_config)
    st_config: dict[str, Any] = {"__version__": {"sentence_transformers": "3.0.0"}, "similarity_fn_name": "cosine"}
    st_config.update({"prompts": prompts or {}, "default_prompt_name": None})
    write_json(out_dir / "config_sentence_transformers.json", st_config)
    max_length = 512 if pooling == "mean" else 2048
    write_json(out_dir / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})


def write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def save_weights(out_dir: Path, model: Any) -> int:
    """model.safetensors (fp32, MLX names) and the parameter count."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    return sum(v.size for v in weights.values())
