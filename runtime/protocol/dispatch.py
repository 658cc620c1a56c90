"""Route each incoming line to its handler and guarantee exactly one response per request.

Handlers run on the reader thread and must return quickly: a plain value is the result; a
`Reply` carrying a Future answers when the future completes (work done by the engine thread or a
loader); `after_send` runs once the response is queued, which is how a stream starts only after
the host has its `stream_id`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from runtime import faults
from runtime.protocol import schemas
from runtime.protocol.envelope import InvalidEnvelope, Request, error_response, parse_request, response
from runtime.protocol.errors import INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError, to_wire_error
from runtime.transport.framing import OversizedLine, decode, recover_id

log = logging.getLogger(__name__)

AfterSend = Callable[[], None]
Sink = Callable[[dict[str, Any] | None, AfterSend | None], None]


@dataclass(frozen=True)
class CallContext:
    request_id: Any
    is_notification: bool


@dataclass(frozen=True)
class Method:
    name: str
    handler: Callable[[dict[str, Any], CallContext], Any]


@dataclass
class Reply:
    result: Any = None
    future: Future[Any] | None = None
    after_send: AfterSend | None = None


def build_method_table(methods: list[Method]) -> dict[str, Method]:
    table: dict[str, Method] = {}
    for method in methods:
        if method.name in table:
            raise ValueError(f"duplicate method {method.name}")
        table[method.name] = method
    return table


class Dispatcher:
    def __init__(self, methods: Mapping[str, Method], send: Callable[[Any], None], max_line_bytes: int) -> None:
        self.methods, self.send, self.max_line_bytes = methods, send, max_line_bytes

    def handle_line(self, line: bytes | OversizedLine) -> None:
        if isinstance(line, OversizedLine):
            message = f"Invalid Request: line of {line.size} bytes exceeds the {self.max_line_bytes}-byte limit"
            data = {"size_bytes": line.size, "limit_bytes": self.max_line_bytes}
            self.send(error_response(recover_id(line.prefix), to_wire_error(RpcError(INVALID_REQUEST, message, data))))
            return
        if not line.strip():
            return
        try:
            obj = decode(line)
        except ValueError:
            self.send(error_response(None, to_wire_error(RpcError(PARSE_ERROR, "Parse error: not valid JSON"))))
            return
        if isinstance(obj, list):
            self._handle_batch(obj)
        else:
            self._handle_one(obj, self._send_single)

    def handle_object(self, obj: Any, sink: Sink) -> None:
        """One request already decoded, answered through `sink` rather than the output: how an
        in-process host (the HTTP front door) calls methods, with the same validation and errors."""
        self._handle_one(obj, sink)

    def _send_single(self, message: dict[str, Any] | None, after_send: AfterSend | None) -> None:
        if message is not None:
            self.send(message)
        if after_send:
            after_send()

    def _handle_batch(self, items: list[Any]) -> None:
        if not items:
            self.send(error_response(None, to_wire_error(RpcError(INVALID_REQUEST, "Invalid Request: empty batch"))))
            return
        collector = _BatchCollector(len(items), self._send_single)
        for item in items:
            self._handle_one(item, collector.add)

    def _handle_one(self, obj: Any, sink: Sink) -> None:
        try:
            request = parse_request(obj)
        except InvalidEnvelope as exc:
            sink(error_response(exc.request_id, to_wire_error(exc)), None)
            return
        try:
            outcome = self._call(request)
        except Exception as exc:  # every failure becomes exactly one response
            self._finish(request, sink, error=exc)
            return
        if isinstance(outcome, Reply) and outcome.future is not None:
            outcome.future.add_done_callback(lambda f: self._complete(request, sink, f, outcome.after_send))
        elif isinstance(outcome, Reply):
            self._finish(request, sink, result=outcome.result, after_send=outcome.after_send)
        else:
            self._finish(request, sink, result=outcome)

    def _call(self, request: Request) -> Any:
        method = self.methods.get(request.method)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {request.method}", {"method": request.method})
        params = {} if request.params is None else request.params
        if isinstance(params, list):
            raise faults.InvalidInput.at("", "params must be an object of named parameters")
        schemas.validate_params(method.name, params)
        return method.handler(params, CallContext(request.id, request.is_notification))

    def _complete(self, request: Request, sink: Sink, future: Future[Any], after_send: AfterSend | None) -> None:
        error = future.exception()
        if error is not None:
            self._finish(request, sink, error=error)
        else:
            self._finish(request, sink, result=future.result(), after_send=after_send)

    def _finish(
        self,
        request: Request,
        sink: Sink,
        *,
        result: Any = None,
        error: BaseException | None = None,
        after_send: AfterSend | None = None,
    ) -> None:
        if request.is_notification:
            if error is not None:
                log.warning("notification %s failed: %s", request.method, to_wire_error(error)["message"])
            sink(None, after_send)
        elif error is not None:
            sink(error_response(request.id, to_wire_error(error)), None)
        else:
            sink(response(request.id, result), after_send)


class _BatchCollector:
    """Gathers the responses of a batch array and sends them as one array when all are in."""

    def __init__(self, expected: int, send: Sink) -> None:
        self._expected, self._send = expected, send
        self._responses: list[dict[str, Any]] = []
        self._after: list[AfterSend] = []
        self._lock = threading.Lock()

    def add(self, message: dict[str, Any] | None, after_send: AfterSend | None) -> None:
        with self._lock:
            if message is not None:
                self._responses.append(message)
            if after_send:
                self._after.append(after_send)
            self._expected -= 1
            done = self._expected == 0
        if done:
            self._send(self._responses or None, self._run_after)  # type: ignore[arg-type]

    def _run_after(self) -> None:
        for hook in self._after:
            hook()
