"""HTTP errors of the front door, and the one mapping from the runtime's JSON-RPC errors to them.

`HttpError` is what every translation function raises for a body it cannot map, and what the bridge
raises for a JSON-RPC error of the runtime (`from_rpc_error`). The server writes it in the shape of
the API the client spoke: OpenAI's `{"error": {...}}` or Anthropic's `{"type": "error", ...}`.

The status of each runtime code (docs/errors.md) is chosen for what a client should do next: fix
the request (4xx), wait and retry (429/503 with Retry-After), or report a server fault (5xx). The
official SDKs retry 408, 429 and 5xx by themselves, so a permanent refusal must not be a 5xx.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# The runtime's JSON-RPC codes: the protocol layer's own table (schemas/errors.json).
from runtime.protocol.errors import (  # noqa: E402
    BUSY,
    CIRCUIT_OPEN,
    GENERATION_FAILED,
    GROUP_LOST,
    GUIDANCE_ERROR,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MODEL_LOAD_FAILED,
    MODEL_NOT_LOADED,
    NOT_SUPPORTED,
    OUT_OF_MEMORY,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    SHUTTING_DOWN,
    TOKENIZER_ERROR,
)

# Wire names that every API spells otherwise; each API module adds its own (stop_sequences → stop).
COMMON_PARAM_NAMES: Mapping[str, str] = {"model_id": "model", "streaming": "stream"}


class HttpError(Exception):
    """An HTTP error answer. `type` and `code` use OpenAI's vocabulary (Anthropic's body derives its
    own type from the status); `param` names the body field at fault; `details` lists every field
    problem as `{path, message}` with body-style paths (`messages[0].content`)."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        retry_after_s: float | None = None,
        details: list[dict[str, str]] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param = status, message, type, param
        self.retry_after_s, self.details, self.code = retry_after_s, details, code

    def retry_after_header(self) -> str | None:
        """Retry-After in whole seconds (at least 1), or None when the error gives no delay."""
        return None if self.retry_after_s is None else str(max(1, math.ceil(self.retry_after_s)))

    def __repr__(self) -> str:
        return f"HttpError({self.status}, {self.message!r}, {self.type!r}, param={self.param!r})"


def invalid(message: str, param: str | None = None) -> HttpError:
    """A 400 for a body the translation layer cannot map (before the runtime sees it)."""
    return HttpError(400, message, "invalid_request_error", param)


def unsupported(field: str, why: str = "is not supported by this server") -> HttpError:
    """A 400 naming a field the API defines but the runtime does not implement: refusing it is
    better than silently answering something other than what the client asked for."""
    return invalid(f"{field} {why}", field)


def check_fields(body: Mapping[str, Any], known: frozenset[str], refused: Mapping[str, str]) -> None:
    """Refuse a field the runtime does not implement (`refused`: field → why) when it is set to
    anything but null, and a field nobody defines (as OpenAI and Anthropic refuse unknown ones)."""
    for field, value in body.items():
        if field in refused and value is not None:
            raise unsupported(field, refused[field])
        if field not in known and field not in refused:
            raise invalid(f"Unrecognized request argument supplied: {field}", field)


# --- the runtime's errors -------------------------------------------------------------------------
def from_rpc_error(error: Mapping[str, Any], names: Mapping[str, str] | None = None) -> HttpError:
    """A JSON-RPC error object of the runtime as an HTTP error. `names` maps wire field names to the
    body's (the API module's PARAM_NAMES), so `param` names what the client actually sent."""
    code = error.get("code")
    message = str(error.get("message") or "error")
    raw = error.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    renames = {**COMMON_PARAM_NAMES, **(names or {})}
    if code == INVALID_PARAMS:
        return _invalid_params(message, data, renames)
    mapper = _BY_CODE.get(code) if isinstance(code, int) else None
    return mapper(message, data) if mapper is not None else HttpError(500, message, "server_error")


def _invalid_params(message: str, data: Mapping[str, Any], renames: Mapping[str, str]) -> HttpError:
    """-32602: the runtime's JSON pointers become body field names; every problem is in the message
    (the runtime's own "Invalid params" says nothing by itself)."""
    problems = [e for e in data.get("errors") or () if isinstance(e, dict)]
    details = [
        {"path": body_path(str(e.get("path", "")), renames), "message": str(e.get("message", ""))} for e in problems
    ]
    if not details:
        return HttpError(400, message, "invalid_request_error")
    text = "; ".join(f"{d['path']}: {d['message']}" if d["path"] else d["message"] for d in details)
    return HttpError(400, text, "invalid_request_error", details[0]["path"] or None, details=details)


def body_path(pointer: str, renames: Mapping[str, str] | None = None) -> str:
    """A JSON pointer into the params (`/messages/0/content`) as a body path (`messages[0].content`),
    the first segment renamed to the body's name (`/model_id` → `model`)."""
    segments = [s.replace("~1", "/").replace("~0", "~") for s in pointer.split("/")[1:]] if pointer else []
    if segments and renames:
        segments[0] = renames.get(segments[0], segments[0])
    path = ""
    for segment in segments:
        path += f"[{segment}]" if segment.isdigit() else (f".{segment}" if path else segment)
    return path


def _retry_after(data: Mapping[str, Any]) -> float | None:
    ms = data.get("retry_after_ms")
    return ms / 1000.0 if isinstance(ms, (int, float)) and not isinstance(ms, bool) and ms >= 0 else None


def _not_found_method(message: str, data: Mapping[str, Any]) -> HttpError:
    return HttpError(404, message, "invalid_request_error", code="not_found")


def _model_not_loaded(message: str, data: Mapping[str, Any]) -> HttpError:
    return HttpError(404, message, "invalid_request_error", "model", code="model_not_found")


def _load_failed(message: str, data: Mapping[str, Any]) -> HttpError:
    """A model that does not exist anywhere is the client's mistake (404); a model that exists but
    would not load (download, disk, warm-up) is the server's (500)."""
    if "not found" in message.lower() or data.get("reason") == "not_found":
        return HttpError(404, message, "invalid_request_error", "model", code="model_not_found")
    if data.get("reason") == "no_files":  # the name points at something that is not an MLX model
        return HttpError(400, message, "invalid_request_error", "model", code="model_not_supported")
    return HttpError(500, message, "server_error", code="model_load_failed")


def _guidance(message: str, data: Mapping[str, Any]) -> HttpError:
    # The constraint (response_format, a tool schema, a tool choice the model cannot follow) is the
    # request's: nothing was generated, the same body will fail again.
    return HttpError(400, message, "invalid_request_error", code="invalid_constraint")


def _busy(message: str, data: Mapping[str, Any]) -> HttpError:
    return HttpError(429, message, "rate_limit_error", retry_after_s=_retry_after(data), code="rate_limit_exceeded")


def _circuit_open(message: str, data: Mapping[str, Any]) -> HttpError:
    return HttpError(503, message, "server_error", retry_after_s=_retry_after(data), code="circuit_open")


def _shutting_down(message: str, data: Mapping[str, Any]) -> HttpError:
    return HttpError(503, message, "server_error", code="shutting_down")


def _out_of_memory(message: str, data: Mapping[str, Any]) -> HttpError:
    """A load refused by the memory budget (needed_bytes given) stays refused until models are
    unloaded: 507 Insufficient Storage. A failed allocation mid-run may pass once other streams
    end: 503, retryable."""
    if "needed_bytes" in data or "budget_bytes" in data:
        return HttpError(507, message, "server_error", code="out_of_memory")
    return HttpError(503, message, "server_error", code="out_of_memory")


def _cancelled(message: str, data: Mapping[str, Any]) -> HttpError:
    """The request's own deadline (timeout_ms) passed: 408. Otherwise it was cancelled, which only
    happens when the client went away: 499 (nginx's "client closed request"), never seen by anyone."""
    if data.get("reason") == "timeout":
        return HttpError(408, message, "timeout_error", code="timeout")
    return HttpError(499, message, "request_cancelled", code="request_cancelled")


def _group_lost(message: str, data: Mapping[str, Any]) -> HttpError:
    return HttpError(503, message, "server_error", code="distributed_group_lost")


def _not_supported(message: str, data: Mapping[str, Any]) -> HttpError:
    return HttpError(501, message, "invalid_request_error", code="not_supported")


def _bad_request(message: str, data: Mapping[str, Any]) -> HttpError:
    return HttpError(400, message, "invalid_request_error")


def _server_error(message: str, data: Mapping[str, Any]) -> HttpError:
    return HttpError(500, message, "server_error")


_BY_CODE = {
    PARSE_ERROR: _bad_request,
    INVALID_REQUEST: _bad_request,
    METHOD_NOT_FOUND: _not_found_method,
    INTERNAL_ERROR: _server_error,
    SHUTTING_DOWN: _shutting_down,
    MODEL_LOAD_FAILED: _load_failed,
    GENERATION_FAILED: _server_error,
    TOKENIZER_ERROR: _server_error,
    GUIDANCE_ERROR: _guidance,
    MODEL_NOT_LOADED: _model_not_loaded,
    BUSY: _busy,
    CIRCUIT_OPEN: _circuit_open,
    OUT_OF_MEMORY: _out_of_memory,
    REQUEST_CANCELLED: _cancelled,
    GROUP_LOST: _group_lost,
    NOT_SUPPORTED: _not_supported,
}


def from_stream_error(event: Mapping[str, Any]) -> HttpError:
    """A stream's `stream.event` of `event: "error"` as an HTTP error (sent as an SSE error event:
    the status line is long gone), mapped by the code the same failure would have as a response."""
    error = {"code": event.get("error_code", GENERATION_FAILED), "message": event.get("error") or "generation failed"}
    return from_rpc_error({**error, "data": {"type": event.get("error_type")}})


# --- bodies ---------------------------------------------------------------------------------------
def openai_error_body(err: HttpError) -> dict[str, Any]:
    """OpenAI's error body: `{"error": {message, type, param, code}}`."""
    return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}


# Anthropic's error types by status (its API reference: "HTTP errors"). 529 is its "overloaded";
# this server answers 503 for the same conditions and says overloaded_error in the body.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error_body(err: HttpError) -> dict[str, Any]:
    """Anthropic's error body: `{"type": "error", "error": {type, message}}`."""
    return {"type": "error", "error": {"type": anthropic_error_type(err.status), "message": err.message}}
