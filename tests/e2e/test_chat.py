"""Agent chat over the real runtime: tool calls parsed by mlx-lm's parser (streamed as deltas, never
as raw tags), thinking apart from the answer, OpenAI and Anthropic shapes, enforced tool choice."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.conftest import MODEL
from tests.support.harness import RpcFailure, RuntimeClient

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TIME = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ADD = {
    "type": "object",
    "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time", "parameters": TIME}},
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER},
    {"name": "get_time", "description": "Local time", "input_schema": TIME},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME, "add": ADD}
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def chat(runtime: RuntimeClient, **params: Any) -> dict[str, Any]:
    body = {"model_id": MODEL, "max_tokens": 120, "temperature": 0, **params}
    return runtime.collect(runtime.request("generate", body)["stream_id"])


def streamed_calls(out: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The tool calls a host rebuilds from the stream's deltas, by index."""
    calls: dict[int, dict[str, Any]] = {}
    for entry in out["tokens"]:
        for delta in entry.get("tool_calls", ()):
            call = calls.setdefault(delta["index"], {"id": None, "name": None, "arguments": ""})
            call["id"] = call["id"] or delta.get("id")
            call["name"] = call["name"] or delta["function"].get("name")
            call["arguments"] += delta["function"].get("arguments", "")
    return calls


def assert_valid_calls(calls: list[dict[str, Any]], allowed: set[str]) -> None:
    assert calls, "no tool call"
    for call in calls:
        assert call["name"] in allowed
        jsonschema.validate(call["arguments"], SCHEMAS[call["name"]])
        assert json.loads(call["function"]["arguments"]) == call["arguments"]


def test_a_streamed_tool_call_arrives_as_deltas_and_never_as_raw_tags(runtime: RuntimeClient) -> None:
    out = chat(runtime, messages=WEATHER_QUESTION, tools=OPENAI_TOOLS)
    event = out["event"]
    assert event["finish_reason"] == "tool_calls"
    assert [c["name"] for c in event["tool_calls"]] == ["get_weather"]
    assert_valid_calls(event["tool_calls"], {"get_weather"})
    assert not any("tool_call" in entry["token"] for entry in out["tokens"])
    rebuilt = streamed_calls(out)
    assert [(i, c["id"], c["name"], json.loads(c["arguments"])) for i, c in rebuilt.items()] == [
        (c["index"], c["id"], c["name"], c["arguments"]) for c in event["tool_calls"]
    ]
    assert out["stats"]["finish_reason"] == "tool_calls"


def test_a_non_streaming_generate_answers_with_the_whole_output_and_no_stream_messages(runtime: RuntimeClient) -> None:
    before = len(runtime.messages)
    body = {"model_id": MODEL, "messages": WEATHER_QUESTION, "tools": OPENAI_TOOLS, "temperature": 0, "stream": False}
    whole = runtime.request("generate", body)
    streamed = chat(runtime, messages=WEATHER_QUESTION, tools=OPENAI_TOOLS)["event"]
    assert whole["finish_reason"] == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in whole["tool_calls"]] == [
        (c["name"], c["arguments"]) for c in streamed["tool_calls"]
    ]
    assert whole["usage"]["completion_tokens"] == whole["stats"]["tokens_generated"] > 0
    stream_messages = [
        m for m in list(runtime.messages)[before:] if m.get("params", {}).get("stream_id") == whole["stream_id"]
    ]
    assert stream_messages == []


def test_two_questions_give_two_parallel_calls_in_one_turn(runtime: RuntimeClient) -> None:
    question = [{"role": "user", "content": "What is the weather in Paris and Rome?"}]
    out = chat(runtime, messages=question, tools=OPENAI_TOOLS)
    event = out["event"]
    assert [(c["index"], c["name"]) for c in event["tool_calls"]] == [(0, "get_weather"), (1, "get_weather")]
    assert_valid_calls(event["tool_calls"], {"get_weather"})
    assert len({c["id"] for c in event["tool_calls"]}) == 2
    assert sorted(streamed_calls(out)) == [0, 1]


def test_a_turn_with_tool_results_answers_in_text_and_reuses_the_earlier_turns_kv(runtime: RuntimeClient) -> None:
    first = chat(runtime, messages=WEATHER_QUESTION, tools=OPENAI_TOOLS)
    call = first["event"]["tool_calls"][0]
    history = [
        *WEATHER_QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [{k: call[k] for k in ("id", "type", "function")}]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temperature": 18, "condition": "sunny"}'},
    ]
    second = chat(runtime, messages=history, tools=OPENAI_TOOLS)
    assert second["event"]["finish_reason"] == "stop"
    assert second["event"]["content"].strip() and "tool_calls" not in second["event"]
    assert second["stats"]["cached_tokens"] >= first["stats"]["prompt_tokens"]


def test_openai_and_anthropic_histories_of_one_conversation_render_to_the_same_prompt(runtime: RuntimeClient) -> None:
    openai = {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            *WEATHER_QUESTION,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        "tools": OPENAI_TOOLS,
    }
    anthropic = {
        "system": "You are a helpful assistant.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"}]},
        ],
        "tools": ANTHROPIC_TOOLS,
    }
    counts = [
        runtime.request("count_tokens", {"model_id": MODEL, **shape})["input_tokens"] for shape in (openai, anthropic)
    ]
    outs = [chat(runtime, **shape, max_tokens=30) for shape in (openai, anthropic)]
    assert counts[0] == counts[1] == outs[0]["stats"]["prompt_tokens"] == outs[1]["stats"]["prompt_tokens"]
    assert outs[0]["event"]["content"] == outs[1]["event"]["content"]
    assert outs[1]["stats"]["cached_tokens"] >= outs[1]["stats"]["prompt_tokens"] - 1  # the same tokens, cached


def test_system_entries_inside_messages_are_kept(runtime: RuntimeClient) -> None:
    def count(messages: list[dict[str, Any]]) -> int:
        return int(runtime.request("count_tokens", {"model_id": MODEL, "messages": messages})["input_tokens"])

    turn = runtime.request("tokenize", {"model_id": MODEL, "text": "<|im_start|>system\nBe brief.<|im_end|>\n"})
    late = [*WEATHER_QUESTION, {"role": "system", "content": "Be brief."}]
    developer = [*WEATHER_QUESTION, {"role": "developer", "content": "Be brief."}]
    assert count(late) == count(developer) == count(WEATHER_QUESTION) + len(turn["tokens"])


def test_thinking_is_split_from_the_answer_and_counted(runtime: RuntimeClient) -> None:
    out = chat(runtime, messages=[{"role": "user", "content": "What is 3 plus 4?"}], max_tokens=80)
    event = out["event"]
    assert event["reasoning"].strip() and event["content"].strip()
    assert "<think>" not in event["content"] and "</think>" not in event["content"]
    assert "".join(e.get("reasoning", "") for e in out["tokens"]) == event["reasoning"]
    assert "".join(e["token"] for e in out["tokens"]) == event["content"]
    assert out["stats"]["usage"]["reasoning_tokens"] >= 3


def test_disabled_thinking_gives_no_reasoning(runtime: RuntimeClient) -> None:
    question = [{"role": "user", "content": "What is 3 plus 4?"}]
    openai = chat(runtime, messages=question, chat_template_kwargs={"enable_thinking": False})["event"]
    anthropic = chat(runtime, messages=question, thinking={"type": "disabled"})["event"]
    assert "reasoning" not in openai and openai["content"].strip()
    assert anthropic["content"] == openai["content"]


def test_a_reasoning_budget_ends_thinking_when_spent(runtime: RuntimeClient) -> None:
    question = [{"role": "user", "content": "What is 3 plus 4?"}]
    free = chat(runtime, messages=question, max_tokens=80)["stats"]["usage"]["reasoning_tokens"]
    for budget in (0, 2):
        out = chat(runtime, messages=question, max_tokens=80, reasoning_budget=budget)
        assert out["stats"]["usage"]["reasoning_tokens"] == budget + 2 < free  # <think>, budget, </think>
        assert out["event"]["content"].strip()
    anthropic = chat(runtime, messages=question, max_tokens=80, thinking={"type": "enabled", "budget_tokens": 2})
    assert anthropic["stats"]["usage"]["reasoning_tokens"] == 4


@pytest.mark.parametrize(
    ("tool_choice", "allowed"),
    [
        ("required", {"get_weather", "get_time", "add"}),
        ({"type": "function", "function": {"name": "add"}}, {"add"}),
        ({"type": "tool", "name": "get_time"}, {"get_time"}),
    ],
)
def test_required_and_named_tool_choice_always_give_valid_calls_over_seeds_and_temperatures(
    runtime: RuntimeClient, tool_choice: Any, allowed: set[str]
) -> None:
    tools = [*OPENAI_TOOLS, {"type": "function", "function": {"name": "add", "parameters": ADD}}]
    if isinstance(tool_choice, dict) and tool_choice["type"] == "tool":
        tools = [*ANTHROPIC_TOOLS, {"name": "add", "input_schema": ADD}]
    questions = ["Tell me a story about a fox.", "What is the weather in Paris?", "Hello!"]
    ids = [
        runtime.request(
            "generate",
            {
                "model_id": MODEL,
                "messages": [{"role": "user", "content": question}],
                "tools": tools,
                "tool_choice": tool_choice,
                "temperature": temperature,
                "seed": seed,
                "max_tokens": 200,
            },
        )["stream_id"]
        for seed, temperature in enumerate((0.0, 0.7, 1.0, 1.5))
        for question in questions
    ]
    for stream_id in ids:
        event = runtime.collect(stream_id)["event"]
        assert event["finish_reason"] == "tool_calls", event
        assert event["guidance"] == {"mode": "tool_call", "complete": True}
        assert "tool_call_errors" not in event
        assert_valid_calls(event["tool_calls"], allowed)
        if allowed != {"get_weather", "get_time", "add"}:
            assert len(event["tool_calls"]) == 1


def test_tool_choice_none_never_calls(runtime: RuntimeClient) -> None:
    event = chat(runtime, messages=WEATHER_QUESTION, tools=OPENAI_TOOLS, tool_choice="none")["event"]
    assert event["finish_reason"] in ("stop", "length") and "tool_calls" not in event
    assert "<tool_call>" not in event["content"]


def test_tool_calls_work_in_a_batch_and_with_a_draft_model(runtime: RuntimeClient) -> None:
    runtime.request("load_model", {"model_id": "tiny-draft"})
    body = {"model_id": MODEL, "messages": WEATHER_QUESTION, "tools": OPENAI_TOOLS, "temperature": 0}
    alone = chat(runtime, messages=WEATHER_QUESTION, tools=OPENAI_TOOLS)["event"]["tool_calls"]
    batch = runtime.request("batch_generate", {"requests": [body] * 3})["results"]
    outs = [runtime.collect(r["result"]["stream_id"]) for r in batch]
    speculative = chat(runtime, messages=WEATHER_QUESTION, tools=OPENAI_TOOLS, draft_model="tiny-draft")
    required = chat(
        runtime, messages=WEATHER_QUESTION, tools=OPENAI_TOOLS, tool_choice="required", draft_model="tiny-draft"
    )
    assert {o["stats"]["path"] for o in outs} == {"batch"}
    assert speculative["stats"]["path"] == required["stats"]["path"] == "speculative"
    for out in [*outs, speculative, required]:
        assert [(c["name"], c["arguments"]) for c in out["event"]["tool_calls"]] == [
            (c["name"], c["arguments"]) for c in alone
        ]


def test_a_stop_sequence_cuts_a_call_short_and_the_cut_call_is_reported(runtime: RuntimeClient) -> None:
    event = chat(runtime, messages=WEATHER_QUESTION, tools=OPENAI_TOOLS, stop_sequences=['"arguments"'])["event"]
    assert event["finish_reason"] == "stop" and "tool_calls" not in event
    assert event["tool_call_errors"][0]["reason"] == "the output ended inside a tool call"


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]},
            -32004,
            "/tools/0/function/parameters/type",
        ),
        (
            {
                "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"x": {"minimum": "one"}}}}],
                "tool_choice": {"type": "any"},
            },
            -32004,
            "/tools/0/input_schema/properties/x/minimum",
        ),
        (
            {"tools": OPENAI_TOOLS, "tool_choice": {"type": "function", "function": {"name": "fly"}}},
            -32602,
            "/tool_choice",
        ),
        ({"tool_choice": "required"}, -32602, "/tool_choice"),
        (
            {"tools": OPENAI_TOOLS, "tool_choice": "required", "guidance": {"mode": "json_object"}},
            -32602,
            "/tool_choice",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, -32602, "/messages/0/tool_call_id"),
        ({"messages": [{"role": "user"}]}, -32602, "/messages/0/content"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, -32602, "/messages/0/role"),
        ({"tools": [{"type": "function", "function": {}}]}, -32602, "/tools/0/function/name"),
        ({"prompt": "hi", "messages": None, "tools": OPENAI_TOOLS}, -32602, "/tools"),
        (
            {"chat_template_kwargs": {"add_generation_prompt": False}},
            -32602,
            "/chat_template_kwargs/add_generation_prompt",
        ),
    ],
)
def test_bad_tools_choices_and_shapes_get_precise_errors(
    runtime: RuntimeClient, params: dict[str, Any], code: int, field: str
) -> None:
    body = {"model_id": MODEL, "messages": WEATHER_QUESTION, **params}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(RpcFailure) as caught:
        runtime.request("generate", body)
    assert caught.value.code == code
    data = caught.value.data or {}
    paths = [e["path"] for e in data.get("errors", [])] + [data.get("path")]
    assert field in paths, data


def test_tools_on_a_model_without_a_tool_call_format_are_refused(runtime: RuntimeClient) -> None:
    runtime.request("load_model", {"model_id": "tiny-vlm"})
    with pytest.raises(RpcFailure) as caught:
        runtime.request("count_tokens", {"model_id": "tiny-vlm", "messages": WEATHER_QUESTION, "tools": OPENAI_TOOLS})
    assert caught.value.code == -32602 and caught.value.data["errors"][0]["path"] == "/tools"


def test_an_anthropic_prefill_is_continued_rather_than_answered(runtime: RuntimeClient) -> None:
    prefill = '{"name": "'
    messages = [{"role": "user", "content": "Describe a dog as JSON."}, {"role": "assistant", "content": prefill}]
    out = chat(runtime, messages=messages, format="anthropic", max_tokens=20)
    text = "<|im_start|>user\nDescribe a dog as JSON.<|im_end|>\n<|im_start|>assistant\n" + prefill
    expected = runtime.request("tokenize", {"model_id": MODEL, "text": text})["tokens"]
    assert out["stats"]["prompt_tokens"] == len(expected)
