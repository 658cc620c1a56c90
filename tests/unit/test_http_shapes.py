"""The HTTP front door's translation layer (runtime/transport/http: openai_shapes, anthropic_shapes,
errors): bodies map onto wire params the runtime's own schemas accept, and every dict produced for a
client parses as the official SDK's type (openai, anthropic), streams rebuilt by the SDKs' own
accumulators included.

The runtime messages below are copied from real runs of the embedded tiny-chat model (temperature
0): a tool call for "What is the weather in Paris?" with the get_weather tool (docs/chat.md), two
calls in one turn, a thinking answer with logprobs ("What is 3 plus 4?"), and a plain prompt.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.shared import ErrorObject
from pydantic import TypeAdapter
from starlette.responses import JSONResponse

from runtime.protocol import errors as rpc_errors
from runtime.protocol import schemas
from runtime.transport.http import anthropic_shapes, openai_shapes
from runtime.transport.http.anthropic_shapes import MessagesStream, message_response, messages_params
from runtime.transport.http.errors import (
    HttpError,
    anthropic_error_body,
    from_rpc_error,
    openai_error_body,
)
from runtime.transport.http.openai_shapes import ChatStream, CompletionStream, chat_completion, chat_params

Json = dict[str, Any]
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)


# --- real runtime messages, written compactly ------------------------------------------------------
def t(
    token: str,
    token_id: int,
    reasoning: str | None = None,
    calls: list[Json] | None = None,
    lp: float | None = None,
    top: list[tuple[int, str, float]] | None = None,
) -> Json:
    """One token entry of stream.chunk, as the runtime writes it (runtime/streams/publisher.py)."""
    entry: Json = {"token": token, "token_id": token_id, "is_final": False}
    if reasoning is not None:
        entry["reasoning"] = reasoning
    if calls is not None:
        entry["tool_calls"] = calls
    if lp is not None:
        entry["logprob"] = lp
        entry["top_logprobs"] = [{"token_id": i, "token": s, "logprob": p} for i, s, p in top or ()]
    return entry


def start(index: int, call_id: str, name: str) -> Json:
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}


def args(index: int, text: str) -> Json:
    return {"index": index, "function": {"arguments": text}}


def chunk(*entries: Json) -> Json:
    return {"stream_id": "s", "tokens": list(entries), "batch_size": len(entries), "is_batch": True}


TOOL_CHUNKS = [
    chunk(t("", 5)),
    chunk(t("", 207), t("", 274)),
    chunk(t("", 287), t("", 266)),
    chunk(t("", 265), t("", 363)),
    chunk(t("", 71), t("", 586), t("", 283)),
    chunk(t("", 265), t("", 372)),
    chunk(t("", 266), t("", 291, calls=[start(0, "call_03b49976edd8421e9e467753", "get_weather"), args(0, '{"')])),
    chunk(t("", 365, calls=[args(0, "city")]), t("", 266, calls=[args(0, '":')])),
    chunk(t("", 265, calls=[args(0, ' "')]), t("", 979, calls=[args(0, "Berlin")])),
    chunk(t("", 367, calls=[args(0, '"}')]), t("", 207)),
    chunk(t("", 6)),
]
TOOL_STATS = {
    "stream_id": "tool",
    "tokens_generated": 21,
    "tokens_per_second": 215.59964009530367,
    "time_to_first_token": 0.0720966139997472,
    "total_time": 0.16949937399840564,
    "prompt_tokens": 163,
    "cached_tokens": 0,
    "prefill_tokens": 163,
    "finish_reason": "tool_calls",
    "usage": {
        "prompt_tokens": 163,
        "completion_tokens": 21,
        "total_tokens": 184,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "path": "solo",
    "handovers": 0,
    "kv_cache_bytes": 524288,
}
TOOL_EVENT = {
    "stream_id": "tool",
    "event": "completed",
    "is_final": True,
    "finish_reason": "tool_calls",
    "content": "",
    "tool_calls": [
        {
            "index": 0,
            "id": "call_03b49976edd8421e9e467753",
            "type": "function",
            "name": "get_weather",
            "arguments": {"city": "Berlin"},
            "function": {"name": "get_weather", "arguments": '{"city": "Berlin"}'},
        }
    ],
}
PARALLEL_CHUNKS = [
    chunk(t("", 5)),
    chunk(t("", 207), t("", 274), t("", 287)),
    chunk(t("", 266), t("", 265), t("", 363)),
    chunk(t("", 71), t("", 586), t("", 283)),
    chunk(t("", 265), t("", 372), t("", 266)),
    chunk(
        t("", 291, calls=[start(0, "call_d77e293fa28a44229ea7102f", "get_weather"), args(0, '{"')]),
        t("", 365, calls=[args(0, "city")]),
        t("", 266, calls=[args(0, '":')]),
    ),
    chunk(t("", 265, calls=[args(0, ' "')]), t("", 979, calls=[args(0, "Berlin")])),
    chunk(t("", 367, calls=[args(0, '"}')]), t("", 207), t("", 6)),
    chunk(t("\n", 207), t("", 5)),
    chunk(t("", 207), t("", 274), t("", 287)),
    chunk(t("", 266), t("", 265), t("", 363), t("", 71)),
    chunk(t("", 586), t("", 283), t("", 265), t("", 372)),
    chunk(
        t("", 266),
        t("", 291, calls=[start(1, "call_37997ce2de284efba67d232a", "get_weather"), args(1, '{"')]),
        t("", 365, calls=[args(1, "city")]),
    ),
    chunk(t("", 266, calls=[args(1, '":')]), t("", 265, calls=[args(1, ' "')]), t("", 984, calls=[args(1, "Tokyo")])),
    chunk(t("", 367, calls=[args(1, '"}')]), t("", 207), t("", 6)),
]
PARALLEL_STATS = {
    "stream_id": "two",
    "tokens_generated": 43,
    "tokens_per_second": 320.330664682024,
    "time_to_first_token": 0.025408457999219536,
    "total_time": 0.1596447479987546,
    "prompt_tokens": 165,
    "cached_tokens": 1,
    "prefill_tokens": 164,
    "finish_reason": "tool_calls",
    "usage": {
        "prompt_tokens": 165,
        "completion_tokens": 43,
        "total_tokens": 208,
        "cached_tokens": 1,
        "reasoning_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "path": "solo",
    "handovers": 0,
    "kv_cache_bytes": 526336,
}
PARALLEL_EVENT = {
    "stream_id": "two",
    "event": "completed",
    "is_final": True,
    "finish_reason": "tool_calls",
    "content": "\n",
    "tool_calls": [
        {
            "index": 0,
            "id": "call_d77e293fa28a44229ea7102f",
            "type": "function",
            "name": "get_weather",
            "arguments": {"city": "Berlin"},
            "function": {"name": "get_weather", "arguments": '{"city": "Berlin"}'},
        },
        {
            "index": 1,
            "id": "call_37997ce2de284efba67d232a",
            "type": "function",
            "name": "get_weather",
            "arguments": {"city": "Tokyo"},
            "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
        },
    ],
}
THINKING_CHUNKS = [
    chunk(
        t(
            "",
            3,
            reasoning="",
            lp=-0.26347923278808594,
            top=[(3, "<think>", -0.26347923278808594), (5, "<tool_call>", -2.8817577362060547)],
        )
    ),
    chunk(
        t(
            "",
            207,
            reasoning="\n",
            lp=-0.5120525360107422,
            top=[(207, "\n", -0.5120525360107422), (699, "\n\n", -0.9340639114379883)],
        ),
        t(
            "",
            579,
            reasoning="The",
            lp=-0.001384735107421875,
            top=[(579, "The", -0.001384735107421875), (4, "</think>", -7.272736549377441)],
        ),
        t(
            "",
            468,
            reasoning=" user",
            lp=-0.0019321441650390625,
            top=[(468, " user", -0.0019321441650390625), (309, "user", -6.614468574523926)],
        ),
    ),
    chunk(
        t(
            "",
            709,
            reasoning=" asks",
            lp=-0.005473136901855469,
            top=[(709, " asks", -0.005473136901855469), (987, " wants", -5.809764862060547)],
        ),
        t(
            "",
            598,
            reasoning=" for",
            lp=-0.00128936767578125,
            top=[(598, " for", -0.00128936767578125), (1030, " add", -7.606142044067383)],
        ),
        t(
            "",
            735,
            reasoning=" 0",
            lp=-2.548203468322754,
            top=[(735, " 0", -2.548203468322754), (852, " 15", -2.5584678649902344)],
        ),
    ),
    chunk(
        t(
            "",
            466,
            reasoning=" plus",
            lp=-0.001941680908203125,
            top=[(466, " plus", -0.001941680908203125), (301, " and", -7.533931732177734)],
        ),
        t(
            "",
            735,
            reasoning=" 0",
            lp=-2.6600399017333984,
            top=[(735, " 0", -2.6600399017333984), (852, " 15", -2.7496862411499023)],
        ),
        t(
            "",
            22,
            reasoning=".",
            lp=-0.0024690628051757812,
            top=[(22, ".", -0.0024690628051757812), (816, " of", -7.218884468078613)],
        ),
    ),
    chunk(
        t(
            "",
            698,
            reasoning=" 6",
            lp=-2.5761165618896484,
            top=[(698, " 6", -2.5761165618896484), (852, " 15", -2.818859100341797)],
        ),
        t(
            "",
            466,
            reasoning=" plus",
            lp=-0.0017032623291015625,
            top=[(466, " plus", -0.0017032623291015625), (22, ".", -7.415899276733398)],
        ),
        t(
            "",
            735,
            reasoning=" 0",
            lp=-2.4250049591064453,
            top=[(735, " 0", -2.4250049591064453), (852, " 15", -2.4851322174072266)],
        ),
    ),
    chunk(
        t(
            "",
            330,
            reasoning=" is",
            lp=-0.000133514404296875,
            top=[(330, " is", -0.000133514404296875), (422, " as", -10.838836669921875)],
        ),
        t(
            "",
            1044,
            reasoning=" 23",
            lp=-2.891256332397461,
            top=[(1044, " 23", -2.891256332397461), (1042, " 21", -2.904923439025879)],
        ),
        t(
            "",
            22,
            reasoning=".",
            lp=-0.00022125244140625,
            top=[(22, ".", -0.00022125244140625), (39, "?", -9.808942794799805)],
        ),
    ),
    chunk(
        t(
            "",
            207,
            reasoning="\n",
            lp=-0.00516510009765625,
            top=[(207, "\n", -0.00516510009765625), (2, "<|im_end|>", -5.801431655883789)],
        ),
        t(
            "",
            4,
            reasoning="",
            lp=-0.004650115966796875,
            top=[(4, "</think>", -0.004650115966796875), (3, "<think>", -7.3885087966918945)],
        ),
        t(
            "\n",
            207,
            lp=-0.0031147003173828125,
            top=[(207, "\n", -0.0031147003173828125), (699, "\n\n", -5.933063507080078)],
        ),
    ),
    chunk(
        t(
            "\n",
            207,
            lp=-0.0014066696166992188,
            top=[(207, "\n", -0.0014066696166992188), (7, "<tool_response>", -8.528985023498535)],
        ),
        t("1", 25, lp=-2.7249441146850586, top=[(25, "1", -2.7249441146850586), (30, "6", -2.7952117919921875)]),
        t(
            " plus",
            466,
            lp=-0.0004425048828125,
            top=[(466, " plus", -0.0004425048828125), (471, " it", -9.000178337097168)],
        ),
    ),
    chunk(
        t(" 15", 852, lp=-2.641569137573242, top=[(852, " 15", -2.641569137573242), (698, " 6", -2.7298707962036133)]),
        t(
            " is",
            330,
            lp=-5.91278076171875e-05,
            top=[(330, " is", -5.91278076171875e-05), (301, " and", -10.62643051147461)],
        ),
        t(
            " 21",
            1042,
            lp=-2.867513656616211,
            top=[(1042, " 21", -2.867513656616211), (1044, " 23", -2.9111528396606445)],
        ),
    ),
    chunk(
        t(".", 22, lp=-0.000347137451171875, top=[(22, ".", -0.000347137451171875), (301, " and", -8.304997444152832)])
    ),
]
THINKING_STATS = {
    "stream_id": "math",
    "tokens_generated": 26,
    "tokens_per_second": 306.7557442887711,
    "time_to_first_token": 0.014369378999617766,
    "total_time": 0.0991273679992446,
    "prompt_tokens": 14,
    "cached_tokens": 0,
    "prefill_tokens": 14,
    "finish_reason": "stop",
    "usage": {
        "prompt_tokens": 14,
        "completion_tokens": 26,
        "total_tokens": 40,
        "cached_tokens": 0,
        "reasoning_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 18},
    },
    "path": "solo",
    "handovers": 0,
    "kv_cache_bytes": 524288,
}
THINKING_EVENT = {
    "stream_id": "math",
    "event": "completed",
    "is_final": True,
    "finish_reason": "stop",
    "content": "\n\n1 plus 15 is 21.",
    "reasoning": "\nThe user asks for 0 plus 0. 6 plus 0 is 23.\n",
}
TEXT_CHUNKS = [
    chunk(t(",", 20)),
    chunk(t(" there", 392), t(" was", 356), t(" a", 267)),
    chunk(t(" curious", 788), t(" cat", 875), t(" named", 349)),
    chunk(t(" Ivy", 661), t(".", 22), t(" One", 513)),
    chunk(t(" day", 370), t(",", 20)),
]
TEXT_STATS = {
    "stream_id": "text",
    "tokens_generated": 12,
    "tokens_per_second": 333.49820187072123,
    "time_to_first_token": 0.009495230000538868,
    "total_time": 0.045477433000996825,
    "prompt_tokens": 4,
    "cached_tokens": 0,
    "prefill_tokens": 4,
    "finish_reason": "length",
    "usage": {
        "prompt_tokens": 4,
        "completion_tokens": 12,
        "total_tokens": 16,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "path": "solo",
    "handovers": 0,
    "kv_cache_bytes": 524288,
}
TEXT_EVENT = {"stream_id": "text", "event": "completed", "is_final": True, "finish_reason": "length"}
TOOL_WHOLE = {
    "stream_id": "63cb410e-684f-4234-97a1-095ee8a6527f",
    "started_at": 1796195138.7459152,
    "content": "",
    "finish_reason": "tool_calls",
    "tool_calls": [
        {
            "index": 0,
            "id": "call_13745e4a142647e0a4692ebd",
            "type": "function",
            "name": "get_weather",
            "arguments": {"city": "Berlin"},
            "function": {"name": "get_weather", "arguments": '{"city": "Berlin"}'},
        }
    ],
    "usage": {
        "prompt_tokens": 163,
        "completion_tokens": 21,
        "total_tokens": 184,
        "cached_tokens": 162,
        "reasoning_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 162},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "stats": {
        "tokens_generated": 21,
        "tokens_per_second": 197.47028156755297,
        "time_to_first_token": 0.010562258999925689,
        "total_time": 0.11690737500066462,
        "prompt_tokens": 163,
        "cached_tokens": 162,
        "prefill_tokens": 1,
        "finish_reason": "tool_calls",
        "usage": {
            "prompt_tokens": 163,
            "completion_tokens": 21,
            "total_tokens": 184,
            "cached_tokens": 162,
            "reasoning_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": 162},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "path": "solo",
        "handovers": 0,
        "kv_cache_bytes": 856064,
    },
}
TEXT_WHOLE = {
    "stream_id": "a09204ab-716c-47ea-a4e7-efe04afdcf6c",
    "started_at": 1796195139.282329,
    "content": ", there was a curious cat named Ivy. One day,",
    "finish_reason": "length",
    "usage": {
        "prompt_tokens": 4,
        "completion_tokens": 12,
        "total_tokens": 16,
        "cached_tokens": 3,
        "reasoning_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "stats": {
        "tokens_generated": 12,
        "tokens_per_second": 365.3914939961405,
        "time_to_first_token": 0.0076552700011234265,
        "total_time": 0.04049675700116495,
        "prompt_tokens": 4,
        "cached_tokens": 3,
        "prefill_tokens": 1,
        "finish_reason": "length",
        "usage": {
            "prompt_tokens": 4,
            "completion_tokens": 12,
            "total_tokens": 16,
            "cached_tokens": 3,
            "reasoning_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "path": "solo",
        "handovers": 0,
        "kv_cache_bytes": 530432,
    },
}
MODELS = {
    "models": [
        {
            "model_id": "tiny-chat",
            "registered": False,
            "aliases": [],
            "source": {"kind": "embedded"},
            "state": "ready",
            "pinned": False,
            "keep_alive": "-1",
            "draft_model_id": None,
            "disk_bytes": 7410572,
            "memory_bytes": 7330560,
            "expires_in_s": None,
        }
    ],
    "default_model": None,
    "models_file": None,
}
ERRORS = [
    {"code": -32005, "message": "Model not loaded: nope", "data": {"type": "ModelNotLoaded", "model_id": "nope"}},
    {
        "code": -32602,
        "message": "Invalid params",
        "data": {"type": "InvalidInput", "errors": [{"path": "/temperature", "message": "must be <= 2"}]},
    },
    {"code": -32601, "message": "Method not found: nosuch", "data": {"method": "nosuch"}},
]


WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER}}
]
ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Current weather", "input_schema": WEATHER}]
STREAMS = {
    "tool": (TOOL_CHUNKS, TOOL_STATS, TOOL_EVENT),
    "parallel": (PARALLEL_CHUNKS, PARALLEL_STATS, PARALLEL_EVENT),
    "thinking": (THINKING_CHUNKS, THINKING_STATS, THINKING_EVENT),
    "text": (TEXT_CHUNKS, TEXT_STATS, TEXT_EVENT),
}


def whole(chunks: list[Json], stats: Json, event: Json, logprobs: bool = False) -> Json:
    """The non-streaming result of the same run, built as runtime/streams/whole.py builds it."""
    stats = {k: v for k, v in stats.items() if k != "stream_id"}
    outcome = {k: v for k, v in event.items() if k not in ("stream_id", "event", "is_final")}
    entries = [e for c in chunks for e in c["tokens"]]
    result = {"stream_id": "s", "started_at": 1796195138.7, "content": "".join(e["token"] for e in entries)}
    result.update({**outcome, "usage": stats["usage"], "stats": stats})
    if logprobs:
        result["tokens"] = entries
    return result


def openai_stream(name: str, include_usage: bool = False, want_logprobs: bool = False) -> list[Json]:
    chunks, stats, event = STREAMS[name]
    shaper = ChatStream("chatcmpl-1", "tiny-chat", 1796195138, include_usage, want_logprobs)
    out = shaper.first()
    for params in chunks:
        out += shaper.chunk(params)
    return out + shaper.end(stats, event)


def anthropic_stream(name: str) -> list[tuple[str, Json]]:
    chunks, stats, event = STREAMS[name]
    shaper = MessagesStream("msg_1", "tiny-chat", 0)
    out = shaper.start()
    for params in chunks:
        out += shaper.chunk(params)
    return out + shaper.end(stats, event)


def openai_rebuilt(chunks: Iterable[Json]) -> ChatCompletion:
    """What the openai SDK's own stream accumulator makes of the chunks (its snapshot: the final
    parse refuses a "length" finish by design)."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for payload in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(payload))
    return ChatCompletion.model_validate(state.current_completion_snapshot.model_dump())


def anthropic_rebuilt(events: Iterable[tuple[str, Json]]) -> Message:
    """What the anthropic SDK's own stream accumulator makes of the events."""
    snapshot, buffers = None, {}
    for _, data in events:
        snapshot = accumulate_event(
            event=STREAM_EVENT.validate_python(data), current_snapshot=snapshot, json_bufs=buffers
        )
    assert snapshot is not None
    return snapshot


def generate_problems(params: Json) -> list[dict[str, str]]:
    """What the runtime's own schema says of the params (an empty list: accepted)."""
    return schemas.check(schemas.method_schemas()["generate"], "params", params)


# --- the fixtures are what the runtime sends -------------------------------------------------------
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_the_recorded_runtime_messages_fit_the_runtime_schemas(name: str) -> None:
    chunks, stats, event = STREAMS[name]
    notifications = schemas.notification_schemas()
    for params in chunks:
        assert schemas.check(notifications["stream.chunk"], "params", params) == []
    assert schemas.check(notifications["stream.stats"], "params", stats) == []
    assert schemas.check(notifications["stream.event"], "params", event) == []
    result_schema = schemas.method_schemas()["generate"]
    assert schemas.check(result_schema, "result", whole(chunks, stats, event, logprobs=name == "thinking")) == []
    assert schemas.check(result_schema, "result", TOOL_WHOLE) == []


def test_the_translation_layer_imports_no_engine_no_methods_and_no_heavy_library() -> None:
    code = (
        "import sys; import runtime.transport.http.openai_shapes, runtime.transport.http.anthropic_shapes;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'numpy', 'starlette')"
        " or m.startswith(('runtime.engine', 'runtime.methods'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


# --- errors ----------------------------------------------------------------------------------------
def test_the_error_codes_are_the_runtime_protocol_codes() -> None:
    from runtime.transport.http import errors

    for name in ("INVALID_PARAMS", "METHOD_NOT_FOUND", "MODEL_NOT_LOADED", "BUSY", "CIRCUIT_OPEN", "OUT_OF_MEMORY"):
        assert getattr(errors, name) == getattr(rpc_errors, name)
    table = {row["code"] for row in schemas.error_table()}
    assert table == {code for code in vars(errors).values() if isinstance(code, int) and -32800 < code < -31999}


def test_invalid_params_name_the_body_field_and_list_every_problem() -> None:
    real = ERRORS[1]  # temperature 9
    err = from_rpc_error(real)
    assert (err.status, err.type, err.param) == (400, "invalid_request_error", "temperature")
    assert err.message == "temperature: must be <= 2"
    assert err.details == [{"path": "temperature", "message": "must be <= 2"}]
    several = {
        "code": -32602,
        "message": "Invalid params",
        "data": {
            "errors": [
                {"path": "/stop_sequences", "message": "must have at most 16 items"},
                {"path": "/messages/0/content/1/text", "message": "must be a string"},
            ]
        },
    }
    err = from_rpc_error(several, openai_shapes.PARAM_NAMES)
    assert err.param == "stop"
    assert [d["path"] for d in err.details or ()] == ["stop", "messages[0].content[1].text"]
    assert err.message == "stop: must have at most 16 items; messages[0].content[1].text: must be a string"


def test_a_model_that_is_not_loaded_is_a_404_model_not_found() -> None:
    err = from_rpc_error(ERRORS[0])
    assert (err.status, err.code, err.param, err.message) == (404, "model_not_found", "model", "Model not loaded: nope")
    assert anthropic_error_body(err)["error"]["type"] == "not_found_error"


def test_busy_is_a_429_and_an_open_breaker_a_503_both_with_retry_after() -> None:
    busy = from_rpc_error({"code": -32006, "message": "Busy", "data": {"type": "Busy", "retry_after_ms": 1500}})
    assert (busy.status, busy.retry_after_s, busy.retry_after_header()) == (429, 1.5, "2")
    breaker = from_rpc_error({"code": -32007, "message": "Circuit open", "data": {"retry_after_ms": 10000}})
    assert (breaker.status, breaker.retry_after_s) == (503, 10.0)
    assert anthropic_error_body(busy)["error"]["type"] == "rate_limit_error"
    assert anthropic_error_body(breaker)["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ERRORS[2], 404),  # method not found (real)
        ({"code": -32004, "message": "schema does not compile", "data": {"mode": "json_schema"}}, 400),
        (
            {"code": -32001, "message": "Failed to get model x/y: not found on hub", "data": {"reason": "not_found"}},
            404,
        ),
        ({"code": -32001, "message": "Failed to load model x: warm-up failed", "data": {"reason": "warm_up"}}, 500),
        ({"code": -32000, "message": "shutting down"}, 503),
        ({"code": -32008, "message": "over budget", "data": {"needed_bytes": 9, "budget_bytes": 1}}, 507),
        ({"code": -32008, "message": "out of memory"}, 503),
        ({"code": -32009, "message": "cancelled"}, 499),
        ({"code": -32009, "message": "timed out", "data": {"reason": "timeout"}}, 408),
        ({"code": -32002, "message": "generation failed"}, 500),
        ({"code": -32003, "message": "the chat template failed"}, 500),
        ({"code": -32603, "message": "Internal error"}, 500),
        ({"code": -31000, "message": "a code nobody knows"}, 500),
    ],
)
def test_each_runtime_error_code_has_its_http_status(error: Json, status: int) -> None:
    assert from_rpc_error(error).status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 429, 499, 500, 503, 507, 529])
def test_error_bodies_parse_as_the_sdks_error_types(status: int) -> None:
    err = HttpError(status, "something went wrong", "invalid_request_error", "temperature", code="x")
    body = openai_error_body(err)
    assert ErrorObject.model_validate(body["error"]).param == "temperature"
    parsed = ErrorResponse.model_validate(anthropic_error_body(err))
    assert parsed.error.message == "something went wrong"


def test_a_body_too_large_is_anthropics_request_too_large() -> None:
    body = anthropic_error_body(HttpError(413, "the body is over the limit", "request_too_large"))
    assert body == {"type": "error", "error": {"type": "request_too_large", "message": "the body is over the limit"}}


# --- OpenAI requests -------------------------------------------------------------------------------
def test_a_chat_body_maps_onto_generate_params_the_runtime_accepts() -> None:
    body = {
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": OPENAI_TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "max_completion_tokens": 120,
        "max_tokens": 5,
        "temperature": 0,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.1,
        "logit_bias": {"42": -100},
        "seed": 7,
        "stop": "\n\n",
        "logprobs": True,
        "top_logprobs": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
        "store": False,
        "metadata": {"k": "v"},
        "service_tier": "auto",
        "n": 1,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER, "strict": True}},
    }
    params = chat_params(body)
    assert params == {
        "model_id": "tiny-chat",
        "format": "openai",
        "messages": body["messages"],
        "tools": OPENAI_TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "max_tokens": 120,
        "temperature": 0,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.1,
        "logit_bias": {"42": -100},
        "seed": 7,
        "stop_sequences": ["\n\n"],
        "logprobs": True,
        "top_logprobs": 2,
        "streaming": True,
        "response_format": body["response_format"],
    }
    assert generate_problems(params) == []
    assert openai_shapes.include_usage(body)


def test_a_chat_body_without_stream_asks_for_a_whole_answer_and_nulls_mean_defaults() -> None:
    params = chat_params({"model": "m", "messages": [], "temperature": None, "stop": ["a", "b"], "max_tokens": 9})
    assert params == {
        "model_id": "m",
        "format": "openai",
        "messages": [],
        "stop_sequences": ["a", "b"],
        "max_tokens": 9,
        "streaming": False,
    }
    assert "model_id" not in chat_params({"messages": []})  # the server puts its default model


def test_n_other_than_one_is_refused_naming_n() -> None:
    with pytest.raises(HttpError) as caught:
        chat_params({"model": "m", "messages": [], "n": 2})
    assert (caught.value.status, caught.value.param) == (400, "n")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("audio", {"voice": "alloy", "format": "mp3"}),
        ("modalities", ["text", "audio"]),
        ("prediction", {"type": "content", "content": "x"}),
        ("web_search_options", {}),
        ("functions", [{"name": "f"}]),
        ("moderation", {"input": {"mode": "block"}}),
    ],
)
def test_fields_openai_defines_but_the_runtime_lacks_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(HttpError) as caught:
        chat_params({"model": "m", "messages": [], field: value})
    assert (caught.value.status, caught.value.param) == (400, field)
    assert field in caught.value.message


def test_unknown_fields_are_refused_and_runtime_options_pass_through() -> None:
    with pytest.raises(HttpError) as caught:
        chat_params({"model": "m", "messages": [], "temprature": 0})
    assert caught.value.param == "temprature"
    extras = {"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "guidance": {"mode": "regex", "pattern": "a+"}}
    extras |= {"session_id": "chat-1", "priority": "high", "timeout_ms": 5000, "stop_token_ids": [2]}
    params = chat_params({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extras})
    assert {k: params[k] for k in extras} == extras
    assert generate_problems(params) == []
    assert chat_params({"model": "m", "messages": [], "modalities": ["text"]})["model_id"] == "m"


@pytest.mark.parametrize(
    ("fields", "kwargs"),
    [
        ({"reasoning_effort": "none"}, {"enable_thinking": False}),
        ({"reasoning_effort": "high"}, {"enable_thinking": True}),
        ({"enable_thinking": False}, {"enable_thinking": False}),
        ({"reasoning_effort": "low", "chat_template_kwargs": {"enable_thinking": False}}, {"enable_thinking": False}),
        ({"chat_template_kwargs": {"custom": 1}, "reasoning_effort": "none"}, {"custom": 1, "enable_thinking": False}),
    ],
)
def test_reasoning_effort_and_enable_thinking_become_the_templates_switch(fields: Json, kwargs: Json) -> None:
    params = chat_params({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})
    assert params["chat_template_kwargs"] == kwargs
    assert generate_problems(params) == []


def test_an_assistant_message_echoed_from_an_sdk_response_loses_its_null_fields() -> None:
    response = chat_completion(TOOL_WHOLE, "tiny-chat", "chatcmpl-1", 1)
    echoed = ChatCompletion.model_validate(response).choices[0].message.model_dump()  # refusal, audio... None
    history = [{"role": "user", "content": "What is the weather in Paris?"}, {**echoed, "annotations": []}]
    history.append({"role": "tool", "tool_call_id": echoed["tool_calls"][0]["id"], "content": '{"temp": 18}'})
    params = chat_params({"model": "tiny-chat", "messages": history, "tools": OPENAI_TOOLS})
    assert generate_problems(params) == []
    assert params["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_completions_body_maps_one_prompt_and_refuses_what_the_runtime_cannot_do() -> None:
    params = openai_shapes.completion_params({"model": "m", "prompt": ["Once upon a time"], "logprobs": 2, "stop": "."})
    assert params == {
        "model_id": "m",
        "prompt": "Once upon a time",
        "logprobs": True,
        "top_logprobs": 2,
        "stop_sequences": ["."],
        "streaming": False,
    }
    assert generate_problems(params) == []
    assert openai_shapes.completion_params({"model": "m", "prompt": [412, 655]})["prompt_tokens"] == [412, 655]
    assert openai_shapes.completion_params({"model": "m", "prompt": [[412]]})["prompt_tokens"] == [412]
    assert openai_shapes.completion_params({"model": "m", "prompt": "x", "logprobs": 0})["logprobs"] is True
    for refused in ({"prompt": ["a", "b"]}, {"echo": True}, {"best_of": 3}, {"suffix": "end"}, {"n": 2}):
        with pytest.raises(HttpError) as caught:
            openai_shapes.completion_params({"model": "m", "prompt": "x", **refused})
        assert caught.value.param == next(iter(refused))


def test_embedding_and_rerank_bodies_map_onto_embed_and_rerank_params() -> None:
    embed = openai_shapes.embeddings_params(
        {"model": "tiny-embed", "input": ["a", "b"], "dimensions": 4, "encoding_format": "float", "user": "u"}
    )
    assert embed == {"model_id": "tiny-embed", "input": ["a", "b"], "dimensions": 4, "encoding_format": "float"}
    assert schemas.check(schemas.method_schemas()["embed"], "params", embed) == []
    body = {"model": "tiny-rerank", "query": "bread?", "documents": ["Rates rose.", {"text": "Knead it."}], "top_n": 1}
    rerank = openai_shapes.rerank_params({**body, "return_documents": True})
    assert rerank["documents"] == ["Rates rose.", "Knead it."]
    assert schemas.check(schemas.method_schemas()["rerank"], "params", rerank) == []
    with pytest.raises(HttpError) as caught:
        openai_shapes.rerank_params({**body, "documents": [{"image": "x.png"}]})
    assert caught.value.param == "documents[0]"


# --- OpenAI responses: chat --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_every_chat_stream_chunk_parses_as_the_sdks_chunk(name: str) -> None:
    for payload in openai_stream(name, include_usage=True, want_logprobs=True):
        ChatCompletionChunk.model_validate(payload)


def test_a_streamed_tool_call_goes_out_as_openai_tool_call_deltas() -> None:
    chunks = openai_stream("tool")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert all(list(d) == ["tool_calls"] for d in deltas)  # marker tokens send nothing
    first = deltas[0]["tool_calls"][0]
    assert first == {
        "index": 0,
        "id": "call_03b49976edd8421e9e467753",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"'},
    }
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas) == '{"city": "Berlin"}'
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}


@pytest.mark.parametrize("name", ["tool", "parallel", "thinking", "text"])
def test_the_rebuilt_stream_says_what_the_whole_answer_of_the_same_run_says(name: str) -> None:
    chunks, stats, event = STREAMS[name]
    streamed = openai_rebuilt(openai_stream(name, include_usage=True)).choices[0]
    answer = ChatCompletion.model_validate(chat_completion(whole(chunks, stats, event), "tiny-chat", "c", 1))
    expected = answer.choices[0]
    assert streamed.message.content == expected.message.content
    assert streamed.finish_reason == expected.finish_reason
    calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in streamed.message.tool_calls or ()]
    assert calls == [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in expected.message.tool_calls or ()
    ]
    reasoning = (streamed.message.model_extra or {}).get("reasoning_content")
    assert (
        reasoning == (expected.message.model_extra or {}).get("reasoning_content") == STREAMS[name][2].get("reasoning")
    )


def test_two_calls_in_one_turn_keep_their_own_indexes_and_ids() -> None:
    rebuilt = openai_rebuilt(openai_stream("parallel")).choices[0].message
    assert [(c.id, json.loads(c.function.arguments)) for c in rebuilt.tool_calls or ()] == [
        ("call_d77e293fa28a44229ea7102f", {"city": "Berlin"}),
        ("call_37997ce2de284efba67d232a", {"city": "Tokyo"}),
    ]


def test_thinking_streams_as_reasoning_content_before_the_answer() -> None:
    deltas = [c["choices"][0]["delta"] for c in openai_stream("thinking")[1:-1]]
    kinds = [next(iter(d)) for d in deltas]
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning_content")  # all thinking, then all answer
    assert "".join(d.get("reasoning_content", "") for d in deltas) == THINKING_EVENT["reasoning"]
    assert "".join(d.get("content", "") for d in deltas) == THINKING_EVENT["content"]


def test_logprobs_cover_the_answer_tokens_and_concatenate_to_the_content() -> None:
    chunks = openai_stream("thinking", want_logprobs=True)
    items = [i for c in chunks for i in ((c["choices"][0]["logprobs"] or {}).get("content") or ())]
    assert "".join(i["token"] for i in items) == THINKING_EVENT["content"]
    assert items[2] == {
        "token": "1",
        "logprob": items[2]["logprob"],
        "bytes": [49],
        "top_logprobs": items[2]["top_logprobs"],
    }
    assert len(items[2]["top_logprobs"]) == 2
    answer = chat_completion(whole(*STREAMS["thinking"], logprobs=True), "tiny-chat", "c", 1)
    assert ChatCompletion.model_validate(answer).choices[0].logprobs is not None
    assert answer["choices"][0]["logprobs"]["content"] == items
    assert all(c["choices"][0]["logprobs"] is None for c in openai_stream("thinking", want_logprobs=False))


def test_include_usage_ends_with_a_usage_chunk_without_choices() -> None:
    chunks = openai_stream("thinking", include_usage=True)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    usage = ChatCompletionChunk.model_validate(chunks[-1]).usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (14, 26, 40)
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 18
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert all("usage" not in c for c in openai_stream("thinking", include_usage=False))


@pytest.mark.parametrize(
    ("runtime_reason", "openai_reason"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("cancelled", "stop"),
        ("timeout", "length"),
    ],
)
def test_finish_reasons_map_onto_openais(runtime_reason: str, openai_reason: str) -> None:
    event = {**TEXT_EVENT, "finish_reason": runtime_reason}
    last = ChatStream("c", "m", 1, False, False).end(TEXT_STATS, event)[-1]
    assert last["choices"][0]["finish_reason"] == openai_reason
    result = {**TEXT_WHOLE, "finish_reason": runtime_reason}
    assert chat_completion(result, "m", "c", 1)["choices"][0]["finish_reason"] == openai_reason
    legacy = openai_shapes.completion(result, "m", "c", 1)["choices"][0]["finish_reason"]
    assert legacy == ("stop" if openai_reason == "tool_calls" else openai_reason)


def test_an_errored_stream_raises_an_http_error_carrying_the_events_text() -> None:
    event = {
        "stream_id": "s",
        "event": "error",
        "is_final": True,
        "finish_reason": "error",
        "error": "generation failed",
        "error_type": "GenerationFailed",
        "error_code": -32002,
    }
    assert schemas.check(schemas.notification_schemas()["stream.event"], "params", event) == []
    for end in (ChatStream("c", "m", 1, True, False).end, CompletionStream("c", "m", 1, True, None).end):
        with pytest.raises(HttpError) as caught:
            end(None, event)
        assert (caught.value.status, caught.value.message) == (500, "generation failed")
    with pytest.raises(HttpError) as caught:
        MessagesStream("msg", "m", 0).end(None, {**event, "error": "out of memory", "error_code": -32008})
    assert anthropic_error_body(caught.value)["error"] == {"type": "overloaded_error", "message": "out of memory"}


def test_a_whole_tool_call_answer_parses_as_a_chat_completion() -> None:
    answer = ChatCompletion.model_validate(chat_completion(TOOL_WHOLE, "tiny-chat", "chatcmpl-1", 1796195138))
    call = (answer.choices[0].message.tool_calls or [])[0]
    assert (call.type, call.function.name, json.loads(call.function.arguments)) == (
        "function",
        "get_weather",
        {"city": "Berlin"},
    )
    assert answer.choices[0].finish_reason == "tool_calls"
    assert (
        answer.usage and answer.usage.prompt_tokens_details and answer.usage.prompt_tokens_details.cached_tokens == 162
    )


# --- OpenAI responses: completions, models, embeddings, rerank ----------------------------------------
def validate_completion_chunk(payload: Json) -> Completion:
    """The SDK's Completion types finish_reason as required although OpenAI streams null until the
    last chunk (the SDK builds stream chunks without validation), so a null is checked apart."""
    choices = payload["choices"]
    assert all(c["finish_reason"] in (None, "stop", "length") for c in choices)
    return Completion.model_validate({**payload, "choices": [{**c, "finish_reason": "stop"} for c in choices]})


def test_a_streamed_completion_gives_the_same_text_and_logprobs_as_the_whole_one() -> None:
    shaper = CompletionStream("cmpl-1", "tiny-chat", 1, True, 1)
    chunks = shaper.first() + [c for params in TEXT_CHUNKS for c in shaper.chunk(params)]
    chunks += shaper.end(TEXT_STATS, TEXT_EVENT)
    for payload in chunks:
        validate_completion_chunk(payload)
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == TEXT_WHOLE["content"] == ", there was a curious cat named Ivy. One day,"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 16
    answer = Completion.model_validate(openai_shapes.completion(TEXT_WHOLE, "tiny-chat", "cmpl-1", 1))
    assert answer.choices[0].text == text and answer.object == "text_completion"


def test_legacy_logprobs_are_parallel_lists_with_text_offsets() -> None:
    result = whole(*STREAMS["thinking"], logprobs=True)
    logprobs = openai_shapes.completion(result, "m", "c", 1)["choices"][0]["logprobs"]
    assert "".join(logprobs["tokens"]) == result["content"]
    assert logprobs["text_offset"][:3] == [0, 1, 2]  # "\n", "\n", "1"
    assert logprobs["top_logprobs"][2] == {"1": -2.7249441146850586, "6": -2.7952117919921875}


def test_the_model_list_parses_as_openai_models() -> None:
    listing = openai_shapes.models_list(MODELS)
    assert listing["object"] == "list"
    assert [Model.model_validate(m).id for m in listing["data"]] == ["tiny-chat"]


def test_embeddings_and_rerank_results_come_back_in_openai_and_cohere_jina_shapes() -> None:
    embed = {
        "model_id": "tiny-embed",
        "data": [
            {"index": 0, "embedding": [0.61, -0.32, 0.55, 0.47]},
            {"index": 1, "embedding": [0.58, -0.41, 0.52, 0.48]},
        ],
        "dimensions": 4,
        "encoding_format": "float",
        "truncated": [],
        "usage": {"prompt_tokens": 17, "total_tokens": 17, "cached_inputs": 0, "cached_tokens": 0},
        "batches": 1,
    }
    response = CreateEmbeddingResponse.model_validate(openai_shapes.embeddings_response(embed, "tiny-embed"))
    assert [d.embedding for d in response.data] == [d["embedding"] for d in embed["data"]]
    assert (response.usage.prompt_tokens, response.model) == (17, "tiny-embed")
    rerank = {
        "model_id": "tiny-rerank",
        "results": [{"index": 1, "relevance_score": 0.97, "document": {"text": "Knead the dough and bake it."}}],
        "truncated": [],
        "usage": {"prompt_tokens": 142, "total_tokens": 142},
        "batches": 1,
    }
    assert openai_shapes.rerank_response(rerank, "tiny-rerank", "rr-1") == {
        "id": "rr-1",
        "results": rerank["results"],
        "model": "tiny-rerank",
        "usage": {"prompt_tokens": 142, "total_tokens": 142},
    }


def test_embedding_vectors_from_the_engine_render_as_json_floats_with_the_cache_figures() -> None:
    """The embed result holds NumPy float32 rows (the stdio writer's orjson writes them itself);
    the body Starlette writes must hold plain floats, and the cache hits must show in usage."""
    rows = np.ascontiguousarray([[0.6, -0.8], [1.0, 0.0]], dtype="<f4")
    embed = {
        "model_id": "tiny-embed",
        "data": [{"index": i, "embedding": row} for i, row in enumerate(list(rows))],
        "usage": {"prompt_tokens": 9, "total_tokens": 9, "cached_inputs": 1, "cached_tokens": 4},
    }
    body = json.loads(JSONResponse(openai_shapes.embeddings_response(embed, "tiny-embed")).body)
    assert [d["embedding"] for d in body["data"]] == rows.tolist()  # the float32 values exactly
    assert body["usage"] == {"prompt_tokens": 9, "total_tokens": 9, "cached_inputs": 1, "cached_tokens": 4}
    response = CreateEmbeddingResponse.model_validate(body)
    assert response.usage.prompt_tokens == 9
    base64_result = {**embed, "data": [{"index": 0, "embedding": "AACAPwAAAAA="}]}
    assert openai_shapes.embeddings_response(base64_result, "m")["data"][0]["embedding"] == "AACAPwAAAAA="


# --- Anthropic requests ----------------------------------------------------------------------------
def test_a_messages_body_maps_onto_generate_params_in_anthropic_form() -> None:
    body = {
        "model": "tiny-chat",
        "max_tokens": 120,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}],
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 64},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }
    params = messages_params(body)
    assert params == {
        "format": "anthropic",
        "model_id": "tiny-chat",
        "max_tokens": 120,
        "system": body["system"],
        "messages": body["messages"],
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": body["tool_choice"],
        "thinking": {"type": "enabled", "budget_tokens": 64},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "streaming": True,
    }
    assert generate_problems(params) == []


def test_adaptive_thinking_and_structured_output_map_onto_what_generate_takes() -> None:
    body = {
        "model": "tiny-chat",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Weather as JSON"}],
        "thinking": {"type": "adaptive", "display": "summarized"},
        "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": WEATHER}},
    }
    params = messages_params(body)
    assert params["thinking"] == {"type": "enabled"}
    assert params["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": WEATHER, "strict": True},
    }
    assert params["streaming"] is False
    assert generate_problems(params) == []


def test_anthropic_fields_the_runtime_lacks_and_unknown_fields_are_refused_by_name() -> None:
    for field in ("container", "mcp_servers", "frobnicate"):
        with pytest.raises(HttpError) as caught:
            messages_params({"model": "m", "max_tokens": 1, "messages": [], field: "x"})
        assert caught.value.param == field
        assert anthropic_error_body(caught.value)["error"]["type"] == "invalid_request_error"


def test_a_count_tokens_body_maps_onto_count_tokens_params() -> None:
    body = {
        "model": "tiny-chat",
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": ANTHROPIC_TOOLS,
    }
    params = anthropic_shapes.count_tokens_params(body)
    assert params == {"format": "anthropic", "model_id": "tiny-chat", **{k: v for k, v in body.items() if k != "model"}}
    assert schemas.check(schemas.method_schemas()["count_tokens"], "params", params) == []
    counted = anthropic_shapes.count_tokens_response({"model_id": "tiny-chat", "input_tokens": 26})
    assert MessageTokensCount.model_validate(counted).input_tokens == 26


# --- Anthropic responses ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_every_anthropic_event_parses_as_the_sdks_stream_event_under_its_own_name(name: str) -> None:
    events = anthropic_stream(name)
    for event_name, data in events:
        assert STREAM_EVENT.validate_python(data).type == event_name == data["type"]
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]


def test_a_tool_call_streams_as_a_tool_use_block_with_input_json_deltas() -> None:
    events = anthropic_stream("tool")
    assert events[1] == (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "tool_use",
                "id": "call_03b49976edd8421e9e467753",
                "name": "get_weather",
                "input": {},
            },
        },
    )
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert fragments == ['{"', 'city":', ' "Berlin', '"}']  # one delta per notification: '{"' | 'city', '":' | ...
    assert events[-3] == ("content_block_stop", {"type": "content_block_stop", "index": 0})
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 21 and delta["usage"]["input_tokens"] == 163


def test_one_notification_sends_at_most_one_delta_per_block() -> None:
    for chunks, _, _ in STREAMS.values():
        shaper = MessagesStream("msg_1", "tiny-chat", 0)
        shaper.start()
        for params in chunks:
            indexes = [d["index"] for n, d in shaper.chunk(params) if n == "content_block_delta"]
            assert len(indexes) == len(set(indexes))


def test_block_indexes_count_from_zero_and_every_block_opens_and_closes_once() -> None:
    for name in STREAMS:
        opened, closed, open_now = [], [], None
        for event_name, data in anthropic_stream(name):
            if event_name == "content_block_start":
                assert open_now is None
                open_now = data["index"]
                opened.append(open_now)
            elif event_name == "content_block_delta":
                assert data["index"] == open_now
            elif event_name == "content_block_stop":
                assert data["index"] == open_now
                closed.append(open_now)
                open_now = None
        assert opened == closed == list(range(len(opened)))


def test_thinking_streams_as_a_thinking_block_signed_before_it_stops_then_the_answer() -> None:
    events = anthropic_stream("thinking")
    blocks = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert blocks == ["thinking", "text"]
    stop = next(i for i, (n, _) in enumerate(events) if n == "content_block_stop")
    assert events[stop - 1][1]["delta"] == {"type": "signature_delta", "signature": anthropic_shapes.THINKING_SIGNATURE}
    rebuilt = anthropic_rebuilt(events)
    thinking, text = rebuilt.content
    assert thinking.type == "thinking" and thinking.thinking == THINKING_EVENT["reasoning"]
    assert text.type == "text" and text.text == THINKING_EVENT["content"]
    assert rebuilt.stop_reason == "end_turn" and rebuilt.usage.output_tokens == 26


def test_whitespace_between_two_calls_opens_no_text_block() -> None:
    events = anthropic_stream("parallel")
    blocks = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [(b["type"], b["id"]) for b in blocks] == [
        ("tool_use", "call_d77e293fa28a44229ea7102f"),
        ("tool_use", "call_37997ce2de284efba67d232a"),
    ]
    assert [b.input for b in anthropic_rebuilt(events).content if b.type == "tool_use"] == [
        {"city": "Berlin"},
        {"city": "Tokyo"},
    ]


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_the_sdks_accumulator_rebuilds_the_whole_message_of_the_same_run(name: str) -> None:
    chunks, stats, event = STREAMS[name]
    rebuilt = anthropic_rebuilt(anthropic_stream(name))
    answer = Message.model_validate(message_response(whole(chunks, stats, event), "tiny-chat", "msg_1"))
    assert [b.model_dump() for b in rebuilt.content] == [b.model_dump() for b in answer.content]
    assert (rebuilt.stop_reason, rebuilt.stop_sequence) == (answer.stop_reason, answer.stop_sequence)
    assert rebuilt.usage.output_tokens == answer.usage.output_tokens
    assert rebuilt.usage.input_tokens == answer.usage.input_tokens
    assert rebuilt.usage.cache_read_input_tokens == answer.usage.cache_read_input_tokens


def test_a_whole_answer_parses_as_an_anthropic_message_with_parsed_tool_input_and_cache_reads() -> None:
    answer = Message.model_validate(message_response(TOOL_WHOLE, "tiny-chat", "msg_1"))
    assert answer.stop_reason == "tool_use"
    (block,) = answer.content
    assert block.type == "tool_use" and (block.id, block.name, block.input) == (
        "call_13745e4a142647e0a4692ebd",
        "get_weather",
        {"city": "Berlin"},
    )
    assert (answer.usage.input_tokens, answer.usage.cache_read_input_tokens, answer.usage.output_tokens) == (1, 162, 21)


@pytest.mark.parametrize(
    ("runtime_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("cancelled", "end_turn"),
        ("timeout", "max_tokens"),
    ],
)
def test_finish_reasons_map_onto_anthropics_stop_reasons(runtime_reason: str, stop_reason: str) -> None:
    events = MessagesStream("msg", "m", 4).end(TEXT_STATS, {**TEXT_EVENT, "finish_reason": runtime_reason})
    assert events[0][1]["delta"]["stop_reason"] == stop_reason
    assert message_response({**TEXT_WHOLE, "finish_reason": runtime_reason}, "m", "msg")["stop_reason"] == stop_reason


def test_a_stop_sequence_is_reported_when_the_runtime_names_it() -> None:
    result = {**TEXT_WHOLE, "finish_reason": "stop", "stop_sequence": "named"}
    answer = Message.model_validate(message_response(result, "m", "msg"))
    assert (answer.stop_reason, answer.stop_sequence) == ("stop_sequence", "named")


def test_message_start_and_ping_are_anthropics() -> None:
    ((name, data),) = MessagesStream("msg_1", "tiny-chat", 131).start()
    parsed = STREAM_EVENT.validate_python(data)
    assert name == "message_start" and parsed.type == "message_start"
    assert parsed.message.usage.input_tokens == 131 and parsed.message.content == []
    assert anthropic_shapes.ping() == ("ping", {"type": "ping"})
