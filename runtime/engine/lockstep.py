"""One model served by a distributed group, its ranks in lock-step (docs/distributed.md).

Rank 0 owns the protocol; every rank runs the same engine turns. What a turn does depends on what
only rank 0 sees (requests, cancels, deadlines, loads), so before each turn rank 0 sends the other
ranks its plan: the engine ops it runs (load, unload), the streams it admits (the request's params,
from which every rank builds the same request) and the streams that stop. Everything else a turn
does follows from the plan and from the tokens, so every rank makes the same MLX calls and the
collectives inside the sharded model (mlx-lm's `shard()` all_sum, its pipeline's send/recv) meet.

The plan travels over the group itself: one `all_sum` of a fixed-size frame, rank 0 giving the
bytes and the others zeros (a second one only for a plan that does not fit). An op that fails on
any rank fails on all of them (`settle`: each rank's outcome, gathered), so no rank holds a model
another lacks.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import mlx.core as mx
import numpy as np
import orjson
from mlx_lm.generate import generation_stream

from runtime import faults
from runtime.engine.events import Event, Finished, TokenEvent
from runtime.engine.jobs import Job, StreamJob, stop_reason

log = logging.getLogger(__name__)

FRAME_BYTES = 1024  # one all_sum carries a plan up to this size (a decode turn's plan is ~60 bytes)
STATUS_BYTES = 240  # each rank's outcome of an op, gathered: "" or the start of its error
BACKEND_TAGS = ("[ring]", "[mpi]", "[jaccl]", "[nccl]")  # how MLX's distributed backends begin their errors
Parallel = str  # "auto" | "tensor" | "pipeline" | "mlp"


class Desync(RuntimeError):
    """A rank's tokens differ from rank 0's: its turns no longer match, so it stops."""


@dataclass
class Plan:
    """What rank 0's next turn does that the other ranks cannot know by themselves."""

    turn: int
    digest: int  # every token emitted before this turn, folded (each rank checks it has the same)
    ops: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # {stream_id, model_id, params}
    stops: list[list[str]] = field(default_factory=list)  # [stream_id, reason]

    def encode(self) -> bytes:
        return orjson.dumps(
            {"turn": self.turn, "digest": self.digest, "ops": self.ops, "jobs": self.jobs, "stops": self.stops}
        )

    @classmethod
    def decode(cls, data: bytes) -> Plan:
        fields = orjson.loads(data)
        return cls(fields["turn"], fields["digest"], fields["ops"], fields["jobs"], fields["stops"])


class Collective:
    """The group's collectives this module uses, on the CPU stream (the ring backend's)."""

    def __init__(self, group: Any) -> None:
        self.group = group
        self.rank, self.size = group.rank(), group.size()

    def broadcast(self, payload: bytes | None) -> bytes:
        """Rank 0's `payload` on every rank (the others pass None)."""
        settle_streams()
        frame = np.zeros(FRAME_BYTES, np.uint8)
        if payload is not None:
            inline = payload[: FRAME_BYTES - 4]
            frame[:4] = np.frombuffer(len(payload).to_bytes(4, "little"), np.uint8)
            frame[4 : 4 + len(inline)] = np.frombuffer(inline, np.uint8)
        got = self._sum(frame)
        size = int.from_bytes(got[:4].tobytes(), "little")
        body = got[4 : 4 + min(size, FRAME_BYTES - 4)].tobytes()
        if size > FRAME_BYTES - 4:
            rest = np.zeros(size - (FRAME_BYTES - 4), np.uint8)
            if payload is not None:
                rest[:] = np.frombuffer(payload[FRAME_BYTES - 4 :], np.uint8)
            body += self._sum(rest).tobytes()
        return body

    def gather_text(self, text: str) -> list[str]:
        """Every rank's short text (its outcome of an op), in rank order."""
        settle_streams()
        local = np.zeros(STATUS_BYTES, np.uint8)
        encoded = text.encode()[:STATUS_BYTES]
        local[: len(encoded)] = np.frombuffer(encoded, np.uint8)
        gathered = mx.distributed.all_gather(mx.array(local), group=self.group, stream=mx.cpu)
        rows = np.array(gathered).reshape(self.size, STATUS_BYTES)
        return [row.tobytes().rstrip(b"\0").decode(errors="replace") for row in rows]

    def _sum(self, frame: np.ndarray) -> np.ndarray:
        return np.array(mx.distributed.all_sum(mx.array(frame), group=self.group, stream=mx.cpu))


def settle_streams() -> None:
    """Finish the work already queued (mlx-lm's decode loop evaluates the next token ahead, on its
    own stream) before a collective of this module's: collectives on two streams could otherwise
    meet in a different order on two ranks, each then reading the other's bytes as its own."""
    mx.synchronize(generation_stream)
    mx.synchronize()


def shard(model: Any, group: Any, how: Parallel, model_id: str) -> str:
    """Split a freshly read (lazy) model over the group with mlx-lm's and MLX's own code; returns how.

    tensor: `model.shard(group)` (attention heads and MLP columns split, an all_sum per block);
    pipeline: `model.model.pipeline(group)` (contiguous layers per rank, send/recv between them);
    mlp: only the MLP projections split with MLX's `shard_linear`, attention computed on every rank
    (for a model whose heads do not divide among the ranks, and that has no pipeline)."""
    size = group.size()
    offers = {
        "tensor": hasattr(model, "shard") and _heads_divide(model, size),
        "pipeline": hasattr(getattr(model, "model", None), "pipeline"),
        "mlp": _mlp_divides(model, size),
    }
    if how == "auto":
        how = next((name for name, ok in offers.items() if ok), "none")
    if not offers.get(how, False):
        kind = getattr(model, "model_type", type(model).__module__)
        possible = [name for name, ok in offers.items() if ok] or ["no"]
        raise faults.Unsupported(
            f"{model_id} ({kind}) cannot be split {how if how != 'none' else 'at all'} over {size} ranks: "
            f"{' or '.join(possible)} parallelism is possible for it",
            feature="parallel",
            model_id=model_id,
        )
    if how == "tensor":
        model.shard(group)
    elif how == "pipeline":
        model.model.pipeline(group)
    else:
        _shard_mlps(model, group)
    return how


def _heads_divide(model: Any, size: int) -> bool:
    args = getattr(model, "args", None)
    heads = getattr(args, "num_attention_heads", None)
    if heads is None:
        return True  # shard() knows its own architecture
    kv_heads = getattr(args, "num_key_value_heads", None) or heads
    return bool(heads % size == 0 and kv_heads % size == 0)


def _mlps(model: Any) -> list[Any]:
    layers = getattr(getattr(model, "model", None), "layers", None) or []
    return [getattr(layer, "mlp", None) for layer in layers]


def _mlp_divides(model: Any, size: int) -> bool:
    mlps = _mlps(model)
    return bool(mlps) and all(
        mlp is not None
        and all(hasattr(mlp, name) for name in ("gate_proj", "up_proj", "down_proj"))
        and mlp.up_proj.weight.shape[0] % size == 0
        for mlp in mlps
    )


def _shard_mlps(model: Any, group: Any) -> None:
    from mlx.nn.layers.distributed import shard_linear

    for mlp in _mlps(model):
        mlp.gate_proj = shard_linear(mlp.gate_proj, "all-to-sharded", group=group)
        mlp.up_proj = shard_linear(mlp.up_proj, "all-to-sharded", group=group)
        mlp.down_proj = shard_linear(mlp.down_proj, "sharded-to-all", group=group)


Failed = Callable[[StreamJob, Finished], Finished]


class Tracker:
    """The streams in flight on this rank, and the digest of their tokens and endings (the same on
    every rank while the ranks agree)."""

    def __init__(self, failed: Failed | None = None) -> None:
        self.live: dict[str, StreamJob] = {}
        self.digest = 0
        # A stream that failed after it started may have failed on this rank only (out of memory):
        # the ranks no longer make the same calls. Rank 0 gives the group up; a follower stops.
        self.failed = failed

    def track(self, job: StreamJob) -> None:
        job.lockstep = True
        self.live[job.stream_id] = job
        emit = job.emit

        def tracked(event: Event) -> None:
            if isinstance(event, TokenEvent):
                self.digest = zlib.crc32(event.token_id.to_bytes(4, "little"), self.digest)
            elif isinstance(event, Finished):
                self.live.pop(job.stream_id, None)
                ending = f"{job.stream_id}:{event.reason}:{event.generated_tokens}".encode()
                self.digest = zlib.crc32(ending, self.digest)
                if event.reason == "error" and event.path is not None and self.failed is not None:
                    event = self.failed(job, event)
            emit(event)

        job.emit = tracked

    def latch(self, now: float) -> list[list[str]]:
        """Rank 0: the streams that must stop, decided once for this turn (cancel, deadline)."""
        stops = []
        for job in self.live.values():
            if job.stop_now is None:
                reason = stop_reason(job.cancel, job.deadline, now)
                if reason is not None:
                    job.stop_now = reason
                    stops.append([job.stream_id, reason])
        return stops

    def apply(self, stops: Iterable[list[str]]) -> None:
        """Another rank: rank 0's stops, before the turn."""
        for stream_id, reason in stops:
            job = self.live.get(stream_id)
            if job is not None:
                job.stop_now = reason  # type: ignore[assignment]


class Leader:
    """Rank 0's side: sends each turn's plan, settles each op with every rank's outcome."""

    def __init__(
        self,
        collective: Collective,
        diagnose: Callable[[BaseException], faults.GroupLost],
        on_lost: Callable[[faults.GroupLost], None] = lambda lost: None,
    ) -> None:
        self.collective, self.diagnose, self.on_lost = collective, diagnose, on_lost
        self.tracker = Tracker(self.stream_failed)
        self.turn = 0
        self.lost: faults.GroupLost | None = None

    def admit(self, jobs: list[Job]) -> tuple[list[StreamJob], list[dict[str, Any]], list[Job]]:
        """The jobs every rank can rebuild (tracked, described for the plan) and those it cannot."""
        kept: list[StreamJob] = []
        entries: list[dict[str, Any]] = []
        refused: list[Job] = []
        for job in jobs:
            if isinstance(job, StreamJob) and job.origin is not None:
                self.tracker.track(job)
                kept.append(job)
                entries.append(
                    {
                        "stream_id": job.stream_id,
                        "model_id": job.loaded.model_id,
                        "params": job.origin,
                        "check": request_check(job),
                    }
                )
            else:
                refused.append(job)
        return kept, entries, refused

    def send(self, ops: list[dict[str, Any]], entries: list[dict[str, Any]], stops: list[list[str]]) -> None:
        """Broadcast the turn's plan; a group that cannot take it is lost (GroupLost)."""
        if self.lost is not None:
            raise self.lost
        self.turn += 1
        plan = Plan(self.turn, self.tracker.digest, ops, entries, stops)
        try:
            self.collective.broadcast(plan.encode())
        except Exception as exc:
            raise self._lose(exc) from None
        if any(op["op"] == "exit" for op in ops):  # the other ranks are gone: nothing more to send
            self.lost = faults.GroupLost("the distributed group was ended (shutdown)", rank=None, reason="shutdown")

    def settle(self, op: dict[str, Any], error: BaseException | None, result: Any = None) -> BaseException | None:
        """Every rank's outcome of `op`: rank 0's own error, else the first other rank's, else a
        rank that made something else than rank 0 (another split, another CPU weight format)."""
        mine = _outcome(op, error, result)
        try:
            outcomes = self.collective.gather_text(mine)
        except Exception as exc:
            return self._lose(exc)
        if error is not None:
            return error
        for rank, outcome in enumerate(outcomes):
            if outcome.startswith("!"):
                return faults.ModelLoadFailed(
                    f"{op['op']} of {op.get('model_id')} failed on rank {rank}: {outcome[1:]}",
                    model_id=op.get("model_id"),
                    rank=rank,
                )
            if outcome != mine:
                return faults.ModelLoadFailed(
                    f"rank {rank} made {outcome[1:]!r} of {op.get('model_id')}, rank 0 {mine[1:]!r}: "
                    "every rank needs the same build, files and settings",
                    model_id=op.get("model_id"),
                    rank=rank,
                )
        return None

    def stream_failed(self, job: StreamJob, finished: Finished) -> Finished:
        """A started stream failed here. Inside a collective (a rank went away mid-turn) the group
        was lost, and the stream says so, and which rank. Otherwise it may have failed on this rank
        only, so the group is given up (the other ranks stop) and the stream keeps its own error."""
        failure = finished.failure
        if failure is None or isinstance(failure, faults.GroupLost):
            return finished
        if any(tag in str(failure) for tag in BACKEND_TAGS):
            return replace(finished, failure=self._lose(failure))
        self._lose(RuntimeError(f"stream {job.stream_id} failed on rank 0 ({type(failure).__name__})"))
        return finished

    def _lose(self, exc: BaseException) -> faults.GroupLost:
        if self.lost is None:
            self.lost = self.diagnose(exc)
            log.error("the distributed group is lost: %s", self.lost.message)
            self.on_lost(self.lost)
        return self.lost


def _outcome(op: dict[str, Any], error: BaseException | None, result: Any) -> str:
    """One rank's outcome of an op, gathered by rank 0: "!" and the error, or "=" and a summary of
    what it made that every rank must agree on."""
    if error is not None:
        return "!" + _describe(error)
    if op["op"] == "read":
        from runtime.engine.models import read_summary

        return "=" + read_summary(result)
    return "="


def _describe(error: BaseException) -> str:
    text = error.message if isinstance(error, faults.Fault) else f"{type(error).__name__}: {error}"
    return text or type(error).__name__


def request_check(job: StreamJob) -> int:
    """What two ranks' requests must agree on before any forward pass: the prompt's tokens (a chat
    template that reads the clock, other tokenizer files) and the length asked."""
    request = job.request
    head = f"{request.max_tokens}:{request.use_prompt_cache}:".encode()
    return zlib.crc32(b"".join(t.to_bytes(4, "little") for t in request.prompt_tokens), zlib.crc32(head))


def without_orphans(jobs: list[StreamJob]) -> list[StreamJob]:
    """Streams whose model an op of this very turn unloaded end here, the same on every rank."""
    kept = []
    for job in jobs:
        if job.loaded.alive.is_set():
            kept.append(job)
        else:
            failure = faults.ModelNotLoaded(f"Model was unloaded: {job.loaded.model_id}", model_id=job.loaded.model_id)
            job.emit(Finished.unstarted(job, "error", time.perf_counter(), failure=failure))
    return kept


class Follower:
    """A rank other than 0: runs rank 0's plans, turn after turn, until told to exit (or the group
    breaks: then it raises, and the process ends)."""

    def __init__(
        self,
        collective: Collective,
        run_op: Callable[[dict[str, Any]], str],
        undo_op: Callable[[dict[str, Any]], None],
        build_job: Callable[[dict[str, Any]], StreamJob],
        run_turn: Callable[[list[StreamJob]], None],
    ) -> None:
        self.collective = collective
        self.run_op, self.undo_op, self.build_job, self.run_turn = run_op, undo_op, build_job, run_turn
        self.tracker = Tracker(self._stream_failed)

    def serve(self) -> None:
        while True:
            plan = Plan.decode(self.collective.broadcast(None))
            if plan.digest != self.tracker.digest:
                raise Desync(f"turn {plan.turn}: this rank's tokens differ from rank 0's")
            jobs = [self._job(entry) for entry in plan.jobs]  # taken before the ops, as on rank 0
            for op in plan.ops:
                if op["op"] == "exit":
                    return
                self._settle(op)
            self.tracker.apply(plan.stops)
            self.run_turn(without_orphans(jobs))

    def _job(self, entry: dict[str, Any]) -> StreamJob:
        try:
            job = self.build_job(entry)
        except Exception as exc:
            raise Desync(f"stream {entry['stream_id']}: rank 0 built its request, this rank could not: {exc}") from None
        if request_check(job) != entry["check"]:
            raise Desync(f"stream {entry['stream_id']}: this rank built another prompt than rank 0's")
        self.tracker.track(job)
        return job

    def _stream_failed(self, job: StreamJob, finished: Finished) -> Finished:
        raise Desync(f"stream {job.stream_id} failed on this rank: {finished.failure}")

    def _settle(self, op: dict[str, Any]) -> None:
        error: BaseException | None = None
        summary = ""
        try:
            summary = self.run_op(op)
        except Exception as exc:
            error = exc
            log.warning("op %s failed on this rank", op["op"], exc_info=True)
        mine = "!" + _describe(error) if error is not None else "=" + summary
        outcomes = self.collective.gather_text(mine)
        if error is None and any(outcome != outcomes[0] or outcome.startswith("!") for outcome in outcomes):
            self.undo_op(op)  # a rank failed it, or made something else: no rank keeps what it made


def sever(ports: set[int]) -> int:
    """Shut down this process's sockets to or from `ports` (the group's ring connections), so a
    collective blocked on a rank that stopped answering fails at once instead of never returning.
    Returns how many were shut down."""
    severed = 0
    for name in os.listdir("/dev/fd"):
        try:
            duplicate = os.dup(int(name))
        except (OSError, ValueError):
            continue
        try:
            probe = socket.socket(fileno=duplicate)
        except OSError:
            os.close(duplicate)
            continue
        try:
            ends = [probe.getsockname(), probe.getpeername()]
            if any(isinstance(end, tuple) and end[1] in ports for end in ends):
                probe.shutdown(socket.SHUT_RDWR)
                severed += 1
        except OSError:
            pass
        finally:
            probe.close()
    return severed


def init_group(backend: str, timeout_s: float, give_up: Callable[[], str | None] = lambda: None) -> Any:
    """mx.distributed.init; a group that does not form in time (or that `give_up` gives up on: a
    rank exited) is an error, not a runtime that never starts (the ring waits for every rank)."""
    done: list[Any] = []
    failed: list[BaseException] = []

    def init() -> None:
        try:
            done.append(mx.distributed.init(backend=backend, strict=True))
        except BaseException as exc:
            failed.append(exc)

    worker = threading.Thread(target=init, name="group-init", daemon=True)
    started = time.monotonic()
    worker.start()
    while worker.is_alive() and time.monotonic() - started < timeout_s:
        worker.join(0.2)
        reason = give_up()
        if reason is not None and worker.is_alive():
            raise RuntimeError(reason)
    if failed:
        raise failed[0]
    if not done:
        raise TimeoutError(f"the group did not form within {time.monotonic() - started:.0f} s")
    return done[0]
