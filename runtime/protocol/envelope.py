"""JSON-RPC 2.0 envelopes: classify incoming objects, build responses and notifications."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.protocol.errors import INVALID_REQUEST, RpcError

JSONRPC = "2.0"


@dataclass(frozen=True)
class Request:
    method: str
    params: Any
    id: Any = None
    is_notification: bool = False


class InvalidEnvelope(RpcError):
    """An object that is not a valid request; `request_id` is echoed when it was readable."""

    def __init__(self, message: str, request_id: Any = None) -> None:
        super().__init__(INVALID_REQUEST, message)
        self.request_id = request_id


def is_valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def parse_request(obj: Any) -> Request:
    """Check one object against the spec's Request rules; raise InvalidEnvelope otherwise."""
    if not isinstance(obj, dict):
        raise InvalidEnvelope("Invalid Request: expected a JSON object")
    has_id = "id" in obj
    request_id = obj.get("id")
    if not is_valid_id(request_id):
        raise InvalidEnvelope("Invalid Request: id must be a string, a number or null")
    if obj.get("jsonrpc") != JSONRPC:
        raise InvalidEnvelope('Invalid Request: "jsonrpc" must be exactly "2.0"', request_id)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise InvalidEnvelope('Invalid Request: "method" must be a non-empty string', request_id)
    params = obj.get("params")
    if "params" in obj and not isinstance(params, (dict, list)):
        raise InvalidEnvelope('Invalid Request: "params" must be an object or an array', request_id)
    return Request(method, params, request_id, is_notification=not has_id)


def response(request_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": request_id, "result": result}


def error_response(request_id: Any, error: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": request_id, "error": error}


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "method": method, "params": params}
