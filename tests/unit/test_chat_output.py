"""A chat stream's output split as it streams: thinking apart, tool calls parsed by mlx-lm's parser,
whatever way the text is cut into tokens; and the thinking budget forcing the end of thinking."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import mlx.core as mx
from hypothesis import given, settings
from hypothesis import strategies as st
from mlx_lm.tool_parsers import json_tools

from runtime.engine.chat import ChatSplitter, ReasoningBudget
from runtime.engine.events import TokenEvent
from runtime.engine.request import ChatOutput

TOKENIZER = SimpleNamespace(
    has_thinking=True,
    think_start="<think>",
    think_end="</think>",
    has_tool_calling=True,
    tool_call_start="<tool_call>",
    tool_call_end="</tool_call>",
    tool_parser=json_tools.parse_tool_call,
)
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
OUTPUT = (
    "<think>\nThe user wants weather.\n</think>\n\nLet me look."
    '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}\n</tool_call>'
    '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
)


def split(pieces: list[str], spec: ChatOutput | None = None) -> tuple[list[TokenEvent], ChatSplitter]:
    splitter = ChatSplitter(TOKENIZER, spec or ChatOutput(True, TOOLS, False))
    events = []
    for i, piece in enumerate(pieces):
        event = TokenEvent(i, piece)
        splitter.split(event)
        events.append(event)
    tail = splitter.finish(len(pieces))
    return events + ([tail] if tail else []), splitter


def cuts(text: str) -> st.SearchStrategy[list[str]]:
    return st.sets(st.integers(1, len(text) - 1), max_size=40).map(
        lambda points: [text[a:b] for a, b in zip([0, *sorted(points)], [*sorted(points), len(text)], strict=True)]
    )


@settings(max_examples=150, deadline=None)
@given(cuts(OUTPUT))
def test_any_cut_into_tokens_gives_the_same_answer_thinking_and_calls(pieces: list[str]) -> None:
    events, splitter = split(pieces)
    outcome = splitter.outcome()
    assert "".join(e.text for e in events) == outcome.content == "\n\nLet me look.\n\n"
    assert "".join(e.reasoning or "" for e in events) == outcome.reasoning == "\nThe user wants weather.\n"
    assert [(c.index, c.name, c.arguments) for c in outcome.tool_calls] == [
        (0, "get_weather", {"city": "Paris", "days": [1, 2]}),
        (1, "get_weather", {"city": "Rome"}),
    ]
    assert not outcome.tool_call_errors
    assert not any("<tool_call>" in e.text or "<think>" in e.text for e in events)
    streamed: dict[int, dict[str, Any]] = {}
    for event in events:
        for delta in event.tool_calls or ():
            call = streamed.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = call["id"] or delta.call_id
            call["name"] = call["name"] or delta.name
            call["arguments"] += delta.arguments or ""
    assert [(i, c["id"], c["name"], json.loads(c["arguments"])) for i, c in sorted(streamed.items())] == [
        (c.index, c.call_id, c.name, c.arguments) for c in outcome.tool_calls
    ]


def test_the_name_streams_before_the_arguments_are_written() -> None:
    events, _ = split(
        ["<tool_call>", '\n{"name": "get_weather", "arguments": {"ci', 'ty": "Paris"}}', "\n</tool_call>"]
    )
    first = events[1].tool_calls
    assert first is not None and first[0].name == "get_weather" and first[0].call_id
    assert [d.arguments for d in first] == ["", '{"ci']


def test_a_call_that_does_not_parse_is_reported_with_its_raw_text_and_reason() -> None:
    events, splitter = split(["Sure.", "<tool_call>", "\n{not json}\n", "</tool_call>"])
    outcome = splitter.outcome()
    assert outcome.tool_calls == () and outcome.content == "Sure."
    assert (
        outcome.tool_call_errors[0].raw == "\n{not json}\n" and "JSONDecodeError" in outcome.tool_call_errors[0].reason
    )


def test_a_call_to_a_tool_that_was_not_offered_is_an_error_and_one_cut_off_too() -> None:
    unknown = split(['<tool_call>{"name": "launch", "arguments": {}}</tool_call>'])[1].outcome()
    cut = split(['<tool_call>{"name": "get_weather", "argu'])[1].outcome()
    assert "no tool is named 'launch'" in unknown.tool_call_errors[0].reason
    assert cut.tool_call_errors[0].reason == "the output ended inside a tool call"


def test_with_tool_choice_none_tool_tags_stay_text_and_a_prompt_inside_thinking_starts_as_reasoning() -> None:
    events, splitter = split(["I think.</think>", "<tool_call>x</tool_call>"], ChatOutput(False, TOOLS, True))
    outcome = splitter.outcome()
    assert (outcome.reasoning, outcome.content, outcome.tool_calls) == ("I think.", "<tool_call>x</tool_call>", ())


def test_thinking_tokens_are_counted() -> None:
    _, splitter = split(["<think>", "a", "b", "</think>", "c"])
    assert splitter.outcome().reasoning_tokens == 4


def test_the_budget_forces_the_end_of_thinking_once_spent_and_not_before() -> None:
    think, end, vocab = 5, 6, 10
    budget = ReasoningBudget((think,), (end,), budget=3, starts_inside=False)
    logits = mx.zeros((1, vocab))
    prompt = [1, 2]
    assert budget(mx.array(prompt), logits).tolist() == logits.tolist()  # the first call sees the prompt
    history = prompt + [think, 7, 7]
    assert mx.argmax(budget(mx.array(history), logits)).item() == 0  # two thinking tokens so far: free
    forced = budget(mx.array(history + [7]), logits)
    assert mx.argmax(forced).item() == end and mx.isinf(forced[0, 0]).item()
    assert budget(mx.array(history + [7, end, 3]), logits).tolist() == logits.tolist()  # thinking over


def test_a_format_without_an_end_marker_closes_its_call_at_the_end_of_the_output() -> None:
    from mlx_lm.tool_parsers import mistral

    markers = {"tool_call_start": mistral.tool_call_start, "tool_call_end": mistral.tool_call_end}
    tokenizer = SimpleNamespace(**{**vars(TOKENIZER), **markers, "tool_parser": mistral.parse_tool_call})
    splitter = ChatSplitter(tokenizer, ChatOutput(True, TOOLS, False))
    for i, piece in enumerate(["[TOOL_CALLS]", 'get_weather[ARGS]{"city": ', '"Oslo"}']):
        splitter.split(TokenEvent(i, piece))
    tail = splitter.finish(3)
    outcome = splitter.outcome()
    assert [(c.name, c.arguments) for c in outcome.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert not outcome.tool_call_errors and tail is not None and tail.tool_calls
