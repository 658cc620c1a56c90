"""From a `generate` request's params to the engine's GenerationRequest (reader or preparer thread).

Every prompt, text or vision, passes the same limits (`check_prompt_length`); every token id the
host gives is checked against the vocabulary in one place (`check_token_ids`).
"""

from __future__ import annotations

from typing import Any

from runtime import faultinject, faults
from runtime.config import Limits
from runtime.engine import vlm
from runtime.engine.models import LoadedModel
from runtime.engine.request import ChatOutput, DraftChoice, GenerationRequest, SamplingParams
from runtime.requests import chat as chats
from runtime.requests import guidance, images, prompts, tools

SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
)


def build_request(
    limits: Limits, loaded: LoadedModel, params: dict[str, Any], draft: DraftChoice | None
) -> GenerationRequest:
    if loaded.task != "generate":
        raise faults.InvalidInput.at(
            "/model_id", f"{loaded.model_id} is an {loaded.kind} model (task {loaded.task}): it does not generate"
        )
    chat = _read_chat(params, loaded)
    max_tokens = params.get("max_tokens", limits.default_max_tokens)
    if max_tokens > limits.max_tokens:
        raise faults.InvalidInput.at("/max_tokens", f"must be <= {limits.max_tokens} (the runtime's limit)")
    spec = guidance.spec_of(params, loaded.model_id, limits.max_guidance_bytes, max_tokens)
    prompt_text, pictures = None, ()
    if loaded.kind == "vision":
        prompt_text, pictures, tokens = _vision_inputs(limits, loaded, params, chat)
    elif params.get("image") is not None:
        raise faults.InvalidInput.at("/image", f"model {loaded.model_id} is not a vision model: it takes no images")
    else:
        tokens = prompts.prompt_tokens(loaded, params, limits.max_prompt_tokens, chat)
    chat_output = _chat_output(loaded, chat, tokens, max_tokens)
    if chat is not None and chat_output is not None:
        tool_spec = tools.enforced_spec(loaded, chat, chat_output.starts_in_reasoning)
        if tool_spec is not None and spec is not None:
            raise faults.InvalidInput.at(
                "/tool_choice", f"tool_choice {chat.tool_choice.mode} cannot be combined with guidance"
            )
        if spec is not None and tool_spec is None and chat.reasoning_budget is not None:
            # The end of thinking the budget forces is no part of a JSON (or other) grammar.
            raise faults.InvalidInput.at("/reasoning_budget", "a thinking budget cannot be combined with guidance")
        spec = spec or tool_spec
    sampling = {k: params[k] for k in SAMPLING_FIELDS if k in params}
    return GenerationRequest(
        prompt_tokens=tokens,
        max_tokens=max_tokens,
        sampling=SamplingParams(**sampling, logit_bias=_logit_bias(loaded, params.get("logit_bias"), chat)),
        stop_sequences=tuple(params.get("stop_sequences", ())),
        stop_token_ids=frozenset(params.get("stop_token_ids", ())),
        logprobs=params.get("logprobs", False),
        top_logprobs=params.get("top_logprobs", 0),
        guide=guidance.guide_for(loaded, spec) if spec else None,
        draft=draft,
        chat=chat_output,
        images=pictures,
        prompt_text=prompt_text,
        session_id=params.get("session_id"),
        use_prompt_cache=params.get("prompt_cache", True) and draft is None,
        inject_fault_at=_injected_fault(params),
    )


CHAT_ONLY_FIELDS = ("tools", "tool_choice", "system", "thinking", "chat_template_kwargs", "reasoning_budget", "format")


def _read_chat(params: dict[str, Any], loaded: LoadedModel) -> chats.ChatInput | None:
    """The request's chat input (messages, tools, choice, thinking), its tool schemas checked."""
    if not chats.is_chat(params):
        given = next((name for name in CHAT_ONLY_FIELDS if params.get(name) is not None), None)
        if given is not None:
            raise faults.InvalidInput.at(f"/{given}", "applies to chat requests: send messages")
        return None
    chat = chats.read_chat(params)
    tools.check_schemas(chat, loaded.model_id)
    return chat


def _chat_output(
    loaded: LoadedModel, chat: chats.ChatInput | None, tokens: list[int], max_tokens: int
) -> ChatOutput | None:
    """How the output of a chat request is read: thinking apart, tool calls parsed. Under a required
    or named tool choice, thinking gets a budget even when the host set none (a quarter of
    max_tokens), so that the call the grammar demands always comes."""
    if chat is None:
        return None
    tokenizer = loaded.tokenizer
    inside = False
    if getattr(tokenizer, "has_thinking", False):
        inside = tokenizer.rfind_think_start(tokens) > tokenizer.rfind_think_end(tokens)
    parse = bool(chat.tools) and chat.tool_choice.mode != "none"
    budget = chat.reasoning_budget
    if budget is None and chat.tool_choice.mode in ("required", "named"):
        budget = max_tokens // 4
    return ChatOutput(parse, chat.tools, inside, budget)


def _vision_inputs(
    limits: Limits, loaded: LoadedModel, params: dict[str, Any], chat: chats.ChatInput | None
) -> tuple[str, tuple[Any, ...], list[int]]:
    """The prompt as text (chat template applied to messages) and its decoded images, in order."""
    token = getattr(loaded.processor, "image_token", "<image>")
    if chat is not None:
        messages, sources = prompts.image_sources(chat.messages)
        text, where = prompts.render_chat(loaded, messages, chat), "/messages"
    elif "prompt" in params:
        image = params.get("image")
        sources = [] if image is None else [(image, "/image")]
        text, where = params["prompt"], "/image"
        templated = (
            None if params.get("raw_prompt") else vlm.vision_prompt(loaded.model, loaded.processor, text, len(sources))
        )
        if templated is not None and token not in text:
            text = templated  # as mlx-vlm's CLI renders a prompt: the chat template, the images first
        elif sources and token not in text:
            text = f"{token}\n{text}"  # raw: as the peer does, the image first
    else:
        raise faults.InvalidInput.at("/prompt_tokens", "vision models take prompt or messages")
    policy = images.policy_from(limits)
    if len(sources) > policy.max_images:
        raise faults.InvalidInput.at(where, f"{len(sources)} images; the limit is {policy.max_images}")
    if text.count(token) != len(sources):
        raise faults.InvalidInput.at(
            where, f"the prompt has {text.count(token)} {token} tokens for {len(sources)} images"
        )
    tokens = loaded.tokenizer.encode(text, add_special_tokens=False)
    text_field = "/messages" if "messages" in params else "/prompt"
    prompts.check_prompt_length(loaded, tokens, limits.max_prompt_tokens, text_field)  # before any image is decoded
    pictures = tuple(images.load_image(source, path, policy) for source, path in sources)
    return text, pictures, tokens


def _logit_bias(
    loaded: LoadedModel, bias: dict[str, float] | None, chat: chats.ChatInput | None
) -> dict[int, float] | None:
    """The host's logit bias; under tool_choice none, a single-token tool-call start is never drawn."""
    out: dict[int, float] = {}
    if bias:
        ids = [int(key) for key in bias]
        prompts.check_token_ids(loaded, ids, [f"/logit_bias/{key}" for key in bias])
        out = {int(k): float(v) for k, v in bias.items()}
    if chat is not None and chat.tools and chat.tool_choice.mode == "none":
        start: tuple[int, ...] = tuple(getattr(loaded.tokenizer, "tool_call_start_tokens", None) or ())
        if len(start) == 1:
            out[start[0]] = float("-inf")
    return out or None


def _injected_fault(params: dict[str, Any]) -> int | None:
    """Test-only: with RUNTIME_INJECT_FAULTS=stream_fault, a prompt holding the marker faults at step 3."""
    if faultinject.armed("stream_fault") and faultinject.STREAM_FAULT_MARKER in str(params.get("prompt", "")):
        return 3
    return None
