"""Random-weight fixture models for tests: real architectures, real files, untrained weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from runtime.tinymodels.tokenizer import CHAT_TEMPLATE

DEFAULT_TOKENIZER_SOURCE = Path(__file__).resolve().parents[1] / "assets" / "models" / "tiny-chat"


def build_random_model(
    out_dir: Path,
    arch: str = "qwen2",
    seed: int = 0,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    tokenizer_from: Path = DEFAULT_TOKENIZER_SOURCE,
    intermediate_size: int | None = None,
    num_attention_heads: int = 2,
    num_key_value_heads: int = 1,
) -> dict:
    """Write a random `arch` model that shares the embedded model's tokenizer into `out_dir`."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama, ministral3, qwen2

    vocab = json.loads((tokenizer_from / "config.json").read_text())["vocab_size"]
    eos_id = json.loads((tokenizer_from / "config.json").read_text())["eos_token_id"]
    config = {
        "model_type": arch,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "intermediate_size": intermediate_size or hidden_size * 2,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_key_value_heads,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "max_position_embeddings": 1024,
        "eos_token_id": eos_id,
    }
    if arch == "ministral3":  # mlx-lm's pipeline-parallel decoder (model.model.pipeline)
        config["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "llama_4_scaling_beta": 0.1,
            "original_max_position_embeddings": 1024,
        }
        config["layer_types"] = ["full_attention"] * num_hidden_layers
    module = {"llama": llama, "qwen2": qwen2, "ministral3": ministral3}[arch]
    mx.random.seed(seed)
    model = module.Model(module.ModelArgs.from_dict(config))
    weights = dict(tree_flatten(model.parameters()))
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_from / name, out_dir / name)
    assert json.loads((out_dir / "tokenizer_config.json").read_text())["chat_template"] == CHAT_TEMPLATE
    return {"path": str(out_dir), "arch": arch, "parameters": sum(v.size for v in weights.values())}


EMBEDDER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
)


def build_random_bert(
    out_dir: Path,
    like: Path,
    hidden_size: int = 384,
    num_hidden_layers: int = 12,
    seed: int = 0,
) -> dict:
    """A random-weight BERT with the body of the small sentence embedders people run (bge-small,
    MiniLM-L12: hidden 384, 12 layers), with the tokenizer, vocabulary and sentence-transformers
    files of the embedder in `like`. For benchmarks: built, never committed."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_embeddings.models import bert

    base = json.loads((like / "config.json").read_text())
    config = {
        **base,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": max(1, hidden_size // 64),
        "intermediate_size": hidden_size * 4,
    }
    mx.random.seed(seed)
    model = bert.Model(bert.ModelArgs.from_dict(config))
    weights = dict(tree_flatten(model.parameters()))
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    for name in EMBEDDER_FILES:
        if (like / name).exists():
            shutil.copy(like / name, out_dir / name)
    if (like / "1_Pooling").is_dir():
        shutil.copytree(like / "1_Pooling", out_dir / "1_Pooling", dirs_exist_ok=True)
    return {"path": str(out_dir), "parameters": sum(v.size for v in weights.values())}


def build_random_cross_encoder(out_dir: Path, like: Path, hidden_size: int = 64, seed: int = 0) -> dict:
    """A random-weight ModernBERT cross-encoder (`ModernBertForSequenceClassification`, one
    relevance logit) with the tokenizer of the BERT embedder in `like`: the runtime's cross-encoder
    rerank path, which mlx-embeddings runs. For tests of mechanics, not meaning."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_embeddings.models import modernbert

    vocab = json.loads((like / "config.json").read_text())["vocab_size"]
    config = {
        "model_type": "modernbert",
        "architectures": ["ModernBertForSequenceClassification"],
        "vocab_size": vocab,
        "hidden_size": hidden_size,
        "num_hidden_layers": 2,
        "intermediate_size": hidden_size * 2,
        "num_attention_heads": max(1, hidden_size // 32),
        "max_position_embeddings": 512,
        "is_regression": True,  # one raw logit, as ms-marco-style cross-encoders give
        "classifier_pooling": "mean",
    }
    mx.random.seed(seed)
    model = modernbert.Model(modernbert.ModelArgs.from_dict(config))
    weights = dict(tree_flatten(model.parameters()))
    out_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (like / name).exists():
            shutil.copy(like / name, out_dir / name)
    return {"path": str(out_dir), "parameters": sum(v.size for v in weights.values())}
