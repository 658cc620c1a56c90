"""Chat requests in OpenAI and Anthropic shapes become the same canonical messages, tools and choice."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import faults
from runtime.requests.chat import ToolChoice, chat_format, read_chat

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_SCHEMA}}
]
ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}]

OPENAI_CONVERSATION: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "a2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "a1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "a2", "content": [{"type": "text", "text": "rain"}]},
    ],
    "tools": OPENAI_TOOLS,
}
ANTHROPIC_CONVERSATION: dict[str, Any] = {
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "a1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "a2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "a1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "a2", "content": [{"type": "text", "text": "rain"}]},
            ],
        },
    ],
    "tools": ANTHROPIC_TOOLS,
}


def test_the_openai_and_anthropic_shapes_of_one_conversation_become_the_same_messages_and_tools() -> None:
    openai, anthropic = read_chat(OPENAI_CONVERSATION), read_chat(ANTHROPIC_CONVERSATION)
    assert (openai.format, anthropic.format) == ("openai", "anthropic")
    assert openai.messages == anthropic.messages
    assert openai.tools == anthropic.tools == OPENAI_TOOLS
    assert openai.messages[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert [m["role"] for m in openai.messages] == ["system", "user", "assistant", "tool", "tool"]
    assert openai.messages[3] == {"role": "tool", "content": "sunny", "tool_call_id": "a1", "name": "get_weather"}


def test_the_shape_is_detected_from_anthropic_only_fields_or_named_by_format() -> None:
    assert chat_format({"messages": [{"role": "user", "content": "hi"}]}) == "openai"
    assert chat_format({"messages": [{"role": "user", "content": "hi"}], "system": "x"}) == "anthropic"
    assert chat_format({"messages": [], "tools": ANTHROPIC_TOOLS}) == "anthropic"
    assert chat_format({"messages": [], "tool_choice": {"type": "any"}}) == "anthropic"
    assert chat_format({"messages": [{"role": "user", "content": "hi"}], "format": "anthropic"}) == "anthropic"


def test_system_and_developer_messages_inside_messages_are_kept_in_place() -> None:
    chat = read_chat(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "developer", "content": "b"},
                {"role": "system", "content": "c"},
            ]
        }
    )
    assert chat.messages == [
        {"role": "user", "content": "a"},
        {"role": "system", "content": "b"},
        {"role": "system", "content": "c"},
    ]


def test_thinking_in_either_shape_becomes_reasoning_content() -> None:
    openai = read_chat({"messages": [{"role": "assistant", "content": "4", "reasoning_content": "2+2"}]})
    anthropic = read_chat(
        {
            "format": "anthropic",
            "messages": [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "2+2", "signature": "s"},
                        {"type": "text", "text": "4"},
                    ],
                }
            ],
        }
    )
    assert openai.messages == anthropic.messages == [{"role": "assistant", "content": "4", "reasoning_content": "2+2"}]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("required")),
        ({"type": "function", "function": {"name": "get_weather"}}, ToolChoice("named", "get_weather", False)),
        ({"type": "any"}, ToolChoice("required")),
        ({"type": "any", "disable_parallel_tool_use": True}, ToolChoice("required", parallel=False)),
        ({"type": "tool", "name": "get_weather"}, ToolChoice("named", "get_weather", False)),
    ],
)
def test_tool_choice_in_both_shapes_maps_onto_one_choice(choice: Any, expected: ToolChoice) -> None:
    anthropic = isinstance(choice, dict) and choice["type"] in ("any", "tool")
    conversation = ANTHROPIC_CONVERSATION if anthropic else OPENAI_CONVERSATION
    params = {**conversation, "tool_choice": choice} if choice is not None else conversation
    assert read_chat(params).tool_choice == expected


def test_anthropic_thinking_options_map_onto_the_template_flag_and_the_budget() -> None:
    base = {"messages": [{"role": "user", "content": "hi"}]}
    on = read_chat({**base, "thinking": {"type": "enabled", "budget_tokens": 64}})
    off = read_chat({**base, "thinking": {"type": "disabled"}})
    assert (on.template_kwargs, on.reasoning_budget) == ({"enable_thinking": True}, 64)
    assert (off.template_kwargs, off.reasoning_budget) == ({"enable_thinking": False}, None)


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"messages": [{"role": "tool", "content": "x"}]}, "/messages/0/tool_call_id"),
        ({"messages": [{"role": "narrator", "content": "x"}]}, "/messages/0/role"),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]},
            "/messages/0/tool_calls/0/function/arguments",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}]},
            "/messages/0/tool_calls/0/function/arguments",
        ),
        ({**OPENAI_CONVERSATION, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "/tool_choice"),
        ({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}, "/tool_choice"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": OPENAI_TOOLS * 2}, "/tools/1/name"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "a b"}}],
            },
            "/tools/0/name",
        ),
        (
            {
                "format": "anthropic",
                "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "1", "name": "f"}]}],
            },
            "/messages/0/content/0/type",
        ),
        (
            {
                "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "1"}]}],
                "format": "openai",
            },
            "/messages/0/content/0/type",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"tools": []}},
            "/chat_template_kwargs/tools",
        ),
        (
            {
                "format": "anthropic",
                "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}],
            },
            "/messages/0/content/0/source/type",
        ),
    ],
)
def test_malformed_chat_shapes_are_refused_with_the_field_that_is_wrong(params: dict[str, Any], path: str) -> None:
    with pytest.raises(faults.InvalidInput) as caught:
        read_chat(params)
    assert caught.value.errors[0]["path"] == path
