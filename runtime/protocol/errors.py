"""JSON-RPC error codes and the single function that turns any exception into a wire error."""

from __future__ import annotations

import logging
from typing import Any

from runtime import faults

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Application codes. -32001..-32005 are the peer's (mlx-serving); the rest are ours.
SHUTTING_DOWN = -32000
MODEL_LOAD_FAILED = -32001
GENERATION_FAILED = -32002
TOKENIZER_ERROR = -32003
GUIDANCE_ERROR = -32004
MODEL_NOT_LOADED = -32005
BUSY = -32006
CIRCUIT_OPEN = -32007
OUT_OF_MEMORY = -32008
REQUEST_CANCELLED = -32009
GROUP_LOST = -32010
NOT_SUPPORTED = -32011

FAULT_CODES: dict[type[faults.Fault], int] = {
    faults.InvalidInput: INVALID_PARAMS,
    faults.ShuttingDown: SHUTTING_DOWN,
    faults.ModelLoadFailed: MODEL_LOAD_FAILED,
    faults.GenerationFailed: GENERATION_FAILED,
    faults.TokenizerFailed: TOKENIZER_ERROR,
    faults.GuidanceFailed: GUIDANCE_ERROR,
    faults.ModelNotLoaded: MODEL_NOT_LOADED,
    faults.Busy: BUSY,
    faults.CircuitOpen: CIRCUIT_OPEN,
    faults.OutOfMemory: OUT_OF_MEMORY,
    faults.Cancelled: REQUEST_CANCELLED,
    faults.GroupLost: GROUP_LOST,
    faults.Unsupported: NOT_SUPPORTED,
}


class RpcError(Exception):
    """An error that is already in wire form (framing and envelope problems)."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def to_wire_error(exc: BaseException) -> dict[str, Any]:
    """The one mapping from exceptions to `error` objects. Unknown ones never leak their text."""
    if isinstance(exc, RpcError):
        return _error(exc.code, exc.message, exc.data)
    if isinstance(exc, faults.Fault):
        code = next(c for kind, c in FAULT_CODES.items() if isinstance(exc, kind))
        data = {"type": type(exc).__name__, **exc.details}
        return _error(code, exc.message, data)
    log.error("internal error", exc_info=(type(exc), exc, exc.__traceback__))
    return _error(INTERNAL_ERROR, "Internal error", {"type": "InternalError"})


def unencodable_response(request_id: Any) -> dict[str, Any]:
    """The answer for a request whose result cannot be written as JSON (the writer's `explain`)."""
    error = to_wire_error(RpcError(INTERNAL_ERROR, "Internal error", {"type": "UnencodableResult"}))
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def to_stream_error(
    exc: BaseException, message: str = "generation failed", code: int = GENERATION_FAILED
) -> dict[str, Any]:
    """The same mapping for what ends a stream (`stream.event`) or the process (`runtime/fatal`):
    a fault's own message, else the mapped `message`; the exception's type and a code; the traceback
    goes to stderr only, so library text never reaches the wire."""
    if isinstance(exc, faults.Fault):
        return {"error": exc.message, "error_type": type(exc).__name__, "error_code": to_wire_error(exc)["code"]}
    log.error("%s", message, exc_info=(type(exc), exc, exc.__traceback__))
    if _out_of_memory(exc):
        return {"error": "out of memory", "error_type": "OutOfMemory", "error_code": OUT_OF_MEMORY}
    return {"error": message, "error_type": type(exc).__name__, "error_code": code}


def _out_of_memory(exc: BaseException) -> bool:
    """MLX reports a failed allocation as a RuntimeError (std::bad_alloc, "[malloc] ..."), not MemoryError."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or any(hint in text for hint in ("out of memory", "bad_alloc", "malloc"))


def _error(code: int, message: str, data: dict[str, Any] | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data:
        error["data"] = data
    return error
