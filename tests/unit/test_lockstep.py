"""The pieces of a distributed group that need no second process: plans, the stop latch and digest,
the split chosen for a model, hostfiles (engine/lockstep.py, server/distributed.py)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import mlx.core as mx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import faults
from runtime.engine.events import Finished, TokenEvent
from runtime.engine.jobs import StreamJob
from runtime.engine.lockstep import FRAME_BYTES, Collective, Leader, Plan, Tracker, shard
from runtime.server.distributed import GroupError, _without_distributed, read_hostfile


def job(stream_id: str, sink: list[Any], deadline: float | None = None) -> StreamJob:
    loaded: Any = SimpleNamespace(model_id="m")
    request: Any = SimpleNamespace(prompt_tokens=[1, 2])
    return StreamJob(stream_id, loaded, request, sink.append, threading.Event(), time.perf_counter(), deadline)


@given(st.lists(st.text(max_size=30), max_size=40), st.integers(0, 2**32 - 1))
def test_a_plan_reads_back_as_it_was_written(prompts: list[str], digest: int) -> None:
    jobs = [{"stream_id": f"s{i}", "model_id": "m", "params": {"prompt": p}} for i, p in enumerate(prompts)]
    plan = Plan(7, digest, [{"op": "unload", "model_id": "m"}], jobs, [["s0", "cancelled"]])
    assert Plan.decode(plan.encode()) == plan


def test_a_plan_larger_than_one_frame_crosses_a_group_whole() -> None:
    collective = Collective(mx.distributed.init())  # one process: a group of one
    small = b'{"turn": 1}'
    large = bytes(range(256)) * (3 * FRAME_BYTES // 256)
    assert collective.broadcast(small) == small
    assert collective.broadcast(large) == large
    assert collective.gather_text("read failed") == ["read failed"]


def test_a_stop_is_decided_once_a_turn_and_held_until_the_next() -> None:
    sink: list[Any] = []
    tracker = Tracker()
    cancelled, late, running = job("a", sink), job("b", sink, deadline=time.perf_counter() - 1), job("c", sink)
    for each in (cancelled, late, running):
        tracker.track(each)
    assert cancelled.stop_reason(time.perf_counter()) is None
    cancelled.cancel.set()
    assert cancelled.stop_reason(time.perf_counter()) is None  # not before the next turn's latch
    stops = tracker.latch(time.perf_counter())
    assert sorted(stops) == [["a", "cancelled"], ["b", "timeout"]]
    assert cancelled.stop_reason(0.0) == "cancelled" and late.stop_reason(0.0) == "timeout"
    assert running.stop_reason(time.perf_counter()) is None
    assert tracker.latch(time.perf_counter()) == []  # decided once


def test_a_follower_applies_rank_zeros_stops_to_its_own_streams() -> None:
    sink: list[Any] = []
    tracker = Tracker()
    mirrored = job("a", sink)
    tracker.track(mirrored)
    tracker.apply([["a", "timeout"], ["gone", "cancelled"]])
    assert mirrored.stop_reason(time.perf_counter()) == "timeout"


def test_the_digest_follows_the_tokens_and_a_finished_stream_leaves() -> None:
    first, second = Tracker(), Tracker()
    sinks: list[Any] = []
    a, b = job("a", sinks), job("a", sinks)
    first.track(a)
    second.track(b)
    for token in (5, 9, 11):
        a.emit(TokenEvent(token_id=token, text="x"))
        b.emit(TokenEvent(token_id=token, text="x"))
    assert first.digest == second.digest != 0
    b.emit(TokenEvent(token_id=12, text="y"))
    assert first.digest != second.digest
    a.emit(Finished(reason="stop", prompt_tokens=2))
    assert "a" not in first.live and len(sinks) == 8  # every event still reaches the stream's sink


def test_a_started_stream_that_fails_on_rank_zero_gives_the_group_up() -> None:
    lost = faults.GroupLost("rank 1 was lost", rank=1)
    given_up: list[faults.GroupLost] = []
    leader = Leader(cast(Any, None), lambda failure: lost, given_up.append)
    sink: list[Any] = []
    refused, inside, alone = job("a", sink), job("b", sink), job("c", sink)
    for each in (refused, inside, alone):
        leader.tracker.track(each)
    refused.emit(Finished(reason="error", prompt_tokens=2, failure=ValueError("bad params")))  # never started
    assert given_up == [] and isinstance(sink[0].failure, ValueError)
    ring = RuntimeError("[ring] connection to a peer was lost")
    inside.emit(Finished(reason="error", prompt_tokens=2, failure=ring, path="solo"))
    assert sink[1].failure is lost and given_up == [lost]  # the group was lost mid-turn: it says which rank
    alone.emit(Finished(reason="error", prompt_tokens=2, failure=MemoryError("out of memory"), path="batch"))
    assert isinstance(sink[2].failure, MemoryError) and leader.lost is lost  # its own error; the group is over


def fake_model(heads: int, kv_heads: int, intermediate: int, tensor: bool = True, pipeline: bool = False) -> Any:
    calls: list[str] = []
    mlp = SimpleNamespace(gate_proj=None, up_proj=SimpleNamespace(weight=mx.zeros((intermediate, 4))), down_proj=None)
    inner = SimpleNamespace(layers=[SimpleNamespace(mlp=mlp)])
    if pipeline:
        inner.pipeline = lambda group: calls.append("pipeline")
    model = SimpleNamespace(args=SimpleNamespace(num_attention_heads=heads, num_key_value_heads=kv_heads), model=inner)
    if tensor:
        model.shard = lambda group: calls.append("tensor")
    model.calls = calls
    return model


def group_of(size: int) -> Any:
    return SimpleNamespace(size=lambda: size)


def test_auto_splits_heads_where_they_divide_and_only_the_mlps_where_they_do_not() -> None:
    even = fake_model(heads=4, kv_heads=2, intermediate=64)
    assert shard(even, group_of(2), "auto", "even") == "tensor" and even.calls == ["tensor"]
    staged = fake_model(heads=3, kv_heads=1, intermediate=64, pipeline=True)
    assert shard(staged, group_of(2), "auto", "staged") == "pipeline" and staged.calls == ["pipeline"]


def test_a_model_that_cannot_be_split_as_asked_is_refused_and_told_what_can() -> None:
    odd = fake_model(heads=3, kv_heads=1, intermediate=64)
    with pytest.raises(faults.Unsupported) as refused:
        shard(odd, group_of(2), "tensor", "odd")
    assert "mlp" in refused.value.message and odd.calls == []
    nothing = fake_model(heads=3, kv_heads=1, intermediate=63, tensor=False)
    with pytest.raises(faults.Unsupported) as none:
        shard(nothing, group_of(2), "auto", "nothing")
    assert "cannot be split at all" in none.value.message


def test_a_hostfile_in_mlx_launch_form_gives_each_rank_the_next_port(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"ssh": "mac1", "ips": ["10.0.0.1"]}, {"ssh": "mac2", "ips": ["10.0.0.2"]}]))
    spec = read_hostfile(str(listed))
    assert [(h.rank, h.ip, h.port, h.local) for h in spec.hosts] == [
        (0, "10.0.0.1", 32323, False),
        (1, "10.0.0.2", 32324, False),
    ]
    assert spec.control == ("10.0.0.1", 32325)
    assert json.loads(spec.ring_hostfile()) == [["10.0.0.1:32323"], ["10.0.0.2:32324"]]
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps({"port": 40000, "hosts": [{"ssh": "localhost", "ips": ["127.0.0.1"]}] * 3}))
    assert [h.port for h in read_hostfile(str(ours)).hosts] == [40000, 40001, 40002]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "at least two ranks"),
        ('[{"ssh": "a", "ips": ["1.1.1.1"]}, {"ssh": "b"}]', "host 1 needs an 'ips' list"),
        ('{"backend": "jaccl", "hosts": [{"ips": ["1.1.1.1"]}, {"ips": ["1.1.1.2"]}]}', "mlx.launch"),
        ("{not json", "cannot read the hostfile"),
    ],
)
def test_a_hostfile_that_cannot_make_a_ring_says_why(tmp_path: Path, content: str, message: str) -> None:
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(content)
    with pytest.raises(GroupError, match=message):
        read_hostfile(str(hostfile))


def test_followers_get_rank_zeros_command_line_without_the_group_flags() -> None:
    argv = ["--stdio", "--distributed", "h.json", "--max-queued", "4", "--distributed-timeout=3", "--no-batching"]
    assert _without_distributed(argv) == ["--stdio", "--max-queued", "4", "--no-batching"]
