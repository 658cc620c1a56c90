"""Turn a request's prompt, messages or prompt_tokens into token ids (reader thread, no MLX)."""

from __future__ import annotations

from typing import Any

from runtime import faults
from runtime.engine.models import LoadedModel

PROMPT_FIELDS = ("prompt", "messages", "prompt_tokens")


def prompt_tokens(loaded: LoadedModel, params: dict[str, Any], limit: int) -> list[int]:
    given = [name for name in PROMPT_FIELDS if name in params]
    if len(given) != 1:
        raise faults.InvalidInput.at("", "exactly one of prompt, messages or prompt_tokens is required")
    if "prompt_tokens" in params:
        tokens = list(params["prompt_tokens"])
        bad = next((i for i, t in enumerate(tokens) if t >= loaded.vocab_size), None)
        if bad is not None:
            raise faults.InvalidInput.at(f"/prompt_tokens/{bad}", f"token id must be < {loaded.vocab_size}")
    elif "messages" in params:
        tokens = _chat_tokens(loaded, params["messages"])
    else:
        tokens = encode_like_mlx_lm(loaded.tokenizer, params["prompt"])
    if not tokens:
        raise faults.InvalidInput.at(f"/{given[0]}", "the prompt has no tokens")
    if len(tokens) > limit:
        raise faults.InvalidInput.at(
            f"/{given[0]}", f"the prompt has {len(tokens)} tokens; the runtime's limit is {limit}"
        )
    if len(tokens) >= loaded.context_length:
        raise faults.InvalidInput.at(
            f"/{given[0]}", f"the prompt has {len(tokens)} tokens; the model's context is {loaded.context_length}"
        )
    return tokens


def encode_like_mlx_lm(tokenizer: Any, prompt: str) -> list[int]:
    """Encode a raw prompt exactly as `mlx_lm.stream_generate` does (BOS added unless present)."""
    bos = tokenizer.bos_token
    return tokenizer.encode(prompt, add_special_tokens=bos is None or not prompt.startswith(bos))


def _chat_tokens(loaded: LoadedModel, messages: list[dict[str, Any]]) -> list[int]:
    tokenizer = loaded.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise faults.InvalidInput.at(
            "/messages", f"model {loaded.model_id} has no chat template; send a prompt instead"
        )
    try:
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:
        raise faults.TokenizerFailed(
            f"chat template failed: {type(exc).__name__}: {exc}", model_id=loaded.model_id
        ) from None
    return tokenizer.encode(rendered, add_special_tokens=False)
