"""Domain errors shared by every layer; they carry no wire codes (runtime.protocol.errors maps them).

The engine raises these, the methods raise these, and exactly one function turns them into
JSON-RPC errors. Keeping them in a dependency-free module lets the engine stay ignorant of the
protocol.
"""

from __future__ import annotations

from typing import Any


class Fault(Exception):
    """Base of every expected failure. `details` become the error's `data`."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(Fault):
    """A request is well-formed JSON-RPC but its params are wrong; `errors` lists where."""

    def __init__(self, errors: list[dict[str, str]], message: str = "Invalid params") -> None:
        super().__init__(message, errors=errors)
        self.errors = errors

    @classmethod
    def at(cls, path: str, message: str) -> InvalidInput:
        return cls([{"path": path, "message": message}])


class ModelLoadFailed(Fault):
    pass


class ModelNotLoaded(Fault):
    pass


class GenerationFailed(Fault):
    pass


class TokenizerFailed(Fault):
    pass


class GuidanceFailed(Fault):
    pass


class OutOfMemory(Fault):
    pass


class ShuttingDown(Fault):
    pass


class Busy(Fault):
    """Admission refused; `retry_after_ms` tells the host when to try again."""


class CircuitOpen(Fault):
    """The engine's circuit breaker is open; `retry_after_ms` says when a probe may run."""


class Cancelled(Fault):
    pass


class GroupLost(Fault):
    """A distributed group lost a rank (it exited, or stopped answering): every stream it served
    ends with this; `rank`, `host` and `reason` say which and why."""


class Unsupported(Fault):
    """The feature exists but not in this configuration (e.g. embeddings across a distributed group)."""
