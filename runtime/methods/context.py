"""What the handlers share: configuration, the engine, the scheduler and the way out."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from runtime import faults
from runtime.catalog import Catalog
from runtime.config import Limits
from runtime.engine.drafts import Compatibility
from runtime.engine.jobs import Job
from runtime.engine.models import ModelStore
from runtime.engine.worker import EngineWorker
from runtime.metrics import RuntimeMetrics
from runtime.protocol.dispatch import CallContext, Reply
from runtime.protocol.envelope import notification
from runtime.scheduler.breaker import CircuitBreaker
from runtime.scheduler.embed_cache import EmbeddingCache
from runtime.scheduler.lifecycle import StreamLifecycle
from runtime.scheduler.queue import AdmissionQueue
from runtime.scheduler.registry import StreamRegistry
from runtime.scheduler.thermal import ThermalGuard
from runtime.transport.writer import Writer

if TYPE_CHECKING:
    from runtime.methods.drafts import Pairing


class Marks:
    """A set whose members are counted: a key added twice stays in until discarded twice (two
    unloads of one model in flight each mark it, and the first to end must not unmark it)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def discard(self, key: str) -> None:
        with self._lock:
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
            else:
                self._counts.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._counts


class GroupView(Protocol):
    """The distributed group this runtime is rank 0 of (server/distributed.py), as handlers see it."""

    def describe(self) -> dict[str, Any]: ...

    def state(self) -> dict[str, Any]: ...

    def loss(self) -> faults.GroupLost | None: ...


def single_machine_only(services: Services, feature: str) -> None:
    """Refuse what a distributed group cannot do (its ranks would stop making the same MLX calls)."""
    if services.group is not None:
        raise faults.Unsupported(f"{feature} is not available across a distributed group", feature=feature)


def group_intact(services: Services) -> None:
    """A group that lost a rank generates nothing more: say which rank, and why."""
    if services.group is not None:
        lost = services.group.loss()
        if lost is not None:
            raise lost


@dataclass
class Services:
    """Wiring (limits, engine, scheduler, writer, process hooks), then the handlers' shared state."""

    limits: Limits
    store: ModelStore
    worker: EngineWorker
    streams: StreamRegistry
    queue: AdmissionQueue[Job]
    breaker: CircuitBreaker
    lifecycle: StreamLifecycle  # every stream's open, start, events, finish and cancel
    writer: Writer
    # Begins shutdown (drain?, timeout s) and resolves when streams are ended and models unloaded.
    begin_shutdown: Callable[[bool, float], Future[None]]
    request_exit: Callable[[int], None]
    blas: dict[str, Any]
    capabilities: list[str]  # the wire methods (methods.capabilities()), for runtime/ready and runtime/info
    # runtime/metrics: the collector the lifecycle records each stream's end in (the same instance)
    metrics: RuntimeMetrics = field(default_factory=RuntimeMetrics)
    catalog: Catalog = field(default_factory=Catalog)  # the models file's registry (empty: none given)
    thermal: ThermalGuard | None = None  # paces or pauses admissions under thermal pressure
    embed_cache: EmbeddingCache = field(default_factory=lambda: EmbeddingCache(0, 0))  # off unless the app sizes it
    loads: dict[str, Future[Any]] = field(default_factory=dict)
    loads_lock: threading.Lock = field(default_factory=threading.Lock)
    # Where each model id is in its life while not simply ready or absent: downloading, loading,
    # warming, unloading (models/list, runtime/state).
    model_states: dict[str, str] = field(default_factory=dict)
    # One load at a time makes room (methods/room.py); notified when a reservation goes.
    room_changed: threading.Condition = field(default_factory=threading.Condition)
    reserved_bytes: dict[str, int] = field(default_factory=dict)  # loads past the memory check, not landed
    unloads: dict[str, Future[Any]] = field(default_factory=dict)  # the unload claimed last, by model id
    # request key -> the (load, answer) pairs it waits on (methods/loading.answer_when_loaded)
    load_waiters: dict[str, list[tuple[Any, Future[Any]]]] = field(default_factory=dict)
    waiting_for_models: int = 0  # requests waiting for an on-demand load (bounded by max_queued)
    group: GroupView | None = None  # rank 0 of a distributed group: every model is split across it
    started_at: float = field(default_factory=time.time)
    shutting_down: bool = False
    unloading: Marks = field(default_factory=lambda: Marks())  # model ids with an unload claimed
    drafts: dict[str, Pairing] = field(default_factory=dict)  # target id -> its paired draft
    draft_checks: dict[tuple[str, float, str, float], Compatibility] = field(default_factory=dict)  # per loaded pair
    fingerprints: dict[tuple[str, float], str] = field(default_factory=dict)  # loaded model -> weights hash
    # request keys being prepared (preparer thread) or waiting for their models (background pool)
    preparing: set[str] = field(default_factory=set)
    cancelled_while_preparing: set[str] = field(default_factory=set)
    # Prepares requests off the reader thread: compiles new structured-output grammars, loads and
    # decodes images (see methods/generate.py).
    preparer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
    )
    # Work a handler must not do on the reader thread and that waits on others (loads, unloads,
    # draft checks, session files): the future it returns is the reply.
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="background")
    )

    def in_background(self, work: Callable[[], Any]) -> Reply:
        """Run `work` off the reader thread; its result or exception is the response."""
        return Reply(future=self.background.submit(work))

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.writer.send(notification(method, params))


def request_key(request_id: Any) -> str:
    """A request id as a set key (ids may be numbers or strings: JSON keeps them apart)."""
    return json.dumps(request_id, sort_keys=True)


# A wire method's handler: the shared services, the validated params, the call's context.
Handler = Callable[[Services, dict[str, Any], CallContext], Any]
