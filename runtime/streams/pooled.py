"""An embed or rerank job's answer: the request's response, built when its job finishes.

It is the job's `StreamOutput` (the lifecycle calls `end` once, on the engine thread): a finished
job's rows go to `complete`, which builds the result; an error, a cancel or a timeout answers the
request with the matching fault (the protocol maps it).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from runtime import faults
from runtime.engine.events import Finished, TokenEvent


class PooledOutput:
    __slots__ = ("answer", "complete", "what")

    def __init__(self, answer: Future[Any], complete: Callable[[Finished], Any], what: str) -> None:
        self.answer, self.complete, self.what = answer, complete, what

    def token(self, event: TokenEvent) -> None:
        raise AssertionError("embed and rerank jobs produce no tokens")

    def end(self, event: Finished) -> None:
        if self.answer.done():
            return
        if event.reason == "stop" and event.pooled is not None:
            try:
                self.answer.set_result(self.complete(event))
            except Exception as exc:  # the protocol's one mapping reports it
                self.answer.set_exception(exc)
        elif event.reason == "error":
            self.answer.set_exception(event.failure or faults.GenerationFailed(f"{self.what} failed"))
        elif event.reason == "timeout":
            self.answer.set_exception(
                faults.Cancelled(f"the {self.what} request ran past its timeout_ms", reason="timeout")
            )
        else:
            self.answer.set_exception(faults.Cancelled(f"the {self.what} request was cancelled", reason=event.reason))
