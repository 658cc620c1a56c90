"""Tools on the engine's side of a request: schemas checked, and `tool_choice` required or named
enforced by the grammar engine.

Under `required` (or Anthropic's `any`) or a named tool, the output is constrained by an llguidance
grammar: an optional thinking section (where the model thinks), then one call (named, or parallel
calls off) or several, each `<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>` with the
arguments validated by the tool's own JSON Schema as they are written. That is the Hermes/Qwen
format (mlx-lm's `json_tools` parser); a model with another tool-call format cannot be enforced
this way and is refused with -32004 before any token, as is a tool schema that does not compile.
"""

from __future__ import annotations

import json
from typing import Any

from runtime import faults
from runtime.engine import guidance as engine_guidance
from runtime.engine.models import LoadedModel
from runtime.requests import guidance
from runtime.requests.chat import ChatInput

ENFORCEABLE_PARSER = "json_tools"
# The JSON the grammar writes: separators as the template renders a call (json.dumps), no free whitespace.
JSON_STYLE = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}


def check_schemas(chat: ChatInput, model_id: str) -> None:
    """Every tool's parameters must be a valid JSON Schema (2020-12): -32004 with its path."""
    for i, tool in enumerate(chat.tools or ()):
        function = tool["function"]
        try:
            guidance.checked_schema(function["parameters"])
        except guidance.InvalidGuidance as exc:
            raise faults.GuidanceFailed(
                f"tool {function['name']}: {exc}",
                model_id=model_id,
                mode="tool_call",
                tool=function["name"],
                path=f"/tools/{i}{_parameters_path(chat)}{exc.details.get('path', '')}".rstrip("/"),
                reason=str(exc),
            ) from None


def _parameters_path(chat: ChatInput) -> str:
    return "/input_schema" if chat.format == "anthropic" else "/function/parameters"


def enforced_spec(loaded: LoadedModel, chat: ChatInput, starts_in_reasoning: bool) -> guidance.GuidanceSpec | None:
    """The grammar a required or named tool choice is enforced with; None when nothing is forced."""
    choice = chat.tool_choice
    if choice.mode not in ("required", "named"):
        return None
    parser = getattr(loaded.tokenizer, "tool_parser", None)
    parser_name = getattr(parser, "__module__", "").rsplit(".", 1)[-1]
    if parser_name != ENFORCEABLE_PARSER:
        raise faults.GuidanceFailed(
            f"tool_choice {choice.mode} is enforced for JSON-in-<tool_call> models (mlx-lm's json_tools); "
            f"model {loaded.model_id} uses {parser_name or 'no tool-call format'}",
            model_id=loaded.model_id,
            mode="tool_call",
            reason="tool-call format cannot be constrained",
        )
    tools = [
        t["function"] for t in chat.tools or () if choice.mode == "required" or t["function"]["name"] == choice.name
    ]
    thinking = _thinking_rule(loaded, chat, starts_in_reasoning)
    lark = _call_grammar(loaded, tools, several=choice.mode == "required" and choice.parallel, thinking=thinking)
    try:
        return guidance.GuidanceSpec("tool_call", engine_guidance.lark_grammar(lark))
    except Exception as exc:  # llguidance reports a schema it cannot compile when the grammar is built
        raise faults.GuidanceFailed(
            f"the tools' schemas do not compile: {exc}", model_id=loaded.model_id, mode="tool_call", reason=str(exc)
        ) from None


def _thinking_rule(loaded: LoadedModel, chat: ChatInput, starts_in_reasoning: bool) -> str | None:
    """'inside': the prompt left thinking open; 'optional': the model may think first; None: no thinking."""
    tokenizer = loaded.tokenizer
    if not getattr(tokenizer, "has_thinking", False):
        return None
    if starts_in_reasoning:
        return "inside"
    return None if chat.template_kwargs.get("enable_thinking") is False else "optional"


def _call_grammar(loaded: LoadedModel, tools: list[dict[str, Any]], several: bool, thinking: str | None) -> str:
    tokenizer = loaded.tokenizer
    alternatives = [_call_schema(tool) for tool in tools]
    schema = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    start, end = _marker(tokenizer, tokenizer.tool_call_start), _marker(tokenizer, tokenizer.tool_call_end)
    calls = 'call ("\\n" call)*' if several else "call"
    lines = [f'call: {start} "\\n" body "\\n" {end}', f"body: %json {json.dumps({**schema, 'x-guidance': JSON_STYLE})}"]
    if thinking is not None:
        close = _marker(tokenizer, tokenizer.think_end)
        if close.startswith("<["):  # a token of its own: the text before it is anything
            lines += ["THOUGHT: /(.|\\n)*/", f'thought: THOUGHT {close} "\\n\\n"']
        else:  # plain text: the thought ends at its first occurrence
            text = f"thought_text[lazy]: /(.|\\n)*{_regex_escape(tokenizer.think_end)}/"
            lines += [text, 'thought: thought_text "\\n\\n"']
        if thinking == "optional":
            lines.append(f"think: {_marker(tokenizer, tokenizer.think_start)} thought")
    first = {None: f"start: {calls}", "inside": f"start: thought {calls}", "optional": f"start: think? {calls}"}
    return "\n".join([first[thinking], *lines])


def _marker(tokenizer: Any, text: str) -> str:
    """A marker in the grammar: its token (`<[id]>`) when it is a token of its own, which llguidance
    keeps apart from text, else the text itself."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) == 1 and text in tokenizer.get_added_vocab():
        return f"<[{ids[0]}]>"
    return json.dumps(text)


def _regex_escape(text: str) -> str:
    return "".join("\\" + c if c in ".^$*+?()[]{}|\\/" else c for c in text)


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": tool["name"]}, "arguments": tool["parameters"]},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
