"""Turn a request's prompt, messages or prompt_tokens into token ids (reader thread, no MLX)."""

from __future__ import annotations

from typing import Any

from runtime import faults
from runtime.engine.models import LoadedModel
from runtime.requests.chat import ChatInput

PROMPT_FIELDS = ("prompt", "messages", "prompt_tokens")


def prompt_tokens(loaded: LoadedModel, params: dict[str, Any], limit: int, chat: ChatInput | None) -> list[int]:
    """The prompt's token ids; `chat` is the request's messages read by `requests.chat`."""
    given = [name for name in PROMPT_FIELDS if name in params]
    if len(given) != 1:
        raise faults.InvalidInput.at("", "exactly one of prompt, messages or prompt_tokens is required")
    if chat is not None:
        tokens = chat_tokens(loaded, chat)
    elif "prompt_tokens" in params:
        tokens = list(params["prompt_tokens"])
        check_token_ids(loaded, tokens, "/prompt_tokens")
    else:
        tokens = encode_like_mlx_lm(loaded.tokenizer, params["prompt"])
    check_prompt_length(loaded, tokens, limit, f"/{given[0]}")
    return tokens


def chat_tokens(loaded: LoadedModel, chat: ChatInput) -> list[int]:
    """A text model's chat prompt: the template applied to the messages and tools, then encoded."""
    rendered = render_chat(loaded, text_only_messages(loaded, chat.messages), chat)
    tokens: list[int] = loaded.tokenizer.encode(rendered, add_special_tokens=False)
    return tokens


def check_prompt_length(loaded: LoadedModel, tokens: list[int], limit: int, where: str) -> None:
    """The one rule for every prompt, text or vision: not empty, within the runtime's limit and the context."""
    if not tokens:
        raise faults.InvalidInput.at(where, "the prompt has no tokens")
    if len(tokens) > limit:
        raise faults.InvalidInput.at(where, f"the prompt has {len(tokens)} tokens; the runtime's limit is {limit}")
    if len(tokens) >= loaded.context_length:
        raise faults.InvalidInput.at(
            where, f"the prompt has {len(tokens)} tokens; the model's context is {loaded.context_length}"
        )


def check_token_ids(loaded: LoadedModel, tokens: list[int], where: str | list[str]) -> None:
    """Every id the host gives must name a token of the model; `where` is a list path or one path per id."""
    bad = next((i for i, t in enumerate(tokens) if t >= loaded.vocab_size), None)
    if bad is not None:
        path = where[bad] if isinstance(where, list) else f"{where}/{bad}"
        raise faults.InvalidInput.at(path, f"token id must be < {loaded.vocab_size}")


def encode_like_mlx_lm(tokenizer: Any, prompt: str) -> list[int]:
    """Encode a raw prompt exactly as `mlx_lm.stream_generate` does (BOS added unless present)."""
    bos = tokenizer.bos_token
    return tokenizer.encode(prompt, add_special_tokens=bos is None or not prompt.startswith(bos))


def _require_chat_template(loaded: LoadedModel) -> None:
    if not getattr(loaded.tokenizer, "chat_template", None):
        raise faults.InvalidInput.at(
            "/messages", f"model {loaded.model_id} has no chat template; send a prompt instead"
        )


def render_chat(loaded: LoadedModel, messages: list[dict[str, Any]], chat: ChatInput) -> str:
    """The chat template applied to messages and tools, as text (with the generation prompt);
    chat_template_kwargs (enable_thinking, ...) pass through to the template."""
    _require_chat_template(loaded)
    if chat.tools and not getattr(loaded.tokenizer, "has_tool_calling", False):
        raise faults.InvalidInput.at(
            "/tools",
            f"model {loaded.model_id} has no tool-call format mlx-lm can parse (its chat template names none)",
        )
    # Anthropic's prefill: a last assistant message is continued, not answered.
    prefill = chat.format == "anthropic" and messages[-1].get("role") == "assistant" and bool(messages[-1]["content"])
    try:
        return loaded.tokenizer.apply_chat_template(
            messages,
            tools=chat.tools,
            add_generation_prompt=not prefill,
            continue_final_message=prefill,
            tokenize=False,
            **chat.template_kwargs,
        )
    except Exception as exc:
        raise faults.TokenizerFailed(
            f"chat template failed: {type(exc).__name__}: {exc}", model_id=loaded.model_id
        ) from None


# --- vision models ---------------------------------------------------------------------------------
IMAGE_PART_TYPES = ("image_url", "image", "input_image")


def has_images(params: dict[str, Any]) -> bool:
    """Whether the request carries images (they are loaded off the reader thread)."""
    if params.get("image") is not None:
        return True
    messages = params.get("messages")
    return isinstance(messages, list) and any(
        isinstance(m, dict)
        and isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") in IMAGE_PART_TYPES for p in m["content"])
        for m in messages
    )


def image_sources(chat_messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
    """Messages with image parts reduced to {"type": "image"} (what chat templates expect), and
    every image source in prompt order with its field path."""
    sources: list[tuple[Any, str]] = []
    messages = []
    for i, message in enumerate(chat_messages):
        content = message.get("content")
        if not isinstance(content, list):
            messages.append(message)
            continue
        parts = []
        for j, part in enumerate(content):
            where = f"/messages/{i}/content/{j}"
            kind = part.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": part.get("text", "")})
            elif kind == "image_url":
                url = part.get("image_url")
                sources.append((url.get("url") if isinstance(url, dict) else url, f"{where}/image_url"))
                parts.append({"type": "image"})
            else:  # {"type": "image"|"input_image", "data"|"path"|"url": ...}
                sources.append(({k: v for k, v in part.items() if k in ("data", "path", "url")}, where))
                parts.append({"type": "image"})
        messages.append({**message, "content": parts})
    return messages, sources


def text_only_messages(loaded: LoadedModel, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For a text model: list content joins its text parts; an image part is an error."""
    flat = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if part.get("type") != "text":
                    raise faults.InvalidInput.at(
                        f"/messages/{i}/content/{j}",
                        f"model {loaded.model_id} is not a vision model: it takes no images",
                    )
            content = "".join(part.get("text", "") for part in content)
        flat.append({**message, "content": content})
    return flat
