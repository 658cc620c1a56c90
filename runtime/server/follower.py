"""A rank other than 0: no protocol, no writer; it runs rank 0's turns on its shard (engine/lockstep.py).

It reads nothing from stdin and writes nothing to stdout (mlx.launch merges every rank's stdout
into rank 0's, which is the protocol's), and exits when rank 0 says so, when rank 0 goes away, or
when its turns stop matching rank 0's.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from runtime.config import Limits
from runtime.engine.jobs import StreamJob
from runtime.engine.lockstep import Collective, Follower
from runtime.engine.models import KvPolicy, ModelStore, Weights, read_summary
from runtime.engine.resolve import ResolvedModel
from runtime.engine.worker import EngineWorker
from runtime.requests.build import build_request
from runtime.server import distributed

log = logging.getLogger(__name__)


class _NoJobs:
    """A follower's jobs come in rank 0's plans, never from a queue of its own."""

    def take(self, now: float) -> list[Any]:
        return []

    def expired(self, now: float) -> list[Any]:
        return []

    def waiting(self) -> int:
        return 0


class FollowerRank:
    def __init__(self, limits: Limits, mx_group: Any, engine: dict[str, Any]) -> None:
        self.limits = limits
        self.store = ModelStore(limits.guide_cache_size, limits.prompt_cache_bytes, limits.prompt_cache_entries)
        self.store.group = mx_group
        self.worker = EngineWorker(_NoJobs(), self._fatal, **engine)
        self.collective = Collective(mx_group)
        self.pending: dict[str, Weights] = {}  # read, not yet admitted (engine/lockstep.py: two steps)

    def serve(self) -> None:
        self.worker.setup()
        Follower(self.collective, self.run_op, self.undo_op, self.build_job, self.worker.run_turn).serve()

    def run_op(self, op: dict[str, Any]) -> str:
        """Run rank 0's op here; what it made, for rank 0 to check every rank made the same."""
        kind = op["op"]
        if kind == "read":
            resolved = ResolvedModel(Path(op["path"]), op["source"])
            weights = self.store.read(
                op["model_id"], resolved, op["cpu_weights"], op["room_bytes"], op.get("task"), op["parallel"]
            )
            self.pending[op["model_id"]] = weights
            return read_summary(weights)
        if kind == "admit":
            weights = self.pending.pop(op["model_id"])
            self.store.admit(weights, op.get("context_length"), time.perf_counter(), KvPolicy(**op["kv"]))
        elif kind == "drop":
            self.pending.pop(op["model_id"], None)
        elif kind == "unload":
            self._unload(op["model_id"])
        elif kind == "unload_all":
            for loaded in self.store.all():
                self._unload(loaded.model_id)
        return ""

    def undo_op(self, op: dict[str, Any]) -> None:
        if op["op"] == "read":
            self.pending.pop(op["model_id"], None)
        elif op["op"] == "admit":
            self._unload(op["model_id"])

    def _unload(self, model_id: str) -> None:
        self.worker.forget_model(model_id)
        self.store.unload(model_id)

    def build_job(self, entry: dict[str, Any]) -> StreamJob:
        """The same request rank 0 built, from the same params (its seed included)."""
        loaded = self.store.require(entry["model_id"])
        params = entry["params"]
        request = build_request(self.limits, loaded, params, None)
        return StreamJob(
            entry["stream_id"], loaded, request, _discard, threading.Event(), time.perf_counter(), origin=params
        )

    def _fatal(self, exc: BaseException) -> None:
        raise exc


def _discard(event: Any) -> None:
    return None


def run_follower(limits: Limits, timeout_s: float) -> int:
    """The whole life of a follower rank; its exit code."""
    from runtime.engine.lockstep import Desync, init_group
    from runtime.server.app import engine_settings

    spec = distributed.launched_spec()
    rank = distributed.launched_rank()
    assert spec is not None and rank is not None
    try:
        mx_group = init_group(spec.backend, distributed.FORM_TIMEOUT_S)
        control = distributed.connect_control(spec.control, mx_group.rank(), distributed.FORM_TIMEOUT_S)
        settings = json.loads(Collective(mx_group).broadcast(None))  # rank 0's, whatever this rank was given
        limits = distributed.adopt_settings(limits, settings["limits"])
        engine = engine_settings(limits, settings["disable_compile"])
    except Exception as exc:
        log.error("rank %d could not join the group: %s", rank, exc)
        return 1
    log.info("rank %d of %d joined the group", mx_group.rank(), mx_group.size())
    try:
        FollowerRank(limits, mx_group, engine).serve()
    except Desync as exc:
        log.error("rank %d: %s", rank, exc)
        distributed.last_words(control, f"its tokens diverged from rank 0's ({exc})")
        return 1
    except Exception as exc:
        log.error("rank %d stops: %s: %s", rank, type(exc).__name__, exc)
        distributed.last_words(control, f"{type(exc).__name__}: {exc}")
        return 1
    log.info("rank %d: rank 0 ended the group", rank)
    return 0
