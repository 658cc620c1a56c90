"""What the handlers share: configuration, the engine, the registries and the way out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from runtime.engine.models import ModelStore
from runtime.engine.worker import EngineWorker
from runtime.protocol import notification
from runtime.scheduler.registry import StreamRegistry
from runtime.writer import Writer


@dataclass(frozen=True)
class Limits:
    max_line_bytes: int = 16 * 1024 * 1024
    default_max_tokens: int = 512
    max_tokens: int = 32768
    prefill_step: int = 512


@dataclass
class Services:
    limits: Limits
    store: ModelStore
    worker: EngineWorker
    streams: StreamRegistry
    writer: Writer
    # Begins shutdown (drain?, timeout s) and resolves when streams are ended and models unloaded.
    begin_shutdown: Callable[[bool, float], Future[None]]
    request_exit: Callable[[int], None]
    blas: dict[str, Any]
    loads: dict[str, Future[Any]] = field(default_factory=dict)
    loads_lock: threading.Lock = field(default_factory=threading.Lock)
    started_at: float = field(default_factory=time.time)
    shutting_down: bool = False

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.writer.send(notification(method, params))
