"""tokenize, batch_tokenize, detokenize: answered on the reader thread, never behind the engine."""

from __future__ import annotations

from typing import Any

from runtime import faults
from runtime.methods.context import Handler, Services
from runtime.protocol.batches import run_entries
from runtime.protocol.dispatch import CallContext
from runtime.requests import chat, prompts, tools
from runtime.requests.prompts import check_token_ids


def tokenize(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    loaded = services.store.require(params["model_id"])
    tokenizer = loaded.tokenizer
    try:
        tokens = tokenizer.encode(params["text"], add_special_tokens=params.get("add_special_tokens", True))
        strings = tokenizer.convert_ids_to_tokens(tokens)
    except Exception as exc:
        raise faults.TokenizerFailed(
            f"tokenize failed: {type(exc).__name__}: {exc}", model_id=loaded.model_id
        ) from None
    return {"tokens": tokens, "token_strings": strings}


def batch_tokenize(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    return {"results": run_entries("tokenize", params["requests"], lambda entry: tokenize(services, entry, ctx))}


def detokenize(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    loaded = services.store.require(params["model_id"])
    tokens = params["tokens"]
    check_token_ids(loaded, tokens, "/tokens")
    text = loaded.tokenizer.decode(tokens, skip_special_tokens=params.get("skip_special_tokens", False))
    return {"text": text}


def count_tokens(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """The prompt's token count as generate would build it (Anthropic's count_tokens): messages in
    either shape with tools and template options, or a prompt."""
    loaded = services.store.require(params["model_id"])
    if "messages" in params:
        request = chat.read_chat(params)
        tools.check_schemas(request, loaded.model_id)
        if loaded.kind == "vision":
            messages, _ = prompts.image_sources(request.messages)
            text = prompts.render_chat(loaded, messages, request)
            tokens = loaded.tokenizer.encode(text, add_special_tokens=False)
        else:
            tokens = prompts.chat_tokens(loaded, request)
    else:
        tokens = prompts.encode_like_mlx_lm(loaded.tokenizer, params["prompt"])
    return {"model_id": loaded.model_id, "input_tokens": len(tokens)}


METHODS: dict[str, Handler] = {
    "count_tokens": count_tokens,
    "tokenize": tokenize,
    "batch_tokenize": batch_tokenize,
    "detokenize": detokenize,
}
