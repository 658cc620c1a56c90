"""Anthropic's Messages API shapes ↔ the runtime's wire shapes: dicts in, dicts out, no I/O.

Requests: a `/v1/messages` body becomes `generate` params with `format: "anthropic"` (the runtime
reads Anthropic's messages, system, tools, tool_choice and thinking itself: docs/chat.md); a
`/v1/messages/count_tokens` body becomes `count_tokens` params. As in openai_shapes, names are
mapped, fields Anthropic defines but the runtime does not implement are refused, unknown ones too,
and the runtime's JSON Schemas do the validation.

Responses: a whole `generate` result becomes a `Message`; a stream becomes Anthropic's event
sequence (`MessagesStream`): message_start, then for each content block content_block_start,
content_block_delta..., content_block_stop (blocks indexed from 0 in order), then message_delta
(stop_reason, usage) and message_stop. The runtime's token entries carry thinking (`reasoning`),
answer text (`token`) and OpenAI-style tool-call deltas; the stream turns each change of kind into
a new block: thinking → `thinking_delta`, text → `text_delta`, a call → a `tool_use` block whose
arguments stream as `input_json_delta` fragments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runtime.transport.http.errors import check_fields, from_stream_error, invalid, unsupported
from runtime.transport.http.openai_shapes import GENERATE_EXTENSIONS, clean_messages

Json = dict[str, Any]
Event = tuple[str, Json]  # (SSE event name, data)

# Wire names the client spelled otherwise (for errors.from_rpc_error's `names`): none beyond the
# common ones (model_id → model, streaming → stream); Anthropic's names are the runtime's.
PARAM_NAMES: Mapping[str, str] = {}

# Anthropic requires every thinking block to end with a `signature_delta` (its SDK and clients keep
# the signature and send it back with the block next turn). A local model signs nothing and the
# runtime ignores signatures on input, so any fixed value would do; it is a non-empty marker because
# some clients take an empty signature for "none" and drop the thinking block from the next turn.
# It is no valid Anthropic signature: such a block sent on to Anthropic's API is refused there, as
# it should be (it is not Claude's thinking).
THINKING_SIGNATURE = "mlx-rpc-runtime:unsigned"

# Runtime options accepted in an Anthropic body under the runtime's own names (as extra_body).
EXTENSIONS = GENERATE_EXTENSIONS | {
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
    "response_format",
}
_MAPPED = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "output_config",
        "output_format",
    }
)
# Fields Anthropic defines that change nothing here: accepted and dropped.
_IGNORED = frozenset(
    {
        "metadata",
        "service_tier",
        "cache_control",  # the runtime's prompt cache is automatic
        "inference_geo",
        "speed",
        "diagnostics",
        "user_profile_id",
        "workspace_id",
    }
)
_REFUSED: Mapping[str, str] = {
    "container": "is not supported: this server runs no code execution containers",
    "mcp_servers": "is not supported: this server connects to no MCP servers",
    "context_management": "is not supported: the conversation is used as sent",
}
_KNOWN = _MAPPED | _IGNORED | EXTENSIONS
_COUNT_MAPPED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"})
_COUNT_KNOWN = _COUNT_MAPPED | _IGNORED | {"chat_template_kwargs", "keep_alive"}

# The runtime's finish reasons as Anthropic's stop reasons; cancelled and timeout as in
# openai_shapes (cancelled: ended by the client, whole as far as it goes; timeout: cut short by a
# limit the request set, like max_tokens).
STOP_REASONS: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "cancelled": "end_turn",
    "timeout": "max_tokens",
}


# --- requests ------------------------------------------------------------------------------------
def messages_params(body: Mapping[str, Any]) -> Json:
    """A `/v1/messages` body as `generate` params (`streaming` always set: Anthropic's default is a
    whole answer, the runtime's a stream)."""
    check_fields(body, _KNOWN, _REFUSED)
    params = _conversation(body)
    _copy(body, params, ("max_tokens", "stop_sequences", "temperature", "top_p", "top_k", *sorted(EXTENSIONS)))
    response_format = _output_format(body)
    if response_format is not None:
        params["response_format"] = response_format
    params["streaming"] = bool(body.get("stream"))
    return params


def count_tokens_params(body: Mapping[str, Any]) -> Json:
    """A `/v1/messages/count_tokens` body as `count_tokens` params (the same prompt `generate` builds)."""
    check_fields(body, _COUNT_KNOWN, {})
    params = _conversation(body)
    _copy(body, params, ("chat_template_kwargs", "keep_alive"))
    return params


def count_tokens_response(result: Mapping[str, Any]) -> Json:
    return {"input_tokens": result["input_tokens"]}


def _conversation(body: Mapping[str, Any]) -> Json:
    """What generate and count_tokens share: the model, the conversation, tools and thinking."""
    params: Json = {"format": "anthropic"}
    if body.get("model") is not None:
        params["model_id"] = body["model"]  # absent: the server puts its default model
    if "messages" in body:
        params["messages"] = clean_messages(body["messages"])
    _copy(body, params, ("system", "tools", "tool_choice"))
    if body.get("thinking") is not None:
        params["thinking"] = _thinking(body["thinking"])
    return params


def _copy(body: Mapping[str, Any], params: Json, fields: tuple[str, ...]) -> None:
    for field in fields:
        if body.get(field) is not None:
            params[field] = body[field]


def _thinking(thinking: object) -> object:
    """Anthropic's thinking config as the runtime's `{type: enabled | disabled, budget_tokens}`.
    `adaptive` ("the model decides how much to think") is thinking on without a budget, which is
    what a local thinking model does by itself; `display` is dropped (thinking is always shown)."""
    if not isinstance(thinking, dict):
        return thinking
    if thinking.get("type") == "adaptive":
        return {"type": "enabled"}
    return {k: v for k, v in thinking.items() if k != "display"}


def _output_format(body: Mapping[str, Any]) -> Json | None:
    """Anthropic's structured output (`output_config.format`, or the beta's `output_format`) as the
    runtime's OpenAI-style `response_format`. Anthropic guarantees the schema, so it is strict.
    `output_config.effort` is dropped: thinking length is `thinking.budget_tokens`'."""
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise invalid("output_config must be an object", "output_config")
    fmt = (config or {}).get("format") or body.get("output_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise unsupported("output_config.format", "must be {type: json_schema, schema: {...}}")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True}}


# --- usage and stop reasons -------------------------------------------------------------------------
def anthropic_usage(usage: Mapping[str, Any] | None) -> Json:
    """The runtime's usage in Anthropic's terms: `input_tokens` are the prompt tokens that were
    prefilled, `cache_read_input_tokens` those the prompt cache served (Anthropic's total input is
    their sum); nothing is billed as written to a cache."""
    usage = usage or {}
    cached = int(usage.get("cached_tokens", 0))
    return {
        "input_tokens": max(0, int(usage.get("prompt_tokens", 0)) - cached),
        "output_tokens": int(usage.get("completion_tokens", 0)),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens_details": {"thinking_tokens": int(usage.get("reasoning_tokens", 0))},
    }


def stop_reason(outcome: Mapping[str, Any]) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) of a finished stream or whole result. The runtime's "stop" is a
    stop sequence only when the outcome names the one that matched (`stop_sequence`); without it
    the end of the turn and a stop sequence cannot be told apart, and end_turn is the safe answer."""
    reason = str(outcome.get("finish_reason"))
    sequence = outcome.get("stop_sequence")
    if reason == "stop" and isinstance(sequence, str):
        return "stop_sequence", sequence
    return STOP_REASONS.get(reason, "end_turn"), None


def ping() -> Event:
    """Anthropic's keep-alive event."""
    return "ping", {"type": "ping"}


# --- streamed --------------------------------------------------------------------------------------
class MessagesStream:
    """One stream's Anthropic events. `input_tokens` is what message_start reports (the prompt's
    size if the server knows it, else 0); message_delta reports the real figures at the end."""

    def __init__(self, message_id: str, model: str, input_tokens: int) -> None:
        self.message_id, self.model, self.input_tokens = message_id, model, input_tokens
        self._index = -1  # the last block's index
        self._open: str | None = None  # the open block's type: thinking, text or tool_use
        self._open_call: int | None = None  # the open tool_use block's call index
        self._space = ""  # whitespace-only answer text, held until text with something in it follows

    def start(self) -> list[Event]:
        message: Json = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def chunk(self, params: Mapping[str, Any]) -> list[Event]:
        """Within one token: thinking first, then answer text, then call pieces (as openai_shapes).
        The tokens of one notification that extend the same block go out as one delta."""
        events: list[Event] = []
        for entry in params.get("tokens") or ():
            if entry.get("reasoning"):
                events += self._thinking(entry["reasoning"])
            if entry.get("token"):
                events += self._text(entry["token"])
            for delta in entry.get("tool_calls") or ():
                events += self._tool_call(delta)
        return _coalesce(events)

    def end(self, stats: Mapping[str, Any] | None, event: Mapping[str, Any]) -> list[Event]:
        """Close the open block, then message_delta and message_stop. An errored stream raises
        HttpError: the server sends it as an `error` event."""
        if event.get("event") == "error":
            raise from_stream_error(event)
        events = self._close()
        reason, sequence = stop_reason(event)
        usage = anthropic_usage((stats or {}).get("usage"))
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    # --- blocks ---
    def _thinking(self, text: str) -> list[Event]:
        events = [] if self._open == "thinking" else self._start({"type": "thinking", "thinking": "", "signature": ""})
        return [*events, self._delta({"type": "thinking_delta", "thinking": text})]

    def _text(self, text: str) -> list[Event]:
        """Answer text. Whitespace alone (the newlines a model writes between thinking, calls and the
        answer) opens no block: it is held and goes out only in front of text that follows it, so no
        whitespace-only text block appears, as in Anthropic's answers and message_response."""
        if self._open == "text":
            return [self._delta({"type": "text_delta", "text": text})]
        if not (self._space + text).strip():
            self._space += text
            return []
        text, self._space = self._space + text, ""
        return [*self._start({"type": "text", "text": ""}), self._delta({"type": "text_delta", "text": text})]

    def _tool_call(self, delta: Mapping[str, Any]) -> list[Event]:
        """A call's first piece (it has the id) opens a tool_use block; argument pieces of the open
        call stream as input_json_delta. Calls stream one after another, so a piece of any other
        call cannot arrive while its block is open and is dropped rather than misplaced."""
        function = delta.get("function") or {}
        events: list[Event] = []
        if "id" in delta:
            block = {"type": "tool_use", "id": delta["id"], "name": function.get("name", ""), "input": {}}
            events += self._start(block)
            self._open_call = delta.get("index")
        arguments = function.get("arguments")
        if arguments and self._open == "tool_use" and self._open_call == delta.get("index"):
            events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return events

    def _start(self, block: Json) -> list[Event]:
        events = self._close()
        self._index += 1
        self._open = block["type"]
        return [
            *events,
            ("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block}),
        ]

    def _close(self) -> list[Event]:
        """End the open block (a thinking block with its signature first); held whitespace is dropped."""
        self._space = ""
        if self._open is None:
            return []
        events = (
            [self._delta({"type": "signature_delta", "signature": THINKING_SIGNATURE})]
            if self._open == "thinking"
            else []
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open, self._open_call = None, None
        return events

    def _delta(self, delta: Json) -> Event:
        return "content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta}


_JOINED = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}


def _coalesce(events: list[Event]) -> list[Event]:
    """Adjacent deltas of one block joined (the runtime already batched the tokens: one SSE event
    per batch and block, not one per token)."""
    out: list[Event] = []
    for name, data in events:
        delta = data.get("delta") or {}
        field = _JOINED.get(delta.get("type", ""))
        if out and field is not None and _same_block_delta(out[-1], name, data):
            last = out[-1][1]["delta"]
            out[-1] = (name, {**out[-1][1], "delta": {**last, field: last[field] + delta[field]}})
            continue
        out.append((name, data))
    return out


def _same_block_delta(previous: Event, name: str, data: Json) -> bool:
    before_name, before = previous
    return (
        name == before_name == "content_block_delta"
        and before["index"] == data["index"]
        and before["delta"]["type"] == data["delta"]["type"]
    )


# --- whole -----------------------------------------------------------------------------------------
def message_response(result: Mapping[str, Any], model: str, message_id: str) -> Json:
    """A whole `generate` result (`streaming: false`) as an Anthropic `Message`: thinking, then the
    answer (unless it is only whitespace, as the stream leaves it out), then the tool calls."""
    content: list[Json] = []
    if result.get("reasoning"):
        content.append({"type": "thinking", "thinking": result["reasoning"], "signature": THINKING_SIGNATURE})
    text = result.get("content") or ""
    if text.strip():
        content.append({"type": "text", "text": text})
    content += [_tool_use(call) for call in result.get("tool_calls") or ()]
    reason, sequence = stop_reason(result)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(result.get("usage")),
    }


def _tool_use(call: Mapping[str, Any]) -> Json:
    return {"type": "tool_use", "id": call["id"], "name": call.get("name", ""), "input": _input(call)}


def _input(call: Mapping[str, Any]) -> Json:
    """The call's parsed arguments (the runtime parsed them; Anthropic's input is an object)."""
    arguments = call.get("arguments")
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads((call.get("function") or {}).get("arguments", ""))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
