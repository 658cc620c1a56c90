"""Bounded polling for tests: every wait ends, with the answer of the last look."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(check: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> bool:
    """True as soon as `check()` is; False once `timeout` seconds have passed without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())
