"""The dispatcher answers every request exactly once, echoes ids exactly and follows the spec."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import orjson
import pytest

from runtime import faults
from runtime.protocol.dispatch import CallContext, Dispatcher, Method, Reply, build_method_table
from runtime.transport.framing import OversizedLine


@pytest.fixture
def sent() -> list[Any]:
    return []


@pytest.fixture
def pending() -> dict[str, Future[Any]]:
    return {}


@pytest.fixture
def dispatcher(sent: list[Any], pending: dict[str, Future[Any]], monkeypatch: pytest.MonkeyPatch) -> Dispatcher:
    monkeypatch.setattr("runtime.protocol.schemas.validate_params", lambda method, params: None)

    def echo(params: dict[str, Any], ctx: CallContext) -> Any:
        return params

    def later(params: dict[str, Any], ctx: CallContext) -> Reply:
        future: Future[Any] = Future()
        pending[params["key"]] = future
        return Reply(future=future, after_send=lambda: sent.append("after"))

    def boom(params: dict[str, Any], ctx: CallContext) -> Any:
        raise RuntimeError("internal detail")

    def invalid(params: dict[str, Any], ctx: CallContext) -> Any:
        raise faults.InvalidInput.at("/x", "must be >= 1")

    table = build_method_table(
        [Method("echo", echo), Method("later", later), Method("boom", boom), Method("invalid", invalid)]
    )
    return Dispatcher(table, sent.append, max_line_bytes=1024)


def line(obj: Any) -> bytes:
    return orjson.dumps(obj)


@pytest.mark.parametrize("request_id", [1, 0, -5, "abc", "", 1.5, None])
def test_ids_are_echoed_with_their_exact_type(dispatcher: Dispatcher, sent: list[Any], request_id: Any) -> None:
    dispatcher.handle_line(line({"jsonrpc": "2.0", "id": request_id, "method": "echo", "params": {"a": 1}}))
    assert sent == [{"jsonrpc": "2.0", "id": request_id, "result": {"a": 1}}]
    assert type(sent[0]["id"]) is type(request_id)


def test_a_notification_gets_no_response_even_when_it_fails(dispatcher: Dispatcher, sent: list[Any]) -> None:
    dispatcher.handle_line(line({"jsonrpc": "2.0", "method": "echo"}))
    dispatcher.handle_line(line({"jsonrpc": "2.0", "method": "boom"}))
    dispatcher.handle_line(line({"jsonrpc": "2.0", "method": "no-such-method"}))
    assert sent == []


@pytest.mark.parametrize(
    "obj, code, echoed",
    [
        ({"jsonrpc": "1.0", "id": 3, "method": "echo"}, -32600, 3),
        ({"id": 3, "method": "echo"}, -32600, 3),
        ({"jsonrpc": "2.0", "id": 3}, -32600, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": 7}, -32600, 3),
        ({"jsonrpc": "2.0", "id": True, "method": "echo"}, -32600, None),
        ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "echo"}, -32600, None),
        ({"jsonrpc": "2.0", "id": 3, "method": "echo", "params": "x"}, -32600, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": "echo", "params": [1, 2]}, -32602, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": "nope"}, -32601, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": "invalid"}, -32602, 3),
        ({"jsonrpc": "2.0", "id": 3, "method": "boom"}, -32603, 3),
        ("a string", -32600, None),
        (17, -32600, None),
    ],
)
def test_each_kind_of_bad_request_gets_its_spec_code(
    dispatcher: Dispatcher, sent: list[Any], obj: Any, code: int, echoed: Any
) -> None:
    dispatcher.handle_line(line(obj))
    assert len(sent) == 1
    assert sent[0]["error"]["code"] == code and sent[0]["id"] == echoed


def test_invalid_json_is_a_parse_error_with_a_null_id(dispatcher: Dispatcher, sent: list[Any]) -> None:
    for bad in (b'{"jsonrpc": "2.0", "id": 1', b"\xff\xfe{}", b"nul", b'{"a":NaN}'):
        dispatcher.handle_line(bad)
    assert [m["error"]["code"] for m in sent] == [-32700] * 4 and all(m["id"] is None for m in sent)


def test_an_internal_error_does_not_leak_the_exception_text(dispatcher: Dispatcher, sent: list[Any]) -> None:
    dispatcher.handle_line(line({"jsonrpc": "2.0", "id": 1, "method": "boom"}))
    assert "internal detail" not in str(sent)


def test_field_errors_come_back_as_data_errors(dispatcher: Dispatcher, sent: list[Any]) -> None:
    dispatcher.handle_line(line({"jsonrpc": "2.0", "id": 1, "method": "invalid"}))
    assert sent[0]["error"]["data"]["errors"] == [{"path": "/x", "message": "must be >= 1"}]


def test_a_batch_is_answered_with_one_array_of_the_non_notification_responses(
    dispatcher: Dispatcher, sent: list[Any]
) -> None:
    dispatcher.handle_line(
        line(
            [
                {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"n": 1}},
                {"jsonrpc": "2.0", "method": "echo"},
                {"jsonrpc": "2.0", "id": 2, "method": "nope"},
                5,
            ]
        )
    )
    assert len(sent) == 1 and isinstance(sent[0], list)
    assert [(m["id"], "error" in m) for m in sent[0]] == [(1, False), (2, True), (None, True)]


def test_a_batch_of_notifications_gets_no_response_and_an_empty_batch_is_invalid(
    dispatcher: Dispatcher, sent: list[Any]
) -> None:
    dispatcher.handle_line(line([{"jsonrpc": "2.0", "method": "echo"}]))
    assert sent == []
    dispatcher.handle_line(b"[]")
    assert sent[0]["error"]["code"] == -32600 and sent[0]["id"] is None


def test_a_future_reply_answers_when_done_and_then_runs_after_send(
    dispatcher: Dispatcher, sent: list[Any], pending: dict[str, Future[Any]]
) -> None:
    dispatcher.handle_line(line({"jsonrpc": "2.0", "id": 9, "method": "later", "params": {"key": "k"}}))
    assert sent == []
    pending["k"].set_result({"done": True})
    assert sent == [{"jsonrpc": "2.0", "id": 9, "result": {"done": True}}, "after"]


def test_a_batch_waits_for_its_slow_member(
    dispatcher: Dispatcher, sent: list[Any], pending: dict[str, Future[Any]]
) -> None:
    dispatcher.handle_line(
        line(
            [
                {"jsonrpc": "2.0", "id": 1, "method": "later", "params": {"key": "a"}},
                {"jsonrpc": "2.0", "id": 2, "method": "echo", "params": {}},
            ]
        )
    )
    assert sent == []
    pending["a"].set_exception(faults.ModelNotLoaded("Model not loaded: m", model_id="m"))
    assert sorted(m["id"] for m in sent[0]) == [1, 2]
    assert next(m for m in sent[0] if m["id"] == 1)["error"]["code"] == -32005


def test_an_oversized_line_is_invalid_request_with_the_recovered_id(dispatcher: Dispatcher, sent: list[Any]) -> None:
    dispatcher.handle_line(OversizedLine(5000, b'{"jsonrpc":"2.0","id":12,"method":"echo","params":"'))
    assert sent[0]["id"] == 12 and sent[0]["error"]["code"] == -32600
    assert sent[0]["error"]["data"] == {"size_bytes": 5000, "limit_bytes": 1024}


def test_blank_lines_are_ignored(dispatcher: Dispatcher, sent: list[Any]) -> None:
    dispatcher.handle_line(b"   \r")
    assert sent == []


def test_duplicate_method_names_are_refused() -> None:
    with pytest.raises(ValueError):
        build_method_table([Method("a", lambda p, c: None), Method("a", lambda p, c: None)])
