"""Wire the threads together and own the process lifecycle.

main thread: waits for the exit signal (so SIGTERM is handled at once)
reader thread: reads fd 0 line by line and dispatches (control methods answer here)
engine thread: every MLX call; writer thread: every byte to the protocol fd
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from runtime.catalog import Catalog
from runtime.config import Limits
from runtime.engine.jobs import Job
from runtime.engine.models import ModelStore
from runtime.engine.paths.pooling import PoolingLane
from runtime.engine.worker import EngineWorker, JobSource
from runtime.methods import build, capabilities, registry
from runtime.methods.context import Services
from runtime.methods.loading import stop_all_loads
from runtime.methods.runtime import identity
from runtime.metrics import RuntimeMetrics
from runtime.metrics.collector import PYTHON_CELLS, Cells, Collector, native_cells
from runtime.protocol.dispatch import Dispatcher
from runtime.protocol.envelope import error_response, notification
from runtime.protocol.errors import INTERNAL_ERROR, to_stream_error, to_wire_error, unencodable_response
from runtime.scheduler.breaker import CircuitBreaker, Transition
from runtime.scheduler.embed_cache import EmbeddingCache
from runtime.scheduler.lifecycle import StreamLifecycle
from runtime.scheduler.queue import AdmissionQueue
from runtime.scheduler.registry import StreamRegistry
from runtime.scheduler.thermal import GuardedSource, ThermalGuard
from runtime.server.blas import BlasStatus
from runtime.server.distributed import Group
from runtime.transport.framing import LineReader, OversizedLine
from runtime.transport.stdio import ProtocolFds
from runtime.transport.writer import Writer

if TYPE_CHECKING:
    from runtime.engine.lockstep import Leader

log = logging.getLogger(__name__)
READY_LINE = "MLX Runtime ready"
CANCEL_GRACE_S = 1.5
GROUP_LOSS_GRACE_S = 2.0  # a lost rank: how long the engine may take to end its streams itself
LOW_MEMORY_PREFILL_STEP = 128  # --low-memory: smaller prefill chunks, smaller activation peaks
LOW_MEMORY_CACHE_BYTES = 64 * 1024 * 1024  # --low-memory: MLX keeps at most this much freed memory


def _thermal_probe() -> list[dict[str, Any]]:
    from runtime import faultinject
    from runtime.engine.platform import thermal

    root = faultinject.thermal_root()
    return thermal(root) if root else thermal()


def _metric_cells() -> Cells:
    """The native module's metric cells where it is built (and not turned off), else Python's."""
    from runtime.engine import native

    module = native.module()
    return native_cells(module) if module is not None and hasattr(module, "CounterCell") else PYTHON_CELLS


def _leader(group: Group | None) -> Leader | None:
    if group is None:
        return None
    from runtime.engine.lockstep import Collective, Leader

    return Leader(Collective(group.mx_group), group.health.diagnose, group.set_lost)


def engine_settings(limits: Limits, disable_compile: bool) -> dict[str, Any]:
    """How the engine steps streams: the same on every rank of a group, or their turns would differ."""
    return {
        "max_active": limits.max_active_streams,
        "prefill_step": min(limits.prefill_step, LOW_MEMORY_PREFILL_STEP) if limits.low_memory else limits.prefill_step,
        "batching": limits.batching,
        "disable_compile": disable_compile,
        "cache_limit_bytes": LOW_MEMORY_CACHE_BYTES if limits.low_memory else None,
    }


class Host(Protocol):
    """A host inside the process (the HTTP front door) in place of the parent on the protocol fds."""

    name: str

    def start(self, app: App) -> None: ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


class App:
    def __init__(
        self,
        fds: ProtocolFds,
        limits: Limits,
        blas: BlasStatus,
        disable_compile: bool = True,
        catalog: Catalog | None = None,
        group: Group | None = None,
    ) -> None:
        self.fds = fds
        self.exit_code = 0
        self._exit = threading.Event()
        self._shutdown: Future[None] | None = None
        self._shutdown_lock = threading.Lock()
        self.writer = Writer(
            fds.output_fd,
            max_queue=limits.max_outbound_queue,
            window_s=limits.coalesce_ms / 1000,
            on_broken=self._host_gone,
            explain=unencodable_response,
        )
        queue: AdmissionQueue[Job] = AdmissionQueue(limits.max_active_streams, limits.max_queued)
        self.thermal = ThermalGuard(
            limits.thermal_policy, limits.thermal_limit_c, limits.thermal_pace_ms / 1000, _thermal_probe
        )
        # The guard stands between queue and engine only when it has a policy: the engine asks its
        # source every turn, and with the policy off the queue answers directly.
        guarded = GuardedSource(queue, self.thermal) if limits.thermal_policy != "off" else None
        source: JobSource = guarded or queue
        self.group = group
        self.worker = EngineWorker(
            source,
            self._fatal,
            **engine_settings(limits, disable_compile),
            output=self.writer,
            pooling=PoolingLane(limits.embed_batch_size, limits.embed_batch_tokens),
            leader=_leader(group),
        )
        breaker = CircuitBreaker(
            limits.breaker_threshold,
            limits.breaker_window_ms / 1000,
            limits.breaker_cooldown_ms / 1000,
            on_transition=self._breaker_moved,
        )
        if guarded is not None:
            guarded.wake = self.worker.wake
        registry = StreamRegistry()
        metrics = RuntimeMetrics(Collector(_metric_cells()))
        store = ModelStore(limits.guide_cache_size, limits.prompt_cache_bytes, limits.prompt_cache_entries)
        store.group = None if group is None else group.mx_group
        self.services = Services(
            limits=limits,
            store=store,
            worker=self.worker,
            streams=registry,
            queue=queue,
            breaker=breaker,
            lifecycle=StreamLifecycle(registry, queue, breaker, self.worker.wake, metrics),
            writer=self.writer,
            begin_shutdown=self.begin_shutdown,
            request_exit=self.request_exit,
            blas=asdict(blas),
            capabilities=capabilities(),
            metrics=metrics,
            catalog=catalog or Catalog(),
            thermal=self.thermal,
            embed_cache=EmbeddingCache(limits.embed_cache_entries, limits.embed_cache_bytes),
            group=group,
        )
        self.dispatcher = Dispatcher(build(self.services), self.writer.send, limits.max_line_bytes)
        if group is not None:
            group.health.on_loss.append(self._group_lost)

    def run(self, host: Host | None = None) -> int:
        """Serve until shut down: the parent process on the protocol fds, or `host` (HTTP)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self._exit_after_shutdown(signal.Signals(signum).name))
        self.worker.start()
        registry.start_reaper(self.services)
        registry.load_default_model(self.services)
        if host is None:
            self._announce_ready()
            threading.Thread(target=self._read, name="reader", daemon=True).start()
        else:
            host.start(self)
            self._announce_ready()
        while not self._exit.wait(0.25):
            if host is not None and not host.alive():
                self.exit_code = 1
                self._exit_after_shutdown(f"{host.name} stopped")
                self._exit.wait(CANCEL_GRACE_S * 4)
                break
        if host is not None:
            host.stop()
        self.writer.close(timeout=2.0)
        return self.exit_code

    def _announce_ready(self) -> None:
        self.services.notify("runtime/ready", identity(self.services))
        print(READY_LINE, file=sys.stderr, flush=True)

    def _read(self) -> None:
        try:
            for line in LineReader(self.fds.input_fd, self.services.limits.max_line_bytes):
                self._handle(line)
        except Exception as exc:
            log.critical("reader failed", exc_info=True)
            self._fatal(exc)
            return
        log.info("stdin closed: shutting down")
        self._exit_after_shutdown("eof")

    def _handle(self, line: bytes | OversizedLine) -> None:
        """One line; whatever goes wrong with it, the reader goes on to the next."""
        try:
            self.dispatcher.handle_line(line)
        except Exception as exc:
            self.writer.send(error_response(None, to_wire_error(exc)))

    def begin_shutdown(self, drain: bool = False, timeout_s: float = 30.0) -> Future[None]:
        """Idempotent: stop admitting, end streams, unload models. Resolves when done."""
        with self._shutdown_lock:
            if self._shutdown is None:
                self._shutdown = Future()
                self.services.shutting_down = True
                self.services.streams.close()
                threading.Thread(target=self._shut_down, args=(drain, timeout_s), name="shutdown", daemon=True).start()
            return self._shutdown

    def _shut_down(self, drain: bool, timeout_s: float) -> None:
        streams = self.services.streams
        stop_all_loads(self.services)  # downloads stop (resumably), no load lands after the unloads
        try:
            if drain:
                streams.wait_idle(timeout_s)
            self.services.lifecycle.cancel_where()
            if not streams.wait_idle(CANCEL_GRACE_S):
                self.services.lifecycle.end_stragglers()
            self.worker.call_mirrored({"op": "unload_all"}, self._unload_all).result(timeout=CANCEL_GRACE_S)
        except Exception:
            log.warning("shutdown did not finish cleanly", exc_info=True)
        finally:
            if self.group is not None:  # every rank ends with rank 0
                self.group.health.ending = True
                with contextlib.suppress(Exception):
                    self.worker.call_mirrored({"op": "exit"}, lambda: None).result(timeout=CANCEL_GRACE_S)
                self.group.health.stop_children()
            assert self._shutdown is not None
            self._shutdown.set_result(None)

    def _unload_all(self) -> None:
        for loaded in self.services.store.all():
            self.worker.forget_model(loaded.model_id)
            self.services.store.unload(loaded.model_id)

    def _exit_after_shutdown(self, reason: str) -> None:
        log.info("shutting down (%s)", reason)
        self.begin_shutdown().add_done_callback(lambda _: self.request_exit(0))

    def _breaker_moved(self, transition: Transition) -> None:
        level = logging.WARNING if transition.state.value != "closed" else logging.INFO
        log.log(
            level, "circuit breaker %s -> %s: %s", transition.previous.value, transition.state.value, transition.reason
        )
        self.services.notify(
            "runtime/breaker",
            {
                "state": transition.state.value,
                "previous": transition.previous.value,
                "reason": transition.reason,
                "retry_after_ms": self.services.breaker.snapshot()["retry_after_ms"],
            },
        )

    def _group_lost(self) -> None:
        """A rank was lost (its control connection said so). The engine ends its streams itself when
        its next collective fails, but a wait inside MLX may never return: what it has not ended
        after a grace ends here, with the loss; the runtime goes on answering, refusing generation."""
        assert self.group is not None
        time.sleep(GROUP_LOSS_GRACE_S)
        lost = self.group.loss()
        if lost is not None:
            self.group.set_lost(lost)
            self.services.lifecycle.end_stragglers("error", lost)

    def request_exit(self, code: int) -> None:
        self.exit_code = max(code, self.exit_code)
        self._exit.set()

    def _host_gone(self) -> None:
        self._exit_after_shutdown("protocol output closed")

    def _fatal(self, exc: BaseException) -> None:
        error = to_stream_error(exc, "the engine thread failed", INTERNAL_ERROR)
        self.writer.send_now(notification("runtime/fatal", {**error, "exit_code": 1}))
        self.request_exit(1)
