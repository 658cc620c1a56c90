"""One load of one model id, shared by everyone who waits for it (`SharedLoad`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

LOAD_WAIT_S = 600.0


class SharedLoad(Future[dict[str, Any]]):
    """One load of one id: the answer of every load_model of that id meanwhile, run exactly once by
    whichever thread gets to it first (the task submitted for it, or a task that needs the model)."""

    def __init__(self, work: Callable[[], dict[str, Any]], stopped: threading.Event) -> None:
        super().__init__()
        self._work: Callable[[], dict[str, Any]] | None = work
        self._claim = threading.Lock()
        # Set once every request waiting on it was cancelled (and no load of the runtime's own
        # needs it): a download stops, resumably, and no weights are read.
        self.stopped = stopped
        self.requests: set[str] = set()  # keys (context.request_key) of the requests waiting on it
        self.holders = 0  # the runtime's own waiters (a target's draft, the default model): never cancel

    def run(self) -> None:
        """Do the load here unless a thread has already started it; its outcome is this future's."""
        with self._claim:
            work, self._work = self._work, None
        if work is None:
            return
        try:
            self.set_result(work())
        except BaseException as exc:  # the error is every waiting caller's answer
            self.set_exception(exc)

    def run_or_wait(self) -> dict[str, Any]:
        self.run()
        return self.result(LOAD_WAIT_S)


def wait_for(load: Future[Any]) -> Any:
    """A load in `services.loads`: run it here if nobody has started it, else wait for it."""
    return load.run_or_wait() if isinstance(load, SharedLoad) else load.result(LOAD_WAIT_S)
