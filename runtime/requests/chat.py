"""Chat requests in OpenAI or Anthropic terms, made into what a chat template renders.

Both shapes of one conversation become the same canonical messages (Hugging Face's chat-template
conventions: `tool_calls` with parsed `arguments`, `role: tool` results with `tool_call_id`,
`reasoning_content` for an assistant's thinking), the same tool list (OpenAI function tools) and
the same tool choice, so they render to the same prompt tokens. Pure Python: no MLX, no tokenizer.
Every problem is an `InvalidInput` naming the field it is in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from runtime import faults

Format = Literal["openai", "anthropic"]
ChoiceMode = Literal["auto", "none", "required", "named"]

ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking"})
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
# What the runtime itself passes to the chat template; chat_template_kwargs may not set these.
RESERVED_TEMPLATE_KWARGS = frozenset(
    {"messages", "conversation", "tools", "documents", "add_generation_prompt", "tokenize", "return_dict"}
)


@dataclass(frozen=True)
class ToolChoice:
    mode: ChoiceMode = "auto"
    name: str | None = None  # mode "named": the one tool to call
    parallel: bool = True  # required: several calls in one turn may be made


@dataclass(frozen=True)
class ChatInput:
    """A chat request made canonical: what the template gets, and what the output is parsed for."""

    format: Format
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    reasoning_budget: int | None = None

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools or ()]


def is_chat(params: dict[str, Any]) -> bool:
    return "messages" in params


def read_chat(params: dict[str, Any]) -> ChatInput:
    """The request's messages, tools, tool choice and thinking options, in canonical form."""
    shape = chat_format(params)
    if shape == "anthropic":
        messages = _anthropic_messages(params.get("system"), params["messages"])
        tools = _tools(params.get("tools"), _anthropic_tool)
    else:
        if params.get("system") is not None:
            raise faults.InvalidInput.at("/system", "a top-level system prompt is Anthropic's shape; format is openai")
        messages = _openai_messages(params["messages"])
        tools = _tools(params.get("tools"), _openai_tool)
    kwargs, budget = _thinking(params)
    return ChatInput(shape, messages, tools, _tool_choice(params, tools), kwargs, budget)


def chat_format(params: dict[str, Any]) -> Format:
    """`format` if given, else Anthropic's shape when anything only Anthropic has is there."""
    named = params.get("format")
    if named is not None:
        return "anthropic" if named == "anthropic" else "openai"
    choice = params.get("tool_choice")
    anthropic = (
        params.get("system") is not None
        or params.get("thinking") is not None
        or isinstance(choice, dict)
        and choice.get("type") in ("auto", "any", "tool", "none")
        or any(isinstance(tool, dict) and "input_schema" in tool for tool in params.get("tools") or ())
        or any(_has_anthropic_block(message) for message in params.get("messages") or ())
    )
    return "anthropic" if anthropic else "openai"


def _has_anthropic_block(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(
        isinstance(block, dict)
        and (block.get("type") in ANTHROPIC_BLOCKS or block.get("type") == "image" and "source" in block)
        for block in content
    )


# --- canonical messages ---------------------------------------------------------------------------
def _plain(role: str, content: Any) -> dict[str, Any]:
    return {"role": role, "content": content}


def _assistant(content: str, reasoning: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return message


def _call(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id:
        call["id"] = call_id
    return call


def _tool_result(content: str, call_id: str, names: dict[str, str]) -> dict[str, Any]:
    message = {"role": "tool", "content": content, "tool_call_id": call_id}
    if call_id in names:
        message["name"] = names[call_id]
    return message


# --- OpenAI chat ----------------------------------------------------------------------------------
def _openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for the results that follow
    for i, message in enumerate(messages):
        where = f"/messages/{i}"
        role = message.get("role")
        if role in ("system", "developer", "user"):
            _refuse_anthropic_blocks(message, where)
            out.append(_plain("system" if role == "developer" else role, _openai_content(message, where)))
        elif role == "assistant":
            out.append(_openai_assistant(message, where, names))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise faults.InvalidInput.at(
                    f"{where}/tool_call_id", "a tool message needs the tool_call_id it answers"
                )
            if isinstance(message.get("name"), str):
                names.setdefault(call_id, message["name"])
            out.append(_tool_result(_text_of(message.get("content"), f"{where}/content"), call_id, names))
        else:
            raise faults.InvalidInput.at(
                f"{where}/role", f"unknown role {role!r}: use system, developer, user, assistant or tool"
            )
    return out


def _openai_content(message: dict[str, Any], where: str) -> Any:
    content = message.get("content")
    if content is None:
        raise faults.InvalidInput.at(f"{where}/content", "is required for this role")
    return content


def _openai_assistant(message: dict[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    _refuse_anthropic_blocks(message, where)
    content = message.get("content")
    text = "" if content is None else _text_of(content, f"{where}/content")
    calls = []
    for j, call in enumerate(message.get("tool_calls") or ()):
        at = f"{where}/tool_calls/{j}"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise faults.InvalidInput.at(f"{at}/function", "needs {name, arguments}")
        arguments = _arguments(function.get("arguments", {}), f"{at}/function/arguments")
        call_id = call.get("id")
        if isinstance(call_id, str) and call_id:
            names[call_id] = function["name"]
        calls.append(_call(call_id if isinstance(call_id, str) else None, function["name"], arguments))
    reasoning = message.get("reasoning_content", message.get("reasoning"))
    if reasoning is not None and not isinstance(reasoning, str):
        raise faults.InvalidInput.at(f"{where}/reasoning_content", "must be a string")
    return _assistant(text, reasoning, calls)


def _arguments(arguments: Any, where: str) -> Any:
    """OpenAI sends arguments as a JSON string; templates want the object."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise faults.InvalidInput.at(where, f"is not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise faults.InvalidInput.at(where, "must be a JSON object (or a string holding one)")
    return arguments


def _refuse_anthropic_blocks(message: dict[str, Any], where: str) -> None:
    content = message.get("content")
    if not isinstance(content, list):
        return
    for j, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") in ANTHROPIC_BLOCKS:
            raise faults.InvalidInput.at(
                f"{where}/content/{j}/type",
                f"{part['type']} is an Anthropic content block; send format anthropic (or OpenAI's shape)",
            )


def _text_of(content: Any, where: str) -> str:
    """Content that must be text: a string, or text parts/blocks joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise faults.InvalidInput.at(f"{where}/{j}", "only text parts are allowed here")
        return "".join(part["text"] for part in content)
    raise faults.InvalidInput.at(where, "must be a string or a list of text parts")


# --- Anthropic Messages ---------------------------------------------------------------------------
def _anthropic_messages(system: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system is not None:
        out.append(_plain("system", _text_of(system, "/system")))
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"/messages/{i}"
        role, content = message.get("role"), message.get("content")
        if role == "assistant":
            out.append(_anthropic_assistant(content, where, names))
        elif role in ("user", "system"):
            out.extend(_anthropic_user(role, content, where, names))
        else:
            raise faults.InvalidInput.at(
                f"{where}/role", f"unknown role {role!r}: Anthropic's roles are user and assistant"
            )
    return out


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise faults.InvalidInput.at(where, "must be a string or a list of content blocks")
    return content


def _anthropic_assistant(content: Any, where: str, names: dict[str, str]) -> dict[str, Any]:
    texts, thoughts, calls = [], [], []
    for j, block in enumerate(_blocks(content, f"{where}/content")):
        at, kind = f"{where}/content/{j}", block.get("type")
        if kind == "text":
            texts.append(_string(block, "text", at))
        elif kind == "thinking":
            thoughts.append(_string(block, "thinking", at))
        elif kind == "redacted_thinking":
            continue  # encrypted by another service: nothing a local template can render
        elif kind == "tool_use":
            name, call_id = _string(block, "name", at), _string(block, "id", at)
            names[call_id] = name
            calls.append(_call(call_id, name, _arguments(block.get("input", {}), f"{at}/input")))
        else:
            raise faults.InvalidInput.at(f"{at}/type", f"an assistant message cannot hold a {kind!r} block")
    return _assistant("".join(texts), "".join(thoughts) or None, calls)


def _anthropic_user(role: str, content: Any, where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """Tool results become `tool` messages (in order, first, as Anthropic puts them); the rest of
    the blocks stay one message of `role`."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, f"{where}/content")):
        at, kind = f"{where}/content/{j}", block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _string(block, "text", at)})
        elif kind == "image":
            parts.append(_anthropic_image(block, at))
        elif kind == "tool_result":
            call_id = _string(block, "tool_use_id", at)
            text = _text_of(block.get("content", ""), f"{at}/content")
            results.append(_tool_result(text, call_id, names))
        else:
            raise faults.InvalidInput.at(f"{at}/type", f"a {role} message cannot hold a {kind!r} block")
    if not parts:
        return results
    if all(part["type"] == "text" for part in parts):
        return [*results, _plain(role, "".join(part["text"] for part in parts))]
    return [*results, _plain(role, parts)]


def _anthropic_image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise faults.InvalidInput.at(f"{where}/source", "an image block needs a source")
    if source.get("type") == "base64":
        media = _string(source, "media_type", f"{where}/source")
        url = f"data:{media};base64,{_string(source, 'data', f'{where}/source')}"
    elif source.get("type") == "url":
        url = _string(source, "url", f"{where}/source")
    else:
        raise faults.InvalidInput.at(f"{where}/source/type", "must be base64 or url")
    return {"type": "image_url", "image_url": {"url": url}}


def _string(block: dict[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise faults.InvalidInput.at(f"{where}/{key}", "is required and must be a string")
    return value


# --- tools and tool choice ------------------------------------------------------------------------
def _openai_tool(tool: dict[str, Any], where: str) -> tuple[str, Any, Any]:
    if tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
        raise faults.InvalidInput.at(where, "an OpenAI tool is {type: function, function: {name, parameters}}")
    function = tool["function"]
    return _string(function, "name", f"{where}/function"), function.get("description"), function.get("parameters")


def _anthropic_tool(tool: dict[str, Any], where: str) -> tuple[str, Any, Any]:
    if "input_schema" not in tool:
        raise faults.InvalidInput.at(
            f"{where}/input_schema", "an Anthropic tool needs input_schema (server tools are not served)"
        )
    return _string(tool, "name", where), tool.get("description"), tool["input_schema"]


def _tools(tools: Any, read: Any) -> list[dict[str, Any]] | None:
    """Function tools in OpenAI's shape, which chat templates expect; names unique and well formed."""
    if not tools:
        return None
    out, seen = [], set()
    for i, tool in enumerate(tools):
        where = f"/tools/{i}"
        name, description, parameters = read(tool, where)
        if not TOOL_NAME.match(name):
            raise faults.InvalidInput.at(f"{where}/name", "must be 1-64 letters, digits, '_', '.' or '-'")
        if name in seen:
            raise faults.InvalidInput.at(f"{where}/name", f"two tools are named {name!r}")
        if description is not None and not isinstance(description, str):
            raise faults.InvalidInput.at(f"{where}/description", "must be a string")
        if parameters is not None and not isinstance(parameters, dict):
            raise faults.InvalidInput.at(f"{where}/parameters", "must be a JSON Schema object")
        seen.add(name)
        function: dict[str, Any] = {"name": name}
        if description is not None:
            function["description"] = description
        function["parameters"] = parameters if parameters is not None else EMPTY_PARAMETERS
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(params: dict[str, Any], tools: list[dict[str, Any]] | None) -> ToolChoice:
    raw = params.get("tool_choice")
    parallel = params.get("parallel_tool_calls", True)
    if raw is None or raw == "auto":
        choice = ToolChoice("auto" if tools else "none", parallel=parallel)
    elif raw in ("none", "required"):
        choice = ToolChoice(raw, parallel=parallel)
    elif isinstance(raw, dict):
        choice = _choice_object(raw, parallel)
    else:
        raise faults.InvalidInput.at("/tool_choice", "must be auto, none, required or a named function")
    names = [tool["function"]["name"] for tool in tools or ()]
    if choice.mode in ("required", "named") and not names:
        raise faults.InvalidInput.at("/tool_choice", f"tool_choice {choice.mode} needs tools")
    if choice.mode == "named" and choice.name not in names:
        raise faults.InvalidInput.at("/tool_choice", f"no tool is named {choice.name!r}; tools: {', '.join(names)}")
    return choice


def _choice_object(raw: dict[str, Any], parallel: bool) -> ToolChoice:
    kind = raw.get("type")
    if raw.get("disable_parallel_tool_use") is True:
        parallel = False
    if kind == "function":  # OpenAI: {type: function, function: {name}} (or the Responses API's {type, name})
        function = raw.get("function")
        name = function.get("name") if isinstance(function, dict) else raw.get("name")
        if not isinstance(name, str):
            raise faults.InvalidInput.at("/tool_choice/function/name", "is required")
        return ToolChoice("named", name, parallel=False)
    if kind == "tool":  # Anthropic
        return ToolChoice("named", _string(raw, "name", "/tool_choice"), parallel=False)
    if kind == "any":
        return ToolChoice("required", parallel=parallel)
    if kind in ("auto", "none"):
        return ToolChoice(kind, parallel=parallel)
    raise faults.InvalidInput.at("/tool_choice/type", f"unknown tool_choice type {kind!r}")


# --- thinking -------------------------------------------------------------------------------------
def _thinking(params: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """chat_template_kwargs as given (enable_thinking and the like), Anthropic's `thinking` mapped
    onto them, and the reasoning budget."""
    kwargs = dict(params.get("chat_template_kwargs") or {})
    clash = sorted(RESERVED_TEMPLATE_KWARGS & kwargs.keys())
    if clash:
        raise faults.InvalidInput.at(f"/chat_template_kwargs/{clash[0]}", "is set by the runtime itself")
    budget = params.get("reasoning_budget")
    thinking = params.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            kwargs.setdefault("enable_thinking", False)
        elif thinking.get("type") == "enabled":
            kwargs.setdefault("enable_thinking", True)
            if budget is None and isinstance(thinking.get("budget_tokens"), int):
                budget = thinking["budget_tokens"]
    return kwargs, budget
