"""A chat stream's output read as it streams: thinking apart from the answer, tool calls parsed.

`ChatSplitter` runs mlx-lm's own `TextStateMachine` (text-based, so a marker split across tokens is
still found, and possible partial markers are held back) over the text the stop filter releases,
with the tokenizer's markers: `think_start`/`think_end` and `tool_call_start`/`tool_call_end`, as
mlx-lm's server does. Each finished tool-call section goes to the tokenizer's mlx-lm tool parser
(chosen from the chat template by mlx-lm). While a call streams, the JSON-in-tags formats (Hermes,
Qwen: `{"name": ..., "arguments": {...}}`) give their name as soon as it is written and their
arguments as fragments; other formats give the whole call when its section ends.

`ReasoningBudget` is a logits processor: once the stream has spent its budget of thinking tokens,
it forces the end-of-thinking tokens. It reads the stream's history like the structured-output
constraint does, so it serves every decode path.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, cast

import mlx.core as mx
from mlx_lm.generate import TextStateMachine

from runtime.engine.events import ChatOutcome, TokenEvent, ToolCall, ToolCallDelta, ToolCallError
from runtime.engine.request import ChatOutput

NORMAL, REASONING, TOOL = "normal", "reasoning", "tool"
# The head of a JSON-in-tags call, up to where its arguments begin (their first character has come).
JSON_CALL_HEAD = re.compile(r'^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*(?=\S)')
# What may still be the end of the call object rather than of its arguments: held back.
CALL_TAIL = re.compile(r"\s*\}?\s*$")


def transitions(tokenizer: Any, parse_tools: bool) -> dict[str, list[tuple[str, str]]]:
    """mlx-lm's states and markers (generate.make_text_state_machine, without stop words: the
    runtime's stop filter has already cut those); tool sections only when calls are parsed."""
    edges: dict[str, list[tuple[str, str]]] = {NORMAL: []}
    if tokenizer.has_thinking:
        edges[NORMAL].append((tokenizer.think_start, REASONING))
        edges[REASONING] = [(tokenizer.think_end, NORMAL)]
    if parse_tools and tokenizer.has_tool_calling:
        edges[NORMAL].append((tokenizer.tool_call_start, TOOL))
        if tokenizer.has_thinking:
            edges[REASONING].append((tokenizer.tool_call_start, TOOL))
        edges[TOOL] = [(tokenizer.tool_call_end, NORMAL)] if tokenizer.tool_call_end else []
    return edges


class _OpenCall:
    """The tool-call section being written: its text, and what of it has streamed."""

    def __init__(self, index: int) -> None:
        self.index, self.call_id = index, f"call_{uuid.uuid4().hex[:24]}"
        self.text = ""
        self.named = False
        self.arguments_sent = 0  # characters of the arguments' text sent as fragments
        self.arguments_at: int | None = None  # where the arguments begin in `text`

    def grow(self, text: str) -> list[ToolCallDelta]:
        """Append text; the deltas that can go out now (JSON-in-tags calls only)."""
        self.text += text
        deltas = []
        if not self.named:
            head = JSON_CALL_HEAD.match(self.text)
            if head is None:
                return []
            self.named, self.arguments_at = True, head.end()
            deltas.append(ToolCallDelta(self.index, self.call_id, json.loads(f'"{head.group(1)}"'), ""))
        fragment = self._arguments_fragment(final=False)
        if fragment:
            deltas.append(ToolCallDelta(self.index, arguments=fragment))
        return deltas

    def _arguments_fragment(self, final: bool) -> str:
        assert self.arguments_at is not None
        arguments = self.text[self.arguments_at :]
        if final:
            arguments = arguments.rstrip()
            end = len(arguments) - 1 if arguments.endswith("}") else len(arguments)
            end = len(arguments[:end].rstrip())
        else:
            tail = CALL_TAIL.search(arguments)
            end = tail.start() if tail else len(arguments)
        fragment = arguments[self.arguments_sent : end] if end > self.arguments_sent else ""
        self.arguments_sent = max(self.arguments_sent, end)
        return fragment

    def close(self, parser: Any, tools: Any, next_index: int) -> tuple[list[ToolCall], list[ToolCallDelta], str | None]:
        """Parse the whole section: its calls, the deltas still owed, or why it does not parse."""
        try:
            parsed = parser(self.text, tools)
        except Exception as exc:  # the parsers raise ValueError, JSONDecodeError, KeyError, ...
            return [], [], f"{type(exc).__name__}: {exc}"
        items = parsed if isinstance(parsed, list) else [parsed]
        if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
            return [], [], "the parser found no function name"
        calls, deltas = [], []
        for position, item in enumerate(items):
            arguments = item.get("arguments", {})
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError as exc:
                    return [], [], f"the arguments are not JSON: {exc}"
            if position == 0 and self.named:
                index, call_id = self.index, self.call_id
                rest = self._arguments_fragment(final=True)
                if rest:
                    deltas.append(ToolCallDelta(index, arguments=rest))
            else:
                index = self.index if position == 0 else next_index + position - 1
                call_id = self.call_id if position == 0 else f"call_{uuid.uuid4().hex[:24]}"
                text = json.dumps(arguments, ensure_ascii=False)
                deltas.append(ToolCallDelta(index, call_id, item["name"], text))
            calls.append(ToolCall(index, call_id, item["name"], arguments))
        return calls, deltas, None


class ChatSplitter:
    """One chat stream's output: each released token event is rewritten in place so that its
    `text` is the answer's, `reasoning` the thinking's and `tool_calls` the calls' pieces."""

    def __init__(self, tokenizer: Any, spec: ChatOutput) -> None:
        self.parser, self.tools = tokenizer.tool_parser, spec.tools
        machine = TextStateMachine(transitions(tokenizer, spec.parse_tools))
        self.state = machine.make_state(REASONING if spec.starts_in_reasoning and tokenizer.has_thinking else NORMAL)
        self.tool_names = {tool["function"]["name"] for tool in spec.tools or ()}
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[ToolCall] = []
        self.errors: list[ToolCallError] = []
        self.reasoning_tokens = 0
        self._open: _OpenCall | None = None
        self._next_index = 0
        # Formats without an end marker (mlx-lm's mistral) close their last call at the end of the output.
        self.closes_at_end = spec.parse_tools and not tokenizer.tool_call_end

    def split(self, event: TokenEvent) -> None:
        self.state, segments = TextStateMachine.split(self.state, event.text)
        if any(state == REASONING for state, _ in segments):
            self.reasoning_tokens += 1
        content: list[str] = []
        reasoning: list[str] = []
        deltas: list[ToolCallDelta] = []
        for position, (state, text) in enumerate(segments):
            if state == TOOL:
                if self._open is None:
                    self._open = _OpenCall(self._next_index)
                    self._next_index += 1
                deltas += self._open.grow(text)
                if position < len(segments) - 1:  # the section's end marker came
                    deltas += self._close_call()
            elif state == REASONING:
                reasoning.append(text)
            else:
                content.append(text)
        event.text = "".join(content)
        self.content.append(event.text)
        if reasoning:
            event.reasoning = "".join(reasoning)
            self.reasoning.append(event.reasoning)
        if deltas:
            event.tool_calls = deltas

    def finish(self, last_token: int) -> TokenEvent | None:
        """The stream ends: text held back as a possible marker goes out; an open call is an error."""
        state, held, name = TextStateMachine.flush(self.state)
        self.state = state
        if self._open is not None:
            self._open.text += held
            if self.closes_at_end:
                deltas = self._close_call()
                return TokenEvent(last_token, "", tool_calls=deltas) if deltas else None
            self._fail(self._open, "the output ended inside a tool call")
            self._open = None
            return None
        if not held:
            return None
        event = TokenEvent(last_token, held if name != REASONING else "")
        if name == REASONING:
            event.reasoning = held
            self.reasoning.append(held)
        else:
            self.content.append(held)
        return event

    def outcome(self) -> ChatOutcome:
        errors = list(self.errors)
        if self._open is not None:  # cut off inside a call (max_tokens, a stop sequence, cancel)
            errors.append(ToolCallError(self._open.index, self._open.text, "the output ended inside a tool call"))
        return ChatOutcome(
            content="".join(self.content),
            reasoning="".join(self.reasoning) if self.reasoning else None,
            tool_calls=tuple(self.calls),
            tool_call_errors=tuple(errors),
            reasoning_tokens=self.reasoning_tokens,
        )

    def _close_call(self) -> list[ToolCallDelta]:
        call, self._open = self._open, None
        assert call is not None
        calls, deltas, failure = call.close(self.parser, self.tools, self._next_index)
        unknown = next((c.name for c in calls if self.tool_names and c.name not in self.tool_names), None)
        if failure is None and unknown is not None:
            failure = f"no tool is named {unknown!r}"
        if failure is not None:
            self._fail(call, failure)
            return []
        self._next_index += max(0, len(calls) - 1)
        self.calls.extend(calls)
        return deltas

    def _fail(self, call: _OpenCall, reason: str) -> None:
        self.errors.append(ToolCallError(call.index, call.text, reason))


# How far back a stream's history may change between two calls (as the constraint's window).
SYNC_WINDOW = 32


class ReasoningBudget:
    """A logits processor `(tokens, logits) -> logits` that ends thinking after `budget` tokens.

    The first call's history length is the prompt's (as for the structured-output constraint);
    the generated part is searched for the last thinking start and end, so a speculative round
    that rewinds or a batch that re-feeds a token sees the same answer.
    """

    def __init__(self, start: tuple[int, ...], end: tuple[int, ...], budget: int, starts_inside: bool) -> None:
        self.start, self.end, self.budget, self.starts_inside = start, end, budget, starts_inside
        self.prompt_len: int | None = None
        self.ended_at: int | None = None  # generated count when thinking was seen to end

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        flat = tokens.reshape(-1)
        if self.prompt_len is None:
            self.prompt_len = flat.size
        count = flat.size - self.prompt_len
        if self.ended_at is not None and count > self.ended_at + SYNC_WINDOW:
            return logits  # thinking is over for good
        generated = cast("list[int]", flat[self.prompt_len :].tolist()) if count else []
        opened = 0 if self.starts_inside else _rfind(generated, self.start)
        if opened < 0:
            return logits
        body = opened + (0 if self.starts_inside else len(self.start))
        closed = _rfind(generated, self.end, body)
        if closed >= 0:
            self.ended_at = closed
            return logits
        self.ended_at = None
        written = _partial_end(generated, self.end)  # of a multi-token end, what is already there
        if count - body - written < self.budget:
            return logits
        forced = self.end[written]
        allowed = mx.arange(logits.shape[-1]) == forced
        return mx.where(allowed, logits, -mx.inf)


def _rfind(tokens: list[int], sequence: tuple[int, ...], start: int = 0) -> int:
    size = len(sequence)
    for i in range(len(tokens) - size, start - 1, -1):
        if tuple(tokens[i : i + size]) == sequence:
            return i
    return -1


def _partial_end(tokens: list[int], end: tuple[int, ...]) -> int:
    for size in range(len(end) - 1, 0, -1):
        if tuple(tokens[-size:]) == end[:size]:
            return size
    return 0
